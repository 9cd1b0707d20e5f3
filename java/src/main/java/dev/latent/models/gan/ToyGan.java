package dev.latent.models.gan;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.nn.Module;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The 2-D mode-coverage benchmark of VEEGAN and PacGAN (ring8, grid25), as ../shared/reference/toy_gan.py: MLP
 * generator and discriminator (4 x [Linear 128 + ReLU], PyTorch's default init), non-saturating GAN or WGAN-GP, and
 * the metrics: modes covered, % high-quality samples (within 3 sigma of the nearest mode), KL of the mode histogram
 * to uniform, median distance in sigmas.
 */
public final class ToyGan {
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
    private final AdamW optG, optD;
    private final Scope params = Scope.shared();

    public ToyGan(Config cfg) {
        this.cfg = cfg;
        this.dist = Dist.of(cfg.dist);
        g = new Mlp(params, 2, cfg.hidden, 2, 4, cfg.seed, 100);
        d = new Mlp(params, 2, cfg.hidden, 1, 4, cfg.seed, 200);
        float b1 = 0.5f, b2 = cfg.wgan ? 0.9f : 0.999f;
        optG = new AdamW(params, g.namedParameters(), b1, b2, 1e-8f, 0f);
        optD = new AdamW(params, d.namedParameters(), b1, b2, 1e-8f, 0f);
    }

    private static final long REAL = 1L << 40, LAT = 2L << 40, EPS = 3L << 40;

    private float lr(int t) {
        return cfg.cosine ? (float) (cfg.lr * 0.5 * (1 + Math.cos(Math.PI * (t - 1) / cfg.steps))) : cfg.lr;
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of the training steps' linear layers (issue 15): BF16 runs them through lt_gemm_bf16 (operands
     * rounded to bf16, fp32 sums), WGAN-GP's penalty differentiating through the bf16 matmuls' backward; activations,
     * the losses, reductions, master weights and Adam's state stay fp32, and sampling runs fp32. CPU with AVX512_BF16
     * only: elsewhere an exception naming why.
     */
    public ToyGan precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable("toy-gan", p, dev.latent.tensor.Device.CPU);
        return this;
    }

    /** Trains for cfg.steps generator steps; returns the last step's {lossD, lossG}. */
    public double[] train() {
        double[] last = {Double.NaN, Double.NaN};
        for (int t = 1; t <= cfg.steps; t++) last = cfg.wgan ? wganStep(t) : ganStep(t);
        return last;
    }

    double[] ganStep(int t) {
        try (Graph gr = Graph.open().precision(precision)) {
            Var real = Var.constant(dist.sample(gr.scope(), cfg.seed, REAL + 4L * t, cfg.batch));
            Var fake = g.forward(Var.constant(Init.normal(gr.scope(), cfg.seed, LAT + t, 1.0, cfg.batch, 2)));
            Var lossD = F.add(F.bceWithLogits(d.forward(real), 1f), F.bceWithLogits(d.forward(F.detach(fake)), 0f));
            gr.backward(lossD);
            optD.update(lr(t), 0);
            for (Var p : d.parameters()) p.zeroGrad();
            Var lossG = F.bceWithLogits(d.forward(fake), 1f);
            gr.freeze(d.parameters());
            gr.backward(lossG);
            optG.update(lr(t), 0);
            return new double[] {F.item(lossD), F.item(lossG)};
        }
    }

    double[] wganStep(int t) {
        double lossD = Double.NaN;
        for (int j = 0; j < cfg.nCritic; j++) {
            long s = (long) t * cfg.nCritic + j;
            try (Graph gr = Graph.open().precision(precision)) {
                Tensor realT = dist.sample(gr.scope(), cfg.seed, REAL + 4L * s, cfg.batch);
                Tensor fakeT = g.forward(Var.constant(Init.normal(gr.scope(), cfg.seed, LAT + s, 1.0, cfg.batch, 2))).value();
                Tensor e = Tensor.rand(gr.scope(), cfg.seed, EPS + s, cfg.batch);
                Tensor xh = Tensor.empty(gr.scope(), cfg.batch, 2);
                MemorySegment rs = realT.segment(), fs = fakeT.segment(), es = e.segment(), xs = xh.segment();
                for (int i = 0; i < 2 * cfg.batch; i++) {
                    float a = es.getAtIndex(JAVA_FLOAT, i / 2);
                    xs.setAtIndex(JAVA_FLOAT, i, a * rs.getAtIndex(JAVA_FLOAT, i) + (1 - a) * fs.getAtIndex(JAVA_FLOAT, i));
                }
                Var xHat = Var.input(xh);
                Var grad = gr.gradient(F.sum(d.forward(xHat)), xHat);
                Var dev = F.addScalar(F.sqrt(F.addScalar(F.rowSum(F.mul(grad, grad)), 1e-12f)), -1f);
                Var loss = F.add(F.sub(F.mean(d.forward(Var.constant(fakeT))), F.mean(d.forward(Var.constant(realT)))),
                        F.scale(F.mean(F.mul(dev, dev)), cfg.lambda));
                gr.backward(loss);
                optD.update(lr(t), 0);
                lossD = F.item(loss);
            }
        }
        try (Graph gr = Graph.open().precision(precision)) {
            Var loss = F.scale(F.mean(d.forward(g.forward(Var.constant(Init.normal(gr.scope(), cfg.seed, LAT + (1L << 39) + t, 1.0, cfg.batch, 2))))), -1f);
            gr.freeze(d.parameters());
            gr.backward(loss);
            optG.update(lr(t), 0);
            return new double[] {lossD, F.item(loss)};
        }
    }

    /** n samples from G with z from Philox (sampleSeed): (n, 2) as a float array. */
    public float[] sample(int n, long sampleSeed) {
        try (Graph gr = Graph.inference()) {
            return g.forward(Var.constant(Init.normal(gr.scope(), sampleSeed, 0, 1.0, n, 2))).value().toArray();
        }
    }
}
