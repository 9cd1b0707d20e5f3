package dev.latent.models.vae;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.ops.Kernels;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.ImageGrid;
import dev.latent.train.Limits;
import dev.latent.train.StepScalars;
import dev.latent.train.EpochFamily;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Trains and evaluates {@link ConvVae} as ../shared/reference/vae_fmnist.py: pixels / 255, batch 128 (last partial
 * batch kept), Adam 1e-3, per-image loss = -log p(x|z) + beta KL (batch mean minimised); beta-VAE, KL warm-up
 * (beta ramps linearly over the first warm-up steps) and free bits as remedies for posterior collapse. Metrics: test
 * negative ELBO (nats, one z per image), IWAE bound (k samples on the first n test images), active units (Var over
 * the test set of the posterior mean > 0.01) and per-dimension KL. eps comes from the fused Philox sampler keyed by
 * (seed, step): the same seed gives the same bits.
 */
public final class VaeTrainer {
    public static final String CHECKPOINT = "checkpoint.safetensors";
    static final String FORMAT = "latent-vae-1";
    static final double LOG2PI = Math.log(2 * Math.PI);

    /** The decoder's p(x|z): Bernoulli per pixel (binary cross-entropy), or Gaussian with the fixed sigma of the config. */
    public enum Likelihood { BERNOULLI, GAUSSIAN }

