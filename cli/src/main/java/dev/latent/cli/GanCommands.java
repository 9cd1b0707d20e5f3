package dev.latent.cli;

import dev.latent.Latent;
import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.models.gan.ToyGan;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The GAN family's commands: train dcgan | wgan-gp | toy-gan | classifier, eval fid | modes. */
final class GanCommands {
    private GanCommands() {}

    /** Options shared by DCGAN and WGAN-GP. */
    abstract static class ImageGan implements Callable<Integer> {
        @Option(names = {"--steps", "--iters"}, description = "iterations in all, each one D and one G step (wgan-gp: --n-critic critic steps and one G step); --iters is the older name (default: ${DEFAULT-VALUE})") int iters = 2000;
        @Option(names = "--nz", description = "length of the latent vector z (default: ${DEFAULT-VALUE})") int nz = 100;
        @Option(names = "--ngf", description = "generator feature maps (width of the generator) (default: ${DEFAULT-VALUE})") int ngf = 64;
        @Option(names = "--ndf", description = "discriminator / critic feature maps (width of the critic) (default: ${DEFAULT-VALUE})") int ndf = 64;
        @Option(names = "--lr", description = "Adam learning rate (default: 2e-4 for dcgan, 1e-4 for wgan-gp)") Float lr;
        @Option(names = "--log-interval", description = "iterations between progress lines and metrics records (default: ${DEFAULT-VALUE})") int logInterval = 50;
        @Option(names = "--samples", description = "at the end, write N samples (28 x 28 bytes, IDX3) to samples-idx3-ubyte for `eval fid`") int samples = 0;
        @Mixin Mixins.ImageBatch batch = new Mixins.ImageBatch(64);
        @Mixin Mixins.TrainLimit limit;
        @Mixin Mixins.TrainData data;
        @Mixin Mixins.Out out;
        @Mixin Resume resume;
        @Mixin Mixins.TrainSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Quiet quiet;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;
        @Mixin Mixins.CudaGraph cudaGraph;

        abstract GanTrainer.Config base();

        /** Where and at which precision the run trains: resolved by {@link #config} before any data is read. */
        Device runOn;
        dev.latent.tensor.Precision prec;

        GanTrainer.Config config(GanTrainer.Config b, int nCritic, float lambda, Dcgan.Norm norm) {
            runOn = device.resolve();
            prec = precision.runnable(runOn);   // bf16 refused here, before the data is read
            Limits.atLeast("--steps/--iters", iters, 1);
            batch.check();
            Limits.atLeast("--nz", nz, 1);
            Limits.atLeast("--ngf", ngf, 1);
            Limits.atLeast("--ndf", ndf, 1);
            Limits.atLeast("--log-interval", logInterval, 1);
            limit.check();
            Limits.atLeast("--samples", samples, 0);
            if (lr != null) Limits.positive("--lr", lr);
            Limits.atMost("--samples", samples, 0, Limits.DEFAULT_MAX_IMAGES * 10L, null);
            return new GanTrainer.Config(b.loss(), data.data, out.out, iters, batch.batch, nz, ngf, ndf, lr == null ? b.lr() : lr, b.beta1(), b.beta2(),
                    nCritic, lambda, norm, seed.seed, logInterval, limit.limit, samples, b.sampleSeed(), quiet.quiet);
        }

        int run(GanTrainer.Config c) throws Exception {
            threads.check();
            ImageData.load(data.data, "train");   // validated before the run folder is touched
            resume.check(out, GanTrainer.CHECKPOINT);
            threads.apply();
            var clock = new StepClock(ConsoleListener.INSTANCE);
            GanTrainer t = new GanTrainer(c, runOn).listener(clock).precision(prec).cudaGraph(cudaGraph.on);
            System.err.printf(Locale.ROOT, "%s: data %s, %d iterations of batch %d, %d threads%n", c.loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp",
                    c.data(), c.iters(), c.batch(), Latent.threads());
            GanTrainer.Result r = t.run(c.iters(), resume.resume, resume.stopAt());
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("model", c.loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp");
            m.put("iters", r.iters()); m.put("seconds", r.seconds()); m.put("images_per_s", r.imagesPerSecond());
            m.put("lossD", r.lossD()); m.put("lossG", r.lossG()); m.put("finite", r.finite()); m.put("out", c.out().toString());
            m.putAll(clock.steady((double) c.batch() * (c.loss() == GanTrainer.Loss.GAN ? 1 : c.nCritic()), "images"));   // an iteration's batches
            System.out.println(Json.object(m));
            if (!r.finite()) System.err.println("latent: " + m.get("model") + " training diverged: a loss is not finite (lossD " + r.lossD() + ", lossG " + r.lossG() + ")");
            return r.finite() ? 0 : dev.latent.train.DivergedException.EXIT_CODE;
        }
    }

