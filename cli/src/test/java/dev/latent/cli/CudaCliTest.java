package dev.latent.cli;

import dev.latent.cuda.Cuda;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code latent train gpt --device cuda}. Runs in both surefire executions and never skips: without a GPU it must say
 * why once on stderr and train on the CPU; with one (or the emulated driver, where the backend must come up) it must
 * train on the device and match the same run on the CPU.
 */
class CudaCliTest {
    record Run(int rc, String err, List<String> metrics) {}

    static Run train(Path dir, String device, String... extra) throws IOException {
        Path data = dir.resolve("text.txt"), out = dir.resolve("out-" + device + String.join("", extra));
        Files.writeString(data, "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money.\n".repeat(8));
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(p);
            List<String> args = new java.util.ArrayList<>(List.of("train", "gpt", "--data", data.toString(), "--out", out.toString(),
                    "--device", device, "--steps", "4", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "8",
                    "--batch", "2", "--eval-interval", "2", "--eval-batches", "1", "--log-interval", "1",
                    "--checkpoint-interval", "0", "--sample-tokens", "5"));
            args.addAll(List.of(extra));
            rc = new CommandLine(new Main()).execute(args.toArray(new String[0]));
        } finally {
            System.setErr(saved);
        }
        String e = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, e);
        assertTrue(Files.size(out.resolve("checkpoint.safetensors")) > 1000, e);
        return new Run(rc, e, Files.readAllLines(out.resolve("metrics.jsonl")));
    }

    @Test
    void deviceCuda(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        Run cuda = train(dir, "cuda");
        if (!Cuda.available()) {
            String reason = Cuda.unavailableReason();
            assertEquals(1, cuda.err.split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + cuda.err);
            assertFalse(cuda.err.contains("device: CUDA"), cuda.err);
            return;
        }
        assertTrue(cuda.err.contains("device: CUDA device 0"), cuda.err);
        assertFalse(cuda.err.contains("CUDA unavailable"), cuda.err);
        /* the same run on the CPU: the logged losses agree (exact-fp32 GEMM on the device; 4 steps compound ~1e-6) */
        Run cpu = train(dir, "cpu");
        assertEquals(cpu.metrics.size(), cuda.metrics.size());
        for (int i = 0; i < cpu.metrics.size(); i++) {
            double a = loss(cpu.metrics.get(i)), b = loss(cuda.metrics.get(i));
            assertEquals(a, b, 1e-4 * Math.abs(a), "metrics line " + i + ": " + cpu.metrics.get(i) + " vs " + cuda.metrics.get(i));
        }
    }

    static Run trainVae(Path dir, String device) throws IOException {
        Path data = dir.resolve("images"), out = dir.resolve("vae-" + device);
        if (!Files.isDirectory(data)) {
            Files.createDirectories(data);
            dev.latent.SyntheticImages.write(data, "train", 6, 1);
            dev.latent.SyntheticImages.write(data, "t10k", 32, 2);   /* the reconstruction PNG takes 32 */
        }
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(p);
            rc = new CommandLine(new Main()).execute("train", "vae", "--data", data.toString(), "--out", out.toString(),
                    "--device", device, "--epochs", "1", "--batch", "2", "--latent", "2", "--iwae-k", "0", "--quiet");
        } finally {
            System.setErr(saved);
        }
        String e = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, rc, e);
        assertTrue(Files.size(out.resolve("checkpoint.safetensors")) > 1000, e);
        assertTrue(Files.isRegularFile(out.resolve("manifold.png")), e);
        return new Run(rc, e, Files.readAllLines(out.resolve("metrics.jsonl")));
    }

    /** {@code train vae --device cuda}: the reason once and a CPU run without a GPU; on one, the CPU run's numbers. */
    @Test
    void vaeDeviceCuda(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        Run cuda = trainVae(dir, "cuda");
        if (!Cuda.available()) {
            String reason = Cuda.unavailableReason();
            assertEquals(1, cuda.err.split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + cuda.err);
            assertFalse(cuda.err.contains("device: CUDA"), cuda.err);
            return;
        }
        assertTrue(cuda.err.contains("device: CUDA device 0"), cuda.err);
        Run cpu = trainVae(dir, "cpu");
        assertEquals(cpu.metrics.size(), cuda.metrics.size());
        int compared = 0;
        for (int i = 0; i < cpu.metrics.size(); i++)
            for (String key : new String[] {"neg_elbo", "train_neg_elbo", "test_neg_elbo"}) {
                String a = cpu.metrics.get(i), b = cuda.metrics.get(i);
                if (!a.contains("\"" + key + "\"")) continue;
                double x = value(a, key), y = value(b, key);
                assertEquals(x, y, 1e-4 * Math.abs(x), "metrics line " + i + " " + key + ": " + a + " vs " + b);
                compared++;
            }
        assertTrue(compared >= 3, "compared " + compared + " values");
    }

    static Run gan(Path dir, String model, String device, boolean ok) throws IOException {
        Path data = dir.resolve("gan-images"), out = dir.resolve(model + "-" + device);
        if (!Files.isDirectory(data)) {
            Files.createDirectories(data);
            dev.latent.SyntheticImages.write(data, "train", 6, 3);
        }
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(p);
            rc = new CommandLine(new Main()).setErr(new java.io.PrintWriter(p, true)).execute("train", model, "--data", data.toString(),
                    "--out", out.toString(), "--device", device, "--iters", "2", "--batch", "3", "--nz", "8", "--ngf", "4", "--ndf", "4",
                    "--log-interval", "1", "--quiet");
        } finally {
            System.setErr(saved);
        }
        String e = err.toString(StandardCharsets.UTF_8);
        if (!ok) {
            assertNotEquals(0, rc, e);
            return new Run(rc, e, List.of());
        }
        assertEquals(0, rc, e);
        assertTrue(Files.isRegularFile(out.resolve("samples.png")), e);
        return new Run(rc, e, Files.readAllLines(out.resolve("metrics.jsonl")));
    }

    /**
     * {@code train gpt --device cuda --cuda-graph}: steps 3 and 4 replayed from a CUDA graph (2 warm-up steps, then the
     * capture) log the same losses and gradient norms, to the last digit, as the run without a graph.
     */
    @Test
    void gptCudaGraph(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        if (!Cuda.available()) return;   // deviceCuda checks the fallback's message
        Run plain = train(dir, "cuda"), graphed = train(dir, "cuda", "--cuda-graph");
        assertEquals(plain.metrics.size(), graphed.metrics.size());
        int steps = 0;
        for (int i = 0; i < plain.metrics.size(); i++) {
            String a = plain.metrics.get(i), b = graphed.metrics.get(i);
            for (String key : new String[] {"loss", "grad_norm", "val_loss", "train_loss"})
                if (a.contains("\"" + key + "\"")) {
                    assertEquals(value(a, key), value(b, key), 0.0, "metrics line " + i + " " + key + ": " + a + " vs " + b);
                    if (key.equals("loss")) steps++;
                }
        }
        assertEquals(4, steps, "four logged steps, the last two replayed from the graph");
    }

    /** {@code train dcgan --device cuda} and {@code train wgan-gp --device cuda} as train vae's. */
    @Test
    void ganDeviceCuda(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        for (String model : new String[] {"dcgan", "wgan-gp"}) {
            Run cuda = gan(dir, model, "cuda", true);
            if (!Cuda.available()) {
                String reason = Cuda.unavailableReason();
                assertEquals(1, cuda.err.split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + cuda.err);
                continue;
            }
            assertTrue(cuda.err.contains("device: CUDA device 0"), cuda.err);
            Run cpu = gan(dir, model, "cpu", true);
            assertEquals(2, cpu.metrics.size());
            assertEquals(cpu.metrics.size(), cuda.metrics.size());
            String[] keys = model.equals("dcgan") ? new String[] {"lossD", "lossG", "D_x", "D_G_z"} : new String[] {"lossD", "lossG", "wasserstein", "gp"};
            for (int i = 0; i < cpu.metrics.size(); i++)
                for (String key : keys) {
                    double x = value(cpu.metrics.get(i), key), y = value(cuda.metrics.get(i), key);
                    assertEquals(x, y, 1e-4 * Math.abs(x) + 1e-6, model + " metrics line " + i + " " + key + ": " + cpu.metrics.get(i) + " vs " + cuda.metrics.get(i));
                }
        }
    }

    static Run flow(Path dir, String model, String device, boolean ok) throws IOException {
        Path data = dir.resolve("flow-images"), out = dir.resolve(model + "-" + device);
        if (!Files.isDirectory(data)) {
            Files.createDirectories(data);
            dev.latent.SyntheticImages.write(data, "train", 4, 5);
            dev.latent.SyntheticImages.write(data, "t10k", 4, 6);
        }
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(p);
            List<String> args = new java.util.ArrayList<>(List.of("train", model, "--data", data.toString(), "--out", out.toString(),
                    "--device", device, "--batch", "2", "--max-steps", "2", "--hidden", "4", "--test-limit", "4", "--quiet"));
            args.addAll(model.equals("realnvp") ? List.of("--couplings", "2") : List.of("--levels", "2", "--depth", "1"));
            rc = new CommandLine(new Main()).setErr(new java.io.PrintWriter(p, true)).execute(args.toArray(String[]::new));
        } finally {
            System.setErr(saved);
        }
        String e = err.toString(StandardCharsets.UTF_8);
        if (!ok) {
            assertNotEquals(0, rc, e);
            return new Run(rc, e, List.of());
        }
        assertEquals(0, rc, e);
        assertTrue(Files.isRegularFile(out.resolve("samples.png")), e);
        return new Run(rc, e, Files.readAllLines(out.resolve("metrics.jsonl")));
    }

    /** {@code train realnvp --device cuda} and {@code train glow --device cuda} as train vae's. */
    @Test
    void flowDeviceCuda(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        for (String model : new String[] {"realnvp", "glow"}) {
            Run cuda = flow(dir, model, "cuda", true);
            if (!Cuda.available()) {
                String reason = Cuda.unavailableReason();
                assertEquals(1, cuda.err.split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + cuda.err);
                continue;
            }
            assertTrue(cuda.err.contains("device: CUDA device 0"), cuda.err);
            Run cpu = flow(dir, model, "cpu", true);
            assertEquals(cpu.metrics.size(), cuda.metrics.size());
            int compared = 0;
            for (int i = 0; i < cpu.metrics.size(); i++)
                for (String key : new String[] {"train_bpd_batch", "test_bpd"}) {
                    String a = cpu.metrics.get(i), b = cuda.metrics.get(i);
                    if (!a.contains("\"" + key + "\"")) continue;
                    assertEquals(value(a, key), value(b, key), 1e-4 * Math.abs(value(a, key)), model + " metrics line " + i + " " + key + ": " + a + " vs " + b);
                    compared++;
                }
            assertEquals(2, compared, cpu.metrics.toString());
        }
    }

    /**
     * {@code --precision tf32} on CUDA for the families that refused it there before (issue 18, h-cudaprec2): train
     * wgan-gp, realnvp, classifier and pixelcnn with --device cuda run (pixelcnn's sample grid drawn on the device too,
     * DevicePixelCnnSampler), and each checkpoint records "precision": "tf32". Without a
     * GPU the device falls back to the CPU, where tf32 is refused in one line, before any data is read.
     */
    @Test
    void tf32OnCudaForEveryFamily(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        Path data = dir.resolve("images");
        Files.createDirectories(data);
        dev.latent.SyntheticImages.write(data, "train", 6, 3);
        dev.latent.SyntheticImages.write(data, "t10k", 4, 4);
        List<List<String>> runs = List.of(
                List.of("wgan-gp", "--iters", "1", "--batch", "3", "--nz", "8", "--ngf", "4", "--ndf", "4", "--n-critic", "1", "--quiet"),
                List.of("realnvp", "--batch", "2", "--max-steps", "1", "--hidden", "4", "--couplings", "2", "--test-limit", "4", "--quiet"),
                List.of("classifier", "--batch", "3", "--steps", "2", "--quiet"),
                List.of("pixelcnn", "--batch", "2", "--steps", "1", "--channels", "4", "--layers", "1", "--head", "8", "--test-limit", "2",
                        "--samples", "1", "--quiet"));
        for (List<String> r : runs) {
            Path out = dir.resolve(r.get(0));
            List<String> args = new java.util.ArrayList<>(List.of("train", r.get(0), "--data", data.toString(), "--out", out.toString(),
                    "--device", "cuda", "--precision", "tf32"));
            args.addAll(r.subList(1, r.size()));
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            PrintStream saved = System.err;
            int rc;
            try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
                System.setErr(p);
                rc = new CommandLine(new Main()).setErr(new java.io.PrintWriter(p, true)).execute(args.toArray(String[]::new));
            } finally {
                System.setErr(saved);
            }
            String e = err.toString(StandardCharsets.UTF_8);
            if (!Cuda.available()) {
                assertEquals(1, rc, e);
                assertTrue(e.contains("tf32 precision is CUDA-only"), e);
                continue;
            }
            assertEquals(0, rc, r.get(0) + ": " + e);
            List<Path> checkpoints;
            try (var files = Files.list(out)) {
                checkpoints = files.filter(f -> f.toString().endsWith(".safetensors")).toList();
            }
            assertFalse(checkpoints.isEmpty(), r.get(0) + ": no checkpoint in " + out);
            for (Path f : checkpoints)
                try (var scope = dev.latent.tensor.Scope.confined()) {
                    assertEquals("tf32", dev.latent.io.SafeTensors.read(f, scope).metadata().get("precision"), f + "'s metadata \"precision\"");
                }
        }
    }

    /** Runs {@code latent args...} with stderr captured; the metrics of {@code out} when it wrote them. */
    static Run run(Path out, String... args) throws IOException {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int rc;
        try (PrintStream p = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setErr(p);
            rc = new CommandLine(new Main()).setErr(new java.io.PrintWriter(p, true)).execute(args);
        } finally {
            System.setErr(saved);
        }
        Path m = out.resolve("metrics.jsonl");
        return new Run(rc, err.toString(StandardCharsets.UTF_8), rc == 0 && Files.isRegularFile(m) ? Files.readAllLines(m) : List.of());
    }

    /**
     * {@code train vae|dcgan|wgan-gp|realnvp|glow --device cuda --cuda-graph}: runs long enough for replays (2 warm-up
     * steps, the capture, then replays; the VAE's and the flows' epochs end in a partial batch, run uncaptured) log every
     * value, to the last digit, as the runs without a graph; and what cannot be captured is refused by name.
     */
    @Test
    void otherFamiliesCudaGraph(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        if (!Cuda.available()) return;   // the device tests above check the fallback's message
        Path images = dir.resolve("images");
        Files.createDirectories(images);
        dev.latent.SyntheticImages.write(images, "train", 7, 1);
        dev.latent.SyntheticImages.write(images, "t10k", 32, 2);
        Path labelled = dir.resolve("labelled");   /* every class of the test split also in the train split (--conditional) */
        Files.createDirectories(labelled);
        dev.latent.SyntheticImages.write(labelled, "train", 10, 1);
        dev.latent.SyntheticImages.write(labelled, "t10k", 32, 2);
        Map<String, List<String>> models = new java.util.LinkedHashMap<>();
        models.put("vae", List.of("--epochs", "2", "--batch", "2", "--latent", "2", "--iwae-k", "0"));
        models.put("dcgan", List.of("--iters", "5", "--batch", "3", "--nz", "8", "--ngf", "4", "--ndf", "4", "--log-interval", "1"));
        models.put("wgan-gp", List.of("--iters", "5", "--batch", "3", "--nz", "8", "--ngf", "4", "--ndf", "4", "--log-interval", "1", "--n-critic", "2"));
        models.put("realnvp", List.of("--batch", "2", "--epochs", "2", "--hidden", "4", "--test-limit", "4", "--couplings", "2"));
        models.put("glow", List.of("--batch", "2", "--epochs", "2", "--hidden", "4", "--test-limit", "4", "--levels", "2", "--depth", "1"));
        /* captured since h-graphs3: free bits and the Gaussian likelihood on the device, labels staged with the batch */
        models.put("vae variants", List.of("--epochs", "2", "--batch", "2", "--latent", "2", "--iwae-k", "0", "--free-bits", "0.5",
                "--likelihood", "gaussian", "--conditional"));
        models.put("dcgan conditional", List.of("--iters", "5", "--batch", "3", "--nz", "8", "--ngf", "4", "--ndf", "4", "--log-interval", "1",
                "--conditional"));
        for (var e : models.entrySet()) {
            List<String> runs = new java.util.ArrayList<>();
            Run[] r = new Run[2];
            for (int g = 0; g < 2; g++) {
                Path out = dir.resolve(e.getKey().replace(' ', '-') + (g == 1 ? "-graph" : "-plain"));
                Path data = e.getKey().contains(" ") ? labelled : images;
                List<String> args = new java.util.ArrayList<>(List.of("train", e.getKey().split(" ")[0], "--data", data.toString(), "--out", out.toString(),
                        "--device", "cuda", "--quiet"));
                args.addAll(e.getValue());
                if (g == 1) args.add("--cuda-graph");
                r[g] = run(out, args.toArray(String[]::new));
                assertEquals(0, r[g].rc(), e.getKey() + ": " + r[g].err());
                runs.add(out.toString());
            }
            assertEquals(r[0].metrics().size(), r[1].metrics().size(), e.getKey());
            assertTrue(r[0].metrics().size() >= 2, e.getKey() + ": " + r[0].metrics());
            for (int i = 0; i < r[0].metrics().size(); i++) {
                String a = r[0].metrics().get(i).replaceAll("\"(elapsed_s|images_per_s|epoch_seconds|seconds|train_images_per_s|steady_seconds|steady_steps_per_s|steady_tokens_per_s|steady_images_per_s)\":[0-9.eE+-]+", "");
                String b = r[1].metrics().get(i).replaceAll("\"(elapsed_s|images_per_s|epoch_seconds|seconds|train_images_per_s|steady_seconds|steady_steps_per_s|steady_tokens_per_s|steady_images_per_s)\":[0-9.eE+-]+", "");
                assertEquals(a, b, e.getKey() + " metrics line " + i + " (timings aside) without and with --cuda-graph");
            }
        }
        // refused by name, before training
        Path out = dir.resolve("refused");
        Run r = run(out, "train", "vae", "--data", images.toString(), "--out", out.toString(), "--device", "cuda", "--epochs", "1",
                "--batch", "2", "--latent", "2", "--precision", "tf32", "--cuda-graph", "--quiet");
        assertNotEquals(0, r.rc());
        assertTrue(r.err().contains("vae: --cuda-graph is checked with fp32 only"), r.err());
        r = run(out, "train", "dcgan", "--data", images.toString(), "--out", out.toString(), "--device", "cpu", "--iters", "1",
                "--batch", "3", "--cuda-graph", "--quiet");
        assertNotEquals(0, r.rc());
        assertTrue(r.err().contains("dcgan: --cuda-graph needs --device cuda"), r.err());
    }

    /** Runs {@code latent args...} with stdout and stderr captured: {exit code, stdout, stderr}. */
    static String[] runCapturing(String... args) {
        CliCapture c = CliCapture.picocli(args);
        return new String[] {Integer.toString(c.rc()), c.out(), c.err()};
    }

    /** Every number under {@code "key":} in {@code json}, in order. */
    static List<Double> numbers(String json, String key) {
        List<Double> v = new java.util.ArrayList<>();
        var m = java.util.regex.Pattern.compile("\"" + key + "\":([0-9.eE+-]+|NaN)").matcher(json);
        while (m.find()) v.add(Double.parseDouble(m.group(1)));
        return v;
    }

    /**
     * {@code train toy-gan} and {@code train flow-toy} with {@code --device cuda} (h-toycuda): they train, evaluate and
     * sample on the device; toy-gan's lossD / lossG of each seed at fp32 agree with the CPU run's within 1e-4 relative,
     * and it runs tf32 and bf16 there; flow-toy at bf16 on the device (one run: its 256 x 256 density picture takes ~19 s
     * on the emulated driver) evaluates its initial weights (fp32 evaluation) within 1e-4 of the CPU's and ends within
     * bf16's 8u (3.1%) of the CPU's fp32 NLL, its checkpoint records "bf16" and its pictures are written. The JSON names
     * the device and precision. Without a GPU --device cuda says why once and runs on the CPU, where tf32 is refused in
     * one line. (The CPU-against-device bounds proper: CudaToyTest.)
     */
    @Test
    void toysOnCuda(@TempDir Path dir) throws IOException {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        Map<String, List<String>> toys = new java.util.LinkedHashMap<>();
        toys.put("toy-gan", List.of("--loss", "wgan-gp", "--steps", "3", "--hidden", "8", "--batch", "16", "--n-critic", "2", "--seeds", "1,2"));
        toys.put("flow-toy", List.of("--steps", "3", "--couplings", "2", "--hidden", "4"));
        for (var t : toys.entrySet()) {
            Map<String, String[]> r = new java.util.LinkedHashMap<>();
            boolean gan = t.getKey().equals("toy-gan");
            for (String run : gan ? new String[] {"cpu-fp32", "cuda-fp32", "cuda-bf16", "cuda-tf32"}
                    : Cuda.available() ? new String[] {"cpu-fp32", "cuda-bf16"} : new String[] {"cpu-fp32", "cuda-bf16", "cuda-tf32"}) {
                String[] dp = run.split("-");
                List<String> args = new java.util.ArrayList<>(List.of("train", t.getKey(), "--out", dir.resolve(t.getKey() + "-" + run).toString(),
                        "--device", dp[0], "--precision", dp[1]));
                args.addAll(t.getValue());
                long t0 = System.nanoTime();
                r.put(run, runCapturing(args.toArray(String[]::new)));
                System.out.printf("%s %s: %.1f s%n", t.getKey(), run, (System.nanoTime() - t0) / 1e9);
            }
            if (!Cuda.available()) {
                String reason = Cuda.unavailableReason();
                if (gan) {
                    assertEquals("0", r.get("cuda-fp32")[0], r.get("cuda-fp32")[2]);
                    assertEquals(1, r.get("cuda-fp32")[2].split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + r.get("cuda-fp32")[2]);
                    assertTrue(r.get("cuda-fp32")[1].contains("\"device\":\"cpu\""), r.get("cuda-fp32")[1]);
                }
                assertEquals(1, r.get("cuda-tf32")[2].split(java.util.regex.Pattern.quote(reason), -1).length - 1, "the reason, once: " + r.get("cuda-tf32")[2]);
                assertEquals("1", r.get("cuda-tf32")[0]);
                assertTrue(r.get("cuda-tf32")[2].contains("tf32 precision is CUDA-only"), r.get("cuda-tf32")[2]);
                continue;
            }
            for (var e : r.entrySet()) {
                String run = e.getKey(), what = t.getKey() + " " + run;
                assertEquals("0", e.getValue()[0], what + ": " + e.getValue()[2]);
                String[] dp = run.split("-");
                assertTrue(e.getValue()[1].contains("\"device\":\"" + dp[0] + "\"") && e.getValue()[1].contains("\"precision\":\"" + dp[1] + "\""),
                        what + ": " + e.getValue()[1]);
                if (dp[0].equals("cuda")) assertTrue(e.getValue()[2].contains("device: CUDA"), what + ": " + e.getValue()[2]);
            }
            List<String> keys = gan ? List.of("lossD", "lossG") : List.of("nll_before", "nll");
            for (String k : keys) {
                List<Double> cpu = numbers(r.get("cpu-fp32")[1], k), cuda = numbers(r.get(gan ? "cuda-fp32" : "cuda-bf16")[1], k);
                assertEquals(gan ? 2 : 1, cpu.size(), t.getKey() + " " + k + " in " + r.get("cpu-fp32")[1]);
                assertEquals(cpu.size(), cuda.size(), t.getKey() + " " + k);
                double rel = k.equals("nll") ? 0x1p-5 : 1e-4;
                for (int i = 0; i < cpu.size(); i++)
                    assertEquals(cpu.get(i), cuda.get(i), rel * Math.abs(cpu.get(i)), t.getKey() + " " + k + " " + i + ": CPU vs CUDA");
            }
            if (t.getKey().equals("flow-toy")) {
                Path out = dir.resolve("flow-toy-cuda-bf16");
                try (var scope = dev.latent.tensor.Scope.confined()) {
                    assertEquals("bf16", dev.latent.io.SafeTensors.read(out.resolve("checkpoint.safetensors"), scope).metadata().get("precision"));
                }
                assertTrue(Files.size(out.resolve("density.png")) > 100 && Files.size(out.resolve("samples.png")) > 100, "pictures in " + out);
            }
        }
    }

    private static double value(String line, String key) {
        return Double.parseDouble(line.replaceAll(".*\"" + key + "\":([0-9.eE+-]+).*", "$1"));
    }

    private static double loss(String line) {
        String key = line.contains("\"loss\"") ? "loss" : "val_loss";
        return Double.parseDouble(line.replaceAll(".*\"" + key + "\":([0-9.eE+-]+).*", "$1"));
    }
}
