package dev.latent.cli;

import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.tensor.Scope;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** The flow family's commands: train / sample / eval realnvp and glow, train flow-toy. (A checkpoint says which model it holds.) */
final class FlowCommands {
    private FlowCommands() {}

    /** Options and the run shared by train realnvp and train glow: data, schedule, limits; one JSON line of results. */
    static final class TrainOptions {
        @Option(names = "--lr", description = "AdamW learning rate (default: ${DEFAULT-VALUE})") float lr = 1e-3f;
        @Option(names = "--clip", description = "global gradient-norm clipping threshold (0: none, the reference recipe) (default: ${DEFAULT-VALUE})") double clip = 0;
        @Option(names = "--max-steps", description = "the older cap: at most N steps of the --epochs (0: all of them; --steps N asks for N steps outright)") int maxSteps = 0;
        @Mixin Mixins.Epochs epochs = new Mixins.Epochs(1);
        @Mixin Mixins.ImageBatch batch = new Mixins.ImageBatch(64);
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
        @Mixin Mixins.CudaGraph cudaGraph;

        int train(String model, java.util.function.Supplier<FlowTrainer.Config> config) throws Exception {
            var runOn = device.resolve();
            var prec = precision.runnable(runOn);   // bf16 refused here, before the data is read
            epochs.check();
            batch.check();
            Limits.atLeast("--max-steps", maxSteps, 0);
            limit.check();
            testLimit.check();
            Limits.positive("--lr", lr);
            Limits.nonNegative("--clip", clip);
            threads.check();
            ImageData probe = ImageData.load(data.data, "test");
            run.check(out, FlowTrainer.CHECKPOINT);
            threads.apply();
            try (Scope scope = Scope.shared()) {
                var clock = new StepClock(ConsoleListener.INSTANCE);
                FlowTrainer.Result r = new FlowTrainer(config.get(), scope, probe.h, probe.w, runOn).listener(clock).precision(prec)
                        .cudaGraph(cudaGraph.on).run(run.steps(), run.resume(), run.stopAt());
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", model); m.put("steps", r.steps()); m.put("train_bpd", r.trainBpd()); m.put("test_bpd", r.testBpd());
                m.put("invertibility_error", r.invertibilityError()); m.put("images_per_s", r.imagesPerSecond()); m.put("out", out.out.toString());
                m.putAll(clock.steady(batch.batch, "images"));
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "realnvp", mixinStandardHelpOptions = true,
            description = "Train RealNVP (checkerboard affine couplings) on 28 x 28 images; exact bits/dim on the test split at the end.")
    static final class Train implements Callable<Integer> {
        @Option(names = "--couplings", description = "affine coupling layers (alternating checkerboard / channel masks) (default: ${DEFAULT-VALUE})") int couplings = 6;
        @Option(names = "--hidden", description = "hidden channels of each coupling's network (default: ${DEFAULT-VALUE})") int hidden = 64;
        @Mixin TrainOptions o;

        @Override
        public Integer call() throws Exception {
            if (couplings < 1 || hidden < 1) throw new IllegalArgumentException("--couplings, --hidden >= 1");
            return o.train("realnvp", () -> new FlowTrainer.Config(o.data.data, o.out.out, couplings, hidden, o.epochs.epochs, o.batch.batch, o.lr,
                    o.maxSteps, o.seed.seed, o.limit.limit, o.testLimit.testLimit, o.quiet.quiet).withClip(o.clip));
        }
    }

    @Command(name = "glow", mixinStandardHelpOptions = true,
            description = "Train Glow (L levels of squeeze, K steps of ActNorm + 1x1 conv + channel coupling, split) on images whose sides are multiples of 2^L; exact bits/dim on the test split at the end.")
    static final class TrainGlow implements Callable<Integer> {
        @Option(names = "--levels", description = "L (default: ${DEFAULT-VALUE})") int levels = 2;
        @Option(names = {"--depth", "--steps-per-level"}, description = "K steps of flow per level (default: ${DEFAULT-VALUE})") int depth = 8;
        @Option(names = "--hidden", description = "hidden channels of each affine coupling's network (default: ${DEFAULT-VALUE})") int hidden = 128;
        @Mixin TrainOptions o;

        @Override
        public Integer call() throws Exception {
            if (levels < 1 || depth < 1 || hidden < 1) throw new IllegalArgumentException("--levels, --depth, --hidden >= 1");
            return o.train("glow", () -> new FlowTrainer.Config(o.data.data, o.out.out, "glow", 0, levels, depth, hidden, o.epochs.epochs, o.batch.batch,
                    o.lr, o.maxSteps, o.seed.seed, o.limit.limit, o.testLimit.testLimit, o.quiet.quiet).withClip(o.clip));
        }
    }

    @Command(name = "glow", mixinStandardHelpOptions = true, description = "Sample a trained Glow into a PNG grid (every level's z ~ N(0, T^2 I)).")
    static final class SampleGlow extends Sample {}

    @Command(name = "glow", mixinStandardHelpOptions = true, description = "Test bits/dim (exact, change of variables) and invertibility error of a trained Glow.")
    static final class EvalGlow extends Eval {}

    @Command(name = "realnvp", mixinStandardHelpOptions = true, description = "Sample a trained RealNVP into a PNG grid (z ~ N(0, T^2 I)).")
    static class Sample implements Callable<Integer> {
        @Option(names = "--out", description = "PNG file for the sample grid", required = true) Path out;
        @Option(names = "--temperature", description = "std T of the latent draw (default: ${DEFAULT-VALUE}; 0 is deterministic)") double temperature = 0.7;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.Images images;
        @Mixin Mixins.SampleSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            images.check();
            Limits.nonNegative("--temperature", temperature);
            threads.apply();
            int n = images.n;
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                FlowTrainer t = FlowTrainer.load(checkpoint.checkpoint, scope, on);
                var prov = dev.latent.io.Provenance.ofCheckpoint(t.cfg.arch(), checkpoint.checkpoint, FlowTrainer.CHECKPOINT, seed.seed,
                        Map.of("n", n, "temperature", temperature, "command", "sample " + t.cfg.arch()));
                try (var p = prov.use()) {
                    t.writeSamples(out, n, temperature, seed.seed);
                }
                System.out.println(Json.object(Map.of("out", out.toString(), "n", n, "temperature", temperature, "trained_precision", t.precision().id())));
            }
            return 0;
        }
    }