    @Command(name = "dcgan", mixinStandardHelpOptions = true, description = "Train DCGAN (BCE loss) on 28 x 28 images padded to 32 x 32.")
    static final class TrainDcgan extends ImageGan {
        @Option(names = "--conditional", description = "class-conditional: a one-hot label concatenated to z, a projection discriminator; needs labelled data (the class count is 1 + the largest label)")
        boolean conditional;

        GanTrainer.Config base() { return GanTrainer.Config.dcgan(data.data, out.out); }

        @Override
        public Integer call() throws Exception {
            GanTrainer.Config c = config(base(), 1, 0f, Dcgan.Norm.BATCH);
            if (conditional) c = c.withClasses(GanTrainer.classesOf(ImageData.load(data.data, "train")));
            return run(c);
        }
    }

    @Command(name = "wgan-gp", mixinStandardHelpOptions = true, description = "Train WGAN-GP (critic without BatchNorm, gradient penalty).")
    static final class TrainWganGp extends ImageGan {
        @Option(names = "--n-critic", description = "critic steps per generator step (default: ${DEFAULT-VALUE})") int nCritic = 5;
        @Option(names = "--lambda", description = "weight of the gradient penalty (default: ${DEFAULT-VALUE})") float lambda = 10f;
        @Option(names = "--critic-norm", description = "one of ${COMPLETION-CANDIDATES}: normalisation in the critic (default: ${DEFAULT-VALUE})") Choices.CriticNorm criticNorm = Choices.CriticNorm.NONE;

        GanTrainer.Config base() { return GanTrainer.Config.wganGp(data.data, out.out); }

        @Override
        public Integer call() throws Exception {
            Dcgan.Norm norm = criticNorm.norm;
            if (nCritic < 1) throw new IllegalArgumentException("--n-critic must be >= 1, got " + nCritic);
            Limits.nonNegative("--lambda", lambda);
            return run(config(base(), nCritic, lambda, norm));
        }
    }

    @Command(name = "toy-gan", mixinStandardHelpOptions = true,
            description = "2-D mode-coverage benchmark (VEEGAN / PacGAN): ring8 or grid25, GAN or WGAN-GP; prints modes covered and %% high-quality samples.")
    static final class TrainToyGan implements Callable<Integer> {
        @Option(names = "--dist", description = "one of ${COMPLETION-CANDIDATES}: the mixture of 2-D Gaussians (default: ${DEFAULT-VALUE})") Choices.ToyGanDist dist = Choices.ToyGanDist.RING8;
        @Option(names = "--loss", description = "one of ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE})") Choices.GanLoss loss = Choices.GanLoss.WGAN_GP;
        @Option(names = "--seeds", description = "comma-separated seeds, each a full run (default: ${DEFAULT-VALUE})") String seeds = "1";
        @Option(names = "--steps", description = "generator steps (default: 2000 for gan, 1000 for wgan-gp)") Integer steps;
        @Option(names = "--hidden", description = "hidden units of the generator and the discriminator MLPs (default: ${DEFAULT-VALUE})") int hidden = 128;
        @Option(names = "--batch", description = "points per optimizer step (default: ${DEFAULT-VALUE})") int batch = 256;
        @Option(names = "--lambda", description = "weight of the gradient penalty (WGAN-GP loss only)") Float lambda;
        @Option(names = "--lr", description = "peak learning rate, cosine-decayed to 0 (default: 1e-3)") Float lr;
        @Option(names = "--n-critic", description = "critic steps per generator step, wgan-gp (default: 5)") Integer nCritic;
        @Option(names = "--out", description = "folder for result.json (optional)") Path out;
        @Mixin Mixins.Threads threads;
        @Mixin RunFolder folder;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;

