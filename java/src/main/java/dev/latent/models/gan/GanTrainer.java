package dev.latent.models.gan;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.Idx;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.nn.Init;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Tensor;
import dev.latent.train.ImageGrid;
import dev.latent.train.StepScalars;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Trains DCGAN (non-saturating BCE loss) or WGAN-GP (critic without BatchNorm, n_critic critic steps per generator
 * step, gradient penalty lambda (|grad D(x_hat)| - 1)^2) on 1 x 28 x 28 images padded to 32 x 32 in [-1, 1], as
 * ../shared/reference/dcgan_fmnist.py does. Writes metrics.jsonl, a sample grid per epoch (fixed latent batch),
 * loss.png, checkpoint.safetensors and, when asked, a file of samples (IDX3, 28 x 28 bytes) for FID.
 * All randomness is Philox keyed by (seed, purpose, step): the same seed gives the same bits.
 */
public final class GanTrainer {
    public static final String CHECKPOINT = "checkpoint.safetensors";
    /** The checkpoint format ({@link Checkpoint}'s metadata "format"). */
    public static final String FORMAT = "latent-gan-1";

    /** The objective: the original non-saturating GAN loss (DCGAN), or the Wasserstein loss with gradient penalty. */
    public enum Loss { GAN, WGAN_GP }

    /** Everything a run depends on (saved in the checkpoint); {@link #dcgan} and {@link #wganGp} give the reference settings. */
    public record Config(Loss loss, String data, Path out, int iters, int batch, long nz, long ngf, long ndf, float lr,
                         float beta1, float beta2, int nCritic, float lambda, Dcgan.Norm criticNorm, long seed,
                         int logEvery, int trainLimit, int samples, long sampleSeed, boolean quiet, int classes) {
        public Config {
            if (classes < 0) throw new IllegalArgumentException("classes = " + classes + ", expected >= 0 (0: unconditional)");
            if (classes > 0 && loss != Loss.GAN)
                throw new IllegalArgumentException("class conditioning is implemented for dcgan (the GAN loss) only, not for wgan-gp");
        }

        /** An unconditional run (classes = 0). */
        public Config(Loss loss, String data, Path out, int iters, int batch, long nz, long ngf, long ndf, float lr,
                      float beta1, float beta2, int nCritic, float lambda, Dcgan.Norm criticNorm, long seed,
                      int logEvery, int trainLimit, int samples, long sampleSeed, boolean quiet) {
            this(loss, data, out, iters, batch, nz, ngf, ndf, lr, beta1, beta2, nCritic, lambda, criticNorm, seed, logEvery, trainLimit,
                    samples, sampleSeed, quiet, 0);
        }

        /** The same run conditioned on {@code k} classes (a one-hot y concatenated to z, a projection discriminator); 0: unconditional. */
        public Config withClasses(int k) {
            return new Config(loss, data, out, iters, batch, nz, ngf, ndf, lr, beta1, beta2, nCritic, lambda, criticNorm, seed, logEvery,
                    trainLimit, samples, sampleSeed, quiet, k);
        }

        /** Whether the nets are class-conditional. */
        public boolean conditional() { return classes > 0; }

        public static Config dcgan(String data, Path out) {
            return new Config(Loss.GAN, data, out, 2000, 64, 100, 64, 64, 2e-4f, 0.5f, 0.999f, 1, 0f, Dcgan.Norm.BATCH,
                    1, 50, 0, 0, 1234, false);
        }

        public static Config wganGp(String data, Path out) {
            return new Config(Loss.WGAN_GP, data, out, 2000, 64, 100, 64, 64, 1e-4f, 0.5f, 0.9f, 5, 10f, Dcgan.Norm.NONE,
                    1, 50, 0, 0, 1234, false);
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("loss", loss == Loss.GAN ? "gan" : "wgan-gp"); m.put("data", data); m.put("iters", iters); m.put("batch", batch);
            m.put("nz", nz); m.put("ngf", ngf); m.put("ndf", ndf); m.put("lr", lr); m.put("beta1", beta1); m.put("beta2", beta2);
            m.put("n_critic", nCritic); m.put("lambda", lambda); m.put("critic_norm", criticNorm.name().toLowerCase(Locale.ROOT));
            m.put("seed", seed); m.put("train_limit", trainLimit);
            if (classes > 0) { m.put("conditional", true); m.put("classes", classes); }
            return m;
        }
    }

    /** Summary of a run. */
    public record Result(int iters, double seconds, double imagesPerSecond, double lossD, double lossG, boolean finite) {}

    // Philox stream ids per purpose: batches, latents, interpolation weights. Step-keyed so runs can resume exactly.
    static final long PERM = 1L << 40, LATENT = 2L << 40, EPS = 3L << 40, LABEL = 4L << 40;

    private final Config cfg;
    public final Dcgan.Generator g;
    public final Dcgan.Discriminator d;
    final AdamW optG, optD;
    private final Scope params = Scope.shared();
    private StepScalars stepValues;   /* CUDA: a DCGAN iteration's losses and logits, read back when asked */
    private Tensor wganKept;           /* CUDA, WGAN-GP: {lossD, lossG, W estimate, penalty} of the last iteration, on the device */
    private StepScalars wganValues;
    /** Where the nets train; samples and checkpoints are copied to the host as they are written. */
    public final Device device;
    private TrainingListener listener = TrainingListener.LOG;

    public GanTrainer(Config cfg) { this(cfg, Device.CPU); }

    /** The configuration this trainer runs (or a loaded checkpoint was trained) with. */
    public Config config() { return cfg; }

