package dev.latent.models.flow;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.io.AtomicFiles;
import dev.latent.io.Png;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.StepScalars;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * RealNVP on 2-D toy densities (two moons, rings) for pictures: K affine couplings with alternating masks
 * [1, 0] / [0, 1] through the same fused coupling kernel as the image model, MLP nets 2 -> H -> H -> 4 (the last
 * zero-initialised), standard-normal prior. Writes a density heat map (log p on a grid) and a sample scatter.
 */
public final class ToyFlow {
    /** A 2-D run: the target distribution (moons, rings), coupling layers, hidden width, steps, batch, learning rate, seed. */
    public record Config(String dist, int couplings, int hidden, int steps, int batch, float lr, long seed) {
        public static Config defaults(String dist) { return new Config(dist, 8, 64, 2000, 256, 2e-3f, 1); }
    }

    public final Config cfg;
    /** Where the flow trains, evaluates and samples: the CPU, or CUDA (issue 18: one API across families; far too small to gain from a GPU). */
    public final Device device;
    final Linear[][] nets;
    final Var[] scales;
    final Tensor[] masks;
    private final AdamW opt;
    private final java.util.Map<String, Var> params;
    private final Scope scope;                 /* the model's */
    private final Tensor[] trainMasks;         /* CUDA: the two (batch, 2) masks of a training batch, made once */
    private StepScalars losses;                /* CUDA: a step's NLL, read back when asked */

    public ToyFlow(Config cfg, Scope scope) { this(cfg, scope, Device.CPU); }

    /**
     * A flow on {@code device}: built on the CPU (the same initial weights for any device), its parameters and masks
     * moved there before the optimizer is made. Training batches, evaluation points and the picture's grid are made on
     * the host from Philox (the same bits for any device) and go up asynchronously from page-locked staging; the
     * couplings run on the device (ltk_coupling_*_ds: the learned scale read there).
     */
    public ToyFlow(Config cfg, Scope scope, Device device) {
        if (!cfg.dist.equals("moons") && !cfg.dist.equals("rings")) throw new IllegalArgumentException("unknown toy density " + cfg.dist + " (moons or rings)");
        this.cfg = cfg;
        this.device = Objects.requireNonNull(device, "device");
        this.scope = scope;
        nets = new Linear[cfg.couplings][3];
        scales = new Var[cfg.couplings];
        masks = new Tensor[cfg.couplings];
        params = new java.util.LinkedHashMap<>();
        for (int k = 0; k < cfg.couplings; k++) {
            long st = 50L * (k + 1);
            int hd = cfg.hidden;
            nets[k][0] = new Linear(scope, Init.torchDefault(scope, cfg.seed, st, 2, hd, 2), Init.torchDefault(scope, cfg.seed, st + 1, 2, hd));
            nets[k][1] = new Linear(scope, Init.torchDefault(scope, cfg.seed, st + 2, hd, hd, hd), Init.torchDefault(scope, cfg.seed, st + 3, hd, hd));
            nets[k][2] = new Linear(scope, Init.constant(scope, 0f, 4, hd), Init.constant(scope, 0f, 4));
            scales[k] = Var.param(Init.constant(scope, 1f, 1));
            masks[k] = Tensor.of(scope, k % 2 == 0 ? new float[] {1, 0} : new float[] {0, 1}, 2);
            for (int l = 0; l < 3; l++) nets[k][l].collect("c" + k + ".n" + l + ".", params);
            params.put("c" + k + ".scale", scales[k]);
        }
        if (device != Device.CPU) {
            for (Var p : params.values()) p.to(scope, device);
            for (int k = 0; k < cfg.couplings; k++) masks[k] = masks[k].to(scope, device);
            try (Scope tmp = Scope.confined()) {
                trainMasks = new Tensor[] {hostBatchMask(tmp, 0, cfg.batch).to(scope, device), hostBatchMask(tmp, 1, cfg.batch).to(scope, device)};
            }
        } else {
            trainMasks = null;
        }
        opt = new AdamW(scope, params, 0.9f, 0.999f, 1e-8f, 0f);
    }

