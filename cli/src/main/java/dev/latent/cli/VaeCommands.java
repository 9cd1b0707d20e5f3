package dev.latent.cli;

import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The VAE family's commands: train vae, sample vae, eval vae. */
final class VaeCommands {
    private VaeCommands() {}

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Train the convolutional (beta-)VAE on 28 x 28 images (pixels / 255); per-epoch reconstructions and samples, IWAE at the end.")
    static final class Train implements Callable<Integer> {
        @Option(names = "--data", description = "fashion-mnist, a folder of IDX files, or an IDX file (default: ${DEFAULT-VALUE})") String data = "fashion-mnist";
        @Option(names = "--out", description = "run folder for the checkpoint, metrics.jsonl and images (refused if it holds a run, unless --resume or --overwrite)", required = true) Path out;
        @Option(names = "--latent", description = "latent dimensions D (default: ${DEFAULT-VALUE})") int latent = 32;
        @Option(names = "--beta", description = "KL weight (beta-VAE; default: ${DEFAULT-VALUE})") double beta = 1.0;
        @Option(names = "--epochs", description = "passes over the training set (default: ${DEFAULT-VALUE})") int epochs = 5;
        @Option(names = "--batch", description = "images (or sequences) per optimizer step (default: ${DEFAULT-VALUE})") int batch = 128;
        @Option(names = "--lr", description = "AdamW learning rate (default: ${DEFAULT-VALUE})") float lr = 1e-3f;
        @Option(names = "--likelihood", description = "bernoulli | gaussian (default: ${DEFAULT-VALUE})") String likelihood = "bernoulli";
        @Option(names = "--sigma", description = "Gaussian likelihood's fixed std (default: ${DEFAULT-VALUE})") double sigma = 0.1;
        @Option(names = "--warmup", description = "KL warm-up steps: beta ramps from 0 (default: none)") int warmup = 0;
        @Option(names = "--free-bits", description = "free bits per latent dim (nats; default: none)") double freeBits = 0;
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data: same bits) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--limit", description = "use only the first N training images") int limit = 0;
        @Option(names = "--exclude-class", description = "hold class K out of training (for eval vae-anomaly; default: none)") Integer excludeClass;
        @Option(names = "--conditional", description = "conditional VAE (cVAE): a one-hot label concatenated to the encoder's features and to z; needs labelled data (the class count is 1 + the largest label)")
        boolean conditional;
        @Option(names = "--iwae-k", description = "importance samples of the IWAE bound in the final evaluation (default: ${DEFAULT-VALUE})") int iwaeK = 100;
        @Option(names = "--iwae-n", description = "test images the IWAE bound is computed on (0: skip it) (default: ${DEFAULT-VALUE})") int iwaeN = 1000;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--quiet", description = "no progress lines on stderr (the final JSON summary is still printed)") boolean quiet;
        @Option(names = "--device", description = "cpu | cuda (default: ${DEFAULT-VALUE}); cuda without a usable GPU says why and runs on the CPU")
        String device = "cpu";
        @picocli.CommandLine.Mixin RunFolder folder;
        @picocli.CommandLine.Mixin PrecisionOption precision;
        @picocli.CommandLine.Mixin TrainSteps run;