        @Override
        public Integer call() throws Exception {
            Device runOn = device.resolve();
            var prec = precision.runnable(runOn);   // tf32 off CUDA, bf16 on a CPU without AVX512_BF16: refused here, before anything runs
            threads.check();
            if (steps != null) Limits.atLeast("--steps", steps, 1);
            Limits.atLeast("--hidden", hidden, 1);
            Limits.atLeast("--batch", batch, 1);
            if (lr != null) Limits.positive("--lr", lr);
            if (lambda != null) Limits.nonNegative("--lambda", lambda);
            if (nCritic != null) Limits.atLeast("--n-critic", nCritic, 1);
            for (String s : seeds.split(","))
                try { Long.parseLong(s.trim()); }
                catch (NumberFormatException e) { throw new IllegalArgumentException("--seeds must be comma-separated integers, got \"" + s.trim() + "\""); }
            if (out != null) folder.check(out);
            threads.apply();
            boolean wgan = loss == Choices.GanLoss.WGAN_GP;
            List<Map<String, Object>> runs = new ArrayList<>();
            double modes = 0, hq = 0;
            String[] ss = seeds.split(",");
            for (String s : ss) {
                long seed = Long.parseLong(s.trim());
                ToyGan.Config d = ToyGan.Config.defaults(dist.toString(), wgan);
                ToyGan.Config c = new ToyGan.Config(dist.toString(), wgan, steps == null ? d.steps() : steps, batch, hidden,
                        lr == null ? d.lr() : lr, true, nCritic == null ? d.nCritic() : nCritic,
                        lambda == null ? d.lambda() : lambda, seed);
                long t0 = System.nanoTime();
                double[] last;
                ToyGan.Coverage cov;
                try (ToyGan gan = new ToyGan(c, runOn).precision(prec)) {   // trains and samples on runOn
                    last = gan.train();
                    cov = gan.coverage(2500, 1234);
                }
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("seed", seed);
                r.putAll(cov.toMap());
                r.put("lossD", last[0]); r.put("lossG", last[1]); r.put("seconds", (System.nanoTime() - t0) / 1e9);
                runs.add(r);
                System.err.println("toy-gan " + dist + " " + loss + " seed " + seed + ": " + Json.object(r));
                modes += cov.modes();
                hq += cov.hqPct();
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("dist", dist.toString()); m.put("loss", loss.toString()); m.put("seeds", ss.length);
            m.put("device", runOn == Device.CUDA ? "cuda" : "cpu"); m.put("precision", prec.id());
            m.put("modes_mean", modes / ss.length); m.put("hq_pct_mean", hq / ss.length); m.put("runs", runs);
            String json = Json.object(m);
            if (out != null) {
                Files.createDirectories(out);
                Files.writeString(out.resolve("result.json"), json + "\n");
            }
            System.out.println(json);
            return 0;
        }
    }

