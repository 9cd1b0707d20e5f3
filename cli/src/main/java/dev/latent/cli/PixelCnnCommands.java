package dev.latent.cli;

import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.models.pixelcnn.PixelCnnSampler;
import dev.latent.models.pixelcnn.PixelCnnTrainer;
import dev.latent.tensor.Scope;
import dev.latent.train.ImageGrid;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The PixelCNN family's commands: train pixelcnn, sample pixelcnn, eval pixelcnn. */
final class PixelCnnCommands {
    private PixelCnnCommands() {}

    @Command(name = "pixelcnn", mixinStandardHelpOptions = true,
            description = "Train a gated PixelCNN (256-way softmax per pixel) on 28 x 28 grey images; test bits/dim, a sample grid and a checkpoint per epoch.")
    static final class Train implements Callable<Integer> {
        @Option(names = "--channels", description = "channels per stack (default: ${DEFAULT-VALUE})") int channels = 64;
        @Option(names = "--layers", description = "gated blocks, the first included (default: ${DEFAULT-VALUE})") int layers = 7;
        @Option(names = "--first-kernel", description = "the first block's kernel size, odd (default: ${DEFAULT-VALUE})") int firstKernel = 7;
        @Option(names = "--kernel", description = "the other blocks' kernel size, odd (default: ${DEFAULT-VALUE})") int kernel = 3;
        @Option(names = "--head", description = "channels of the output head's hidden layer (default: ${DEFAULT-VALUE})") int head = 256;
        @Option(names = "--lr", description = "Adam learning rate (default: ${DEFAULT-VALUE})") float lr = 1e-3f;
        @Option(names = "--samples", description = "images in the per-epoch sample grid, 0 for none (default: ${DEFAULT-VALUE})") int samples = 64;
        @Mixin Mixins.Epochs epochs = new Mixins.Epochs(1);
        @Mixin Mixins.ImageBatch batch = new Mixins.ImageBatch(32);
        @Mixin Mixins.TrainLimit limit;
        @Mixin Mixins.TestLimit testLimit;
        @Mixin Mixins.TrainData data;
        @Mixin Mixins.Out out;
        @Mixin Mixins.TrainSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Quiet quiet;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;
        @Mixin TrainSteps run;