    /** n points of the toy density from Philox (seed, stream). */
    public Tensor sampleData(Scope s, long seed, long stream, int n) {
        Tensor u = Tensor.rand(s, seed, stream, n), e = Init.normal(s, seed, stream + 1, 1.0, n, 2), x = Tensor.empty(s, n, 2);
        for (int i = 0; i < n; i++) {
            double a = u.segment().getAtIndex(JAVA_FLOAT, i), px, py;
            double ex = e.segment().getAtIndex(JAVA_FLOAT, 2L * i), ey = e.segment().getAtIndex(JAVA_FLOAT, 2L * i + 1);
            if (cfg.dist.equals("moons")) {
                boolean upper = a < 0.5;
                double t = Math.PI * (upper ? a * 2 : (a - 0.5) * 2);
                px = upper ? Math.cos(t) : 1 - Math.cos(t);
                py = upper ? Math.sin(t) : 0.5 - Math.sin(t);
                px = (px - 0.5) * 2 + 0.1 * ex;
                py = (py - 0.25) * 2 + 0.1 * ey;
            } else {
                int ring = (int) Math.min(2, a * 3);
                double t = 2 * Math.PI * (a * 3 - ring), r = 1.0 + ring;
                px = r * Math.cos(t) + 0.08 * ex;
                py = r * Math.sin(t) + 0.08 * ey;
            }
            x.segment().setAtIndex(JAVA_FLOAT, 2L * i, (float) px);
            x.segment().setAtIndex(JAVA_FLOAT, 2L * i + 1, (float) py);
        }
        return x;
    }

    Var net(int k, Var masked) {
        Var h = F.relu(nets[k][0].forward(masked));
        h = F.relu(nets[k][1].forward(h));
        return F.reshape(nets[k][2].forward(h), masked.shape()[0], 2, 2);   // (n, [s, t], 2 dims)
    }

    /** Coupling k's mask [1, 0] or [0, 1] repeated over n points, on the flow's device. */
    Tensor batchMask(int k, long n) {
        if (device == Device.CPU) return hostBatchMask(Graph.current().scope(), k, n);
        if (n == cfg.batch) return trainMasks[k % 2];
        return hostBatchMask(Graph.current().scope(), k, n).to(Graph.current().scope(), device);
    }

    private static Tensor hostBatchMask(Scope s, int k, long n) {
        Tensor m = Tensor.empty(s, n, 2);
        float a = k % 2 == 0 ? 1 : 0;
        for (long i = 0; i < n; i++) {
            m.segment().setAtIndex(JAVA_FLOAT, 2 * i, a);
            m.segment().setAtIndex(JAVA_FLOAT, 2 * i + 1, 1 - a);
        }
        return m;
    }

    /** t on the flow's device (made on the host: the same bits for any device). */
    private Tensor onDevice(Scope s, Tensor t) { return t.device() == device ? t : t.to(s, device); }

    /** Per-point log-density log p(x) (n), differentiable. */
    public Var logProb(Var x) {
        long n = x.shape()[0];
        Var y = x, ld = null;
        for (int k = 0; k < cfg.couplings; k++) {
            F.Coupling c = F.coupling(y, net(k, F.mul(y, Var.constant(batchMask(k, n)))), scales[k], masks[k]);
            y = c.out();
            ld = ld == null ? c.logdet() : F.add(ld, c.logdet());
        }
        // log N(y) = -0.5 |y|^2 - log 2 pi, per point
        Var quad = F.reshape(F.rowSum(F.mul(y, y)), n);
        return F.addScalar(F.sub(ld, F.scale(quad, 0.5f)), (float) -Math.log(2 * Math.PI));
    }

