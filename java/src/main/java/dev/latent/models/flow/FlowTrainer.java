package dev.latent.models.flow;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.JsonReader;
import dev.latent.io.SafeTensors;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
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

/**
 * Trains and evaluates an {@link ImageFlow} ({@link RealNvp}, {@link Glow}); RealNVP as ../shared/reference/realnvp_fmnist.py: batch 64, Adam 1e-3, epochs over
 * per-epoch Philox shuffles (last partial batch kept), dequantization noise keyed by (seed, step); test bits/dim on
 * the test split with one noise sample per image (seed 1234). Writes metrics.jsonl, a sample grid per epoch,
 * loss.png and checkpoint.safetensors.
 */
public final class FlowTrainer {
    public static final String CHECKPOINT = "checkpoint.safetensors";
    static final String FORMAT = "latent-realnvp-1", GLOW_FORMAT = "latent-glow-1";

    /**
     * arch "realnvp" (couplings, hidden) or "glow" (levels L, depth K steps per level, hidden); the rest is the
     * training loop's.
     */
    public record Config(String data, Path out, String arch, int couplings, int levels, int depth, int hidden, int epochs, int batch,
                         float lr, int maxSteps, long seed, int trainLimit, int testLimit, boolean quiet, double clip) {
        public Config {
            if (!arch.equals("realnvp") && !arch.equals("glow")) throw new IllegalArgumentException("flow arch must be realnvp or glow, got " + arch);
            if (!(clip >= 0)) throw new IllegalArgumentException("clip must be >= 0 (0: no clipping), got " + clip);
        }

        /** No gradient clipping: the reference recipe ({@code clip} 0). */
        public Config(String data, Path out, String arch, int couplings, int levels, int depth, int hidden, int epochs, int batch,
                      float lr, int maxSteps, long seed, int trainLimit, int testLimit, boolean quiet) {
            this(data, out, arch, couplings, levels, depth, hidden, epochs, batch, lr, maxSteps, seed, trainLimit, testLimit, quiet, 0);
        }

        /** This config with global-norm gradient clipping at {@code clip} (0: none). */
        public Config withClip(double clip) {
            return new Config(data, out, arch, couplings, levels, depth, hidden, epochs, batch, lr, maxSteps, seed, trainLimit, testLimit, quiet, clip);
        }

        /** RealNVP with the given sizes (the form the reference script's flags take). */
        public Config(String data, Path out, int couplings, int hidden, int epochs, int batch, float lr, int maxSteps, long seed,
                      int trainLimit, int testLimit, boolean quiet) {
            this(data, out, "realnvp", couplings, 0, 0, hidden, epochs, batch, lr, maxSteps, seed, trainLimit, testLimit, quiet);
        }

        public static Config reference(String data, Path out) {
            return new Config(data, out, 6, 64, 1, 64, 1e-3f, 0, 1, 0, 0, false);
        }

        /** Glow defaults for 28 x 28: L = 2 levels, K = 8 steps, 128-channel coupling nets. */
        public static Config glow(String data, Path out) {
            return new Config(data, out, "glow", 0, 2, 8, 128, 1, 64, 1e-3f, 0, 1, 0, 0, false);
        }
    }

    public final Config cfg;
    public final ImageFlow model;
    private final AdamW opt;
    private final StepScalars losses;   /* CUDA: a step's bits/dim, read back when asked */
    private final Scope scope;          /* the model's */
    private long step;

    private static final long PERM = 1L << 40, NOISE = 2L << 40, TEST = 3L << 40;

    /** Where the flow trains, evaluates and samples (every op of RealNVP's and Glow's forward and inverse has a device path). */
    public final Device device;
    private TrainingListener listener = TrainingListener.LOG;

    public FlowTrainer(Config cfg, Scope scope, int h, int w) { this(cfg, scope, h, w, Device.CPU); }

    /** Where {@link #run} reports steps, sample grids and checkpoints (default {@link TrainingListener#LOG}). */
    public FlowTrainer listener(TrainingListener listener) {
        this.listener = java.util.Objects.requireNonNull(listener, "listener");
        return this;
    }

