package dev.latent.models.pixelcnn;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.ImageGrid;
import dev.latent.train.Limits;
import dev.latent.train.EpochFamily;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Trains and evaluates a {@link GatedPixelCnn} as bench/reference/pixelcnn_fmnist.py: inputs pixels / 255, targets
 * the 8-bit pixel values, loss the mean 256-way cross-entropy per pixel (the fused softmax cross-entropy kernel),
 * Adam (beta 0.9, 0.999, eps 1e-8, no weight decay), shuffling by Philox (seed). The metric is the exact negative
 * log-likelihood in bits per dimension (the cross-entropy in nats / ln 2, averaged over every pixel of the test
 * split): 8 is a uniform model. After each epoch: a test evaluation, a 64-image sample grid (cached sampler) and a
 * checkpoint (atomic SafeTensors, with Adam's state: {@code --resume} continues a run bit for bit). The loop is
 * {@link TrainLoop}'s. 28 x 28 images (the model itself takes any size); on the CPU or on CUDA.
 */
public final class PixelCnnTrainer {
    public static final String CHECKPOINT = "checkpoint.safetensors";
    static final String FORMAT = "latent-pixelcnn-1";
    static final double LN2 = Math.log(2);
    private static final long PERM = 1L << 40;

    /** Everything a run depends on (the architecture, data and optimisation settings) and where it writes. */
    public record Config(String data, Path out, GatedPixelCnn.Arch arch, int epochs, int batch, float lr, long seed, int trainLimit,
                         int testLimit, int samples, long sampleSeed, int logEvery, boolean quiet) {
        public Config {
            Objects.requireNonNull(arch, "arch");
            Limits.atLeast("epochs", epochs, 1);
            Limits.atLeast("batch", batch, 1);
            Limits.positive("lr", lr);
            Limits.atLeast("trainLimit", trainLimit, 0);
            Limits.atLeast("testLimit", testLimit, 0);
            Limits.atLeast("samples", samples, 0);
            Limits.atLeast("logEvery", logEvery, 1);
        }

        /** The defaults of {@code train pixelcnn}. */
        public static Config reference(String data, Path out) {
            return new Config(data, out, GatedPixelCnn.Arch.standard(), 1, 32, 1e-3f, 1, 0, 0, 64, 1234, 20, false);
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("data", data); m.put("channels", arch.channels()); m.put("layers", arch.layers()); m.put("first_kernel", arch.firstKernel());
            m.put("kernel", arch.kernel()); m.put("head", arch.head()); m.put("epochs", epochs); m.put("batch", batch); m.put("lr", lr);
            m.put("seed", seed); m.put("train_limit", trainLimit); m.put("test_limit", testLimit);
            return m;
        }
    }

    /** One epoch: mean train bits/dim, test bits/dim after it, time and throughput. */
    public record EpochResult(int epoch, double trainBitsPerDim, double testBitsPerDim, double seconds, double imagesPerSecond) {}

    public final Config cfg;
    public final GatedPixelCnn model;
    private final AdamW opt;
    private long step;
    private TrainingListener listener = TrainingListener.LOG;

    /** Where the model trains (issue 18): its weights and Adam's state live there; evaluation and sampling run there too. */
    public final dev.latent.tensor.Device device;

    public PixelCnnTrainer(Config cfg, Scope scope) { this(cfg, scope, dev.latent.tensor.Device.CPU); }

    /**
     * A trainer on {@code device} (train pixelcnn --device cuda): the model is built on the CPU (the same initial weights
     * for any device) and moved there before the optimizer is made. Training steps, the test bits/dim and the
     * sample grids (DevicePixelCnnSampler on CUDA) run there.
     */
    public PixelCnnTrainer(Config cfg, Scope scope, dev.latent.tensor.Device device) {
        this.cfg = Objects.requireNonNull(cfg, "cfg");
        this.device = Objects.requireNonNull(device, "device");
        model = new GatedPixelCnn(scope, cfg.arch, cfg.seed);
        if (device != dev.latent.tensor.Device.CPU) model.to(scope, device);
        opt = new AdamW(scope, model.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
    }

    /** x on the trainer's device (built on the host). */
    private Tensor onDevice(Scope s, Tensor x) { return device == dev.latent.tensor.Device.CPU ? x : x.to(s, device); }

    /** Where {@link #run} reports steps, epochs, samples and checkpoints (default {@link TrainingListener#LOG}). */
    public PixelCnnTrainer listener(TrainingListener listener) {
        this.listener = Objects.requireNonNull(listener, "listener");
        return this;
    }

    public long step() { return step; }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' masked convolutions (issue 15): BF16 runs them through
     * lt_conv2d_*_bf16 on the masked weights (the mask is folded into the weight before the convolution, as at fp32,
     * and a masked-out tap is an exact 0 in bf16 too, so the causal structure is unchanged); the gates, the softmax
     * cross-entropy, reductions, the master weights and Adam's state stay fp32, and evaluation and sampling stay fp32.
     * BF16 on a CPU with AVX512_BF16; on CUDA (issue 18) TF32 and BF16: elsewhere an exception naming why, before any
     * step. Recorded in the checkpoint (metadata "precision"); a resume must ask the same.
     */
    public PixelCnnTrainer precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable("pixelcnn", p, device, true);
        return this;
    }

    /** The training precision: the one set, or for a {@link #load}ed trainer the checkpoint's (FP32 for older ones). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /** Inputs (m, 1, h, w) = pixels / 255 of images idx[from ..) (idx null: from, from + 1, ...), targets the bytes. */
    static Tensor batch(Scope s, ImageData d, int[] idx, int from, int m, MemorySegment targets) {
        Tensor x = Tensor.empty(s, m, 1, d.h, d.w);
        d.fill(x, idx, from, m, 1f / 255f, 0f, 0);
        int hw = d.h * d.w;
        for (int b = 0; b < m; b++) {
            int img = idx == null ? from + b : idx[from + b];
            for (int p = 0; p < hw; p++) targets.setAtIndex(JAVA_INT, (long) b * hw + p, d.pixels[img * hw + p] & 0xff);
        }
        return x;
    }

    /** One Adam step on images idx[from .. from + m); returns the batch's mean bits/dim before the step. */
    public double trainStep(ImageData data, int[] idx, int from, int m) {
        step++;
        try (Graph g = Graph.open().precision(precision); Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocate(4L * m * data.h * data.w, 4);
            Tensor x = onDevice(g.scope(), batch(g.scope(), data, idx, from, m, t));
            Var loss = model.loss(Var.constant(x), t);
            g.backward(loss);
            opt.update(cfg.lr, 0);
            return F.item(loss) / LN2;
        }
    }

    /** Exact test negative log-likelihood in bits per dimension over the first n images of {@code test}. */
    public double bitsPerDim(ImageData test, int n) {
        if (n < 1 || n > test.n) throw new IllegalArgumentException("bitsPerDim: n " + n + " outside [1, " + test.n + "]");
        double nats = 0;
        for (int from = 0; from < n; from += 100) {
            int m = Math.min(100, n - from);
            try (Graph g = Graph.inference(); Arena a = Arena.ofConfined()) {
                MemorySegment t = a.allocate(4L * m * test.h * test.w, 4);
                Tensor x = onDevice(g.scope(), batch(g.scope(), test, null, from, m, t));
                nats += F.item(model.loss(Var.constant(x), t)) * (double) m * test.h * test.w;   // inference: no gradient, logits kept
            }
        }
        return nats / ((double) n * test.h * test.w) / LN2;
    }

    /** Training, a test evaluation, sample grid and checkpoint after each epoch; returns the epochs' results. */
    public List<EpochResult> run() throws IOException { return run(0, false, Long.MAX_VALUE); }

    /**
     * The run on {@link TrainLoop}: {@code steps} Adam steps in all (0: the config's epochs of full passes), resumed
     * from the run folder's checkpoint when {@code resume}, stopping after {@code stopAt} steps. The shuffle is keyed by
     * the epoch the global step falls in, so N steps and k steps resumed to N give the same weights, bit for bit. An
     * epoch's test evaluation, sample grid and checkpoint come at each full pass over the training set and at the last
     * step; a resumed epoch's train bits/dim averages the steps this process ran.
     */
    public List<EpochResult> run(long steps, boolean resume, long stopAt) throws IOException {
        if (steps < 0) throw new IllegalArgumentException("steps must be >= 0, got " + steps);
        try (var p = dev.latent.io.Provenance.training("pixelcnn", cfg.seed(), cfg.toMap(), cfg.out()).use()) {
            return runWithProvenance(steps, resume, stopAt);
        }
    }

    private List<EpochResult> runWithProvenance(long steps, boolean resume, long stopAt) throws IOException {
        ImageData train0 = ImageData.load(cfg.data, "train"), test = ImageData.load(cfg.data, "test");
        if (cfg.trainLimit > 0) train0 = train0.head(Math.min(cfg.trainLimit, train0.n));
        ImageData train = train0;
        int nTest = cfg.testLimit > 0 ? Math.min(cfg.testLimit, test.n) : test.n;
        if (train.h != 28 || train.w != 28 || test.h != 28 || test.w != 28)
            throw new IOException(train.source + ": the PixelCNN commands are for 28 x 28 images, got " + train.h + "x" + train.w + " (test "
                    + test.h + "x" + test.w + ")");
        List<EpochResult> results = new ArrayList<>();
        EpochFamily family = new EpochFamily(checkpoint(), cfg.lr, train.n, cfg.batch, steps, cfg.epochs, cfg.seed, PERM, cfg.logEvery,
                s -> step = s) {
            @Override protected double trainBatch(int[] perm, int from, int m) { return trainStep(train, perm, from, m); }

            @Override protected TrainLoop.StepResult stepResult(long s, int ep, double l) {
                Map<String, Object> rec = new LinkedHashMap<>();
                rec.put("epoch", ep); rec.put("bits_per_dim", l);
                return new TrainLoop.StepResult(l, "the bits/dim", String.format(Locale.ROOT, "%.4f bits/dim", l), rec);
            }

            @Override protected void endOfEpoch(long done, int ep, double trainBpd, double secs, double imagesPerSecond, TrainLoop.Run run)
                    throws IOException {
                double bpd = bitsPerDim(test, nTest);
                EpochResult r = new EpochResult(ep, trainBpd, bpd, secs, imagesPerSecond);
                results.add(r);
                Map<String, Object> rec = new LinkedHashMap<>();
                rec.put("epoch", ep); rec.put("train_bits_per_dim", r.trainBitsPerDim); rec.put("test_bits_per_dim", bpd); rec.put("n_test", nTest);
                rec.put("epoch_seconds", secs); rec.put("images_per_s", r.imagesPerSecond);
                run.evaluation(done, String.format(Locale.ROOT, "epoch %d: train %.4f bits/dim, test %.4f bits/dim (%d images), %.1f img/s", ep,
                        r.trainBitsPerDim, bpd, nTest, r.imagesPerSecond), rec);
                if (cfg.samples > 0) {
                    Path samples = cfg.out.resolve(String.format(Locale.ROOT, "samples-epoch-%03d.png", ep));
                    writeSamples(samples, cfg.samples, cfg.sampleSeed, train.h, train.w);
                    listener.onSample(samples, step);
                }
            }
        };
        TrainLoop.run(family, new TrainLoop.Options(cfg.out, family.total(), stopAt, resume, 0, listener, cfg.quiet));
        family.plotCurve(listener, cfg.out, "PixelCNN training bits/dim", "bits per dimension", "bits/dim");
        return results;
    }

    /**
     * n samples ({@code seed}) of h x w as a PNG grid: on the CPU the cached sampler, on CUDA {@link DevicePixelCnnSampler}
     * (the same uniforms and draw rule: the same bytes wherever the devices' logits do not straddle a draw's boundary).
     */
    public void writeSamples(Path file, int n, long seed, int h, int w) throws IOException {
        byte[] px = sample(n, h, w, seed);
        try (Scope s = Scope.confined()) {
            Tensor t = Tensor.empty(s, n, 1, h, w);
            for (int i = 0; i < px.length; i++) t.segment().setAtIndex(JAVA_FLOAT, i, (px[i] & 0xff) / 255f);
            int cols = (int) Math.ceil(Math.sqrt(n));
            ImageGrid.write(file, t, (n + cols - 1) / cols, cols, 0f, 1f, 0);
        }
    }

    /** n images of h x w from {@code seed} where the model lives: the CPU's cached sampler, or on CUDA {@link DevicePixelCnnSampler}. */
    public byte[] sample(int n, int h, int w, long seed) {
        return device == dev.latent.tensor.Device.CUDA ? new DevicePixelCnnSampler(model).sample(n, h, w, seed)
                : new PixelCnnSampler(model).sample(n, h, w, seed, PixelCnnSampler.Mode.CACHED);
    }

    /** The checkpoint: weights, Adam's state, the format and the config. */
    private EpochFamily.Checkpoint checkpoint() {
        return new EpochFamily.Checkpoint("pixelcnn", model::namedParameters, opt, FORMAT, cfg::toMap, precision);
    }

    /**
     * Writes the weights, Adam's state, the step and the config (the checkpoint {@code --resume} reads; atomic: a
     * temporary file and a rename). The layout is {@link TrainLoop}'s: the same tensors as the format's first
     * checkpoints, plus the metadata {@code opt.step} (a checkpoint without it resumes with Adam's step = "step").
     */
    public void save(Path file) throws IOException {
        TrainLoop.save(file, checkpoint().saveOnly(), step);
    }

    private static int intField(Path f, Map<String, Object> c, String key) throws IOException {
        Object v = c.get(key);
        if (!(v instanceof Long l) || l < 1 || l > 1 << 20) throw new IOException(f + ": config " + key + " = " + Json.value(v) + ", expected an integer in [1, 2^20]");
        return l.intValue();
    }

    /** A trainer holding a checkpoint's model (a run folder or the file itself), for eval and sampling. */
    public static PixelCnnTrainer load(Path dirOrFile, Scope scope) throws IOException { return load(dirOrFile, scope, dev.latent.tensor.Device.CPU); }

    /**
     * As {@link #load(Path, Scope)} with the model on {@code device} (issue 18: {@code sample|eval pixelcnn --device
     * cuda}): built on the CPU, moved there, and the checkpoint's tensors assigned on it. {@link #bitsPerDim} then runs
     * there and {@link #writeSamples} draws with {@link DevicePixelCnnSampler}.
     */
    public static PixelCnnTrainer load(Path dirOrFile, Scope scope, dev.latent.tensor.Device device) throws IOException {
        Objects.requireNonNull(device, "device");
        EpochFamily.Saved saved = EpochFamily.Saved.read(dirOrFile, FORMAT, "PixelCNN", scope);
        Path f = saved.file();
        SafeTensors.Loaded l = saved.loaded();
        Map<String, Object> c = saved.config();
        GatedPixelCnn.Arch arch;
        Config cfg;
        try {
            arch = new GatedPixelCnn.Arch(intField(f, c, "channels"), intField(f, c, "layers"), intField(f, c, "first_kernel"), intField(f, c, "kernel"),
                    intField(f, c, "head"));
            Config d = Config.reference(String.valueOf(c.get("data")), f.getParent());
            cfg = new Config(d.data(), d.out(), arch, d.epochs(), d.batch(), d.lr(), c.get("seed") instanceof Long s ? s : 1, 0, 0, d.samples(),
                    d.sampleSeed(), d.logEvery(), true);
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad config: " + e.getMessage());
        }
        long held = 0;
        for (Tensor x : l.tensors().values()) held += x.numel();
        long needed = (long) arch.channels() * arch.channels() * arch.layers();
        if (needed > held) throw new IOException(f + ": config " + arch + " cannot fit the " + held + " floats the file holds");
        PixelCnnTrainer t = new PixelCnnTrainer(cfg, scope, device);
        for (var e : t.model.namedParameters().entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null) throw new IOException(f + ": missing tensor " + e.getKey());
            if (!java.util.Arrays.equals(src.shape(), e.getValue().shape()))
                throw new IOException(f + ": tensor " + e.getKey() + " has shape " + java.util.Arrays.toString(src.shape()) + ", expected "
                        + java.util.Arrays.toString(e.getValue().shape()));
            long bad = Limits.nonFinite(src);
            if (bad > 0) throw new IOException(f + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite values (a diverged or damaged checkpoint)");
            dev.latent.nn.Init.assign(src, e.getValue().value());
        }
        t.step = saved.step();
        t.precision = dev.latent.train.TrainingPrecision.of(f, l.metadata());   /* read, not required: evaluation runs fp32 */
        return t;
    }
}