    /**
     * Inverse pass: x from z (n, 2), on the flow's device (z moved there when it is elsewhere). On CUDA each coupling's
     * learned scale is read back once (a 4-byte copy per coupling: F.couplingInverse takes it by value).
     */
    public Tensor inverse(Tensor z) {
        long n = z.size(0);
        Tensor y = onDevice(Graph.current().scope(), z);
        for (int k = cfg.couplings - 1; k >= 0; k--) {
            Tensor masked = Graph.current().empty(device, n, 2);
            dev.latent.ops.Kernels.mul(y, batchMask(k, n), masked);
            float sc = device == Device.CPU ? scales[k].value().segment().get(JAVA_FLOAT, 0) : scales[k].value().toArray()[0];
            y = F.couplingInverse(y, net(k, Var.constant(masked)).value(), sc, masks[k]);
        }
        return y;
    }

    /** Trains; returns the final mean negative log-likelihood (nats per point) on a fresh batch. */
    public double train() {
        double last = Double.NaN;
        for (int t = 1; t <= cfg.steps; t++) last = step(t);
        return last;
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' coupling MLPs (issue 15): BF16 runs their linear layers through
     * lt_gemm_bf16 (operands rounded to bf16, fp32 sums; CPU with AVX512_BF16), on CUDA TF32 and BF16 (issue 18: the
     * GEMMs at the precision); the affine couplings, log-determinants, the NLL, master weights and Adam's state stay fp32,
     * and evaluation and sampling run fp32. Where it cannot run, an exception naming why. {@link #run}'s checkpoint
     * records it (metadata "precision"); a resume must ask the same.
     */
    public ToyFlow precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable("flow-toy", p, device, true);
        return this;
    }

    /** The parameters by their checkpoint names (on the flow's device), in creation order. */
    public java.util.Map<String, Var> namedParameters() { return java.util.Collections.unmodifiableMap(params); }

    /** The training precision set (FP32 by default). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /** Adam step t (1-based): a fresh batch from Philox (seed, 4t); returns its mean NLL before the step. */
    private double step(long t) { return stepDeferred(t).get(0); }

    /**
     * Adam step t (1-based) without reading its loss: {@code get(0)} of the result is the batch's mean NLL before the
     * step, which on CUDA stays on the device until read (one copy; read it before the next step), so the step makes
     * no host synchronisation.
     */
    public StepScalars.Values stepDeferred(long t) {
        try (Graph g = Graph.open().precision(precision)) {
            Var nll = F.scale(F.mean(logProb(Var.constant(onDevice(g.scope(), sampleData(g.scope(), cfg.seed, 4L * t, cfg.batch))))), -1f);
            g.backward(nll);
            opt.update(cfg.lr, 0);
            if (device == Device.CPU) return StepScalars.Values.known(F.item(nll));
            if (losses == null) losses = new StepScalars(scope, device, 1);
            return losses.capture(nll.value().reshape(1));
        }
    }

    /** The checkpoint's format (metadata "format"). */
    static final String FORMAT = "latent-flow-toy-1";

    /**
     * {@link #train} on {@link dev.latent.train.TrainLoop} into the run folder {@code out}: metrics.jsonl (the NLL every
     * {@code logEvery} steps), a checkpoint (weights, Adam's state, the step) at the end and every {@code checkpointEvery}
     * steps (0: only at the end); {@code resume} continues from {@code out}'s checkpoint, {@code stopAt} stops early.
     * Each step's batch is keyed by the step, so N steps and k steps resumed to N end with the same bits (the same as
     * {@link #train}'s). Returns the steps done.
     */
    public long run(Path out, boolean resume, long stopAt, int logEvery, long checkpointEvery, dev.latent.train.TrainingListener listener,
                      boolean quiet) throws IOException {
        if (logEvery < 1) throw new IllegalArgumentException("logEvery must be >= 1, got " + logEvery);
        dev.latent.train.TrainLoop.Family family = new dev.latent.train.TrainLoop.Family() {
            @Override public String name() { return "flow-toy"; }
            @Override public java.util.Map<String, Var> parameters() { return params; }
            @Override public java.util.Map<String, AdamW> optimizers() { return java.util.Map.of("opt", opt); }
            @Override public java.util.Map<String, String> metadata() {
                java.util.Map<String, Object> c = new java.util.LinkedHashMap<>();
                c.put("dist", cfg.dist); c.put("couplings", cfg.couplings); c.put("hidden", cfg.hidden); c.put("steps", cfg.steps);
                c.put("batch", cfg.batch); c.put("lr", cfg.lr); c.put("seed", cfg.seed);
                return java.util.Map.of("format", FORMAT, "config", dev.latent.io.Json.object(c), dev.latent.train.TrainingPrecision.KEY, precision.id());
            }
            @Override public String divergenceHint() { return "lower the learning rate (" + cfg.lr + ")"; }
            @Override public boolean logAt(long done) { return done % logEvery == 0 || done == cfg.steps; }

            @Override public dev.latent.train.TrainLoop.StepResult step(long s) {
                double l = ToyFlow.this.step(s + 1);
                return new dev.latent.train.TrainLoop.StepResult(l, "the NLL", String.format(java.util.Locale.ROOT, "NLL %.4f", l),
                        java.util.Map.of("nll", l));
            }
        };
        return dev.latent.train.TrainLoop.run(family, new dev.latent.train.TrainLoop.Options(out, cfg.steps, stopAt, resume, checkpointEvery, listener, quiet));
    }

    /** Mean NLL (nats per point) of n fresh points (Philox seed 1234), computed on the flow's device (one copy back). */
    public double evalNll(int n) {
        try (Graph g = Graph.inference()) {
            return -F.item(F.mean(logProb(Var.constant(onDevice(g.scope(), sampleData(g.scope(), 1234, 1L << 40, n))))));
        }
    }

    /** On the flow's device: heat map of p(x) on [-3, 3]^2 (size x size pixels, gray, brighter = denser) and a scatter of n samples beside it. */
    public void writePictures(Path dir, int size, int n) throws IOException {
        Files.createDirectories(dir);
        float[] lp;
        try (Graph g = Graph.inference()) {
            Tensor grid = g.empty((long) size * size, 2);
            for (int r = 0; r < size; r++)
                for (int c = 0; c < size; c++) {
                    grid.segment().setAtIndex(JAVA_FLOAT, 2L * (r * size + c), (float) (-3 + 6.0 * (c + 0.5) / size));
                    grid.segment().setAtIndex(JAVA_FLOAT, 2L * (r * size + c) + 1, (float) (3 - 6.0 * (r + 0.5) / size));
                }
            lp = logProb(Var.constant(onDevice(g.scope(), grid))).value().toArray();
        }
        double mx = Double.NEGATIVE_INFINITY;
        for (float v : lp) mx = Math.max(mx, v);
        Png.Image heat = Png.Image.grey(size, size);
        for (int i = 0; i < lp.length; i++) heat.set(i % size, i / size, 0, (int) Math.round(255 * Math.exp(lp[i] - mx)));
        write(heat, dir.resolve("density.png"));
        Png.Image sc = Png.Image.grey(size, size);
        try (Graph g = Graph.inference()) {
            float[] xs = inverse(Init.normal(g.scope(), 99, 0, 1.0, n, 2)).toArray();
            for (int i = 0; i < n; i++) {
                int c = (int) ((xs[2 * i] + 3) / 6 * size), r = (int) ((3 - xs[2 * i + 1]) / 6 * size);
                if (c >= 0 && c < size && r >= 0 && r < size) sc.set(c, r, 0, 255);
            }
        }
        write(sc, dir.resolve("samples.png"));
    }

    private static void write(Png.Image img, Path file) throws IOException {
        AtomicFiles.writePng(file, img);
    }
}