    /** Everything a run depends on (saved in the checkpoint); {@link #reference} gives the reference settings. */
    public record Config(String data, Path out, int latent, double beta, int epochs, int batch, float lr, Likelihood likelihood,
                         double sigma, int warmup, double freeBits, long seed, int trainLimit, long evalSeed, int iwaeK, int iwaeN,
                         int logEvery, boolean quiet, int excludeClass, int classes) {
        public Config {
            if (classes < 0) throw new IllegalArgumentException("classes must be >= 0 (0: unconditional), got " + classes);
            Limits.atLeast("latent", latent, 1);
            Limits.atLeast("batch", batch, 1);
            Limits.nonNegative("beta", beta);
            Limits.positive("lr", lr);
            Limits.positive("sigma", sigma);
            if (likelihood == null) throw new IllegalArgumentException("likelihood must be bernoulli or gaussian, got null");
            if (excludeClass < -1) throw new IllegalArgumentException("excludeClass must be a class label >= 0, or -1 for none; got " + excludeClass);
        }

        /** Unconditional (classes = 0). */
        public Config(String data, Path out, int latent, double beta, int epochs, int batch, float lr, Likelihood likelihood,
                      double sigma, int warmup, double freeBits, long seed, int trainLimit, long evalSeed, int iwaeK, int iwaeN,
                      int logEvery, boolean quiet, int excludeClass) {
            this(data, out, latent, beta, epochs, batch, lr, likelihood, sigma, warmup, freeBits, seed, trainLimit, evalSeed, iwaeK, iwaeN,
                    logEvery, quiet, excludeClass, 0);
        }

        /** Without a held-out class (excludeClass = -1: train on every image). */
        public Config(String data, Path out, int latent, double beta, int epochs, int batch, float lr, Likelihood likelihood,
                      double sigma, int warmup, double freeBits, long seed, int trainLimit, long evalSeed, int iwaeK, int iwaeN,
                      int logEvery, boolean quiet) {
            this(data, out, latent, beta, epochs, batch, lr, likelihood, sigma, warmup, freeBits, seed, trainLimit, evalSeed, iwaeK, iwaeN,
                    logEvery, quiet, -1);
        }

        public static Config reference(String data, Path out) {
            return new Config(data, out, 32, 1.0, 5, 128, 1e-3f, Likelihood.BERNOULLI, 0.1, 0, 0, 1, 0, 1234, 100, 1000, 100, false);
        }

        /** The same configuration with class {@code cls} held out of training (anomaly detection; -1: none). */
        public Config withExcludedClass(int cls) {
            return new Config(data, out, latent, beta, epochs, batch, lr, likelihood, sigma, warmup, freeBits, seed, trainLimit, evalSeed,
                    iwaeK, iwaeN, logEvery, quiet, cls, classes);
        }

        /** The same configuration as a conditional VAE over {@code k} classes (0: unconditional). */
        public Config withClasses(int k) {
            return new Config(data, out, latent, beta, epochs, batch, lr, likelihood, sigma, warmup, freeBits, seed, trainLimit, evalSeed,
                    iwaeK, iwaeN, logEvery, quiet, excludeClass, k);
        }

        /** Whether the model is a conditional VAE. */
        public boolean conditional() { return classes > 0; }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("data", data); m.put("latent", latent); m.put("beta", beta); m.put("epochs", epochs); m.put("batch", batch); m.put("lr", lr);
            m.put("likelihood", likelihood.name().toLowerCase(Locale.ROOT)); m.put("sigma", sigma); m.put("warmup", warmup);
            m.put("free_bits", freeBits); m.put("seed", seed); m.put("train_limit", trainLimit);
            if (excludeClass >= 0) m.put("exclude_class", excludeClass);
            if (classes > 0) { m.put("conditional", true); m.put("classes", classes); }
            return m;
        }
    }

    /** Test-set metrics. */
    public record Eval(double negElbo, double rec, double kl, Double iwae, int activeUnits, double[] klPerDim, double[] muVariance) {
        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("test_neg_elbo", negElbo); m.put("test_rec", rec); m.put("test_kl", kl); m.put("iwae_nll", iwae);
            m.put("active_units", activeUnits);
            m.put("kl_per_dim", java.util.Arrays.stream(klPerDim).boxed().toList());
            m.put("mu_variance_per_dim", java.util.Arrays.stream(muVariance).boxed().toList());
            return m;
        }
    }

    public final Config cfg;
    /** The trained model, on {@link #device}. */
    public final ConvVae model;
    /**
     * Where training runs, and sampling and evaluation ({@link #evalModel()}); the training plots (reconstructions,
     * interpolations, the manifold) run on the CPU, on {@link #hostModel()}.
     */
    public final Device device;
    private final ConvVae host;
    private final AdamW opt;
    private final StepScalars losses;   /* a step's reconstruction term and KL, read back when asked */
    private long step, hostSyncedAt = -1;
    private TrainingListener listener = TrainingListener.LOG;

    public VaeTrainer(Config cfg, Scope scope) { this(cfg, scope, Device.CPU); }

    /** Where {@link #run} reports steps, epochs, samples and checkpoints (default {@link TrainingListener#LOG}). */
    public VaeTrainer listener(TrainingListener listener) {
        this.listener = java.util.Objects.requireNonNull(listener, "listener");
        return this;
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' convolutions and matmuls (issue 15): BF16 runs them through
     * lt_conv2d_*_bf16 and lt_gemm_bf16 (operands rounded to bf16, fp32 sums); BatchNorm, the losses, reductions, the
     * master weights and Adam's state stay fp32, and sampling and evaluation graphs stay fp32. bf16 on a CPU with
     * AVX512_BF16; TF32 and BF16 on CUDA (issue 18, docs/cuda.md "Mixed precision"); elsewhere an exception naming why,
     * before any step. Recorded in the checkpoint (metadata "precision"); a
     * resume must ask the same.
     */
    public VaeTrainer precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable("vae", p, device, true);
        return this;
    }

    /** The training precision: the one set, or for a {@link #load}ed trainer the checkpoint's (FP32 for older ones). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /**
     * A trainer whose steps run on {@code device}: the model is built on the CPU (the same initial weights for any
     * device) and moved there before the optimizer is made, so AdamW's state lives there too. Off the CPU a second
     * CPU model mirrors the weights for evaluation and the plots (copied from the device when they are used).
     */
    public VaeTrainer(Config cfg, Scope scope, Device device) {
        this.cfg = cfg;
        this.device = java.util.Objects.requireNonNull(device, "device");
        model = new ConvVae(scope, cfg.latent, cfg.classes, cfg.seed);
        if (device != Device.CPU) {
            model.to(scope, device);
            host = new ConvVae(scope, cfg.latent, cfg.classes, cfg.seed);
        } else {
            host = model;
        }
        opt = new AdamW(scope, model.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
        losses = device == Device.CPU ? null : new StepScalars(scope, device, 2);
    }

    /** The model on the CPU: {@link #model} itself, or its mirror with the device weights copied over (once per step). */
    public ConvVae hostModel() {
        if (host == model || hostSyncedAt == step) return host;
        Map<String, Var> dst = host.namedParameters();
        for (var e : model.namedParameters().entrySet()) {
            float[] w = e.getValue().value().toArray();
            MemorySegment.copy(w, 0, dst.get(e.getKey()).value().segment(), JAVA_FLOAT, 0, w.length);
        }
        hostSyncedAt = step;
        return host;
    }

    private static final long PERM = 1L << 40, EPS = 2L << 40, TEST = 3L << 40, IWAE = 4L << 40;

    /**
     * The model that sampling and evaluation run on: {@link #model} itself, on {@link #device} (the CPU, or CUDA for a
     * trainer made or loaded there: its samples and test metrics then come from the device, equal to the CPU's within
     * float rounding; CudaSampleEvalTest). The plots of training (reconstructions, interpolations, the manifold) stay on
     * {@link #hostModel()}.
     */
    public ConvVae evalModel() { return model; }

    /** t on the eval model's device (a copy from the host; the same tensor on the CPU). */
    private Tensor onDevice(Graph g, Tensor t) { return device == Device.CPU ? t : t.to(g.scope(), device); }

    /** t on the host (a copy in g's scope when it is on a device). */
    private static Tensor onHost(Graph g, Tensor t) { return t.device() == Device.CPU ? t : t.to(g.scope(), Device.CPU); }

    static Tensor images(Scope s, ImageData d, int[] idx, int from, int m) {
        Tensor x = Tensor.empty(s, m, 1, d.h, d.w);
        d.fill(x, idx, from, m, 1f / 255f, 0f, 0);
        return x;
    }

    /**
     * The int32 labels of images idx[from .. from + m) (idx null: from ..) repeated {@code copies} times, in g's scope;
     * null for an unconditional model.
     */
    MemorySegment labels(Graph g, ImageData d, int[] idx, int from, int m, int copies) { return labels(g.scope(), d, idx, from, m, copies); }

    /** {@link #labels(Graph, ImageData, int[], int, int, int)} in {@code scope}. */
    MemorySegment labels(Scope scope, ImageData d, int[] idx, int from, int m, int copies) {
        if (!cfg.conditional()) return null;
        if (d.labels == null) throw new IllegalArgumentException(d.source + ": a conditional VAE needs labels (an IDX label file beside the images)");
        MemorySegment y = scope.allocate(4L * m * copies);
        for (int j = 0; j < copies; j++)
            for (int i = 0; i < m; i++) {
                int l = d.labels[idx == null ? from + i : idx[from + i]];
                if (l < 0 || l >= cfg.classes)
                    throw new IllegalArgumentException(d.source + ": label " + l + " is outside the model's [0, " + cfg.classes + ")");
                y.setAtIndex(JAVA_INT, (long) j * m + i, l);
            }
        return y;
    }

    /** n labels, all {@code cls}, or (cls = -1) i mod classes; null for an unconditional model. Refuses a bad class. */
    MemorySegment classLabels(Graph g, int n, int cls) {
        checkClass(cls);
        if (!cfg.conditional()) return null;
        MemorySegment y = g.scope().allocate(4L * n);
        for (int i = 0; i < n; i++) y.setAtIndex(JAVA_INT, i, cls >= 0 ? cls : i % cfg.classes);
        return y;
    }

    /** Refuses a class (cls >= 0) of an unconditional VAE, and one outside [0, classes) of a conditional one; -1 passes. */
    public void checkClass(int cls) {
        if (cls < -1) throw new IllegalArgumentException("--class " + cls + " is negative; classes are numbered from 0");
        if (cls >= 0 && !cfg.conditional())
            throw new IllegalArgumentException(String.valueOf(cfg.out) + ": the VAE is unconditional (trained without --conditional), so it cannot be asked for a class");
        if (cfg.conditional() && cls >= cfg.classes)
            throw new IllegalArgumentException("--class " + cls + " is outside [0, " + cfg.classes + "): the VAE was trained on " + cfg.classes + " classes");
    }

    /** -log p(x|z) summed over pixels and the batch, times scale. */
    Var reconstruction(Var out, Tensor x, float scale) {
        return cfg.likelihood == Likelihood.BERNOULLI ? F.bceWithLogitsSum(out, x, scale) : F.gaussianNllSum(out, x, cfg.sigma, scale);
    }

    /** The beta of this step (KL warm-up ramps it linearly from 0 over cfg.warmup steps). */
    double betaAt(long s) { return cfg.warmup > 0 ? cfg.beta * Math.min(1.0, (double) s / cfg.warmup) : cfg.beta; }

    /** One optimizer step on images idx[from .. from + m); returns the batch's mean neg-ELBO (beta = 1, nats per image). */
    public double trainStep(ImageData data, int[] idx, int from, int m) { return step(data, idx, from, m).negElbo(); }

    /**
     * The batch's mean neg-ELBO of one {@link VaeTrainer#step}, read when asked: on CUDA the reconstruction term and the KL stay
     * on the device until {@link #negElbo()} copies both back in one copy (so a step whose loss is not read makes no host
     * synchronisation). Read it before the next step.
     */
    public static final class StepLoss {
        private final StepScalars.Values terms;   /* (rec, KL) on the device; null on the CPU */
        private final int batch;
        private final double value;

        StepLoss(StepScalars.Values terms, int batch, double value) {
            this.terms = terms;
            this.batch = batch;
            this.value = value;
        }

        /** rec + KL / batch (in float, as {@link VaeTrainer#trainStep} always computed it). */
        public double negElbo() { return terms == null ? value : terms.get(0) + terms.get(1) / batch; }

        /** Whether {@link #negElbo()} still has to copy from the device. */
        public boolean onDevice() { return terms != null && terms.onDevice(); }
    }

    /** {@link #trainStep} without reading the loss: on CUDA the step makes no host synchronisation (the batch goes up asynchronously). */
    public StepLoss step(ImageData data, int[] idx, int from, int m) {
        /* captured once the KL warm-up is over (beta then stays cfg.beta) and for full batches only */
        if (graph != null && m == cfg.batch && step + 1 >= cfg.warmup) return graphedStep(data, idx, from, m);
        step++;
        try (Graph g = Graph.open().precision(precision)) {
            Tensor x = images(g.scope(), data, idx, from, m);
            if (device != Device.CPU) x = x.to(g.scope(), device);   // from page-locked staging (Tensor.to): no host wait
            MemorySegment y = labels(g, data, idx, from, m, 1);
            Var[] h = model.encode(Var.constant(x), y);
            F.Reparam r = F.reparam(h[0], h[1], cfg.seed, EPS + step);
            Var rec = reconstruction(model.decode(r.z(), y), x, 1f / m);
            g.backward(F.add(rec, klTerm(h, r, step, m)));
            opt.update(cfg.lr, 0);
            if (device == Device.CPU) return new StepLoss(null, m, F.item(rec) + F.item(r.kl()) / m);
            return new StepLoss(losses.capture(rec.value(), r.kl().value()), m, Double.NaN);
        }
    }

    /** The step's weighted KL: beta KL / batch, or with free bits beta times the free-bits KL. */
    private Var klTerm(Var[] h, F.Reparam r, long s, int m) {
        double b = betaAt(s);
        return cfg.freeBits > 0 ? F.scale(F.klFreeBits(h[0], h[1], cfg.freeBits), (float) b) : F.scale(r.kl(), (float) (b / m));
    }

    // ---- CUDA graphs (train vae --cuda-graph) ----
    private dev.latent.cuda.CudaGraphStep graph;
    private dev.latent.train.GraphInputs graphIn;   /* the reparameterisation's Philox key and the batch (B, 1, 28, 28), fixed on the device; a cVAE's labels */
    private dev.latent.train.GraphLabels graphY;    /* a cVAE's labels: their host segment, bound to graphIn's slots 2 and 3 */
    private Scope graphScope;

    /**
     * With {@code on}, each full-batch step after two warm-up steps is replayed from a CUDA graph ({@link
     * dev.latent.cuda.CudaGraphStep}): before each step the host stages the batch, the reparameterisation's Philox key
     * (seed, step: {@link F#reparam(Var, Var, Tensor)} reads it on the device, so every replay draws new eps) and Adam's
     * step constants into fixed device memory; the captured encoder, sampler, decoder, backward and update read them
     * there. Steps run uncaptured while the KL warm-up changes beta (a graph would repeat one beta), and for a last
     * partial batch of an epoch. Free bits (ltk_kl_free_bits_*), the Gaussian likelihood (ltk_sumsq_affine_f32) stay
     * on the device; a conditional VAE's labels are staged with the batch into slots its embeddings read ({@link
     * dev.latent.train.GraphLabels}). The same bits as without a graph. Refused (naming why) off CUDA and at a
     * precision other than fp32 (not checked).
     */
    public VaeTrainer cudaGraph(boolean on) {
        if (!on) { closeCudaGraph(); return this; }
        dev.latent.train.GraphInputs.requireCapturable("vae", device, precision, null);
        if (graph == null) graph = new dev.latent.cuda.CudaGraphStep(2);
        return this;
    }

    /** The CUDA graph of {@link #cudaGraph}, or null: how many steps ran through it and whether it was captured. */
    public dev.latent.cuda.CudaGraphStep graphStep() { return graph; }

    /** Releases the CUDA graph and its fixed buffers (later steps run uncaptured until {@link #cudaGraph} is asked again). */
    public void closeCudaGraph() {
        if (graph != null) graph.close();
        graph = null;
        if (graphY != null) graphY.close();
        graphY = null;
        if (graphScope != null) graphScope.close();
        graphScope = null;
        graphIn = null;
    }

    /** The Philox key a step's eps came from (seed, stream), for {@link #step} at trainer step {@code s}. */
    long[] epsKey(long s) { return new long[] {cfg.seed, EPS + s}; }

    private StepLoss graphedStep(ImageData data, int[] idx, int from, int m) {
        step++;
        long s = step;
        if (graphScope == null) {
            graphScope = Scope.shared();
            if (cfg.conditional()) {
                graphY = new dev.latent.train.GraphLabels(graphScope, m, cfg.classes);
                long[][] ys = graphY.slotShapes();
                graphIn = new dev.latent.train.GraphInputs(graphScope, new long[] {4}, new long[] {m, 1, data.h, data.w}, ys[0], ys[1]);
                graphY.bind(graphIn.get(2), graphIn.get(3));
            } else {
                graphIn = new dev.latent.train.GraphInputs(graphScope, new long[] {4}, new long[] {m, 1, data.h, data.w});
            }
        }
        Tensor graphKey = graphIn.get(0), graphX = graphIn.get(1);
        MemorySegment y = graphY == null ? null : graphY.ids();
        graph.step(() -> {
            try (Scope sc = Scope.confined()) {   /* one upload: the key, the batch (and a cVAE's labels) */
                Tensor key = dev.latent.train.GraphInputs.rngKey(sc, cfg.seed, EPS + s), x = images(sc, data, idx, from, m);
                if (graphY == null) {
                    graphIn.stage(key, x);
                } else {
                    Tensor[] ly = graphY.stage(sc, labels(sc, data, idx, from, m, 1));
                    graphIn.stage(key, x, ly[0], ly[1]);
                }
            }
            opt.stage(cfg.lr);
        }, () -> {
            try (Graph g = Graph.open().precision(precision)) {
                Var[] h = model.encode(Var.constant(graphX), y);
                F.Reparam r = F.reparam(h[0], h[1], graphKey);
                Var rec = reconstruction(model.decode(r.z(), y), graphX, 1f / m);
                g.backward(F.add(rec, klTerm(h, r, s, m)));   /* beta is constant here (warm-up over) */
                opt.updateStaged(0);
                losses.capture(rec.value(), r.kl().value());
            }
        });
        return new StepLoss(losses.again(), m, Double.NaN);
    }

    /** One epoch: its mean train neg-ELBO (nats per image), time, throughput, and the test evaluation after it. */
    public record EpochResult(int epoch, double trainNegElbo, double seconds, double imagesPerSecond, Eval test) {}

    /** The whole run: epochs of training with a test evaluation, PNGs and a checkpoint after each; IWAE etc. at the end. */
    public List<EpochResult> run() throws IOException { return run(0, false, Long.MAX_VALUE); }

    /**
     * The run on {@link TrainLoop}: {@code steps} optimizer steps in all (0: the config's epochs of full passes), resumed
     * from the run folder's checkpoint when {@code resume}, stopping after {@code stopAt} steps. Batches, shuffles and
     * noise are keyed by the global step, so N steps and k steps resumed to N give the same weights, bit for bit. An
     * epoch's evaluation, PNGs and checkpoint come at each full pass over the training set and at the last step; a
     * resumed epoch's train neg-ELBO averages the steps this process ran.
     */
    public List<EpochResult> run(long steps, boolean resume, long stopAt) throws IOException {
        try (var p = dev.latent.io.Provenance.training("vae", cfg.seed(), cfg.toMap(), cfg.out()).use()) {
            return runWithProvenance(steps, resume, stopAt);
        }
    }

    private List<EpochResult> runWithProvenance(long steps, boolean resume, long stopAt) throws IOException {
        ImageData train0 = ImageData.load(cfg.data, "train"), test = ImageData.load(cfg.data, "test");
        if (cfg.excludeClass >= 0) train0 = train0.filterClass(cfg.excludeClass, false);
        if (cfg.trainLimit > 0) train0 = train0.head(cfg.trainLimit);
        ImageData train = train0;
        if (train.h != 28 || train.w != 28) throw new IOException(train.source + ": the conv VAE is for 28 x 28 images, got " + train.h + "x" + train.w);
        if (cfg.conditional()) {
            dev.latent.models.gan.GanTrainer.classesOf(train);   /* labels present */
            for (ImageData d : new ImageData[] {train, test}) {
                if (d.labels == null) throw new IOException(d.source + ": --conditional needs labels (an IDX label file beside the images)");
                for (int l : d.labels)
                    if (l < 0 || l >= cfg.classes) throw new IOException(d.source + ": label " + l + " is outside [0, " + cfg.classes + ")");
            }
        }
        List<EpochResult> results = new ArrayList<>();
        EpochFamily family = new EpochFamily(checkpoint(), cfg.lr, train.n, cfg.batch, steps, cfg.epochs, cfg.seed, PERM, cfg.logEvery,
                s -> step = s) {
            @Override protected double trainBatch(int[] perm, int from, int m) { return trainStep(train, perm, from, m); }

            @Override protected TrainLoop.StepResult stepResult(long s, int ep, double l) {
                Map<String, Object> rec = new LinkedHashMap<>();
                rec.put("epoch", ep); rec.put("neg_elbo", l); rec.put("beta", betaAt(step));
                return new TrainLoop.StepResult(l, "the negative ELBO", String.format(Locale.ROOT, "neg-ELBO %.2f", l), rec);
            }

            @Override protected void endOfEpoch(long done, int ep, double trainNegElbo, double secs, double imagesPerSecond, TrainLoop.Run run)
                    throws IOException {
                Eval e = evaluate(test, false);
                EpochResult r = new EpochResult(ep, trainNegElbo, secs, imagesPerSecond, e);
                results.add(r);
                Map<String, Object> rec = new LinkedHashMap<>();
                rec.put("epoch", ep); rec.put("train_neg_elbo", r.trainNegElbo); rec.put("test_neg_elbo", e.negElbo); rec.put("test_rec", e.rec);
                rec.put("test_kl", e.kl); rec.put("active_units", e.activeUnits); rec.put("epoch_seconds", secs); rec.put("images_per_s", r.imagesPerSecond);
                run.evaluation(done, String.format(Locale.ROOT,
                        "epoch %d: train neg-ELBO %.2f, test neg-ELBO %.2f (rec %.2f + kl %.2f), active units %d, %.0f img/s",
                        ep, r.trainNegElbo, e.negElbo, e.rec, e.kl, e.activeUnits, r.imagesPerSecond), rec);
                Path recon = cfg.out.resolve(String.format(Locale.ROOT, "reconstructions-epoch-%03d.png", ep));
                writeReconstructions(test, recon);
                listener.onSample(recon, step);
                Path samples = cfg.out.resolve(String.format(Locale.ROOT, "samples-epoch-%03d.png", ep));
                writeSamples(samples, 64, cfg.evalSeed);
                listener.onSample(samples, step);
            }

            @Override public void finish(TrainLoop.Run run) throws IOException {
                if (cfg.iwaeK > 0 && cfg.iwaeN > 0 && !results.isEmpty()) {
                    Eval fin = evaluate(test, true);
                    EpochResult last = results.get(results.size() - 1);
                    results.set(results.size() - 1, new EpochResult(last.epoch, last.trainNegElbo, last.seconds, last.imagesPerSecond, fin));
                    Map<String, Object> rec = new LinkedHashMap<>(fin.toMap());
                    rec.put("final", true);
                    run.log(rec);
                }
            }
        };
        try {
            TrainLoop.run(family, new TrainLoop.Options(cfg.out, family.total(), stopAt, resume, 0, listener, cfg.quiet));
        } finally {
            closeCudaGraph();
        }
        writeInterpolations(test, cfg.out.resolve("interpolations.png"));
        if (cfg.latent == 2 && !cfg.conditional()) writeManifold(cfg.out.resolve("manifold.png"), 20);
        if (cfg.conditional()) writeAnalogy(cfg.out.resolve("analogy.png"), 8, cfg.evalSeed);
        family.plotCurve(listener, cfg.out, "VAE training neg-ELBO", "nats per image", "neg-ELBO");
        return results;
    }

    /** Test neg-ELBO (one z per image, eps keyed by evalSeed), active units, per-dim KL; with iwae, the IWAE bound too. */
    public Eval evaluate(ImageData test, boolean iwae) {
        ConvVae model = evalModel();
        int n = test.n, d = cfg.latent;
        double rec = 0, kl = 0;
        double[] klDim = new double[d], muSum = new double[d], muSq = new double[d];
        for (int from = 0; from < n; from += 500) {
            int m = Math.min(500, n - from);
            try (Graph g = Graph.inference()) {
                Tensor x = onDevice(g, images(g.scope(), test, null, from, m));
                MemorySegment y = labels(g, test, null, from, m, 1);
                Var[] h = model.encode(Var.constant(x), y);
                F.Reparam r = F.reparam(h[0], h[1], cfg.evalSeed, TEST + from);
                rec += F.item(reconstruction(model.decode(r.z(), y), x, 1f)) ;
                kl += F.item(r.kl());
                MemorySegment ms = onHost(g, h[0].value()).contiguous().segment(), ls = onHost(g, h[1].value()).contiguous().segment();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < d; j++) {
                        double mu = ms.getAtIndex(JAVA_FLOAT, (long) i * d + j), lv = Math.max(-30, Math.min(30, ls.getAtIndex(JAVA_FLOAT, (long) i * d + j)));
                        klDim[j] += 0.5 * (mu * mu + Math.exp(lv) - 1 - lv);
                        muSum[j] += mu;
                        muSq[j] += mu * mu;
                    }
            }
        }
        double[] var = new double[d];
        int active = 0;
        for (int j = 0; j < d; j++) {
            klDim[j] /= n;
            double mean = muSum[j] / n;
            var[j] = muSq[j] / n - mean * mean;
            if (var[j] > 0.01) active++;
        }
        Double iw = iwae ? iwae(test, cfg.iwaeK, Math.min(cfg.iwaeN, n)) : null;
        return new Eval((rec + kl) / n, rec / n, kl / n, iw, active, klDim, var);
    }

    /** {@code -log p(x) <= -(logmeanexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)])}, averaged over the first n images. */
    public double iwae(ImageData test, int k, int n) {
        ConvVae model = evalModel();
        int d = cfg.latent, chunk = Math.max(1, 1000 / k);
        double total = 0;
        for (int from = 0; from < n; from += chunk) {
            int m = Math.min(chunk, n - from);
            try (Graph g = Graph.inference()) {
                Tensor xh = images(g.scope(), test, null, from, m), x = onDevice(g, xh);
                Var[] h = model.encode(Var.constant(x), labels(g, test, null, from, m, 1));
                // k copies of (mu, logvar): (k m, d); row j*m + i is sample j of image i (on the model's device)
                Tensor mu = Tensor.empty(g.scope(), device, (long) k * m, d), lv = Tensor.empty(g.scope(), device, (long) k * m, d);
                Tensor xs = g.empty((long) k * m, 1, 28, 28);
                for (int j = 0; j < k; j++) {
                    Kernels.copy(h[0].value(), mu.slice(0, (long) j * m, (long) (j + 1) * m));
                    Kernels.copy(h[1].value(), lv.slice(0, (long) j * m, (long) (j + 1) * m));
                    MemorySegment.copy(xh.segment(), 0, xs.segment(), (long) j * m * 784 * 4, (long) m * 784 * 4);
                }
                Tensor z = Tensor.empty(g.scope(), device, (long) k * m, d);
                Kernels.reparam(mu, lv, cfg.evalSeed + 1, IWAE + from, z);   // Philox: the same eps on every device
                Tensor out = onHost(g, model.decode(Var.constant(z), labels(g, test, null, from, m, k)).value());
                z = onHost(g, z);
                mu = onHost(g, mu);
                lv = onHost(g, lv);
                double[][] w = new double[m][k];
                for (int j = 0; j < k; j++)
                    for (int i = 0; i < m; i++) {
                        long row = (long) j * m + i;
                        double logpx = -VaeScores.nll(cfg.likelihood, cfg.sigma, out, row, xs, row);
                        w[i][j] = logpx + VaeScores.logPriorMinusPosterior(z, mu, lv, row, d);
                    }
                for (int i = 0; i < m; i++) total += -VaeScores.logMeanExp(w[i]);
            }
        }
        return total / n;
    }

    /** Decoder output mapped to pixel intensities in [0, 1]. */
    Tensor toPixels(Tensor out) {
        if (cfg.likelihood == Likelihood.GAUSSIAN) return out;
        Tensor p = Tensor.empty(out.scope(), out.device(), out.shape());
        Kernels.activation(dev.latent.nativ.LatentNative.ACT_SIGMOID, 0f, out, p);
        return p;
    }

    /** Rows alternate: 8 test images, then their reconstructions (posterior means). */
    public void writeReconstructions(ImageData test, Path file) throws IOException {
        ConvVae model = hostModel();
        try (Graph g = Graph.inference()) {
            Tensor x = images(g.scope(), test, null, 0, 32);
            MemorySegment y = labels(g, test, null, 0, 32, 1);
            Tensor rec = toPixels(model.decode(model.encode(Var.constant(x), y)[0], y).value());
            Tensor grid = g.empty(64, 1, 28, 28);
            for (int r = 0; r < 4; r++) {
                MemorySegment.copy(x.segment(), (long) r * 8 * 784 * 4, grid.segment(), (long) (2 * r) * 8 * 784 * 4, 8L * 784 * 4);
                MemorySegment.copy(rec.segment(), (long) r * 8 * 784 * 4, grid.segment(), (long) (2 * r + 1) * 8 * 784 * 4, 8L * 784 * 4);
            }
            ImageGrid.write(file, grid, 8, 8, 0f, 1f, 0);
        }
    }

    /** n samples of the decoder's mean at z ~ N(0, I) (Philox seed); a conditional VAE's image i is of class i mod classes. */
    public void writeSamples(Path file, int n, long seed) throws IOException { writeSamples(file, n, seed, -1); }

    /**
     * As {@link #writeSamples(Path, int, long)}, every image of class {@code cls} (a conditional VAE; -1: classes in
     * turn). A file not ending in .png gets the images as IDX3 bytes (28 x 28, round(255 p)), the form `eval fid` and
     * the classifier read.
     */
    public void writeSamples(Path file, int n, long seed, int cls) throws IOException {
        ConvVae model = evalModel();
        checkClass(cls);
        try (Graph g = Graph.inference()) {
            Tensor z = dev.latent.nn.Init.normal(g.scope(), seed, 7, 1.0, n, cfg.latent);   // drawn on the host: the same z on any device
            Tensor px = onHost(g, toPixels(model.decode(Var.constant(onDevice(g, z)), classLabels(g, n, cls)).value()));
            if (!file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".png")) {
                byte[] out = new byte[Math.multiplyExact(n, 784)];
                MemorySegment s = px.contiguous().segment();
                for (int i = 0; i < out.length; i++) out[i] = (byte) Math.round(Math.min(1f, Math.max(0f, s.getAtIndex(JAVA_FLOAT, i))) * 255f);
                dev.latent.data.Idx.writeU8(file, out, n, 28, 28);
                return;
            }
            int cols = (int) Math.ceil(Math.sqrt(n));
            if (cfg.conditional() && cls < 0 && n % cfg.classes == 0) cols = cfg.classes;   /* one class per column */
            ImageGrid.write(file, px, (n + cols - 1) / cols, cols, 0f, 1f, 0);
        }
    }

    /**
     * The cVAE's analogy grid: {@code rows} latents z ~ N(0, I) (Philox seed), one per row, each decoded with every
     * class across the row. What z holds that the label does not (thickness, brightness, pose) stays along a row.
     */
    public void writeAnalogy(Path file, int rows, long seed) throws IOException {
        if (!cfg.conditional())
            throw new IllegalArgumentException(String.valueOf(cfg.out) + ": --analogy needs a conditional VAE (train vae --conditional); this one is unconditional");
        if (rows < 1) throw new IllegalArgumentException("analogy grid: rows = " + rows + ", expected >= 1");
        ConvVae model = evalModel();
        int k = cfg.classes, d = cfg.latent;
        try (Graph g = Graph.inference()) {
            Tensor z0 = dev.latent.nn.Init.normal(g.scope(), seed, 8, 1.0, rows, d);
            Tensor z = g.empty((long) rows * k, d);
            MemorySegment y = g.scope().allocate(4L * rows * k);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < k; c++) {
                    MemorySegment.copy(z0.segment(), (long) r * d * 4, z.segment(), ((long) r * k + c) * d * 4, (long) d * 4);
                    y.setAtIndex(JAVA_INT, (long) r * k + c, c);
                }
            ImageGrid.write(file, onHost(g, toPixels(model.decode(Var.constant(onDevice(g, z)), y).value())), rows, k, 0f, 1f, 0);
        }
    }

    /**
     * log p(x | y) of each image under each class, by the IWAE bound with {@code k} samples (nats): (n, classes). A
     * cVAE's own classifier: argmax_y is its Bayes decision under a uniform class prior.
     */
    public double[][] classLogLikelihoods(ImageData data, int k) {
        if (!cfg.conditional()) throw new IllegalArgumentException("class likelihoods need a conditional VAE");
        ConvVae model = hostModel();
        int n = data.n, d = cfg.latent, kc = cfg.classes;
        double[][] out = new double[n][kc];
        for (int from = 0; from < n; from += 50) {
            int m = Math.min(50, n - from);
            for (int c = 0; c < kc; c++)
                try (Graph g = Graph.inference()) {
                    Tensor x = images(g.scope(), data, null, from, m);
                    MemorySegment y1 = classLabels(g, m, c), yk = classLabels(g, m * k, c);
                    Var[] h = model.encode(Var.constant(x), y1);
                    Tensor mu = g.empty((long) k * m, d), lv = g.empty((long) k * m, d), xs = g.empty((long) k * m, 1, 28, 28);
                    for (int j = 0; j < k; j++) {
                        MemorySegment.copy(h[0].value().segment(), 0, mu.segment(), (long) j * m * d * 4, (long) m * d * 4);
                        MemorySegment.copy(h[1].value().segment(), 0, lv.segment(), (long) j * m * d * 4, (long) m * d * 4);
                        MemorySegment.copy(x.segment(), 0, xs.segment(), (long) j * m * 784 * 4, (long) m * 784 * 4);
                    }
                    Tensor z = g.empty((long) k * m, d);
                    Kernels.reparam(mu, lv, cfg.evalSeed + 2, IWAE + ((long) c << 32) + from, z);
                    Tensor o = model.decode(Var.constant(z), yk).value();
                    for (int i = 0; i < m; i++) {
                        double[] w = new double[k];
                        for (int j = 0; j < k; j++) {
                            long row = (long) j * m + i;
                            w[j] = -VaeScores.nll(cfg.likelihood, cfg.sigma, o, row, xs, row) + VaeScores.logPriorMinusPosterior(z, mu, lv, row, d);
                        }
                        out[from + i][c] = VaeScores.logMeanExp(w);
                    }
                }
        }
        return out;
    }

    /** 8 rows: linear interpolation in latent space (posterior means) between test images 2r and 2r + 1, 10 steps. */
    public void writeInterpolations(ImageData test, Path file) throws IOException {
        ConvVae model = hostModel();
        try (Graph g = Graph.inference()) {
            Tensor x = images(g.scope(), test, null, 0, 16);
            MemorySegment mu = model.encode(Var.constant(x), labels(g, test, null, 0, 16, 1))[0].value().segment();
            int d = cfg.latent;
            Tensor z = g.empty(80, d);
            for (int r = 0; r < 8; r++)
                for (int s = 0; s < 10; s++) {
                    double a = s / 9.0;
                    for (int j = 0; j < d; j++)
                        z.segment().setAtIndex(JAVA_FLOAT, (long) (r * 10 + s) * d + j, (float) ((1 - a) * mu.getAtIndex(JAVA_FLOAT, (long) 2 * r * d + j)
                                + a * mu.getAtIndex(JAVA_FLOAT, (long) (2 * r + 1) * d + j)));
                }
            MemorySegment y = null;   /* a cVAE decodes row r with the label of its first image, 2r */
            if (cfg.conditional()) {
                y = g.scope().allocate(4L * 80);
                for (int i = 0; i < 80; i++) y.setAtIndex(JAVA_INT, i, test.labels[2 * (i / 10)]);
            }
            ImageGrid.write(file, toPixels(model.decode(Var.constant(z), y).value()), 8, 10, 0f, 1f, 0);
        }
    }

    /** For a 2-D latent space: decoded means on a grid x grid lattice of standard-normal quantiles. */
    public void writeManifold(Path file, int grid) throws IOException {
        if (cfg.latent != 2) throw new IllegalArgumentException("the manifold plot needs a 2-D latent space, got " + cfg.latent);
        if (cfg.conditional()) throw new IllegalArgumentException("the manifold plot is for an unconditional VAE (use --analogy for a conditional one)");
        ConvVae model = hostModel();
        try (Graph g = Graph.inference()) {
            Tensor z = g.empty((long) grid * grid, 2);
            for (int r = 0; r < grid; r++)
                for (int c = 0; c < grid; c++) {
                    z.segment().setAtIndex(JAVA_FLOAT, 2L * (r * grid + c), (float) normalQuantile((c + 0.5) / grid));
                    z.segment().setAtIndex(JAVA_FLOAT, 2L * (r * grid + c) + 1, (float) normalQuantile(1 - (r + 0.5) / grid));
                }
            ImageGrid.write(file, toPixels(model.decode(Var.constant(z)).value()), grid, grid, 0f, 1f, 0);
        }
    }

    /** Inverse standard-normal CDF by bisection on erfc (plots only). */
    static double normalQuantile(double p) {
        double lo = -10, hi = 10;
        for (int i = 0; i < 100; i++) {
            double mid = 0.5 * (lo + hi);
            if (0.5 * erfc(-mid / Math.sqrt(2)) < p) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    static double erfc(double x) {   // Numerical Recipes' erfcc, |error| < 1.2e-7: plenty for plot coordinates
        double z = Math.abs(x), t = 1 / (1 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }

    /** The checkpoint: weights, Adam's state, the format and the config. */
    private EpochFamily.Checkpoint checkpoint() {
        return new EpochFamily.Checkpoint("vae", model::namedParameters, opt, FORMAT, cfg::toMap, precision);
    }

    /** Writes the weights and the optimizer state after the steps done so far (the checkpoint {@code --resume} reads). */
    public void save(Path file) throws IOException {
        TrainLoop.save(file, checkpoint().saveOnly(), step);
    }

    /** Refuses a latent size / batch whose model and activations could not fit this machine's memory, before allocating. */
    public static void checkMemory(int latent, int batch) {
        // the decoder's first layer maps D to 64 x 7 x 7 and the encoder's last maps 3136 to 2D: ~ 9408 D weights,
        // with gradients and two Adam moments; per image the latent tensors are small next to the 28 x 28 maps.
        Limits.fitsInMemory("a VAE with --latent " + latent, Limits.product(latent, 9408), 4);
        Limits.fitsInMemory("a VAE with --latent " + latent + " at --batch " + batch, Limits.product(batch, Math.max(latent, 64L * 28 * 28)), 8);
    }

    /** A trainer holding a checkpoint's model (for eval and sampling). */
    public static VaeTrainer load(Path dirOrFile, Scope scope) throws IOException { return load(dirOrFile, scope, Device.CPU); }

    /** A checkpoint's VAE on {@code device}: sampling and evaluation then run there ({@link #evalModel()}). */
    public static VaeTrainer load(Path dirOrFile, Scope scope, Device device) throws IOException {
        EpochFamily.Saved saved = EpochFamily.Saved.read(dirOrFile, FORMAT, "VAE", scope);
        Path f = saved.file();
        SafeTensors.Loaded l = saved.loaded();
        Map<String, Object> c = saved.config();
        Config d = Config.reference(String.valueOf(c.get("data")), f.getParent());
        Object lat = c.get("latent");
        if (!(lat instanceof Long latent) || latent < 1 || latent > Integer.MAX_VALUE) throw new IOException(f + ": config latent = " + lat + ", expected an integer in [1, 2^31-1]");
        Object likName = c.getOrDefault("likelihood", "bernoulli");
        Likelihood lik = "gaussian".equals(likName) ? Likelihood.GAUSSIAN : "bernoulli".equals(likName) ? Likelihood.BERNOULLI : null;
        if (lik == null) throw new IOException(f + ": config likelihood = " + Json.value(likName) + ", expected \"bernoulli\" or \"gaussian\"");
        double sigma = c.get("sigma") instanceof Number s ? s.doubleValue() : 0.1;
        if (!(sigma > 0) || Double.isInfinite(sigma)) throw new IOException(f + ": config sigma = " + Json.value(c.get("sigma")) + ", expected a finite value > 0");
        long held = 0;
        for (Tensor x : l.tensors().values()) held += x.numel();
        if (latent > held) throw new IOException(f + ": config latent = " + latent + " cannot fit the " + held + " floats the file holds");
        try {
            checkMemory(latent.intValue(), 1);
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": " + e.getMessage());
        }
        for (var e : l.tensors().entrySet()) {
            long bad = Limits.nonFinite(e.getValue());
            if (bad > 0) throw new IOException(f + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite values (a diverged or damaged checkpoint)");
        }
        Config cfg;
        try {
            cfg = new Config(d.data(), d.out(), latent.intValue(), c.get("beta") instanceof Number b ? b.doubleValue() : 1.0, d.epochs(), d.batch(),
                d.lr(), lik, sigma, 0, 0, c.get("seed") instanceof Number s2 ? s2.longValue() : 1, 0, d.evalSeed(), d.iwaeK(), d.iwaeN(), d.logEvery(), true,
                c.get("exclude_class") instanceof Number ex ? ex.intValue() : -1, dev.latent.models.gan.GanTrainer.classesIn(f, c));
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad config: " + e.getMessage());
        }
        VaeTrainer t = new VaeTrainer(cfg, scope, device);
        for (var e : t.model.namedParameters().entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null) throw new IOException(f + ": missing tensor " + e.getKey());
            if (!java.util.Arrays.equals(src.shape(), e.getValue().shape()))
                throw new IOException(f + ": tensor " + e.getKey() + " has shape " + java.util.Arrays.toString(src.shape()));
            dev.latent.nn.Init.assign(src, e.getValue().value());
        }
        t.step = saved.step();
        t.precision = dev.latent.train.TrainingPrecision.of(f, l.metadata());   /* read, not required: evaluation runs fp32 */
        return t;
    }
}