    /**
     * A trainer on {@code device}: the model is built on the CPU (the same initial weights for any device) and moved
     * there before the optimizer is made. Glow's ActNorm initialises from the first batch on the device.
     */
    public FlowTrainer(Config cfg, Scope scope, int h, int w, Device device) {
        this.cfg = cfg;
        this.scope = scope;
        this.device = java.util.Objects.requireNonNull(device, "device");
        model = cfg.arch.equals("glow") ? new Glow(scope, h, w, cfg.levels, cfg.depth, cfg.hidden, 0.05, cfg.seed)
                : new RealNvp(scope, h, w, cfg.couplings, cfg.hidden, 0.05, cfg.seed);
        if (device != Device.CPU) model.to(scope, device);
        opt = new AdamW(scope, model.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
        losses = device == Device.CPU ? null : new StepScalars(scope, device, 1);
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' coupling networks (issue 15): BF16 runs their convolutions through
     * lt_conv2d_*_bf16 (operands rounded to bf16, fp32 sums; every prior is a fixed N(0, I), so nothing else has one). The
     * affine couplings themselves, the log-determinants, ActNorm, Glow's invertible 1x1 convolution (kept exact inside
     * the BF16 graph: its log-det is that of the fp32 W), the bits/dim, reductions, master weights and Adam's state
     * stay fp32; evaluation, the invertibility check and sampling run at fp32. BF16 on a CPU with AVX512_BF16; on CUDA
     * (issue 18) TF32 and BF16 (the couplings' convolutions and GEMMs at the precision; the 1x1 convolution exact as on the
     * CPU): elsewhere an exception naming why, before any step. Recorded in the checkpoint (metadata "precision"); a resume must ask the same.
     */
    public FlowTrainer precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable(cfg.arch(), p, device, true);
        return this;
    }

    /** The training precision: the one set, or for a {@link #load}ed trainer the checkpoint's (FP32 for older ones). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /** y (preprocessed on the host: the same bits for any device) on the trainer's device; ldPre stays on the host. */
    private Tensor onDevice(Scope s, Tensor y) { return device == Device.CPU ? y : y.to(s, device); }

    /** One Adam step on images idx[from .. from + m); returns the batch's mean bits/dim. */
    public double trainStep(ImageData data, int[] idx, int from, int m) { return stepDeferred(data, idx, from, m).get(0); }

    /**
     * {@link #trainStep} without reading the loss: {@code get(0)} of the result is the batch's mean bits/dim, which on
     * CUDA stays on the device until read (one copy; read it before the next step), so the step itself makes no host
     * synchronisation where the model's ops make none.
     */
    public StepScalars.Values stepDeferred(ImageData data, int[] idx, int from, int m) {
        if (graph != null && m == cfg.batch) return graphedStep(data, idx, from, m);
        step++;
        try (Graph g = Graph.open().precision(precision)) {
            Tensor[] pre = model.preprocess(g.scope(), data.pixels, idx, from, m, cfg.seed, NOISE + step);
            Var bpd = model.bitsPerDim(Var.constant(onDevice(g.scope(), pre[0])), pre[1]);
            g.backward(bpd);
            opt.update(cfg.lr, cfg.clip);
            if (device == Device.CPU) return StepScalars.Values.known(F.item(bpd));
            return losses.capture(bpd.value());
        }
    }

    // ---- CUDA graphs (train realnvp|glow --cuda-graph) ----
    private dev.latent.cuda.CudaGraphStep graph;
    private dev.latent.train.GraphInputs graphIn;   /* the batch (B, 1, h, w) and its bits/dim constant (1), fixed on the device */

    /**
     * With {@code on}, each full-batch step after two warm-up steps is replayed from a CUDA graph ({@link
     * dev.latent.cuda.CudaGraphStep}): before each step the host dequantizes the batch (its noise keyed by the step, as
     * without a graph) and stages it, the bits/dim's constant term ({@link ImageFlow#bpdConstant}) and AdamW's step
     * constants into fixed device memory; the captured forward, backward, clipping and update read them there. Glow's
     * data-dependent ActNorm initialisation (host copies of the first batch) happens in the first warm-up step, before
     * the capture. A last partial batch of an epoch runs uncaptured. The same bits as without a graph. CUDA and fp32
     * only (refused otherwise, naming why).
     */
    public FlowTrainer cudaGraph(boolean on) {
        if (!on) { closeCudaGraph(); return this; }
        dev.latent.train.GraphInputs.requireCapturable(cfg.arch(), device, precision, null);
        if (graph == null) graph = new dev.latent.cuda.CudaGraphStep(2);
        return this;
    }

