package dev.latent.cli;

import dev.latent.io.SafeTensors;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * --steps, --resume and --stop-after work the same for every image train command: {@code --steps N} in one go and
 * {@code --steps N --stop-after k} then {@code --steps N --resume} write the same checkpoint, bit for bit; the older
 * spellings convert ({@code --iters} is {@code --steps} for the GANs).
 */
class TrainStepsCliTest {
    @TempDir static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 48, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 32, 2);
    }

    static void run(String model, Path out, List<String> common, String... extra) {
        List<String> a = new ArrayList<>(List.of("train", model, "--data", data.toString(), "--out", out.toString(), "--quiet"));
        a.addAll(common);
        a.addAll(List.of(extra));
        CliCapture c = CliCapture.picocli(a.toArray(String[]::new));
        assertEquals(0, c.rc(), String.join(" ", a) + "\n" + c.err());
    }

    static void same(Path a, Path b) throws IOException {
        try (Scope s = Scope.shared()) {
            var x = SafeTensors.read(a, s);
            var y = SafeTensors.read(b, s);
            assertEquals(x.tensors().keySet(), y.tensors().keySet());
            for (var e : x.tensors().entrySet()) {
                float[] p = e.getValue().toArray(), q = y.tensors().get(e.getKey()).toArray();
                for (int i = 0; i < p.length; i++)
                    if (Float.floatToRawIntBits(p[i]) != Float.floatToRawIntBits(q[i]))
                        throw new AssertionError(a + " vs " + b + ": " + e.getKey() + "[" + i + "] " + p[i] + " vs " + q[i]);
            }
            assertEquals(x.metadata().get("step"), y.metadata().get("step"));
        }
    }

    static void resumes(String model, String file, List<String> common) throws IOException {
        Path one = dir.resolve(model + "-one"), two = dir.resolve(model + "-two");
        run(model, one, common, "--steps", "5");
        run(model, two, common, "--steps", "5", "--stop-after", "2");
        run(model, two, common, "--steps", "5", "--resume");
        same(one.resolve(file), two.resolve(file));
    }

    @Test
    void vae() throws IOException {
        resumes("vae", "checkpoint.safetensors", List.of("--batch", "16", "--latent", "2", "--iwae-k", "0"));
    }

    @Test
    void dcganAndItsOlderIters() throws IOException {
        List<String> c = List.of("--batch", "8", "--nz", "8", "--ngf", "8", "--ndf", "8", "--log-interval", "1");
        resumes("dcgan", "checkpoint.safetensors", c);
        Path iters = dir.resolve("dcgan-iters");
        run("dcgan", iters, c, "--iters", "5");
        same(dir.resolve("dcgan-one").resolve("checkpoint.safetensors"), iters.resolve("checkpoint.safetensors"));
    }

    @Test
    void realnvp() throws IOException {
        resumes("realnvp", "checkpoint.safetensors", List.of("--batch", "16", "--couplings", "2", "--hidden", "8", "--test-limit", "8"));
    }

    @Test
    void pixelcnn() throws IOException {
        resumes("pixelcnn", "checkpoint.safetensors", List.of("--batch", "16", "--channels", "4", "--layers", "2", "--first-kernel", "3",
                "--head", "8", "--test-limit", "8", "--samples", "1"));
    }

    @Test
    void classifier() throws IOException {
        resumes("classifier", "classifier.safetensors", List.of("--batch", "16"));
    }

    @Test
    void resumeWithoutACheckpointIsRefused() {
        Path empty = dir.resolve("empty");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = new CommandLine(new Main()).setErr(new java.io.PrintWriter(err, true))
                .execute("train", "vae", "--data", data.toString(), "--out", empty.toString(), "--resume", "--quiet");
        assertTrue(rc != 0);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("no checkpoint"), err.toString(StandardCharsets.UTF_8));
    }
}
