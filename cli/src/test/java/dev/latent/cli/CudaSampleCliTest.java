package dev.latent.cli;

import dev.latent.cuda.Cuda;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code --device cuda} on {@code sample} and {@code eval}. Runs in both surefire executions and never skips: without
 * a GPU each command must say why once on stderr and give the CPU's output; with one (or the emulated driver, where the
 * backend must come up) it must say it runs on the device and give the CPU's output within float rounding: GPT text
 * (sampled at temperature 0.8 from the same Philox uniforms: equal unless a draw sits within rounding of a bucket edge),
 * VAE samples (IDX bytes within 1) and the test neg-ELBO (relative 1e-4), PixelCNN samples (the same pixels) and test
 * bits/dim (relative 1e-5); --sampler naive (a CPU reference) with a usable GPU is refused with the reason.
 */
class CudaSampleCliTest {
    static CliCapture run(String... args) { return CliCapture.main(args); }

    static boolean gpu() {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        return Cuda.available();
    }

    /** The device line on a GPU, else the unavailability reason exactly once and no device line. */
    static void saysWhere(CliCapture o, boolean gpu) {
        if (gpu) {
            assertTrue(o.err().contains("device: CUDA device 0"), o.err());
            assertFalse(o.err().contains("CUDA unavailable"), o.err());
        } else {
            String reason = Cuda.unavailableReason();
            assertEquals(1, o.err().split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + o.err());
            assertFalse(o.err().contains("device: CUDA"), o.err());
        }
    }

    @Test
    void sampleGpt(@TempDir Path dir) throws IOException {
        boolean gpu = gpu();
        Path data = dir.resolve("text.txt"), ck = dir.resolve("gpt");
        Files.writeString(data, "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money.\n".repeat(8));
        CliCapture t = run("train", "gpt", "--data", data.toString(), "--out", ck.toString(), "--steps", "6", "--layers", "1", "--heads", "2",
                "--dim", "16", "--context", "8", "--batch", "2", "--eval-interval", "3", "--eval-batches", "1", "--log-interval", "3",
                "--checkpoint-interval", "0", "--sample-tokens", "0");
        assertEquals(0, t.rc(), t.err());
        String[] common = {"sample", "gpt", "--checkpoint", ck.toString(), "--prompt", "Call", "--tokens", "20", "--temperature", "0.8", "--seed", "5"};
        CliCapture cpu = run(concat(common, "--device", "cpu")), cuda = run(concat(common, "--device", "cuda"));
        assertEquals(0, cpu.rc(), cpu.err());
        assertEquals(0, cuda.rc(), cuda.err());
        saysWhere(cuda, gpu);
        assertTrue(cpu.out().startsWith("Call") && cpu.out().length() > "Call".length() + 5, cpu.out());
        assertEquals(cpu.out(), cuda.out(), "sample gpt --device cuda vs cpu");
        assertTrue(cuda.err().contains("tokens/s"), cuda.err());
    }

    @Test
    void sampleAndEvalVae(@TempDir Path dir) throws IOException {
        boolean gpu = gpu();
        Path data = dir.resolve("images"), ck = dir.resolve("vae");
        Files.createDirectories(data);
        dev.latent.SyntheticImages.write(data, "train", 6, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 32, 2);
        CliCapture t = run("train", "vae", "--data", data.toString(), "--out", ck.toString(), "--epochs", "1", "--batch", "2", "--latent", "2",
                "--iwae-k", "0", "--quiet");
        assertEquals(0, t.rc(), t.err());
        Path a = dir.resolve("cpu.idx"), b = dir.resolve("cuda.idx");
        CliCapture sc = run("sample", "vae", "--checkpoint", ck.toString(), "--out", a.toString(), "--n", "8", "--device", "cpu");
        CliCapture sg = run("sample", "vae", "--checkpoint", ck.toString(), "--out", b.toString(), "--n", "8", "--device", "cuda");
        assertEquals(0, sc.rc(), sc.err());
        assertEquals(0, sg.rc(), sg.err());
        saysWhere(sg, gpu);
        byte[] x = Files.readAllBytes(a), y = Files.readAllBytes(b);
        assertEquals(x.length, y.length);
        for (int i = 0; i < x.length; i++) assertTrue(Math.abs((x[i] & 0xff) - (y[i] & 0xff)) <= 1, "byte " + i + ": " + x[i] + " vs " + y[i]);
        String[] eval = {"eval", "vae", "--checkpoint", ck.toString(), "--data", data.toString(), "--iwae-k", "2", "--iwae-n", "4"};
        CliCapture ec = run(concat(eval, "--device", "cpu")), eg = run(concat(eval, "--device", "cuda"));
        assertEquals(0, ec.rc(), ec.err());
        assertEquals(0, eg.rc(), eg.err());
        saysWhere(eg, gpu);
        for (String key : new String[] {"test_neg_elbo", "iwae_nll"}) {
            double u = number(ec.out(), key), v = number(eg.out(), key);
            assertEquals(u, v, 1e-4 * Math.abs(u), key + ": " + ec.out() + " vs " + eg.out());
        }
    }