    /** The CUDA graph of {@link #cudaGraph}, or null: how many steps ran and whether it was captured. */
    public dev.latent.cuda.CudaGraphStep graphStep() { return graph; }

    /** Releases the CUDA graph (later steps run uncaptured until {@link #cudaGraph} is asked again). */
    public void closeCudaGraph() {
        if (graph != null) graph.close();
        graph = null;
    }

    private StepScalars.Values graphedStep(ImageData data, int[] idx, int from, int m) {
        step++;
        long s = step;
        if (graphIn == null) graphIn = new dev.latent.train.GraphInputs(scope, new long[] {m, 1, model.height(), model.width()}, new long[] {1});
        Tensor graphY = graphIn.get(0), graphConst = graphIn.get(1);
        graph.step(() -> {
            try (Scope sc = Scope.confined()) {   /* one upload: the dequantized batch and its constant */
                Tensor[] pre = model.preprocess(sc, data.pixels, idx, from, m, cfg.seed, NOISE + s);
                graphIn.stage(pre[0], Tensor.of(sc, new float[] {ImageFlow.bpdConstant(pre[1], m, (long) model.height() * model.width())}, 1));
            }
            opt.stage(cfg.lr);
        }, () -> {
            try (Graph g = Graph.open().precision(precision)) {
                Var bpd = model.bitsPerDim(Var.constant(graphY), graphConst);
                g.backward(bpd);
                opt.updateStaged(cfg.clip);
                losses.capture(bpd.value());
            }
        });
        return losses.again();
    }

    /** Mean test bits/dim with one dequantization sample per image (seed 1234). */
    public double testBpd(ImageData test) {
        double tot = 0;
        int n = cfg.testLimit > 0 ? Math.min(cfg.testLimit, test.n) : test.n;
        for (int from = 0; from < n; from += 500) {
            int m = Math.min(500, n - from);
            try (Graph g = Graph.inference()) {
                Tensor[] pre = model.preprocess(g.scope(), test.pixels, null, from, m, 1234, TEST + from);
                tot += F.item(model.bitsPerDim(Var.constant(onDevice(g.scope(), pre[0])), pre[1])) * m;
            }
        }
        return tot / n;
    }