        @Override
        public Integer call() throws Exception {
            precision.fp32Only("vae", "its convolutions have no bf16 kernel (bf16 is wired for train gpt's linear layers only)");
            GanCommands.checkThreads(threads);
            Limits.positive("--lr", lr);
            Limits.nonNegative("--beta", beta);
            Limits.nonNegative("--free-bits", freeBits);
            Limits.positive("--sigma", sigma);
            if (latent < 1 || epochs < 1 || batch < 1 || beta < 0 || warmup < 0 || freeBits < 0 || limit < 0 || iwaeK < 0 || iwaeN < 0 || sigma <= 0)
                throw new IllegalArgumentException("--latent, --epochs, --batch >= 1; --beta, --warmup, --free-bits, --limit, --iwae-k, --iwae-n >= 0; --sigma > 0");
            VaeTrainer.Likelihood lik = switch (likelihood) {
                case "bernoulli" -> VaeTrainer.Likelihood.BERNOULLI;
                case "gaussian" -> VaeTrainer.Likelihood.GAUSSIAN;
                default -> throw new IllegalArgumentException("--likelihood must be bernoulli or gaussian, got " + likelihood);
            };
            if (!device.equals("cpu") && !device.equals("cuda")) throw new IllegalArgumentException("--device must be cpu or cuda, got " + device);
            if (excludeClass != null && (excludeClass < 0 || excludeClass > 255))
                throw new IllegalArgumentException("--exclude-class must be a label in [0, 255], got " + excludeClass);
            VaeTrainer.checkMemory(latent, batch);
            ImageData trainSet = ImageData.load(data, "train");   // validated before the run folder is touched
            int classes = conditional ? dev.latent.models.gan.GanTrainer.classesOf(trainSet) : 0;
            run.check(out, folder, VaeTrainer.CHECKPOINT);
            GanCommands.threads(threads);
            var c = new VaeTrainer.Config(data, out, latent, beta, epochs, batch, lr, lik, sigma, warmup, freeBits, seed, limit, 1234, iwaeK, iwaeN, 100, quiet,
                    excludeClass == null ? -1 : excludeClass).withClasses(classes);
            Device runOn = TrainCommand.device(device);
            try (Scope scope = Scope.shared()) {
                VaeTrainer t = new VaeTrainer(c, scope, runOn).listener(ConsoleListener.INSTANCE);
                var results = t.run(run.steps(), run.resume, run.stopAt());
                if (results.isEmpty()) {   // stopped (--stop-after) before the end of a pass over the data
                    System.out.println(Json.object(Map.of("model", "vae", "stopped", true, "out", out.toString())));
                    return 0;
                }
                var last = results.get(results.size() - 1);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "vae"); m.put("epochs", epochs); m.put("final_train_neg_elbo", last.trainNegElbo());
                m.putAll(last.test().toMap());
                m.put("images_per_s", results.stream().mapToDouble(VaeTrainer.EpochResult::imagesPerSecond).average().orElse(0));
                m.put("out", out.toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Decode samples z ~ N(0, I) of a trained VAE into a PNG grid (or, for an --out not ending in .png, an IDX3 file); a conditional VAE takes --class or --analogy.")
    static final class Sample implements Callable<Integer> {
        @Option(names = "--checkpoint", description = "a checkpoint file, or the run folder holding it", required = true) Path checkpoint;
        @Option(names = "--out", required = true, description = "PNG file") Path out;
        @Option(names = "--n", description = "number of images to decode (default: ${DEFAULT-VALUE})") int n = 64;
        @Option(names = "--seed", description = "seed of the latent draw (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--max-images", description = "cap on --n (default: ${DEFAULT-VALUE})") int maxImages = Limits.DEFAULT_MAX_IMAGES;
        @Option(names = "--class", description = "a conditional VAE's class K in [0, classes): every image of that class (default: classes in turn)")
        Integer cls;
        @Option(names = "--analogy", description = "a conditional VAE's analogy grid: --n rows, one z per row, every class across (PNG)")
        boolean analogy;

        @Override
        public Integer call() throws Exception {
            SampleCommand.checkImages(n, maxImages);
            if (cls != null && cls < 0) throw new IllegalArgumentException("--class must be >= 0 (classes are numbered from 0), got " + cls);
            if (cls != null && analogy) throw new IllegalArgumentException("--class and --analogy exclude each other (the analogy grid shows every class)");
            GanCommands.threads(threads);
            try (Scope scope = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(checkpoint, scope);
                int k = cls == null ? -1 : cls;
                if ((k >= 0 || analogy) && !t.cfg.conditional())
                    throw new IllegalArgumentException(checkpoint + ": the VAE is unconditional (trained without --conditional), so "
                            + (analogy ? "it has no analogy grid" : "it cannot be asked for a class"));
                t.checkClass(k);
                if (analogy && t.cfg.conditional()) Limits.atMost("--n (analogy rows) x classes", (long) n * t.cfg.classes(), 1, maxImages, "--max-images");
                Map<String, Object> settings = new LinkedHashMap<>();
                settings.put("n", n); settings.put("command", "sample vae");
                if (k >= 0) settings.put("class", k);
                if (analogy) settings.put("analogy", true);
                var prov = dev.latent.io.Provenance.ofCheckpoint("vae", checkpoint, VaeTrainer.CHECKPOINT, seed, settings);
                try (var p = prov.use()) {
                    if (analogy) t.writeAnalogy(out, n, seed);
                    else t.writeSamples(out, n, seed, k);
                    if (t.cfg.latent() == 2 && !t.cfg.conditional() && out.toString().endsWith(".png"))
                        t.writeManifold(out.resolveSibling(out.getFileName().toString().replace(".png", "") + "-manifold.png"), 20);
                }
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("out", out.toString()); m.put("n", n);
                if (k >= 0) m.put("class", k);
                if (analogy) m.put("analogy", true);
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Test negative ELBO (nats), IWAE bound, active units and per-dimension KL of a trained VAE; one JSON object out.")
    static final class Eval implements Callable<Integer> {
        @Option(names = "--checkpoint", description = "a checkpoint file, or the run folder holding it", required = true) Path checkpoint;
        @Option(names = "--data", description = "dataset holding the test split (default: the one trained on)") String data;
        @Option(names = "--iwae-k", description = "importance samples of the IWAE bound (default: ${DEFAULT-VALUE})") int iwaeK = 100;
        @Option(names = "--iwae-n", description = "test images the IWAE bound is computed on (default: ${DEFAULT-VALUE})") int iwaeN = 1000;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;

        @Override
        public Integer call() throws Exception {
            GanCommands.threads(threads);
            try (Scope scope = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(checkpoint, scope);
                ImageData test = ImageData.load(data != null ? data : t.cfg.data(), "test");
                VaeTrainer.Eval e = t.evaluate(test, false);
                Map<String, Object> m = new LinkedHashMap<>(e.toMap());
                if (iwaeK > 0 && iwaeN > 0) m.put("iwae_nll", t.iwae(test, iwaeK, Math.min(iwaeN, test.n)));
                m.put("iwae_k", iwaeK);
                m.put("n_test", test.n);
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "test neg-ELBO %.2f nats, active units %d/%d%n", e.negElbo(), e.activeUnits(), t.cfg.latent());
            }
            return 0;
        }
    }
}