    @Command(name = "realnvp", mixinStandardHelpOptions = true, description = "Test bits/dim (exact, change of variables) and invertibility error of a trained RealNVP.")
    static class Eval implements Callable<Integer> {
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.EvalData data;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;

        @Override
        public Integer call() throws Exception {
            threads.apply();
            dev.latent.tensor.Device on = device.resolve();
            try (Scope scope = Scope.shared()) {
                FlowTrainer t = FlowTrainer.load(checkpoint.checkpoint, scope, on);
                ImageData test = ImageData.load(data.or(t.cfg.data()), "test");
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("test_bpd", t.testBpd(test)); m.put("invertibility_error", t.invertibilityError(test, 64)); m.put("n_test", test.n);
                m.put("trained_precision", t.precision().id());   // the checkpoint's (fp32 for one written before it was recorded)
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }

    @Command(name = "flow-toy", mixinStandardHelpOptions = true,
            description = "RealNVP on a 2-D toy density (moons or rings): prints the test NLL, writes density.png, samples.png, metrics.jsonl and a resumable checkpoint.")
    static final class TrainToy implements Callable<Integer> {
        @Option(names = "--dist", description = "one of ${COMPLETION-CANDIDATES}: the 2-D density to fit (default: ${DEFAULT-VALUE})") Choices.ToyFlowDist dist = Choices.ToyFlowDist.MOONS;
        @Option(names = "--steps", description = "optimizer steps in all (default: ${DEFAULT-VALUE})") int steps = 2000;
        @Option(names = "--couplings", description = "coupling layers of the 2-D flow (default: ${DEFAULT-VALUE})") int couplings = 8;
        @Option(names = "--hidden", description = "hidden units of each coupling's network (default: ${DEFAULT-VALUE})") int hidden = 64;
        @Mixin Mixins.Out out;
        @Mixin Mixins.TrainSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;
        @Mixin Resume resume;

        @Override
        public Integer call() throws Exception {
            var runOn = device.resolve();
            var prec = precision.runnable(runOn);   // tf32 off CUDA, bf16 on a CPU without AVX512_BF16: refused here, before anything runs
            if (steps < 1 || couplings < 1 || hidden < 1) throw new IllegalArgumentException("--steps, --couplings, --hidden must be >= 1");
            threads.check();
            resume.check(out, dev.latent.train.TrainLoop.CHECKPOINT);
            threads.apply();
            try (Scope scope = Scope.shared()) {
                var cfg = new dev.latent.models.flow.ToyFlow.Config(dist.toString(), couplings, hidden, steps, 256, 2e-3f, seed.seed);
                var f = new dev.latent.models.flow.ToyFlow(cfg, scope, runOn).precision(prec);   // trains, evaluates and samples on runOn
                double before = f.evalNll(2000);   // the initial weights (the same on a resume: they come from --seed)
                long done = f.run(out.out, resume.resume, resume.stopAt(), 100, 0, ConsoleListener.INSTANCE, true);
                double after = f.evalNll(2000);
                f.writePictures(out.out, 256, 4000);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("model", "flow-toy"); m.put("dist", dist.toString()); m.put("steps", done); m.put("nll_before", before); m.put("nll", after);
                m.put("device", runOn == dev.latent.tensor.Device.CUDA ? "cuda" : "cpu"); m.put("precision", prec.id());
                m.put("out", out.out.toString());
                System.out.println(Json.object(m));
            }
            return 0;
        }
    }
}