    /** Where {@link #run} reports steps, sample grids and checkpoints (default {@link TrainingListener#LOG}). */
    public GanTrainer listener(TrainingListener listener) {
        this.listener = java.util.Objects.requireNonNull(listener, "listener");
        return this;
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' convolutions and matmuls (issue 15): BF16 runs them through
     * lt_conv2d_*_bf16 and lt_gemm_bf16 (operands rounded to bf16, fp32 sums); BatchNorm, the losses, reductions, the
     * master weights and Adam's state stay fp32, and sampling and evaluation graphs stay fp32. WGAN-GP's gradient
     * penalty differentiates through the bf16 convolutions' backward (each pass of the double backward is again a bf16
     * convolution: Bf16RestTrainingTest checks it against fp32). bf16 on a CPU with AVX512_BF16; on CUDA (issue 18) TF32 and
     * BF16 for dcgan and wgan-gp (docs/cuda.md "Mixed precision"; the penalty's double backward runs each convolution pass
     * at the precision too: CudaPrecisionTest checks it against fp32 on CUDA); elsewhere an exception
     * naming why, before any step. Recorded in the checkpoint (metadata "precision"); a resume must ask the same.
     */
    public GanTrainer precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable(cfg.loss == Loss.GAN ? "dcgan" : "wgan-gp", p, device, true);
        return this;
    }

    /** The training precision: the one set, or for a {@link #load}ed trainer the checkpoint's (FP32 for older ones). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /**
     * A trainer on {@code device}: the nets are built on the CPU (the same initial weights for any device), moved there
     * with BatchNorm's running statistics, and the optimizers made after, so Adam's state lives there too. WGAN-GP's
     * penalty differentiates twice through the critic on the device too.
     */
    public GanTrainer(Config cfg, Device device) {
        this.cfg = cfg;
        this.device = java.util.Objects.requireNonNull(device, "device");
        Dcgan.Norm norm = cfg.loss == Loss.GAN ? Dcgan.Norm.BATCH : cfg.criticNorm;
        if (cfg.loss == Loss.WGAN_GP && norm == Dcgan.Norm.BATCH)
            throw new IllegalArgumentException("wgan-gp: the critic must not use BatchNorm (the penalty is per sample); use none or layer");
        g = new Dcgan.Generator(params, cfg.nz, cfg.ngf, cfg.classes, cfg.seed);
        d = new Dcgan.Discriminator(params, cfg.ndf, norm, cfg.classes, cfg.seed);
        if (device != Device.CPU) {
            g.to(params, device);
            d.to(params, device);
        }
        optG = new AdamW(params, g.namedParameters(), cfg.beta1, cfg.beta2, 1e-8f, 0f);
        optD = new AdamW(params, d.namedParameters(), cfg.beta1, cfg.beta2, 1e-8f, 0f);
    }

    /** z ~ N(0, I) of shape (b, nz, 1, 1) from Philox (seed, stream). */
    static Tensor latent(Scope scope, long seed, long stream, int b, long nz) {
        return Init.normal(scope, seed, stream, 1.0, b, nz, 1, 1);
    }

    /** t on this trainer's device (drawn on the host: the same bits for any device). */
    private Tensor onDevice(Scope scope, Tensor t) { return t.device() == device ? t : t.to(scope, device); }

    /** t on the host (a copy when it is on the device). */
    private static Tensor onHost(Scope scope, Tensor t) { return t.device() == Device.CPU ? t : t.to(scope, Device.CPU); }

    public Result run() throws IOException { return run(0, false, Long.MAX_VALUE); }

    /**
     * The run on {@link TrainLoop}: {@code iters} iterations in all (0: the config's), resumed from the run folder's
     * checkpoint (both nets, BatchNorm's statistics, both optimizers' state) when {@code resume}, stopping after
     * {@code stopAt}. An iteration's batches come from its global batch index (epoch = index / batches per epoch,
     * each epoch its own Philox shuffle) and its latents from the iteration number, so a resumed run ends with the bits
     * of an uninterrupted one. A non-finite loss stops the run ({@link dev.latent.train.DivergedException}).
     */
    public Result run(long iters, boolean resume, long stopAt) throws IOException {
        try (var p = dev.latent.io.Provenance.training(cfg.loss() == Loss.GAN ? "dcgan" : "wgan-gp", cfg.seed(), cfg.toMap(), cfg.out()).use()) {
            return runWithProvenance(iters > 0 ? iters : cfg.iters, resume, stopAt);
        } finally {
            closeCudaGraph();
        }
    }

    /**
     * The GAN checkpoint (format {@value #FORMAT}) of two nets and their optimizers, as a {@link TrainLoop.Family}:
     * G's parameters and buffers under "G.", D's under "D.", the optimizers "optG" and "optD", and the metadata
     * format, "iter" (set it before a save; a restore sets it) and the config. GanTrainer's run and Spark's
     * data-parallel trainer both write it through this class, so a checkpoint of either is read by
     * {@link #load} and resumed by both. Subclasses add the step (or, for a save-only use, refuse it).
     */
    public abstract static class Checkpoint implements TrainLoop.Family {
        private final String name;
        private final Dcgan.Generator g;
        private final Dcgan.Discriminator d;
        private final AdamW optG, optD;
        private final Map<String, Object> config;
        /** The iteration the next save records (and a restore sets). */
        protected long iter;

        /** {@code name}: "dcgan" or "wgan-gp"; {@code config}: the keys {@link #load} reads, in the metadata's "config". */
        public Checkpoint(String name, Dcgan.Generator g, Dcgan.Discriminator d, AdamW optG, AdamW optD, Map<String, Object> config) {
            this.name = name; this.config = config;
            this.g = g; this.d = d;
            this.optG = optG; this.optD = optD;
        }

        /** Sets the iteration the next save records. */
        public void iter(long iter) { this.iter = iter; }

        private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

        /** The training precision the checkpoint records (metadata "precision"; default FP32) and a resume must match. */
        public Checkpoint precision(dev.latent.tensor.Precision p) {
            this.precision = java.util.Objects.requireNonNull(p, "precision");
            return this;
        }

        @Override public String name() { return name; }

        @Override public void restored(long s) { iter = s; }

        @Override public Map<String, Var> parameters() {
            Map<String, Var> m = new LinkedHashMap<>();
            g.namedParameters().forEach((k, v) -> m.put("G." + k, v));
            d.namedParameters().forEach((k, v) -> m.put("D." + k, v));
            return m;
        }

        @Override public Map<String, Tensor> buffers() {
            Map<String, Tensor> t = new LinkedHashMap<>();
            g.buffers("G.", t);
            d.buffers("D.", t);
            return t;
        }

        @Override public Map<String, AdamW> optimizers() {
            Map<String, AdamW> m = new LinkedHashMap<>();
            m.put("optG", optG);
            m.put("optD", optD);
            return m;
        }

        @Override public Map<String, String> metadata() {
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", FORMAT);
            meta.put("iter", Long.toString(iter));
            meta.put("config", Json.object(config));
            meta.put(dev.latent.train.TrainingPrecision.KEY, precision.id());
            return meta;
        }
    }

    private Result runWithProvenance(long iters, boolean resume, long stopAt) throws IOException {
        ImageData train0 = ImageData.load(cfg.data, "train");
        if (cfg.trainLimit > 0) train0 = train0.head(cfg.trainLimit);
        ImageData train = train0;
        if (train.h != 28 || train.w != 28)
            throw new IOException(train.source + ": DCGAN here is for 28 x 28 images (padded to 32 x 32), got " + train.h + "x" + train.w);
        if (cfg.conditional()) checkLabels(train, cfg.classes);
        int b = cfg.batch, perEpoch = train.n / b, batchesPerIter = cfg.loss == Loss.GAN ? 1 : cfg.nCritic;
        if (perEpoch < 1) throw new IllegalArgumentException("batch " + b + " is larger than the data (" + train.n + " images)");
        List<double[]> curve = new ArrayList<>();
        double[] last = {Double.NaN, Double.NaN};
        long[] timed = new long[2];   /* nanoseconds and iterations this process trained */
        try (Scope fixed = Scope.confined()) {
            Tensor zFixed = latent(fixed, cfg.sampleSeed, 0, cfg.conditional() ? 8 * cfg.classes : 64, cfg.nz);
            Checkpoint family = new Checkpoint(cfg.loss() == Loss.GAN ? "dcgan" : "wgan-gp", g, d, optG, optD, cfg.toMap()) {
                int permEpoch = -1;
                int[] perm;
                double sumD, sumG, sumA, sumB;
                int inLog;

                @Override public String divergenceHint() { return "lower --lr (" + cfg.lr + ")"; }
                @Override public boolean logAt(long done) { return done % cfg.logEvery == 0 || done == iters; }

                /** The permutation of the epoch holding global batch q, and q's position in it. */
                int position(long q) {
                    int ep = (int) (q / perEpoch);
                    if (ep != permEpoch) {
                        perm = ImageData.permutation(train.n, cfg.seed, PERM + ep);
                        permEpoch = ep;
                    }
                    return (int) (q % perEpoch) * b;
                }

                @Override public TrainLoop.StepResult step(long s) {
                    int it = (int) (s + 1);
                    long t0 = System.nanoTime();
                    double[] r;
                    if (cfg.loss == Loss.GAN) {
                        int pos = position(s);
                        r = ganStep(train, perm, pos, it);
                    } else {
                        r = null;
                        for (int j = 0; j < cfg.nCritic; j++) {
                            int pos = position(s * cfg.nCritic + j);
                            r = criticStep(train, perm, pos, (long) it * cfg.nCritic + j);
                        }
                        double lossG = generatorStep(it);
                        if (r == null) r = wganStepValues().values();   /* CUDA: the iteration's values in one copy */
                        else r[1] = lossG;
                    }
                    timed[0] += System.nanoTime() - t0;
                    timed[1]++;
                    iter = it;
                    sumD += r[0]; sumG += r[1]; sumA += r[2]; sumB += r[3]; inLog++;
                    Map<String, Object> rec = new LinkedHashMap<>();
                    String summary = "";
                    if (logAt(it)) {
                        double el = timed[0] / 1e9;
                        last[0] = sumD / inLog; last[1] = sumG / inLog;
                        rec.put("iter", it); rec.put("lossD", last[0]); rec.put("lossG", last[1]);
                        if (cfg.loss == Loss.GAN) { rec.put("D_x", sumA / inLog); rec.put("D_G_z", sumB / inLog); }
                        else { rec.put("wasserstein", sumA / inLog); rec.put("gp", sumB / inLog); }
                        rec.put("images_per_s", (double) timed[1] * b * batchesPerIter / el);
                        rec.put("elapsed_s", el);
                        curve.add(new double[] {it, last[0], last[1]});
                        summary = String.format(Locale.ROOT, "lossD %.4f lossG %.4f", last[0], last[1]);
                        sumD = sumG = sumA = sumB = 0;
                        inLog = 0;
                    }
                    return new TrainLoop.StepResult(r[0] + r[1], "the D or G loss", summary, rec);
                }

                @Override public void after(long done, TrainLoop.Run run) throws IOException {
                    long nextBatch = done * batchesPerIter;   /* an epoch ends when the next iteration's batches would not fit in it */
                    boolean epochEnd = ((nextBatch - 1) % perEpoch) + 1 + batchesPerIter > perEpoch;
                    if (!epochEnd && done != iters) return;
                    Path grid = cfg.out.resolve(String.format(Locale.ROOT, "samples-epoch-%03d.png", (nextBatch - 1) / perEpoch + 1));
                    writeGrid(zFixed, grid);
                    listener.onSample(grid, done);
                    run.checkpoint(done);
                }

                @Override public void finish(TrainLoop.Run run) throws IOException {
                    writeGrid(zFixed, cfg.out.resolve("samples.png"));
                    listener.onSample(cfg.out.resolve("samples.png"), iters);
                    if (cfg.samples > 0) {
                        writeSamples(cfg.out.resolve("samples-idx3-ubyte"), cfg.samples);
                        listener.onSample(cfg.out.resolve("samples-idx3-ubyte"), iters);
                    }
                }
            };
            family.precision(precision);
            long done = TrainLoop.run(family, new TrainLoop.Options(cfg.out, iters, stopAt, resume, 0, listener, cfg.quiet));
            if (!curve.isEmpty()) {
                double[] x = curve.stream().mapToDouble(r -> r[0]).toArray();
                listener.onCurves(new TrainingListener.Curves(cfg.out, (cfg.loss == Loss.GAN ? "DCGAN" : "WGAN-GP") + " losses", "iteration", "loss",
                        List.of(new TrainingListener.Series("D", x, curve.stream().mapToDouble(r -> r[1]).toArray()),
                                new TrainingListener.Series("G", x, curve.stream().mapToDouble(r -> r[2]).toArray()))));
            }
            double secs = timed[0] / 1e9;
            return new Result((int) done, secs, timed[1] * b * batchesPerIter / Math.max(secs, 1e-9), last[0], last[1],
                    Double.isFinite(last[0]) && Double.isFinite(last[1]));
        }
    }

    private Tensor realBatch(Scope scope, ImageData data, int[] perm, int pos) {
        Tensor x = Tensor.empty(scope, cfg.batch, 1, 32, 32);
        data.fill(x, perm, pos, cfg.batch, 1f / 127.5f, -1f, 2);
        return onDevice(scope, x);
    }

    /** One training iteration on data[perm[pos ..]] (benchmarks): a GAN step, or n_critic critic steps and a G step. */
    public double[] step(ImageData data, int[] perm, int pos, long it) {
        if (cfg.loss == Loss.GAN) return ganStep(data, perm, pos, it);
        return wganStepDeferred(data, perm, pos, it).values();
    }

    /** One D step then one G step (non-saturating) on the same G(z); returns {lossD, lossG, D(x), D(G(z))}. */
    double[] ganStep(ImageData data, int[] perm, int pos, long it) { return ganStepDeferred(data, perm, pos, it).values(); }

    /**
     * The values of one DCGAN iteration {lossD, lossG, D(x), D(G(z))}, read when asked: on CUDA the two losses and the
     * two batches of logits stay on the device until {@link #values()} copies them back in one copy (the means of the
     * sigmoids are then taken on the host, as on the CPU), so an iteration that is not logged makes no host
     * synchronisation. Read before the next iteration.
     */
    public static final class StepValues {
        private final double[] known;
        private final StepScalars.Values terms;

        private final boolean scalars;   /* WGAN-GP: four scalars; DCGAN: two scalars and two batches of logits */

        StepValues(double[] known, StepScalars.Values terms) { this(known, terms, false); }

        StepValues(double[] known, StepScalars.Values terms, boolean scalars) {
            this.known = known;
            this.terms = terms;
            this.scalars = scalars;
        }

        /** DCGAN: {lossD, lossG, D(x), D(G(z))}; WGAN-GP: {lossD, lossG, W estimate E[D(real)] - E[D(fake)], penalty}. */
        public double[] values() {
            if (known != null) return known.clone();
            if (scalars) return new double[] {terms.get(0), terms.get(1), terms.get(2), terms.get(3)};
            return new double[] {terms.get(0), terms.get(1), meanSigmoid(terms.floats(2)), meanSigmoid(terms.floats(3))};
        }

        /** Whether {@link #values()} still has to copy from the device. */
        public boolean onDevice() { return terms != null && terms.onDevice(); }
    }

    /**
     * {@link #step} without reading its values: on CUDA no host synchronisation (a DCGAN iteration's {lossD, lossG, D(x),
     * D(G(z))}, or WGAN-GP's n_critic critic steps and generator step with {lossD, lossG, W estimate, penalty} of the
     * last critic step and the generator step, stay on the device until {@link StepValues#values()} reads them).
     */
    public StepValues stepDeferred(ImageData data, int[] perm, int pos, long it) {
        return cfg.loss == Loss.GAN ? ganStepDeferred(data, perm, pos, it) : wganStepDeferred(data, perm, pos, it);
    }

    private StepValues wganStepDeferred(ImageData data, int[] perm, int pos, long it) {
        double[] r = null;
        for (int j = 0; j < cfg.nCritic; j++) r = criticStep(data, perm, pos, it * cfg.nCritic + j);
        double lossG = generatorStep(it);
        if (r == null) return wganStepValues();
        r[1] = lossG;
        return new StepValues(r, null);
    }

    /** CUDA, WGAN-GP: the kept {lossD, lossG, W, penalty} as one capture (device-to-device copies; read in one copy). */
    private StepValues wganStepValues() {
        if (wganValues == null) wganValues = new StepScalars(params, device, 4);
        return new StepValues(null, wganValues.capture(wganKept.slice(0, 0, 1), wganKept.slice(0, 1, 2), wganKept.slice(0, 2, 3),
                wganKept.slice(0, 3, 4)), true);
    }

    /** CUDA, WGAN-GP: slot i of the kept values = the one-element device tensor v (a device-to-device copy). */
    void keep(int i, Tensor v) {
        if (wganKept == null) wganKept = Tensor.zeros(params, device, 4);
        Kernels.copy(v.reshape(1), wganKept.slice(0, i, i + 1));
    }

    /** CUDA: the buffer a DCGAN iteration's values are captured into (made at the first use). */
    StepScalars stepValues() {
        if (stepValues == null) stepValues = new StepScalars(params, device, 2 + 2 * cfg.batch);
        return stepValues;
    }

    /** The int32 labels of the real images data[perm[pos ..]] (a conditional DCGAN), in {@code scope}. */
    MemorySegment realLabels(Scope scope, ImageData data, int[] perm, int pos) {
        MemorySegment y = scope.allocate(4L * cfg.batch);
        for (int i = 0; i < cfg.batch; i++) y.setAtIndex(JAVA_INT, i, data.labels[perm[pos + i]]);
        return y;
    }

    private StepValues ganStepDeferred(ImageData data, int[] perm, int pos, long it) {
        if (graphs != null) return graphs.gan(data, perm, pos, it);
        try (Graph gr = Graph.open().precision(precision)) {
            Var real = Var.constant(realBatch(gr.scope(), data, perm, pos));
            Var z = Var.constant(onDevice(gr.scope(), latent(gr.scope(), cfg.seed, LATENT + it, cfg.batch, cfg.nz)));
            MemorySegment yReal = null, yFake = null;
            if (cfg.conditional()) {   /* real images with their labels; fake ones with labels drawn uniformly (Philox, keyed by it) */
                yReal = realLabels(gr.scope(), data, perm, pos);
                yFake = randomLabels(gr.scope(), cfg.seed, LABEL + it, cfg.batch, cfg.classes);
            }
            Var[] v = ganBody(gr, real, z, yReal, yFake, false);
            Var lossD = v[0], lossG = v[1], outReal = v[2], outFake = v[3];
            if (device == Device.CPU)
                return new StepValues(new double[] {F.item(lossD), F.item(lossG), meanSigmoid(outReal.value().toArray()),
                        meanSigmoid(outFake.value().toArray())}, null);
            return new StepValues(null, stepValues().capture(lossD.value(), lossG.value(), outReal.value().contiguous(), outFake.value().contiguous()));
        }
    }

    /**
     * A DCGAN iteration's device work: one D step then one G step (non-saturating) on the same G(z); returns {lossD, lossG,
     * D's logits on the real batch, on the fake one}. {@code staged}: the optimizers' constants were staged (CUDA graphs).
     */
    Var[] ganBody(Graph gr, Var real, Var z, MemorySegment yReal, MemorySegment yFake, boolean staged) {
        Var fake = g.forward(z, yFake);
        Var outReal = d.forward(real, yReal), outFake = d.forward(F.detach(fake), yFake);
        Var lossD = F.add(F.bceWithLogits(outReal, 1f), F.bceWithLogits(outFake, 0f));
        gr.backward(lossD);
        if (staged) optD.updateStaged(0); else optD.update(cfg.lr, 0);
        for (Var p : d.parameters()) p.zeroGrad();
        Var lossG = F.bceWithLogits(d.forward(fake, yFake), 1f);
        gr.freeze(d.parameters());   // D's weight gradients of the G step would be thrown away: skip them
        gr.backward(lossG);
        if (staged) optG.updateStaged(0); else optG.update(cfg.lr, 0);
        return new Var[] {lossD, lossG, outReal, outFake};
    }

    // ---- CUDA graphs (train dcgan|wgan-gp --cuda-graph): the bodies are GanGraphSteps' ----
    private GanGraphSteps graphs;

    /**
     * With {@code on}, each iteration after two warm-up iterations is replayed from CUDA graphs ({@link GanGraphSteps}):
     * DCGAN's D and G steps as one graph; WGAN-GP's critic step as one graph launched n_critic times per iteration and
     * its generator step as another. Before each launch the host stages what the step reads into fixed device memory
     * (the real batch, z, a conditional DCGAN's real and fake labels, WGAN-GP's mixing weights) and Adam's step
     * constants. The same bits as without a graph. Refused (naming why) off CUDA and at a precision other than fp32
     * (not checked).
     */
    public GanTrainer cudaGraph(boolean on) {
        if (!on) { closeCudaGraph(); return this; }
        dev.latent.train.GraphInputs.requireCapturable(cfg.loss == Loss.GAN ? "dcgan" : "wgan-gp", device, precision, null);
        if (graphs == null) graphs = new GanGraphSteps(this);
        return this;
    }

    /** The CUDA graph of DCGAN's iteration or WGAN-GP's critic step ({@link #cudaGraph}), or null. */
    public dev.latent.cuda.CudaGraphStep graphStep() { return graphs == null ? null : graphs.graph; }

    /** WGAN-GP: the CUDA graph of the generator step ({@link #cudaGraph}), or null. */
    public dev.latent.cuda.CudaGraphStep generatorGraphStep() { return graphs == null ? null : graphs.graphG; }

    /** Releases the CUDA graphs and their fixed buffers (later iterations run uncaptured until {@link #cudaGraph} is asked again). */
    public void closeCudaGraph() {
        if (graphs != null) graphs.close();
        graphs = null;
    }

    private static double meanSigmoid(float[] s) {
        double acc = 0;
        for (float v : s) acc += 1 / (1 + Math.exp(-v));
        return acc / s.length;
    }

    /**
     * One WGAN-GP critic step; returns {lossD, 0, W estimate E[D(real)] - E[D(fake)], penalty}. On CUDA it returns null
     * and keeps those values on the device (slots 0, 2, 3 of {@link #wganKept}: no host synchronisation; the W estimate
     * is then the float difference of the two means, where the CPU subtracts their doubles).
     */
    double[] criticStep(ImageData data, int[] perm, int pos, long step) {
        if (graphs != null) {
            graphs.critic(data, perm, pos, step);
            return null;
        }
        try (Graph gr = Graph.open().precision(precision)) {
            Tensor realT = realBatch(gr.scope(), data, perm, pos);
            return criticBody(gr, realT, Var.constant(onDevice(gr.scope(), latent(gr.scope(), cfg.seed, LATENT + step, cfg.batch, cfg.nz))),
                    null, null, step, false);
        }
    }

    /**
     * A critic step's work: on CUDA the values go to {@link #wganKept} and null is returned. {@code ea}, {@code eb}: the
     * penalty's staged mixing weights (CUDA graphs), or null to make them here; {@code staged}: optD's constants staged.
     */
    double[] criticBody(Graph gr, Tensor realT, Var z, Tensor ea, Tensor eb, long step, boolean staged) {
        Var real = Var.constant(realT);
        Var fake = F.detach(g.forward(z));
        Var dReal = F.mean(d.forward(real)), dFake = F.mean(d.forward(fake));
        Var gp = ea != null ? penaltyMixed(gr, realT, fake.value(), ea, eb) : gradientPenalty(gr, realT, fake.value(), step);
        Var penalty = F.scale(gp, cfg.lambda);
        Var loss = F.add(F.sub(dFake, dReal), penalty);
        gr.backward(loss);
        if (staged) optD.updateStaged(0); else optD.update(cfg.lr, 0);
        if (device != Device.CPU) {
            keep(0, loss.value());
            keep(2, dReal.value());
            Kernels.axpby(-1f, dFake.value().reshape(1), 1f, wganKept.slice(0, 2, 3));   // E[D(real)] - E[D(fake)]
            keep(3, gp.value());
            return null;
        }
        return new double[] {F.item(loss), 0, F.item(dReal) - F.item(dFake), F.item(penalty) / cfg.lambda};
    }

    /** The penalty's per-sample mixing weights {e, 1 - e}, e ~ U(0, 1) from Philox (seed, EPS + step), formed on the host. */
    float[][] penaltyWeights(long step) {
        try (Scope sc = Scope.confined()) {
            float[] a = Tensor.rand(sc, cfg.seed, EPS + step, cfg.batch).toArray(), am = new float[a.length];
            for (int i = 0; i < a.length; i++) am[i] = 1 - a[i];
            return new float[][] {a, am};
        }
    }

    /** The penalty at e real + (1 - e) fake on the device, e and 1 - e per sample in the device tensors ea and eb. */
    private Var penaltyMixed(Graph gr, Tensor real, Tensor fake, Tensor ea, Tensor eb) {
        int b = (int) real.size(0);
        long per = real.numel() / b;
        long[] bs = {1, b, per};
        Var va = F.channelBroadcast(Var.constant(ea), bs), vb = F.channelBroadcast(Var.constant(eb), bs);
        Var r = Var.constant(real.reshape(bs)), f = Var.constant(fake.contiguous().reshape(bs));
        return penaltyAt(gr, d, F.add(F.mul(va, r), F.mul(vb, f)).value().reshape(real.shape()));
    }

    /** mean over the batch of (|grad_x D(x_hat)|_2 - 1)^2 at x_hat = e real + (1 - e) fake, e ~ U(0, 1) per sample. */
    Var gradientPenalty(Graph gr, Tensor real, Tensor fake, long step) {
        if (device == Device.CPU) return gradientPenalty(gr, d, real, fake, cfg.seed, EPS + step);
        int b = (int) real.size(0);
        /* e real + (1 - e) fake with the CPU's float roundings: each product, then the sum (e and 1 - e per sample,
         * formed on the host, broadcast over the sample's pixels on the device) */
        float[][] w = penaltyWeights(step);
        return penaltyMixed(gr, real, fake, Tensor.of(gr.scope(), device, w[0], b), Tensor.of(gr.scope(), device, w[1], b));
    }

    /**
     * WGAN-GP's penalty on the host: mean over the batch of (|grad_x D(x_hat)|_2 - 1)^2 at x_hat = e real + (1 - e)
     * fake, e ~ U(0, 1) per image from Philox ({@code seed}, {@code stream}). GanTrainer's CPU step and Spark's
     * data-parallel WGAN-GP (each micro-batch its own stream) both use it.
     */
    public static Var gradientPenalty(Graph gr, Dcgan.Discriminator d, Tensor real, Tensor fake, long seed, long stream) {
        int b = (int) real.size(0);
        long per = real.numel() / b;
        Tensor e = Tensor.rand(gr.scope(), seed, stream, b);
        Tensor xh = Tensor.empty(gr.scope(), real.shape());
        MemorySegment rs = real.segment(), fs = fake.contiguous().segment(), xs = xh.segment(), es = e.segment();
        for (int i = 0; i < b; i++) {
            float a = es.getAtIndex(JAVA_FLOAT, i);
            for (long j = i * per; j < (i + 1) * per; j++)
                xs.setAtIndex(JAVA_FLOAT, j, a * rs.getAtIndex(JAVA_FLOAT, j) + (1 - a) * fs.getAtIndex(JAVA_FLOAT, j));
        }
        return penaltyAt(gr, d, xh);
    }

    /** mean over the batch of (|grad_x D(x_hat)|_2 - 1)^2 at the mixed images {@code xh}. */
    private static Var penaltyAt(Graph gr, Dcgan.Discriminator d, Tensor xh) {
        Var xHat = Var.input(xh);
        Var grad = gr.gradient(F.sum(d.forward(xHat)), xHat);
        Var norm = F.sqrt(F.addScalar(F.rowSum(F.mul(grad, grad)), 1e-12f));
        Var dev = F.addScalar(norm, -1f);
        return F.mean(F.mul(dev, dev));
    }

    /** One WGAN generator step: loss -E[D(G(z))] (on CUDA NaN: the loss is kept on the device, see {@link #criticStep}). */
    double generatorStep(long it) {
        if (graphs != null && graphs.graphG != null) {
            graphs.generator(it);
            return Double.NaN;
        }
        try (Graph gr = Graph.open().precision(precision)) {
            Var fake = g.forward(Var.constant(onDevice(gr.scope(), latent(gr.scope(), cfg.seed, LATENT + (1L << 39) + it, cfg.batch, cfg.nz))));
            Var loss = F.scale(F.mean(d.forward(fake)), -1f);
            gr.freeze(d.parameters());
            gr.backward(loss);
            optG.update(cfg.lr, 0);
            if (device != Device.CPU) {   /* kept on the device (slot 1) until the iteration's values are read */
                keep(1, loss.value());
                return Double.NaN;
            }
            return F.item(loss);
        }
    }

    /**
     * Samples from G in training mode (batch statistics, as the reference samples), values in [-1, 1]: 8 x 8, or for a
     * conditional generator one row per class (z's rows taken 8 per class, class r on row r).
     */
    void writeGrid(Tensor z, Path file) throws IOException {
        try (Graph gr = Graph.inference()) {
            int n = (int) z.size(0);
            MemorySegment y = null;
            if (cfg.conditional()) {
                y = gr.scope().allocate(4L * n);
                for (int i = 0; i < n; i++) y.setAtIndex(JAVA_INT, i, i / 8);
            }
            Var x = g.forward(Var.constant(onDevice(gr.scope(), z)), y);
            ImageGrid.write(file, onHost(gr.scope(), x.value()), n / 8, 8, -1f, 1f, 2);
        }
    }

    /** n int32 labels uniform in [0, k) from Philox (seed, stream). */
    static MemorySegment randomLabels(Scope scope, long seed, long stream, int n, int k) {
        MemorySegment y = scope.allocate(4L * n);
        try (Scope tmp = Scope.confined()) {
            MemorySegment u = Tensor.rand(tmp, seed, stream, n).segment();
            for (int i = 0; i < n; i++) y.setAtIndex(JAVA_INT, i, Math.min(k - 1, (int) (u.getAtIndex(JAVA_FLOAT, i) * k)));
        }
        return y;
    }

    /** n labels for sampling: all {@code cls}, or (cls = -1) classes in turn, i mod classes; null for an unconditional generator. */
    MemorySegment sampleLabels(Scope scope, int from, int n, int cls) {
        checkClass(cls);
        if (!cfg.conditional()) return null;
        MemorySegment y = scope.allocate(4L * n);
        for (int i = 0; i < n; i++) y.setAtIndex(JAVA_INT, i, cls >= 0 ? cls : (from + i) % cfg.classes);
        return y;
    }

    /** Refuses a class (cls >= 0) of an unconditional generator, and one outside [0, classes) of a conditional one; -1 passes. */
    public void checkClass(int cls) {
        if (cls < -1) throw new IllegalArgumentException("--class " + cls + " is negative; classes are numbered from 0");
        if (cls >= 0 && !cfg.conditional()) throw new IllegalArgumentException(notConditional(cfg.out == null ? "the checkpoint" : cfg.out.toString()));
        if (cfg.conditional() && cls >= cfg.classes)
            throw new IllegalArgumentException("--class " + cls + " is outside [0, " + cfg.classes + "): the model was trained on " + cfg.classes + " classes");
    }

    /** The message for a class asked of an unconditional model. */
    public static String notConditional(String where) {
        return where + ": the model is unconditional (trained without --conditional), so it cannot be asked for a class";
    }

    /** Refuses data without labels, or with a label outside [0, classes). */
    static void checkLabels(ImageData data, int classes) throws IOException {
        if (data.labels == null)
            throw new IOException(data.source + ": --conditional needs labels (an IDX label file beside the images; a PNG folder has none)");
        for (int i = 0; i < data.n; i++)
            if (data.labels[i] < 0 || data.labels[i] >= classes)
                throw new IOException(data.source + ": label " + data.labels[i] + " of image " + i + " is outside [0, " + classes + ")");
    }

    /** The number of classes of a labelled set: 1 + its largest label (Fashion-MNIST: 10). */
    public static int classesOf(ImageData data) throws IOException {
        if (data.labels == null)
            throw new IOException(data.source + ": --conditional needs labels (an IDX label file beside the images; a PNG folder has none)");
        int k = 0;
        for (int l : data.labels) k = Math.max(k, l + 1);
        if (k < 2) throw new IOException(data.source + ": --conditional needs at least 2 classes, the labels hold " + k);
        return k;
    }

    /** n samples (batches of 100, z from sampleSeed), cropped to 28 x 28, as bytes round((x + 1) 127.5): IDX3. */
    public void writeSamples(Path file, int n) throws IOException { writeSamples(file, n, -1); }

    /**
     * As {@link #writeSamples(Path, int)}; a conditional generator draws every image of class {@code cls}, or with
     * cls = -1 image i of class i mod classes. An unconditional one refuses cls >= 0.
     */
    public void writeSamples(Path file, int n, int cls) throws IOException {
        checkClass(cls);   /* refuses a bad class before any work */
        byte[] out = new byte[n * 28 * 28];
        for (int i = 0; i < n; i += 100) {
            int m = Math.min(100, n - i);
            try (Graph gr = Graph.inference()) {
                Var x = g.forward(Var.constant(onDevice(gr.scope(), latent(gr.scope(), cfg.sampleSeed, 1 + i / 100, m, cfg.nz))),
                        sampleLabels(gr.scope(), i, m, cls));
                MemorySegment s = onHost(gr.scope(), x.value()).segment();
                for (int k = 0; k < m; k++)
                    for (int y = 0; y < 28; y++)
                        for (int xx = 0; xx < 28; xx++)
                            out[(i + k) * 784 + y * 28 + xx] = (byte) ImageGrid.toByte(s.getAtIndex(JAVA_FLOAT, (long) k * 1024 + (y + 2) * 32 + xx + 2), -1f, 1f);
            }
        }
        Idx.writeU8(file, out, n, 28, 28);
    }

    /** A trainer holding the nets of a checkpoint (for sampling); sampleSeed keys the latents of writeSamples. */
    public static GanTrainer load(Path dirOrFile, Scope scope, long sampleSeed) throws IOException { return load(dirOrFile, scope, sampleSeed, Device.CPU); }

    /** A checkpoint's nets on {@code device} (BatchNorm's running statistics too): sampling then runs there (GanSampler). */
    public static GanTrainer load(Path dirOrFile, Scope scope, long sampleSeed, Device device) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(CHECKPOINT) : dirOrFile;
        if (!Files.isRegularFile(f)) throw new IOException("no GAN checkpoint at " + f);
        SafeTensors.Loaded l = SafeTensors.read(f, scope);
        if (!FORMAT.equals(l.metadata().get("format"))) throw new IOException(f + ": not a Latent GAN checkpoint (format " + l.metadata().get("format") + ")");
        Map<String, Object> c = dev.latent.io.JsonReader.parseObject(l.metadata().get("config"));
        boolean gan = "gan".equals(c.get("loss"));
        Dcgan.Norm norm = Dcgan.Norm.valueOf(String.valueOf(c.getOrDefault("critic_norm", "batch")).toUpperCase(Locale.ROOT));
        Config cfg = new Config(gan ? Loss.GAN : Loss.WGAN_GP, String.valueOf(c.get("data")), f.getParent(), num(c, "iters"), num(c, "batch"),
                num(c, "nz"), num(c, "ngf"), num(c, "ndf"), 0f, 0.5f, 0.9f, Math.max(1, num(c, "n_critic")), 0f, norm, num(c, "seed"),
                1, 0, 0, sampleSeed, true, classesIn(f, c));
        GanTrainer t = new GanTrainer(cfg, device);
        t.precision = dev.latent.train.TrainingPrecision.of(f, l.metadata());   /* read, not required: sampling runs fp32 */
        for (var e : Dcgan.stateDict(t.g, t.d).entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null) throw new IOException(f + ": missing tensor " + e.getKey());
            if (!java.util.Arrays.equals(src.shape(), e.getValue().shape()))
                throw new IOException(f + ": tensor " + e.getKey() + " has shape " + java.util.Arrays.toString(src.shape()) + ", config says "
                        + java.util.Arrays.toString(e.getValue().shape()));
            dev.latent.nn.Init.assign(src, e.getValue());
        }
        return t;
    }

    /** The class count a checkpoint's config records: 0 for an unconditional (or older) checkpoint. */
    public static int classesIn(Path f, Map<String, Object> c) throws IOException {
        Object cond = c.get("conditional"), k = c.get("classes");
        if (cond == null && k == null) return 0;
        if (!Boolean.TRUE.equals(cond) || !(k instanceof Long v) || v < 2 || v > 1 << 16)
            throw new IOException(f + ": config conditional = " + cond + ", classes = " + k + ", expected true and an integer in [2, 65536]");
        return v.intValue();
    }

    private static int num(Map<String, Object> c, String k) {
        Object v = c.get(k);
        if (!(v instanceof Number n)) throw new IllegalArgumentException("checkpoint config: " + k + " missing or not a number");
        return n.intValue();
    }

    /** A PNG grid of n samples (z from the sample seed), as many columns as fit a square. */
    public void writeGridSamples(Path file, int n) throws IOException { writeGridSamples(file, n, -1); }

    /** As {@link #writeGridSamples(Path, int)}, of class {@code cls} (or, cls = -1 on a conditional generator, classes in turn). */
    public void writeGridSamples(Path file, int n, int cls) throws IOException {
        int cols = (int) Math.ceil(Math.sqrt(n)), rows = (n + cols - 1) / cols;
        try (Graph gr = Graph.inference()) {
            Var x = g.forward(Var.constant(onDevice(gr.scope(), latent(gr.scope(), cfg.sampleSeed, 0, n, cfg.nz))), sampleLabels(gr.scope(), 0, n, cls));
            ImageGrid.write(file, onHost(gr.scope(), x.value()), rows, cols, -1f, 1f, 2);
        }
    }
}