    /** max |inverse(forward(y)) - y| over the first m test images (logit space). */
    public double invertibilityError(ImageData test, int m) {
        try (Graph g = Graph.inference()) {
            Tensor[] pre = model.preprocess(g.scope(), test.pixels, null, 0, Math.min(m, test.n), 1234, TEST);
            Tensor back = model.roundTrip(onDevice(g.scope(), pre[0]));
            float[] a = pre[0].toArray(), b = back.toArray();
            double e = 0;
            for (int i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
            return e;
        }
    }

    /** n samples z ~ N(0, T^2 I) pushed through the inverse, as pixel intensities in [0, 1] (n, 1, h, w). */
    public void writeSamples(Path file, int n, double temperature, long seed) throws IOException {
        try (Graph g = Graph.inference()) {
            Tensor y = model.sampleLogits(n, temperature, seed);
            if (y.device() != Device.CPU) y = y.to(g.scope(), Device.CPU);
            MemorySegment s = y.segment();
            double a = model.alpha();
            for (long i = 0; i < y.numel(); i++) {
                double sig = 1 / (1 + Math.exp(-s.getAtIndex(JAVA_FLOAT, i)));
                s.setAtIndex(JAVA_FLOAT, i, (float) Math.max(0, Math.min(1, (sig - a) / (1 - 2 * a))));
            }
            int cols = (int) Math.ceil(Math.sqrt(n));
            ImageGrid.write(file, y, (n + cols - 1) / cols, cols, 0f, 1f, 0);
        }
    }

    /** A run's outcome: the last epoch's train and the test bits/dim, throughput, steps, and {@link #invertibilityError} on 16 test images. */
    public record Result(double trainBpd, double testBpd, double imagesPerSecond, long steps, double invertibilityError) {}

    public Result run() throws IOException { return run(0, false, Long.MAX_VALUE); }

    /**
     * The run on {@link TrainLoop}: {@code steps} optimizer steps in all (0: the config's epochs, capped by its
     * maxSteps), resumed from the run folder's checkpoint (weights and AdamW state) when {@code resume}, stopping after
     * {@code stopAt} steps. Shuffles and dequantization noise are keyed by the global step, so a resumed run ends with
     * the bits of an uninterrupted one. A sample grid and a checkpoint come at each full pass over the data.
     */
    public Result run(long steps, boolean resume, long stopAt) throws IOException {
        try (var p = dev.latent.io.Provenance.training(cfg.arch(), cfg.seed(), dev.latent.io.Provenance.settingsOf(cfg), cfg.out()).use()) {
            return runWithProvenance(steps, resume, stopAt);
        }
    }

    private Result runWithProvenance(long steps, boolean resume, long stopAt) throws IOException {
        ImageData train0 = ImageData.load(cfg.data, "train"), test = ImageData.load(cfg.data, "test");
        if (cfg.trainLimit > 0) train0 = train0.head(cfg.trainLimit);
        ImageData train = train0;
        if (train.h != model.height() || train.w != model.width())
            throw new IOException(train.source + ": " + train.h + "x" + train.w + " images, model is " + model.height() + "x" + model.width());
        int perEpoch = (train.n + cfg.batch - 1) / cfg.batch;
        long total = steps > 0 ? steps
                : cfg.maxSteps > 0 ? Math.min(cfg.maxSteps, (long) perEpoch * cfg.epochs) : (long) perEpoch * cfg.epochs;
        List<double[]> curve = new ArrayList<>();
        double[] acc = new double[4];   /* running bpd sum and count of the current pass, images and seconds trained */
        double[] result = new double[3];   /* the last pass's mean train bpd, test bpd, invertibility error */
        TrainLoop.Family family = new TrainLoop.Family() {
            int permEpoch = -1;
            int[] perm;
            long t0 = System.nanoTime();

            @Override public String name() { return cfg.arch(); }
            @Override public Map<String, Var> parameters() { return model.namedParameters(); }
            @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
            @Override public Map<String, String> metadata() { return checkpointMetadata(); }
            @Override public String divergenceHint() { return "lower --lr (" + cfg.lr() + ")"; }
            @Override public boolean logAt(long done) { return done % 50 == 0 || done == 1; }

            @Override public void restored(long s) {
                step = s;
                if (model instanceof Glow gl) gl.markInitialized();   /* ActNorm's data-dependent init happened before the checkpoint */
            }

            @Override public TrainLoop.StepResult step(long s) {
                int ep = (int) (s / perEpoch) + 1, i = (int) (s % perEpoch);
                if (ep != permEpoch) {
                    perm = ImageData.permutation(train.n, cfg.seed, PERM + ep);
                    permEpoch = ep;
                }
                if (i == 0) { acc[0] = 0; acc[1] = 0; }
                int from = i * cfg.batch, m = Math.min(cfg.batch, train.n - from);
                step = s;
                long ts = System.nanoTime();
                double l = trainStep(train, perm, from, m);
                acc[3] += (System.nanoTime() - ts) / 1e9;
                acc[0] += l * m;
                acc[1] += m;
                acc[2] += m;
                if (logAt(s + 1)) curve.add(new double[] {s + 1, l});
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("epoch", ep); r.put("train_bpd_batch", l); r.put("train_bpd_running", acc[0] / acc[1]);
                return new TrainLoop.StepResult(l, "the bits/dim", String.format(Locale.ROOT, "bpd %.4f", l), r);
            }

            @Override public void after(long done, TrainLoop.Run run) throws IOException {
                if (done % perEpoch != 0 && done != total) return;
                int ep = (int) ((done - 1) / perEpoch) + 1;
                result[0] = acc[0] / Math.max(acc[1], 1);
                Path grid = cfg.out.resolve(String.format(Locale.ROOT, "samples-epoch-%03d.png", ep));
                writeSamples(grid, 64, 0.7, 1234);
                listener.onSample(grid, step);
                run.checkpoint(done);
            }

            @Override public void finish(TrainLoop.Run run) throws IOException {
                result[1] = testBpd(test);
                result[2] = invertibilityError(test, 16);
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("final", true); r.put("test_bpd", result[1]); r.put("invertibility_error", result[2]);
                r.put("train_images_per_s", acc[2] / Math.max(acc[3], 1e-9));
                run.log(r);
                writeSamples(cfg.out.resolve("samples.png"), 64, 0.7, 1234);
                listener.onSample(cfg.out.resolve("samples.png"), step);
            }
        };
        long done;
        try {
            done = TrainLoop.run(family, new TrainLoop.Options(cfg.out, total, stopAt, resume, 0, listener, cfg.quiet));
        } finally {
            closeCudaGraph();
        }
        if (!curve.isEmpty())
            listener.onCurves(new TrainingListener.Curves(cfg.out, (model instanceof Glow ? "Glow" : "RealNVP") + " training bits/dim", "step", "bits/dim",
                    List.of(new TrainingListener.Series("bpd", curve.stream().mapToDouble(c -> c[0]).toArray(), curve.stream().mapToDouble(c -> c[1]).toArray()))));
        return new Result(result[0], result[1], acc[2] / Math.max(acc[3], 1e-9), done, result[2]);
    }

    private Map<String, String> checkpointMetadata() {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", model instanceof Glow ? GLOW_FORMAT : FORMAT);
        Map<String, Object> c = new LinkedHashMap<>(model.config());
        c.put("data", cfg.data);
        c.put("seed", cfg.seed);
        meta.put("config", Json.object(c));
        meta.put(dev.latent.train.TrainingPrecision.KEY, precision.id());
        return meta;
    }

    /** Writes the weights and AdamW's state after the steps done so far (the checkpoint {@code --resume} reads). */
    public void save(Path file) throws IOException {
        TrainLoop.save(file, new TrainLoop.Family() {
            @Override public String name() { return cfg.arch(); }
            @Override public Map<String, Var> parameters() { return model.namedParameters(); }
            @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
            @Override public Map<String, String> metadata() { return checkpointMetadata(); }
            @Override public TrainLoop.StepResult step(long s) { throw new UnsupportedOperationException(); }
        }, step);
    }

    public static FlowTrainer load(Path dirOrFile, Scope scope) throws IOException { return load(dirOrFile, scope, Device.CPU); }

    /**
     * A checkpoint's flow on {@code device} (sampling, bits/dim and the invertibility check then run there: every op of
     * the forward and the inverse has a device path).
     */
    public static FlowTrainer load(Path dirOrFile, Scope scope, Device device) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(CHECKPOINT) : dirOrFile;
        if (!Files.isRegularFile(f)) throw new IOException("no RealNVP checkpoint at " + f);
        SafeTensors.Loaded l = SafeTensors.read(f, scope);
        String format = l.metadata().get("format");
        boolean glow = GLOW_FORMAT.equals(format);
        if (!glow && !FORMAT.equals(format)) throw new IOException(f + ": not a Latent RealNVP or Glow checkpoint (format " + format + ")");
        Map<String, Object> c = JsonReader.parseObject(l.metadata().get("config"));
        int h = num(c, "h"), w = num(c, "w"), hid = num(c, "hidden");
        String data = String.valueOf(c.get("data"));
        Config cfg = glow ? new Config(data, f.getParent(), "glow", 0, num(c, "levels"), num(c, "depth"), hid, 1, 64, 1e-3f, 0, 1, 0, 0, true)
                : new Config(data, f.getParent(), num(c, "couplings"), hid, 1, 64, 1e-3f, 0, 1, 0, 0, true);
        FlowTrainer t = new FlowTrainer(cfg, scope, h, w, device);
        t.precision = dev.latent.train.TrainingPrecision.of(f, l.metadata());   /* read, not required: sampling runs fp32 */
        for (var e : t.model.namedParameters().entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null || src.numel() != e.getValue().value().numel()) throw new IOException(f + ": missing or mis-shaped tensor " + e.getKey());
            dev.latent.nn.Init.assign(src, e.getValue().value());
        }
        if (t.model instanceof Glow gl) gl.markInitialized();
        return t;
    }

    private static int num(Map<String, Object> c, String k) throws IOException {
        if (!(c.get(k) instanceof Number n) || n.intValue() < 1 || n.intValue() > 4096) throw new IOException("checkpoint config: bad " + k + " = " + c.get(k));
        return n.intValue();
    }
}