    @Test
    void sampleAndEvalPixelCnn(@TempDir Path dir) throws IOException {
        boolean gpu = gpu();
        Path data = dir.resolve("images"), ck = dir.resolve("pixelcnn");
        Files.createDirectories(data);
        dev.latent.SyntheticImages.write(data, "train", 4, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 6, 2);
        CliCapture t = run("train", "pixelcnn", "--data", data.toString(), "--out", ck.toString(), "--steps", "2", "--batch", "2", "--channels", "4",
                "--layers", "2", "--first-kernel", "3", "--kernel", "3", "--head", "8", "--samples", "0", "--quiet");
        assertEquals(0, t.rc(), t.err());
        // samples: the device sampler draws with the CPU sampler's uniforms and rule (equal unless a draw sits within
        // float rounding of a CDF boundary: CudaPixelCnnTest bounds that case; none here)
        Path a = dir.resolve("cpu.png"), b = dir.resolve("cuda.png");
        String[] sample = {"sample", "pixelcnn", "--checkpoint", ck.toString(), "--n", "2", "--seed", "5", "--pixels", "40"};
        CliCapture sc = run(concat(sample, "--out", a.toString(), "--device", "cpu")), sg = run(concat(sample, "--out", b.toString(), "--device", "cuda"));
        assertEquals(0, sc.rc(), sc.err());
        assertEquals(0, sg.rc(), sg.err());
        saysWhere(sg, gpu);
        assertTrue(sg.out().contains(gpu ? "\"device\":\"cuda\"" : "\"device\":\"cpu\""), sg.out());
        var x = javax.imageio.ImageIO.read(a.toFile()); var y = javax.imageio.ImageIO.read(b.toFile());
        assertEquals(x.getWidth(), y.getWidth());
        assertEquals(x.getHeight(), y.getHeight());
        int[] px = x.getRGB(0, 0, x.getWidth(), x.getHeight(), null, 0, x.getWidth()), py = y.getRGB(0, 0, y.getWidth(), y.getHeight(), null, 0, y.getWidth());
        assertArrayEquals(px, py, "sample pixelcnn --device cuda vs cpu");
        assertTrue(java.util.Arrays.stream(px).distinct().count() > 2, "the grid is (nearly) constant: the comparison means nothing");
        String[] eval = {"eval", "pixelcnn", "--checkpoint", ck.toString(), "--data", data.toString(), "--limit", "3"};
        CliCapture ec = run(concat(eval, "--device", "cpu")), eg = run(concat(eval, "--device", "cuda"));
        assertEquals(0, ec.rc(), ec.err());
        assertEquals(0, eg.rc(), eg.err());
        saysWhere(eg, gpu);
        double u = number(ec.out(), "test_bits_per_dim"), v = number(eg.out(), "test_bits_per_dim");
        assertEquals(u, v, 1e-5 * u, "test_bits_per_dim: " + ec.out() + " vs " + eg.out());
        CliCapture naive = run("sample", "pixelcnn", "--checkpoint", ck.toString(), "--n", "1", "--pixels", "3", "--out", dir.resolve("naive.png").toString(),
                "--device", "cuda", "--sampler", "naive");
        if (gpu) {
            assertNotEquals(0, naive.rc());
            assertTrue(naive.err().contains("--sampler naive runs on the CPU only"), naive.err());
        } else assertEquals(0, naive.rc(), naive.err());   // no GPU: the CPU, where the naive sampler runs
    }

    static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    static double number(String json, String key) {
        var m = java.util.regex.Pattern.compile("\"" + key + "\":\\s*(-?[0-9.eE+-]+)").matcher(json);
        assertTrue(m.find(), key + " in " + json);
        return Double.parseDouble(m.group(1));
    }
}
