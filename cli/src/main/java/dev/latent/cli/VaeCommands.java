package dev.latent.cli;

import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
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
        @Option(names = "--latent", description = "latent dimensions D (default: ${DEFAULT-VALUE})") int latent = 32;
        @Option(names = "--beta", description = "KL weight (beta-VAE; default: ${DEFAULT-VALUE})") double beta = 1.0;
        @Option(names = "--lr", description = "AdamW learning rate (default: ${DEFAULT-VALUE})") float lr = 1e-3f;
        @Option(names = "--likelihood", description = "one of ${COMPLETION-CANDIDATES}: the decoder's pixel likelihood (default: ${DEFAULT-VALUE})") Choices.Likelihood likelihood = Choices.Likelihood.BERNOULLI;
        @Option(names = "--sigma", description = "Gaussian likelihood's fixed std (default: ${DEFAULT-VALUE})") double sigma = 0.1;
        @Option(names = "--warmup", description = "KL warm-up steps: beta ramps from 0 (default: none)") int warmup = 0;
        @Option(names = "--free-bits", description = "free bits per latent dim (nats; default: none)") double freeBits = 0;
        @Option(names = "--log-interval", description = "steps between progress lines and metrics records, counted from each epoch's first step (default: ${DEFAULT-VALUE})") int logInterval = 100;
        @Option(names = "--exclude-class", description = "hold class K out of training (for eval vae-anomaly; default: none)") Integer excludeClass;
        @Option(names = "--conditional", description = "conditional VAE (cVAE): a one-hot label concatenated to the encoder's features and to z; needs labelled data (the class count is 1 + the largest label)")
        boolean conditional;
        @Mixin Mixins.Epochs epochs = new Mixins.Epochs(5);
        @Mixin Mixins.ImageBatch batch = new Mixins.ImageBatch(128);
        @Mixin Mixins.TrainLimit limit;
        @Mixin Mixins.Iwae iwae;   // of the final evaluation
        @Mixin Mixins.TrainData data;
        @Mixin Mixins.Out out;
        @Mixin Mixins.TrainSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Quiet quiet;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;
        @Mixin TrainSteps run;
        @Mixin Mixins.CudaGraph cudaGraph;

        @Override
        public Integer call() throws Exception {
            threads.check();
            Limits.positive("--lr", lr);
            Limits.nonNegative("--beta", beta);
            Limits.nonNegative("--free-bits", freeBits);
            Limits.positive("--sigma", sigma);
            Limits.atLeast("--latent", latent, 1);
            epochs.check();
            batch.check();
            Limits.atLeast("--warmup", warmup, 0);
            Limits.atLeast("--log-interval", logInterval, 1);
            limit.check();
            iwae.check();
            if (excludeClass != null && (excludeClass < 0 || excludeClass > 255))
                throw new IllegalArgumentException("--exclude-class must be a label in [0, 255], got " + excludeClass);
            VaeTrainer.checkMemory(latent, batch.batch);
            Device runOn = device.resolve();
            var prec = precision.runnable(runOn);   // bf16 refused here, before the data is read
            ImageData trainSet = ImageData.load(data.data, "train");   // validated before the run folder is touched
            int classes = conditional ? dev.latent.models.gan.GanTrainer.classesOf(trainSet) : 0;
            run.check(out, VaeTrainer.CHECKPOINT);
            threads.apply();
            var c = new VaeTrainer.Config(data.data, out.out, latent, beta, epochs.epochs, batch.batch, lr, likelihood.likelihood, sigma, warmup, freeBits, seed.seed,
                    limit.limit, 1234, iwae.k, iwae.n, logInterval, quiet.quiet, excludeClass == null ? -1 : excludeClass).withClasses(classes);
            try (Scope scope = Scope.shared()) {
                var clock = new StepClock(ConsoleListener.INSTANCE);
                VaeTrainer t = new VaeTrainer(c, scope, runOn).listener(clock).precision(prec).cudaGraph(cudaGraph.on);
                var results = t.run(run.steps(), run.resume(), run.stopAt());
                if (results.isEmpty()) {   // stopped (--stop-after) before the end of a pass over the data
                    System.out.println(Json.object(Map.of("model", "vae", "stopped", true, "out", out.out.toString())));
                    return 0;
                }
                var last = results.get(results.size() - 1);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "vae"); m.put("epochs", epochs.epochs); m.put("final_train_neg_elbo", last.trainNegElbo());
                m.putAll(last.test().toMap());
                m.put("images_per_s", results.stream().mapToDouble(VaeTrainer.EpochResult::imagesPerSecond).average().orElse(0));
                m.put("out", out.out.toString());
                m.putAll(clock.steady(batch.batch, "images"));
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Decode samples z ~ N(0, I) of a trained VAE into a PNG grid (or, for an --out not ending in .png, an IDX3 file); a conditional VAE takes --class or --analogy.")
    static final class Sample implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "PNG file for the sample grid (with a 2-D latent, also NAME-manifold.png beside it), or an IDX3 file for any other name") Path out;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.Images images;
        @Mixin Mixins.SampleSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;
        @Option(names = "--class", description = "a conditional VAE's class K in [0, classes): every image of that class (default: classes in turn)")
        Integer cls;
        @Option(names = "--analogy", description = "a conditional VAE's analogy grid: --n rows, one z per row, every class across (PNG)")
        boolean analogy;

        @Override
        public Integer call() throws Exception {
            images.check();
            if (cls != null && cls < 0) throw new IllegalArgumentException("--class must be >= 0 (classes are numbered from 0), got " + cls);
            if (cls != null && analogy) throw new IllegalArgumentException("--class and --analogy exclude each other (the analogy grid shows every class)");
            threads.apply();
            int n = images.n, maxImages = images.maxImages;
            Path ckpt = checkpoint.checkpoint;
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(ckpt, scope, on);
                int k = cls == null ? -1 : cls;
                if ((k >= 0 || analogy) && !t.cfg.conditional())
                    throw new IllegalArgumentException(ckpt + ": the VAE is unconditional (trained without --conditional), so "
                            + (analogy ? "it has no analogy grid" : "it cannot be asked for a class"));
                t.checkClass(k);
                if (analogy && t.cfg.conditional()) Limits.atMost("--n (analogy rows) x classes", (long) n * t.cfg.classes(), 1, maxImages, "--max-images");
                Map<String, Object> settings = new LinkedHashMap<>();
                settings.put("n", n); settings.put("command", "sample vae");
                if (k >= 0) settings.put("class", k);
                if (analogy) settings.put("analogy", true);
                var prov = dev.latent.io.Provenance.ofCheckpoint("vae", ckpt, VaeTrainer.CHECKPOINT, seed.seed, settings);
                try (var p = prov.use()) {
                    if (analogy) t.writeAnalogy(out, n, seed.seed);
                    else t.writeSamples(out, n, seed.seed, k);
                    if (t.cfg.latent() == 2 && !t.cfg.conditional() && out.toString().endsWith(".png"))
                        t.writeManifold(out.resolveSibling(out.getFileName().toString().replace(".png", "") + "-manifold.png"), 20);
                }
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("out", out.toString()); m.put("n", n);
                if (k >= 0) m.put("class", k);
                if (analogy) m.put("analogy", true);
                m.put("trained_precision", t.precision().id());   // the checkpoint's (fp32 for one written before it was recorded)
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Test negative ELBO (nats), IWAE bound, active units and per-dimension KL of a trained VAE; one JSON object out.")
    static final class Eval implements Callable<Integer> {
        @Mixin Mixins.Iwae iwae;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.EvalData data;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            iwae.check();
            threads.apply();
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(checkpoint.checkpoint, scope, on);
                ImageData test = ImageData.load(data.or(t.cfg.data()), "test");
                VaeTrainer.Eval e = t.evaluate(test, false);
                Map<String, Object> m = new LinkedHashMap<>(e.toMap());
                if (iwae.k > 0 && iwae.n > 0) m.put("iwae_nll", t.iwae(test, iwae.k, Math.min(iwae.n, test.n)));
                m.put("iwae_k", iwae.k);
                m.put("n_test", test.n);
                m.put("trained_precision", t.precision().id());   // the checkpoint's (fp32 for one written before it was recorded)
                System.out.println(Json.object(m));
                System.err.printf(Locale.ROOT, "test neg-ELBO %.2f nats, active units %d/%d%n", e.negElbo(), e.activeUnits(), t.cfg.latent());
            }
            return 0;
        }
    }
}
