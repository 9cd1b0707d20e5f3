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
        @Option(names = "--data", description = "fashion-mnist, a folder of IDX files, or an IDX file (default: ${DEFAULT-VALUE})") String data = "fashion-mnist";
        @Option(names = "--out", description = "run folder for the checkpoint, metrics.jsonl and images (refused if it holds a run, unless --overwrite)", required = true) Path out;
        @Option(names = "--channels", description = "channels per stack (default: ${DEFAULT-VALUE})") int channels = 64;
        @Option(names = "--layers", description = "gated blocks, the first included (default: ${DEFAULT-VALUE})") int layers = 7;
        @Option(names = "--first-kernel", description = "the first block's kernel size, odd (default: ${DEFAULT-VALUE})") int firstKernel = 7;
        @Option(names = "--kernel", description = "the other blocks' kernel size, odd (default: ${DEFAULT-VALUE})") int kernel = 3;
        @Option(names = "--head", description = "channels of the output head's hidden layer (default: ${DEFAULT-VALUE})") int head = 256;
        @Option(names = "--epochs", description = "passes over the training set (default: ${DEFAULT-VALUE})") int epochs = 1;
        @Option(names = "--batch", description = "images per optimizer step (default: ${DEFAULT-VALUE})") int batch = 32;
        @Option(names = "--lr", description = "Adam learning rate (default: ${DEFAULT-VALUE})") float lr = 1e-3f;
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data: same bits) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--limit", description = "use only the first N training images (default: all)") int limit = 0;
        @Option(names = "--test-limit", description = "evaluate on the first N test images (default: all)") int testLimit = 0;
        @Option(names = "--samples", description = "images in the per-epoch sample grid, 0 for none (default: ${DEFAULT-VALUE})") int samples = 64;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--quiet", description = "no progress lines on stderr (the final JSON summary is still printed)") boolean quiet;
        @picocli.CommandLine.Mixin RunFolder folder;
        @picocli.CommandLine.Mixin PrecisionOption precision;

        @Override
        public Integer call() throws Exception {
            precision.fp32Only("pixelcnn", "its convolutions have no bf16 kernel (bf16 is wired for train gpt's linear layers only)");
            GanCommands.checkThreads(threads);
            Limits.positive("--lr", lr);
            if (epochs < 1 || batch < 1 || limit < 0 || testLimit < 0 || samples < 0)
                throw new IllegalArgumentException("--epochs, --batch >= 1; --limit, --test-limit, --samples >= 0");
            if (samples > Limits.DEFAULT_MAX_IMAGES) throw new IllegalArgumentException("--samples must be at most " + Limits.DEFAULT_MAX_IMAGES + ", got " + samples);
            GatedPixelCnn.Arch arch = new GatedPixelCnn.Arch(channels, layers, firstKernel, kernel, head);
            Limits.fitsInMemory("a PixelCNN with --channels " + channels + " at --batch " + batch,
                    Limits.product(batch, Limits.product(784L * layers, 8L * channels + 2L * head)), 8);
            ImageData.load(data, "train");   // validated before the run folder is touched
            folder.check(out);
            GanCommands.threads(threads);
            var c = new PixelCnnTrainer.Config(data, out, arch, epochs, batch, lr, seed, limit, testLimit, samples, 1234, 20, quiet);
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = new PixelCnnTrainer(c, scope).listener(ConsoleListener.INSTANCE);
                var results = t.run();
                var last = results.get(results.size() - 1);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "pixelcnn"); m.put("epochs", epochs); m.put("final_train_bits_per_dim", last.trainBitsPerDim());
                m.put("test_bits_per_dim", last.testBitsPerDim());
                m.put("images_per_s", results.stream().mapToDouble(PixelCnnTrainer.EpochResult::imagesPerSecond).average().orElse(0));
                m.put("out", out.toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "pixelcnn", mixinStandardHelpOptions = true,
            description = "Sample a trained PixelCNN pixel by pixel into a PNG grid (cached sampler by default; --sampler naive recomputes the whole image per pixel).")
    static final class Sample implements Callable<Integer> {
        @Option(names = "--checkpoint", description = "a checkpoint file, or the run folder holding it", required = true) Path checkpoint;
        @Option(names = "--out", required = true, description = "PNG file") Path out;
        @Option(names = "--n", description = "number of images to sample (default: ${DEFAULT-VALUE})") int n = 64;
        @Option(names = "--seed", description = "seed of the pixel-by-pixel draws (same seed, same images) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--sampler", description = "cached | naive (the same images; naive is the slow reference; default: ${DEFAULT-VALUE})") String sampler = "cached";
        @Option(names = "--pixels", description = "stop after the first N pixels of each image in raster order (to time the naive sampler; default: all)") Integer pixels;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--max-images", description = "cap on --n (default: ${DEFAULT-VALUE})") int maxImages = Limits.DEFAULT_MAX_IMAGES;

        @Override
        public Integer call() throws Exception {
            SampleCommand.checkImages(n, maxImages);
            PixelCnnSampler.Mode mode = switch (sampler) {
                case "cached" -> PixelCnnSampler.Mode.CACHED;
                case "naive" -> PixelCnnSampler.Mode.NAIVE;
                default -> throw new IllegalArgumentException("--sampler must be cached or naive, got " + sampler);
            };
            if (pixels != null) Limits.atMost("--pixels", pixels, 1, 784, null);   // a 28 x 28 image has 784
            GanCommands.threads(threads);
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = PixelCnnTrainer.load(checkpoint, scope);
                int p = pixels == null ? 784 : pixels;
                var prov = dev.latent.io.Provenance.ofCheckpoint("pixelcnn", checkpoint, PixelCnnTrainer.CHECKPOINT, seed,
                        Map.of("n", n, "sampler", sampler, "pixels", p, "command", "sample pixelcnn"));
                long t0 = System.nanoTime();
                byte[] px = new PixelCnnSampler(t.model).sample(n, 28, 28, seed, mode, p);
                double secs = (System.nanoTime() - t0) / 1e9;
                try (var use = prov.use(); Scope s = Scope.confined()) {
                    var img = dev.latent.tensor.Tensor.empty(s, n, 1, 28, 28);
                    for (int i = 0; i < px.length; i++) img.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (px[i] & 0xff) / 255f);
                    int cols = (int) Math.ceil(Math.sqrt(n));
                    ImageGrid.write(out, img, (n + cols - 1) / cols, cols, 0f, 1f, 0);
                }
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("out", out.toString()); m.put("n", n); m.put("sampler", sampler); m.put("pixels", p); m.put("seconds", secs);
                m.put("pixels_per_s", (double) n * p / secs);
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "%d images x %d pixels in %.2f s (%s sampler)%n", n, p, secs, sampler);
            }
            return 0;
        }
    }

    @Command(name = "pixelcnn", mixinStandardHelpOptions = true,
            description = "Exact test negative log-likelihood of a trained PixelCNN in bits per dimension; one JSON object out.")
    static final class Eval implements Callable<Integer> {
        @Option(names = "--checkpoint", description = "a checkpoint file, or the run folder holding it", required = true) Path checkpoint;
        @Option(names = "--data", description = "dataset holding the test split (default: the one trained on)") String data;
        @Option(names = "--limit", description = "the first N test images (default: all)") int limit = 0;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;

        @Override
        public Integer call() throws Exception {
            if (limit < 0) throw new IllegalArgumentException("--limit must be >= 0, got " + limit);
            GanCommands.threads(threads);
            try (Scope scope = Scope.shared()) {
                PixelCnnTrainer t = PixelCnnTrainer.load(checkpoint, scope);
                ImageData test = ImageData.load(data != null ? data : t.cfg.data(), "test");
                int nTest = limit > 0 ? Math.min(limit, test.n) : test.n;
                double bpd = t.bitsPerDim(test, nTest);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("test_bits_per_dim", bpd); m.put("n_test", nTest); m.put("step", t.step());
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "test %.4f bits/dim on %d images%n", bpd, nTest);
            }
            return 0;
        }
    }
}