    @Command(name = "classifier", mixinStandardHelpOptions = true,
            description = "Train the small CNN whose features define our FID and Inception Score (needs labels).")
    static final class TrainClassifier implements Callable<Integer> {
        @Option(names = "--data", description = "fashion-mnist or a folder with IDX image and label files (default: ${DEFAULT-VALUE})") String data = "fashion-mnist";
        @Option(names = "--lr", description = "AdamW learning rate (default: ${DEFAULT-VALUE})") float lr = 2e-3f;
        @Mixin Mixins.Epochs epochs = new Mixins.Epochs(3);
        @Mixin Mixins.ImageBatch batch = new Mixins.ImageBatch(128);
        @Mixin Mixins.TrainLimit limit;
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
            epochs.check();
            batch.check();
            limit.check();
            Limits.positive("--lr", lr);
            ImageData train = ImageData.load(data, "train"), test = ImageData.load(data, "test");
            run.check(out, Classifier.CHECKPOINT);
            threads.apply();
            if (limit.limit > 0) train = train.head(limit.limit);
            try (Scope scope = Scope.shared()) {
                Classifier c = new Classifier(scope, 10, seed.seed).on(runOn).precision(prec);
                Classifier.TrainResult r = c.train(train, test, out.out, run.steps(), run.resume(), run.stopAt(), epochs.epochs, batch.batch, lr, seed.seed, quiet.quiet,
                        ConsoleListener.INSTANCE);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "classifier"); m.put("epochs", r.epochs()); m.put("test_accuracy", r.testAccuracy());
                m.put("seconds", r.seconds()); m.put("checkpoint", out.out.resolve(Classifier.CHECKPOINT).toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    /** "fashion-mnist:test", "DIR:train", a PNG folder or an IDX file. */
    static ImageData images(String spec) throws Exception {
        String split = "test", s = spec;
        int colon = spec.lastIndexOf(':');
        if (colon > 0 && (spec.endsWith(":train") || spec.endsWith(":test"))) { split = spec.substring(colon + 1); s = spec.substring(0, colon); }
        return ImageData.load(s, split);
    }

    @Command(name = "fid", mixinStandardHelpOptions = true,
            description = "FID and Inception Score of a sample set against a data split, with our classifier's features; one JSON object out.")
    static final class EvalFid implements Callable<Integer> {
        @Option(names = "--classifier", required = true, description = "folder (or file) of `train classifier`") Path classifier;
        @Option(names = "--samples", required = true, description = "IDX file, PNG folder, or fashion-mnist:train|test") String samples;
        @Option(names = "--ref", description = "reference split (default: ${DEFAULT-VALUE})") String ref = "fashion-mnist:test";
        @Option(names = "--limit", description = "use at most N images of each set (0: all)") int limit = 0;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            Limits.atLeast("--limit", limit, 0);
            threads.apply();
            ImageData a = images(samples), b = images(ref);
            if (limit > 0) { a = a.head(limit); b = b.head(limit); }
            if (a.h != 28 || a.w != 28 || b.h != 28 || b.w != 28)
                throw new IllegalArgumentException("eval fid: 28 x 28 images expected, got " + a.h + "x" + a.w + " and " + b.h + "x" + b.w);
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                Classifier c = Classifier.load(classifier, scope, on);   // the feature net's forward on the device with --device cuda
                double[][][] fa = c.featuresAndProbs(a), fb = c.featuresAndProbs(b);
                double fid = Fid.distance(Fid.stats(fa[0]), Fid.stats(fb[0]));
                double[] is = Fid.inceptionScore(fa[1], 10);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("metric", "fid"); m.put("fid", fid); m.put("is_mean", is[0]); m.put("is_std", is[1]);
                m.put("samples", a.source); m.put("n_samples", a.n); m.put("ref", b.source); m.put("n_ref", b.n);
                m.put("classifier", classifier.toString());
                m.put("classifier_precision", c.precision().id());   // the classifier checkpoint's training precision (fp32 for older ones)
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "dcgan", mixinStandardHelpOptions = true, description = "Sample a grid (PNG) or an IDX file from a DCGAN / WGAN-GP checkpoint.")
    static final class SampleDcgan implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "PNG grid (.png) or IDX3 file of 28 x 28 samples") Path out;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.Images images;
        @Mixin Mixins.SampleSeed seed = new Mixins.SampleSeed(1234);
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;
        @Option(names = "--class", description = "a conditional checkpoint's class K in [0, classes): every image of that class (default: classes in turn)")
        Integer cls;

        @Override
        public Integer call() throws Exception {
            images.check();
            if (cls != null && cls < 0) throw new IllegalArgumentException("--class must be >= 0 (classes are numbered from 0), got " + cls);
            threads.apply();
            int n = images.n;
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                GanTrainer t = GanTrainer.load(checkpoint.checkpoint, scope, seed.seed, on);
                int k = cls == null ? -1 : cls;
                if (k >= 0 && !t.config().conditional()) throw new IllegalArgumentException(GanTrainer.notConditional(checkpoint.checkpoint.toString()));
                t.checkClass(k);
                var prov = dev.latent.io.Provenance.ofCheckpoint(t.config().loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp", checkpoint.checkpoint,
                        GanTrainer.CHECKPOINT, seed.seed, k >= 0 ? Map.of("n", n, "class", k, "command", "sample dcgan") : Map.of("n", n, "command", "sample dcgan"));
                try (var p = prov.use()) {
                    if (out.toString().endsWith(".png")) t.writeGridSamples(out, n, k);
                    else t.writeSamples(out, n, k);
                }
                System.out.println(Json.object(k >= 0 ? Map.of("out", out.toString(), "n", n, "class", k, "trained_precision", t.precision().id())
                        : Map.of("out", out.toString(), "n", n, "trained_precision", t.precision().id())));
            }
            return 0;
        }
    }
}
