package dev.latent.cli;

import dev.latent.io.Provenance;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** train | sample | eval pixelcnn end to end on a tiny model: the run folder, metrics, checkpoint, provenance, refusals. */
class PixelCnnCliTest {
    static CliCapture run(String... args) { return CliCapture.main(args); }

    @Test
    void trainSampleEval(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        String[] train = {"train", "pixelcnn", "--out", out.toString(), "--limit", "64", "--test-limit", "16", "--channels", "8", "--layers", "2",
                "--head", "16", "--batch", "16", "--samples", "4", "--quiet"};
        CliCapture r = run(train);
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("\"test_bits_per_dim\""), r.out());
        for (String f : new String[] {"checkpoint.safetensors", "metrics.jsonl", "samples-epoch-001.png"}) assertTrue(Files.isRegularFile(out.resolve(f)), f);
        assertEquals("pixelcnn", Provenance.read(out.resolve("samples-epoch-001.png")).orElseThrow().get("model"));

        CliCapture again = run(train);
        assertEquals(1, again.rc());
        assertTrue(again.err().contains("already holds files"), again.err());

        Path png = dir.resolve("s.png");
        CliCapture s = run("sample", "pixelcnn", "--checkpoint", out.toString(), "--out", png.toString(), "--n", "4", "--seed", "3");
        assertEquals(0, s.rc(), s.err());
        Map<String, Object> prov = Provenance.read(png).orElseThrow();
        assertEquals("pixelcnn", prov.get("model"));
        assertNotNull(prov.get("checkpoint_sha256"), prov.toString());

        CliCapture e = run("eval", "pixelcnn", "--checkpoint", out.toString(), "--limit", "16");
        assertEquals(0, e.rc(), e.err());
        assertTrue(e.out().contains("\"test_bits_per_dim\""), e.out());

        CliCapture bad = run("sample", "pixelcnn", "--checkpoint", out.toString(), "--out", png.toString(), "--sampler", "fast");
        assertEquals(2, bad.rc());   // a usage error: the value is not one of the set, which the message lists
        assertTrue(bad.err().contains("Invalid value for option '--sampler': expected one of [cached, naive] but was 'fast'"), bad.err());
        CliCapture badK = run("train", "pixelcnn", "--out", dir.resolve("k").toString(), "--kernel", "4");
        assertEquals(1, badK.rc());
        assertTrue(badK.err().contains("odd"), badK.err());
        CliCapture notOurs = run("eval", "pixelcnn", "--checkpoint", dir.resolve("nothing").toString());
        assertEquals(1, notOurs.rc());
        assertTrue(notOurs.err().contains("no PixelCNN checkpoint"), notOurs.err());
    }
}
