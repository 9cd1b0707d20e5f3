package dev.latent.cli;

import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.models.gan.ToyGan;
import dev.latent.nativ.LatentNative;
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

    static void threads(Integer threads) {
        checkThreads(threads);
        if (threads != null) LatentNative.get().setNumThreads(threads);
    }

    static void checkThreads(Integer threads) {
        if (threads != null) Limits.atLeast("--threads", threads, 1);
    }

    /** Options shared by DCGAN and WGAN-GP. */
    abstract static class ImageGan implements Callable<Integer> {
        @Option(names = "--data", description = "fashion-mnist (Debian's package), a folder of IDX files or PNGs, or an IDX file (default: ${DEFAULT-VALUE})")
        String data = "fashion-mnist";
        @Option(names = "--out", required = true, description = "output folder: metrics.jsonl, samples-epoch-*.png, loss.png, checkpoint.safetensors") Path out;
        @Option(names = {"--steps", "--iters"}, description = "iterations (one D and one G step, or n_critic critic steps and one G step; --iters is the older name; default: ${DEFAULT-VALUE})") int iters = 2000;
        @Option(names = "--resume", description = "continue the run in --out from its checkpoint (both nets, BatchNorm statistics, both optimizers); pass the run's own settings") boolean resume;
        @Option(names = "--stop-after", description = "stop (with a checkpoint) after this many iterations; --resume continues the same run") Long stopAfter;
        @Option(names = "--batch", description = "images (or sequences) per optimizer step (default: ${DEFAULT-VALUE})") int batch = 64;
        @Option(names = "--nz", description = "length of the latent vector z (default: ${DEFAULT-VALUE})") int nz = 100;
        @Option(names = "--ngf", description = "generator feature maps (width of the generator) (default: ${DEFAULT-VALUE})") int ngf = 64;
        @Option(names = "--ndf", description = "discriminator / critic feature maps (width of the critic) (default: ${DEFAULT-VALUE})") int ndf = 64;
        @Option(names = "--lr", description = "Adam learning rate (default: 2e-4 for dcgan, 1e-4 for wgan-gp)") Float lr;
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data: same bits) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--log-interval", description = "iterations between progress lines and metrics records (default: ${DEFAULT-VALUE})") int logInterval = 50;
        @Option(names = "--limit", description = "use only the first N training images (quick runs)") int limit = 0;
        @Option(names = "--samples", description = "at the end, write N samples (28 x 28 bytes, IDX3) to samples-idx3-ubyte for `eval fid`") int samples = 0;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--quiet", description = "no progress lines on stderr (the final JSON summary is still printed)") boolean quiet;
        @Option(names = "--device", description = "cpu | cuda (default: ${DEFAULT-VALUE}); cuda without a usable GPU says why and runs on the CPU")
        String device = "cpu";
        @Mixin RunFolder folder;
        @Mixin PrecisionOption precision;

        abstract GanTrainer.Config base();

        GanTrainer.Config config(GanTrainer.Config b, int nCritic, float lambda, Dcgan.Norm norm) {
            precision.fp32Only(b.loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp", "its convolutions have no bf16 kernel (bf16 is wired for train gpt's linear layers only)");
            if (iters < 1 || batch < 1 || nz < 1 || ngf < 1 || ndf < 1 || logInterval < 1 || limit < 0 || samples < 0)
                throw new IllegalArgumentException("--iters, --batch, --nz, --ngf, --ndf, --log-interval must be >= 1; --limit, --samples >= 0");
            if (lr != null) Limits.positive("--lr", lr);
            Limits.atMost("--samples", samples, 0, Limits.DEFAULT_MAX_IMAGES * 10L, null);
            return new GanTrainer.Config(b.loss(), data, out, iters, batch, nz, ngf, ndf, lr == null ? b.lr() : lr, b.beta1(), b.beta2(),
                    nCritic, lambda, norm, seed, logInterval, limit, samples, b.sampleSeed(), quiet);
        }

        int run(GanTrainer.Config c) throws Exception {
            checkThreads(threads);
            if (!device.equals("cpu") && !device.equals("cuda")) throw new IllegalArgumentException("--device must be cpu or cuda, got " + device);
            ImageData.load(data, "train");   // validated before the run folder is touched
            if (stopAfter != null && stopAfter < 0) throw new IllegalArgumentException("--stop-after must be >= 0, got " + stopAfter);
            RunFolder.check(out, resume, folder.overwrite, true);
            if (resume && !java.nio.file.Files.isRegularFile(out.resolve(GanTrainer.CHECKPOINT)))
                throw new IllegalArgumentException("--resume: no checkpoint in " + out + " (" + GanTrainer.CHECKPOINT + " is missing)");
            threads(threads);
            GanTrainer t = new GanTrainer(c, TrainCommand.device(device)).listener(ConsoleListener.INSTANCE);
            System.err.printf(Locale.ROOT, "%s: data %s, %d iterations of batch %d, %d threads%n", c.loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp",
                    c.data(), c.iters(), c.batch(), LatentNative.get().numThreads());
            GanTrainer.Result r = t.run(c.iters(), resume, stopAfter == null ? Long.MAX_VALUE : stopAfter);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("model", c.loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp");
            m.put("iters", r.iters()); m.put("seconds", r.seconds()); m.put("images_per_s", r.imagesPerSecond());
            m.put("lossD", r.lossD()); m.put("lossG", r.lossG()); m.put("finite", r.finite()); m.put("out", c.out().toString());
            System.out.println(Json.object(m));
            if (!r.finite()) System.err.println("latent: " + m.get("model") + " training diverged: a loss is not finite (lossD " + r.lossD() + ", lossG " + r.lossG() + ")");
            return r.finite() ? 0 : dev.latent.train.DivergedException.EXIT_CODE;
        }
    }

    @Command(name = "dcgan", mixinStandardHelpOptions = true, description = "Train DCGAN (BCE loss) on 28 x 28 images padded to 32 x 32.")
    static final class TrainDcgan extends ImageGan {
        @Option(names = "--conditional", description = "class-conditional: a one-hot label concatenated to z, a projection discriminator; needs labelled data (the class count is 1 + the largest label)")
        boolean conditional;

        GanTrainer.Config base() { return GanTrainer.Config.dcgan(data, out); }

        @Override
        public Integer call() throws Exception {
            GanTrainer.Config c = config(base(), 1, 0f, Dcgan.Norm.BATCH);
            if (conditional) c = c.withClasses(GanTrainer.classesOf(ImageData.load(data, "train")));
            return run(c);
        }
    }

    @Command(name = "wgan-gp", mixinStandardHelpOptions = true, description = "Train WGAN-GP (critic without BatchNorm, gradient penalty).")
    static final class TrainWganGp extends ImageGan {
        @Option(names = "--n-critic", description = "critic steps per generator step (default: ${DEFAULT-VALUE})") int nCritic = 5;
        @Option(names = "--lambda", description = "weight of the gradient penalty (default: ${DEFAULT-VALUE})") float lambda = 10f;
        @Option(names = "--critic-norm", description = "none | layer (default: ${DEFAULT-VALUE})") String criticNorm = "none";

        GanTrainer.Config base() { return GanTrainer.Config.wganGp(data, out); }

        @Override
        public Integer call() throws Exception {
            Dcgan.Norm norm = switch (criticNorm) {
                case "none" -> Dcgan.Norm.NONE;
                case "layer" -> Dcgan.Norm.LAYER;
                default -> throw new IllegalArgumentException("--critic-norm must be none or layer, got " + criticNorm);
            };
            if (nCritic < 1) throw new IllegalArgumentException("--n-critic must be >= 1, got " + nCritic);
            Limits.nonNegative("--lambda", lambda);
            return run(config(base(), nCritic, lambda, norm));
        }
    }

    @Command(name = "toy-gan", mixinStandardHelpOptions = true,
            description = "2-D mode-coverage benchmark (VEEGAN / PacGAN): ring8 or grid25, GAN or WGAN-GP; prints modes covered and %% high-quality samples.")
    static final class TrainToyGan implements Callable<Integer> {
        @Option(names = "--dist", description = "ring8 | grid25 (default: ${DEFAULT-VALUE})") String dist = "ring8";
        @Option(names = "--loss", description = "gan | wgan-gp (default: ${DEFAULT-VALUE})") String loss = "wgan-gp";
        @Option(names = "--seeds", description = "comma-separated seeds, each a full run (default: ${DEFAULT-VALUE})") String seeds = "1";
        @Option(names = "--steps", description = "generator steps (default: 2000 for gan, 1000 for wgan-gp)") Integer steps;
        @Option(names = "--hidden", description = "hidden units of the generator and the discriminator MLPs (default: ${DEFAULT-VALUE})") int hidden = 128;
        @Option(names = "--batch", description = "points per optimizer step (default: ${DEFAULT-VALUE})") int batch = 256;
        @Option(names = "--lambda", description = "weight of the gradient penalty (WGAN-GP loss only)") Float lambda;
        @Option(names = "--lr", description = "peak learning rate, cosine-decayed to 0 (default: 1e-3)") Float lr;
        @Option(names = "--n-critic", description = "critic steps per generator step, wgan-gp (default: 5)") Integer nCritic;
        @Option(names = "--out", description = "folder for result.json (optional)") Path out;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Mixin RunFolder folder;
        @Mixin PrecisionOption precision;

        @Override
        public Integer call() throws Exception {
            precision.fp32Only("toy-gan", "its MLPs are linear layers the bf16 GEMM could run, but the GAN trainer takes no precision yet");
            checkThreads(threads);
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
            threads(threads);
            boolean wgan = switch (loss) {
                case "gan" -> false;
                case "wgan-gp" -> true;
                default -> throw new IllegalArgumentException("--loss must be gan or wgan-gp, got " + loss);
            };
            ToyGan.Dist.of(dist);
            List<Map<String, Object>> runs = new ArrayList<>();
            double modes = 0, hq = 0;
            String[] ss = seeds.split(",");
            for (String s : ss) {
                long seed = Long.parseLong(s.trim());
                ToyGan.Config d = ToyGan.Config.defaults(dist, wgan);
                ToyGan.Config c = new ToyGan.Config(dist, wgan, steps == null ? d.steps() : steps, batch, hidden,
                        lr == null ? d.lr() : lr, true, nCritic == null ? d.nCritic() : nCritic,
                        lambda == null ? d.lambda() : lambda, seed);
                long t0 = System.nanoTime();
                ToyGan gan = new ToyGan(c);
                double[] last = gan.train();
                ToyGan.Coverage cov = ToyGan.coverage(gan.dist, gan.sample(2500, 1234));
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
            m.put("dist", dist); m.put("loss", loss); m.put("seeds", ss.length);
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
        @Option(names = "--out", description = "folder for the classifier checkpoint and metrics.jsonl", required = true) Path out;
        @Option(names = "--epochs", description = "passes over the training set (default: ${DEFAULT-VALUE})") int epochs = 3;
        @Option(names = "--batch", description = "images (or sequences) per optimizer step (default: ${DEFAULT-VALUE})") int batch = 128;
        @Option(names = "--lr", description = "AdamW learning rate (default: ${DEFAULT-VALUE})") float lr = 2e-3f;
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data: same bits) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--limit", description = "use only the first N training images") int limit = 0;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--quiet", description = "no progress lines on stderr (the final JSON summary is still printed)") boolean quiet;
        @Mixin RunFolder folder;
        @Mixin PrecisionOption precision;
        @Mixin TrainSteps run;

        @Override
        public Integer call() throws Exception {
            precision.fp32Only("classifier", "its convolutions have no bf16 kernel (bf16 is wired for train gpt's linear layers only)");
            checkThreads(threads);
            if (epochs < 1 || batch < 1 || limit < 0) throw new IllegalArgumentException("--epochs, --batch >= 1 and --limit >= 0 required");
            Limits.positive("--lr", lr);
            ImageData train = ImageData.load(data, "train"), test = ImageData.load(data, "test");
            run.check(out, folder, Classifier.CHECKPOINT);
            threads(threads);
            if (limit > 0) train = train.head(limit);
            try (Scope scope = Scope.shared()) {
                Classifier c = new Classifier(scope, 10, seed);
                Classifier.TrainResult r = c.train(train, test, out, run.steps(), run.resume, run.stopAt(), epochs, batch, lr, seed, quiet,
                        ConsoleListener.INSTANCE);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "classifier"); m.put("epochs", r.epochs()); m.put("test_accuracy", r.testAccuracy());
                m.put("seconds", r.seconds()); m.put("checkpoint", out.resolve(Classifier.CHECKPOINT).toString());
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
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;

        @Override
        public Integer call() throws Exception {
            threads(threads);
            ImageData a = images(samples), b = images(ref);
            if (limit > 0) { a = a.head(limit); b = b.head(limit); }
            if (a.h != 28 || a.w != 28 || b.h != 28 || b.w != 28)
                throw new IllegalArgumentException("eval fid: 28 x 28 images expected, got " + a.h + "x" + a.w + " and " + b.h + "x" + b.w);
            try (Scope scope = Scope.shared()) {
                Classifier c = Classifier.load(classifier, scope);
                double[][][] fa = c.featuresAndProbs(a), fb = c.featuresAndProbs(b);
                double fid = Fid.distance(Fid.stats(fa[0]), Fid.stats(fb[0]));
                double[] is = Fid.inceptionScore(fa[1], 10);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("metric", "fid"); m.put("fid", fid); m.put("is_mean", is[0]); m.put("is_std", is[1]);
                m.put("samples", a.source); m.put("n_samples", a.n); m.put("ref", b.source); m.put("n_ref", b.n);
                m.put("classifier", classifier.toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "dcgan", mixinStandardHelpOptions = true, description = "Sample a grid (PNG) or an IDX file from a DCGAN / WGAN-GP checkpoint.")
    static final class SampleDcgan implements Callable<Integer> {
        @Option(names = "--checkpoint", required = true, description = "a training --out folder") Path checkpoint;
        @Option(names = "--out", required = true, description = "PNG grid (.png) or IDX3 file of 28 x 28 samples") Path out;
        @Option(names = "--n", description = "samples (default: ${DEFAULT-VALUE})") int n = 64;
        @Option(names = "--seed", description = "seed of the latent draw (default: ${DEFAULT-VALUE})") long seed = 1234;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--max-images", description = "cap on --n (default: ${DEFAULT-VALUE})") int maxImages = Limits.DEFAULT_MAX_IMAGES;
        @Option(names = "--class", description = "a conditional checkpoint's class K in [0, classes): every image of that class (default: classes in turn)")
        Integer cls;

        @Override
        public Integer call() throws Exception {
            SampleCommand.checkImages(n, maxImages);
            if (cls != null && cls < 0) throw new IllegalArgumentException("--class must be >= 0 (classes are numbered from 0), got " + cls);
            threads(threads);
            try (Scope scope = Scope.shared()) {
                GanTrainer t = GanTrainer.load(checkpoint, scope, seed);
                int k = cls == null ? -1 : cls;
                if (k >= 0 && !t.config().conditional()) throw new IllegalArgumentException(GanTrainer.notConditional(checkpoint.toString()));
                t.checkClass(k);
                var prov = dev.latent.io.Provenance.ofCheckpoint(t.config().loss() == GanTrainer.Loss.GAN ? "dcgan" : "wgan-gp", checkpoint,
                        GanTrainer.CHECKPOINT, seed, k >= 0 ? Map.of("n", n, "class", k, "command", "sample dcgan") : Map.of("n", n, "command", "sample dcgan"));
                try (var p = prov.use()) {
                    if (out.toString().endsWith(".png")) t.writeGridSamples(out, n, k);
                    else t.writeSamples(out, n, k);
                }
                System.out.println(Json.object(k >= 0 ? Map.of("out", out.toString(), "n", n, "class", k) : Map.of("out", out.toString(), "n", n)));
            }
            return 0;
        }
    }
}
