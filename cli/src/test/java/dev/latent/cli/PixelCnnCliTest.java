package dev.latent.cli;

import dev.latent.io.Provenance;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** train | sample | eval pixelcnn end to end on a tiny model: the run folder, metrics, checkpoint, provenance, refusals. */
class PixelCnnCliTest {
    record Result(int rc, String out, String err) {}

    static synchronized Result run(String... args) {
        PrintStream so = System.out, se = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int rc;
        try (PrintStream po = new PrintStream(out, true, StandardCharsets.UTF_8); PrintStream pe = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setOut(po);
            System.setErr(pe);
            rc = Main.run(args);
        } finally {
            System.setOut(so);
            System.setErr(se);
        }
        return new Result(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void trainSampleEval(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        String[] train = {"train", "pixelcnn", "--out", out.toString(), "--limit", "64", "--test-limit", "16", "--channels", "8", "--layers", "2",
                "--head", "16", "--batch", "16", "--samples", "4", "--quiet"};
        Result r = run(train);
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("\"test_bits_per_dim\""), r.out());
        for (String f : new String[] {"checkpoint.safetensors", "metrics.jsonl", "samples-epoch-001.png"}) assertTrue(Files.isRegularFile(out.resolve(f)), f);
        assertEquals("pixelcnn", Provenance.read(out.resolve("samples-epoch-001.png")).orElseThrow().get("model"));

        Result again = run(train);
        assertEquals(1, again.rc());
        assertTrue(again.err().contains("already holds files"), again.err());

        Path png = dir.resolve("s.png");
        Result s = run("sample", "pixelcnn", "--checkpoint", out.toString(), "--out", png.toString(), "--n", "4", "--seed", "3");
        assertEquals(0, s.rc(), s.err());
        Map<String, Object> prov = Provenance.read(png).orElseThrow();
        assertEquals("pixelcnn", prov.get("model"));
        assertNotNull(prov.get("checkpoint_sha256"), prov.toString());

        Result e = run("eval", "pixelcnn", "--checkpoint", out.toString(), "--limit", "16");
        assertEquals(0, e.rc(), e.err());
        assertTrue(e.out().contains("\"test_bits_per_dim\""), e.out());

        Result bad = run("sample", "pixelcnn", "--checkpoint", out.toString(), "--out", png.toString(), "--sampler", "fast");
        assertEquals(2, bad.rc());   // a usage error: the value is not one of the set, which the message lists
        assertTrue(bad.err().contains("Invalid value for option '--sampler': expected one of [cached, naive] but was 'fast'"), bad.err());
        Result badK = run("train", "pixelcnn", "--out", dir.resolve("k").toString(), "--kernel", "4");
        assertEquals(1, badK.rc());
        assertTrue(badK.err().contains("odd"), badK.err());
        Result notOurs = run("eval", "pixelcnn", "--checkpoint", dir.resolve("nothing").toString());
        assertEquals(1, notOurs.rc());
        assertTrue(notOurs.err().contains("no PixelCNN checkpoint"), notOurs.err());
    }
}