        @Override
        public Integer call() throws Exception {
            var runOn = device.resolve();
            var prec = precision.runnable(runOn);   // tf32 off CUDA, bf16 on a CPU without AVX512_BF16: refused here, before the data is read
            threads.check();
            Limits.positive("--lr", lr);
            epochs.check();
            batch.check();
            limit.check();
            testLimit.check();
            Limits.atLeast("--samples", samples, 0);
            if (samples > Limits.DEFAULT_MAX_IMAGES) throw new IllegalArgumentException("--samples must be at most " + Limits.DEFAULT_MAX_IMAGES + ", got " + samples);
            GatedPixelCnn.Arch arch = new GatedPixelCnn.Arch(channels, layers, firstKernel, kernel, head);
            Limits.fitsInMemory("a PixelCNN with --channels " + channels + " at --batch " + batch.batch,
                    Limits.product(batch.batch, Limits.product(784L * layers, 8L * channels + 2L * head)), 8);
            ImageData.load(data.data, "train");   // validated before the run folder is touched
            run.check(out, PixelCnnTrainer.CHECKPOINT);
            threads.apply();
            var c = new PixelCnnTrainer.Config(data.data, out.out, arch, epochs.epochs, batch.batch, lr, seed.seed, limit.limit, testLimit.testLimit, samples, 1234, 20, quiet.quiet);
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = new PixelCnnTrainer(c, scope, runOn).listener(ConsoleListener.INSTANCE).precision(prec);
                var results = t.run(run.steps(), run.resume(), run.stopAt());
                if (results.isEmpty()) {   // stopped (--stop-after) before the end of a pass over the data
                    System.out.println(Json.object(Map.of("model", "pixelcnn", "stopped", true, "step", t.step(), "out", out.out.toString())));
                    return 0;
                }
                var last = results.get(results.size() - 1);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "pixelcnn"); m.put("epochs", epochs.epochs); m.put("steps", t.step()); m.put("final_train_bits_per_dim", last.trainBitsPerDim());
                m.put("test_bits_per_dim", last.testBitsPerDim());
                m.put("images_per_s", results.stream().mapToDouble(PixelCnnTrainer.EpochResult::imagesPerSecond).average().orElse(0));
                m.put("out", out.out.toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "pixelcnn", mixinStandardHelpOptions = true,
            description = "Sample a trained PixelCNN pixel by pixel into a PNG grid (cached sampler by default; --sampler naive recomputes the whole image per pixel).")
    static final class Sample implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "PNG file for the sample grid") Path out;
        @Option(names = "--sampler", description = "one of ${COMPLETION-CANDIDATES}: the same images; naive is the slow reference (default: ${DEFAULT-VALUE})") Choices.Sampler sampler = Choices.Sampler.CACHED;
        @Option(names = "--pixels", description = "stop after the first N pixels of each image in raster order (to time the naive sampler; default: all)") Integer pixels;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.Images images;
        @Mixin Mixins.SampleSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            images.check();
            int n = images.n;
            PixelCnnSampler.Mode mode = sampler.mode;
            if (pixels != null) Limits.atMost("--pixels", pixels, 1, 784, null);   // a 28 x 28 image has 784
            threads.apply();
            var on = device.resolve();
            boolean cuda = on == dev.latent.tensor.Device.CUDA;
            if (cuda && mode != PixelCnnSampler.Mode.CACHED)
                throw new IllegalArgumentException("--sampler " + sampler + " runs on the CPU only (the CPU's reference sampler); --device cuda samples with "
                        + "the device sampler (DevicePixelCnnSampler): leave --sampler out or use --device cpu");
            String samplerName = cuda ? "device" : sampler.toString();
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = PixelCnnTrainer.load(checkpoint.checkpoint, scope, on);
                int p = pixels == null ? 784 : pixels;
                var prov = dev.latent.io.Provenance.ofCheckpoint("pixelcnn", checkpoint.checkpoint, PixelCnnTrainer.CHECKPOINT, seed.seed,
                        Map.of("n", n, "sampler", samplerName, "pixels", p, "command", "sample pixelcnn"));
                long t0 = System.nanoTime();
                byte[] px = cuda ? new dev.latent.models.pixelcnn.DevicePixelCnnSampler(t.model).sample(n, 28, 28, seed.seed, p)
                        : new PixelCnnSampler(t.model).sample(n, 28, 28, seed.seed, mode, p);
                double secs = (System.nanoTime() - t0) / 1e9;
                try (var use = prov.use(); Scope s = Scope.confined()) {
                    var img = dev.latent.tensor.Tensor.empty(s, n, 1, 28, 28);
                    for (int i = 0; i < px.length; i++) img.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (px[i] & 0xff) / 255f);
                    int cols = (int) Math.ceil(Math.sqrt(n));
                    ImageGrid.write(out, img, (n + cols - 1) / cols, cols, 0f, 1f, 0);
                }
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("out", out.toString()); m.put("n", n); m.put("sampler", samplerName); m.put("device", cuda ? "cuda" : "cpu"); m.put("pixels", p);
                m.put("seconds", secs);
                m.put("pixels_per_s", (double) n * p / secs);
                m.put("trained_precision", t.precision().id());   // the checkpoint's (fp32 for one written before it was recorded)
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "%d images x %d pixels in %.2f s (%s sampler)%n", n, p, secs, samplerName);
            }
            return 0;
        }
    }

    @Command(name = "pixelcnn", mixinStandardHelpOptions = true,
            description = "Exact test negative log-likelihood of a trained PixelCNN in bits per dimension; one JSON object out.")
    static final class Eval implements Callable<Integer> {
        @Option(names = "--limit", description = "the first N test images (default: all)") int limit = 0;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.EvalData data;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            if (limit < 0) throw new IllegalArgumentException("--limit must be >= 0, got " + limit);
            threads.apply();
            var on = device.resolve();
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = PixelCnnTrainer.load(checkpoint.checkpoint, scope, on);
                ImageData test = ImageData.load(data.or(t.cfg.data()), "test");
                int nTest = limit > 0 ? Math.min(limit, test.n) : test.n;
                double bpd = t.bitsPerDim(test, nTest);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("test_bits_per_dim", bpd); m.put("n_test", nTest); m.put("step", t.step()); m.put("device", on == dev.latent.tensor.Device.CUDA ? "cuda" : "cpu");
                m.put("trained_precision", t.precision().id());   // the checkpoint's (fp32 for one written before it was recorded)
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "test %.4f bits/dim on %d images%n", bpd, nTest);
            }
            return 0;
        }
    }
}
