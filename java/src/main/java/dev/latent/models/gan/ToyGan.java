package dev.latent.models.gan;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.nn.Module;
import dev.latent.ops.Kernels;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.StepScalars;
import dev.latent.train.TrainingPrecision;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The 2-D mode-coverage benchmark of VEEGAN and PacGAN (ring8, grid25), as ../shared/reference/toy_gan.py: MLP
 * generator and discriminator (4 x [Linear 128 + ReLU], PyTorch's default init), non-saturating GAN or WGAN-GP, and
 * the metrics: modes covered, % high-quality samples (within 3 sigma of the nearest mode), KL of the mode histogram
 * to uniform, median distance in sigmas.
 */
public final class ToyGan implements AutoCloseable {
    /** An equal-weight mixture of isotropic Gaussians in 2-D. */
    public record Dist(String name, double[][] modes, double sigma) {
        public static Dist of(String name) {
            return switch (name) {
                case "ring8" -> {
                    double[][] m = new double[8][];
                    for (int k = 0; k < 8; k++) m[k] = new double[] {2 * Math.cos(2 * Math.PI * k / 8), 2 * Math.sin(2 * Math.PI * k / 8)};
                    yield new Dist(name, m, 0.02);
                }
                case "grid25" -> {
                    double[][] m = new double[25][];
                    for (int i = 0; i < 5; i++) for (int j = 0; j < 5; j++) m[i * 5 + j] = new double[] {-4 + 2 * i, -4 + 2 * j};
                    yield new Dist(name, m, 0.05);
                }
                default -> throw new IllegalArgumentException("unknown distribution " + name + " (ring8 or grid25)");
            };
        }

        /** n samples (n, 2): mode uniform, plus sigma N(0, I), from Philox (seed, stream). */
        public Tensor sample(Scope scope, long seed, long stream, int n) {
            Tensor u = Tensor.rand(scope, seed, stream, n);
            Tensor e = Init.normal(scope, seed, stream + 1, sigma, n, 2);
            MemorySegment us = u.segment(), es = e.segment();
            for (int i = 0; i < n; i++) {
                int k = Math.min(modes.length - 1, (int) (us.getAtIndex(JAVA_FLOAT, i) * modes.length));
                es.setAtIndex(JAVA_FLOAT, 2L * i, (float) (modes[k][0] + es.getAtIndex(JAVA_FLOAT, 2L * i)));
                es.setAtIndex(JAVA_FLOAT, 2L * i + 1, (float) (modes[k][1] + es.getAtIndex(JAVA_FLOAT, 2L * i + 1)));
            }
            return e;
        }
    }

    /** in -> 4 x [Linear hidden + ReLU] -> Linear out. */
    public static final class Mlp implements Module {
        final Linear[] layers;

        public Mlp(Scope scope, int in, int hidden, int out, int depth, long seed, long stream) {
            layers = new Linear[depth + 1];
            for (int i = 0; i <= depth; i++) {
                int a = i == 0 ? in : hidden, b = i == depth ? out : hidden;
                layers[i] = new Linear(scope, Init.torchDefault(scope, seed, stream + 2L * i, a, b, a),
                        Init.torchDefault(scope, seed, stream + 2L * i + 1, a, b));
            }
        }

        public Var forward(Var x) {
            Var h = x;
            for (int i = 0; i < layers.length; i++) {
                h = layers[i].forward(h);
                if (i < layers.length - 1) h = F.relu(h);
            }
            return h;
        }

        @Override
        public void collect(String prefix, Map<String, Var> out) {
            for (int i = 0; i < layers.length; i++) layers[i].collect(prefix + i + ".", out);
        }
    }

    /** A 2-D run: the target mixture (ring8, grid25), GAN or WGAN-GP, steps, batch, MLP width, lr (cosine-decayed or not), critic steps and penalty weight, seed. */
    public record Config(String dist, boolean wgan, int steps, int batch, int hidden, float lr, boolean cosine, int nCritic,
                         float lambda, long seed) {
        public static Config defaults(String dist, boolean wgan) {
            return new Config(dist, wgan, wgan ? 1000 : 2000, 256, 128, 1e-3f, true, 5, 0.1f, 1);
        }
    }

    /** Coverage metrics of a sample set against a distribution. */
    public record Coverage(int modes, int modesAny, int nModes, double hqPct, Double klToUniform, double medianDistSigma) {
        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("modes", modes); m.put("modes_any", modesAny); m.put("n_modes", nModes); m.put("hq_pct", hqPct);
            m.put("kl_to_uniform", klToUniform); m.put("median_dist_sigma", medianDistSigma);
            return m;
        }
    }

    /** VEEGAN / PacGAN metrics: HQ = within 3 sigma of the nearest mode; a mode is covered with >= 20% of its fair share of HQ samples. */
    public static Coverage coverage(Dist dist, float[] xy) {
        int n = xy.length / 2, k = dist.modes.length;
        int[] count = new int[k];
        double[] dists = new double[n];
        int hq = 0;
        for (int i = 0; i < n; i++) {
            double best = Double.POSITIVE_INFINITY;
            int arg = 0;
            for (int m = 0; m < k; m++) {
                double dx = xy[2 * i] - dist.modes[m][0], dy = xy[2 * i + 1] - dist.modes[m][1], dd = Math.sqrt(dx * dx + dy * dy);
                if (dd < best) { best = dd; arg = m; }
            }
            dists[i] = Double.isNaN(best) ? Double.POSITIVE_INFINITY : best;
            if (best < 3 * dist.sigma) { hq++; count[arg]++; }
        }
        int need = (int) Math.ceil(0.2 * n / k), covered = 0, any = 0;
        for (int c : count) { if (c >= need) covered++; if (c > 0) any++; }
        Double kl = null;
        if (hq > 0) {
            double s = 0;
            for (int c : count) if (c > 0) { double p = (double) c / hq; s += p * Math.log(p * k); }
            kl = s;
        }
        Arrays.sort(dists);
        double median = n % 2 == 1 ? dists[n / 2] : 0.5 * (dists[n / 2 - 1] + dists[n / 2]);
        return new Coverage(covered, any, k, 100.0 * hq / n, kl, median / dist.sigma);
    }

    public final Config cfg;
    public final Dist dist;
    public final Mlp g, d;
    /** Where the nets train and sample: the CPU, or CUDA (issue 18: one API across families; the toys are far too small to gain from a GPU). */
    public final Device device;
    private final AdamW optG, optD;
    private final Scope params = Scope.shared();
    private StepScalars stepValues;   /* CUDA: a step's {lossD, lossG}, read back when asked */
    private Tensor keptD;             /* CUDA, WGAN-GP: the last critic step's loss, kept on the device */

    public ToyGan(Config cfg) { this(cfg, Device.CPU); }

    /**
     * A run on {@code device}: the nets are built on the CPU (the same initial weights for any device), moved there, then
     * the optimizers made. Real points, latents and the penalty's mixing weights are drawn on the host from Philox (the
     * same bits for any device) and go up asynchronously from page-locked staging; a step's losses stay on the device
     * until read ({@link #stepDeferred}). {@link #close} frees the nets and the optimizer state.
     */
    public ToyGan(Config cfg, Device device) {
        this.cfg = cfg;
        this.dist = Dist.of(cfg.dist);
        this.device = Objects.requireNonNull(device, "device");
        g = new Mlp(params, 2, cfg.hidden, 2, 4, cfg.seed, 100);
        d = new Mlp(params, 2, cfg.hidden, 1, 4, cfg.seed, 200);
        if (device != Device.CPU) {
            g.to(params, device);
            d.to(params, device);
        }
        float b1 = 0.5f, b2 = cfg.wgan ? 0.9f : 0.999f;
        optG = new AdamW(params, g.namedParameters(), b1, b2, 1e-8f, 0f);
        optD = new AdamW(params, d.namedParameters(), b1, b2, 1e-8f, 0f);
    }

    private static final long REAL = 1L << 40, LAT = 2L << 40, EPS = 3L << 40;

    private float lr(int t) {
        return cfg.cosine ? (float) (cfg.lr * 0.5 * (1 + Math.cos(Math.PI * (t - 1) / cfg.steps))) : cfg.lr;
    }

    private Precision precision = Precision.FP32;

    /**
     * Operand precision of the training steps' linear layers (issues 15, 18): BF16 runs them through lt_gemm_bf16 on the
     * CPU (operands rounded to bf16, fp32 sums; AVX512_BF16 only), on CUDA through the bf16 GEMM; TF32 on CUDA only.
     * WGAN-GP's penalty differentiates through the reduced-precision matmuls' backward; activations, the losses,
     * reductions, master weights and Adam's state stay fp32, and sampling runs fp32. Where it cannot run, an exception
     * naming why.
     */
    public ToyGan precision(Precision p) {
        this.precision = TrainingPrecision.requireRunnable("toy-gan", p, device, true);
        return this;
    }

    /** The training precision set (FP32 by default). */
    public Precision precision() { return precision; }

    /** Trains for cfg.steps generator steps; returns the last step's {lossD, lossG} (on CUDA read once, at the end). */
    public double[] train() {
        StepScalars.Values last = null;
        for (int t = 1; t <= cfg.steps; t++) last = stepDeferred(t);
        return last == null ? new double[] {Double.NaN, Double.NaN} : new double[] {last.get(0), last.get(1)};
    }

    /**
     * Generator step t (1-based; WGAN-GP: cfg.nCritic critic steps first) without reading its losses: {@code get(0)} of
     * the result is lossD (the last critic step's), {@code get(1)} lossG. On CUDA they stay on the device until read (one
     * copy for both; read them before the next step), so the step makes no host synchronisation.
     */
    public StepScalars.Values stepDeferred(int t) { return cfg.wgan ? wganStep(t) : ganStep(t); }

    /** t on this run's device (made on the host: the same bits for any device). */
    private Tensor onDevice(Scope s, Tensor t) { return t.device() == device ? t : t.to(s, device); }

    /** CUDA: lossD and lossG (one-element device tensors) into the step's values, nothing read back yet. */
    private StepScalars.Values keep(Tensor lossD, Tensor lossG) {
        if (stepValues == null) stepValues = new StepScalars(params, device, 2);
        return stepValues.capture(lossD.reshape(1), lossG.reshape(1));
    }

    StepScalars.Values ganStep(int t) {
        try (Graph gr = Graph.open().precision(precision)) {
            Var real = Var.constant(onDevice(gr.scope(), dist.sample(gr.scope(), cfg.seed, REAL + 4L * t, cfg.batch)));
            Var fake = g.forward(Var.constant(onDevice(gr.scope(), Init.normal(gr.scope(), cfg.seed, LAT + t, 1.0, cfg.batch, 2))));
            Var lossD = F.add(F.bceWithLogits(d.forward(real), 1f), F.bceWithLogits(d.forward(F.detach(fake)), 0f));
            gr.backward(lossD);
            optD.update(lr(t), 0);
            for (Var p : d.parameters()) p.zeroGrad();
            Var lossG = F.bceWithLogits(d.forward(fake), 1f);
            gr.freeze(d.parameters());
            gr.backward(lossG);
            optG.update(lr(t), 0);
            if (device == Device.CPU) return StepScalars.Values.known(F.item(lossD), F.item(lossG));
            return keep(lossD.value(), lossG.value());
        }
    }

    StepScalars.Values wganStep(int t) {
        float lossD = Float.NaN;
        if (device != Device.CPU && keptD == null) keptD = Tensor.of(params, device, new float[] {Float.NaN}, 1);
        for (int j = 0; j < cfg.nCritic; j++) {
            long s = (long) t * cfg.nCritic + j;
            try (Graph gr = Graph.open().precision(precision)) {
                Tensor realT = onDevice(gr.scope(), dist.sample(gr.scope(), cfg.seed, REAL + 4L * s, cfg.batch));
                Tensor fakeT = g.forward(Var.constant(onDevice(gr.scope(), Init.normal(gr.scope(), cfg.seed, LAT + s, 1.0, cfg.batch, 2)))).value();
                Var xHat = Var.input(mix(gr, realT, fakeT, s));
                Var grad = gr.gradient(F.sum(d.forward(xHat)), xHat);
                Var dev = F.addScalar(F.sqrt(F.addScalar(F.rowSum(F.mul(grad, grad)), 1e-12f)), -1f);
                Var loss = F.add(F.sub(F.mean(d.forward(Var.constant(fakeT))), F.mean(d.forward(Var.constant(realT)))),
                        F.scale(F.mean(F.mul(dev, dev)), cfg.lambda));
                gr.backward(loss);
                optD.update(lr(t), 0);
                if (device == Device.CPU) lossD = F.item(loss);
                else Kernels.copy(loss.value().reshape(1), keptD);   /* kept on the device (a device-to-device copy) until read */
            }
        }
        try (Graph gr = Graph.open().precision(precision)) {
            Var loss = F.scale(F.mean(d.forward(g.forward(Var.constant(onDevice(gr.scope(),
                    Init.normal(gr.scope(), cfg.seed, LAT + (1L << 39) + t, 1.0, cfg.batch, 2)))))), -1f);
            gr.freeze(d.parameters());
            gr.backward(loss);
            optG.update(lr(t), 0);
            if (device == Device.CPU) return StepScalars.Values.known(lossD, F.item(loss));
            return keep(keptD, loss.value());
        }
    }

    /**
     * The penalty's points e real + (1 - e) fake, e ~ U(0, 1) per point from Philox (seed, EPS + s), with the same float
     * roundings on every device (each product, then the sum): on the host as before, on CUDA e and 1 - e made on the host
     * and broadcast over the point's two coordinates on the device.
     */
    private Tensor mix(Graph gr, Tensor realT, Tensor fakeT, long s) {
        int b = cfg.batch;
        Tensor e = Tensor.rand(gr.scope(), cfg.seed, EPS + s, b);
        if (device == Device.CPU) {
            Tensor xh = Tensor.empty(gr.scope(), b, 2);
            MemorySegment rs = realT.segment(), fs = fakeT.segment(), es = e.segment(), xs = xh.segment();
            for (int i = 0; i < 2 * b; i++) {
                float a = es.getAtIndex(JAVA_FLOAT, i / 2);
                xs.setAtIndex(JAVA_FLOAT, i, a * rs.getAtIndex(JAVA_FLOAT, i) + (1 - a) * fs.getAtIndex(JAVA_FLOAT, i));
            }
            return xh;
        }
        float[] a = e.toArray(), am = new float[b];
        for (int i = 0; i < b; i++) am[i] = 1 - a[i];
        long[] bs = {1, b, 2};
        Var va = F.channelBroadcast(Var.constant(Tensor.of(gr.scope(), device, a, b)), bs);
        Var vb = F.channelBroadcast(Var.constant(Tensor.of(gr.scope(), device, am, b)), bs);
        Var r = Var.constant(realT.reshape(bs)), f = Var.constant(fakeT.contiguous().reshape(bs));
        return F.add(F.mul(va, r), F.mul(vb, f)).value().reshape(b, 2);
    }

    /**
     * n samples from G with z from Philox (sampleSeed): (n, 2) as a float array. G runs on the run's device (z drawn on
     * the host, the same bits for any device); the points come back in one copy.
     */
    public float[] sample(int n, long sampleSeed) {
        try (Graph gr = Graph.inference()) {
            return g.forward(Var.constant(onDevice(gr.scope(), Init.normal(gr.scope(), sampleSeed, 0, 1.0, n, 2)))).value().toArray();
        }
    }

    /** The coverage metrics of n samples ({@link #sample}: drawn on the run's device) against the target mixture. */
    public Coverage coverage(int n, long sampleSeed) { return coverage(dist, sample(n, sampleSeed)); }

    /** Frees the nets and the optimizer state (device memory on CUDA). */
    @Override
    public void close() { params.close(); }
}
