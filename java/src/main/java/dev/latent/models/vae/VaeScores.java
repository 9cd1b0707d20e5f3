package dev.latent.models.vae;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.vae.VaeTrainer.Likelihood;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Per-image anomaly scores of a trained VAE, in nats (higher = less likely under the model, more anomalous):
 * <ul>
 *   <li>{@link Kind#REC}: -log p(x | z = mu(x)), the reconstruction error at the posterior mean (no sampling);</li>
 *   <li>{@link Kind#ELBO}: the negative ELBO with one z ~ q(z|x): -log p(x|z) + KL(q(z|x) || p(z));</li>
 *   <li>{@link Kind#IWAE}: the importance-weighted bound with k samples, -log (1/k sum_j p(x, z_j) / q(z_j|x)),
 *       tighter than the ELBO as k grows.</li>
 * </ul>
 * Sampling is keyed per image: image i draws its eps from Philox (seed, streams[i]), so an image's score does not
 * depend on the other images of the call or on how a set is split into batches. Runs in the current thread's
 * inference graph; many threads may score at once (the model is only read).
 */
public final class VaeScores {
    private VaeScores() {}

    /** The score: reconstruction error at the posterior mean, negative ELBO (one sample), or the IWAE bound (k samples). */
    public enum Kind { REC, ELBO, IWAE }

    static final double LOG2PI = Math.log(2 * Math.PI);

    /**
     * Scores of the m images x (m, 1, 28, 28, on the host), pixels in [0, 1]; k is the IWAE sample count (ignored
     * otherwise). The encoder, the draws (Philox: the same eps on every device) and the decoder run where the model's
     * weights are; the per-image sums run on the host over copies of the decoder's output.
     */
    public static double[] score(ConvVae model, Likelihood lik, double sigma, Tensor x, Kind kind, int k, long seed, long[] streams) {
        int m = (int) x.size(0), d = model.latent;
        if (streams.length != m) throw new IllegalArgumentException("VaeScores: " + streams.length + " streams for " + m + " images");
        if (kind == Kind.IWAE && k < 1) throw new IllegalArgumentException("VaeScores: IWAE needs k >= 1, got " + k);
        Graph g = Graph.current();
        dev.latent.tensor.Device where = model.namedParameters().values().iterator().next().value().device();
        if (where != dev.latent.tensor.Device.CPU) return scoreOnDevice(model, lik, sigma, x, kind, k, seed, streams, where);
        Var[] h = model.encode(Var.constant(x));
        Tensor mu = h[0].value().contiguous(), lv = h[1].value().contiguous();
        double[] out = new double[m];
        switch (kind) {
            case REC -> {
                Tensor logits = model.decode(Var.constant(mu)).value();
                for (int i = 0; i < m; i++) out[i] = nll(lik, sigma, logits, i, x, i);
            }
            case ELBO -> {
                Tensor z = g.empty(m, d);
                double[] kl = new double[m];
                for (int i = 0; i < m; i++)
                    kl[i] = Kernels.reparam(mu.slice(0, i, i + 1), lv.slice(0, i, i + 1), seed, streams[i], z.slice(0, i, i + 1));
                Tensor logits = model.decode(Var.constant(z)).value();
                for (int i = 0; i < m; i++) out[i] = nll(lik, sigma, logits, i, x, i) + kl[i];
            }
            case IWAE -> {
                // rows i*k + j: sample j of image i, all k samples of an image from its own stream
                Tensor mus = g.empty((long) m * k, d), lvs = g.empty((long) m * k, d), z = g.empty((long) m * k, d);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < k; j++) {
                        MemorySegment.copy(mu.segment(), (long) i * d * 4, mus.segment(), ((long) i * k + j) * d * 4, (long) d * 4);
                        MemorySegment.copy(lv.segment(), (long) i * d * 4, lvs.segment(), ((long) i * k + j) * d * 4, (long) d * 4);
                    }
                for (int i = 0; i < m; i++) {
                    long a = (long) i * k, b = a + k;
                    Kernels.reparam(mus.slice(0, a, b), lvs.slice(0, a, b), seed, streams[i], z.slice(0, a, b));
                }
                Tensor logits = model.decode(Var.constant(z)).value();
                double[] w = new double[k];
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < k; j++) {
                        long row = (long) i * k + j;
                        w[j] = -nll(lik, sigma, logits, row, x, i) + logPriorMinusPosterior(z, mus, lvs, row, d);
                    }
                    out[i] = -logMeanExp(w);
                }
            }
        }
        return out;
    }

    /** {@link #score} for a model on a device: the same draws and sums, the tensors copied to the host for the sums. */
    private static double[] scoreOnDevice(ConvVae model, Likelihood lik, double sigma, Tensor x, Kind kind, int k, long seed, long[] streams,
                                          dev.latent.tensor.Device on) {
        int m = (int) x.size(0), d = model.latent;
        Graph g = Graph.current();
        Var[] h = model.encode(Var.constant(x.to(g.scope(), on)));
        Tensor mu = h[0].value().contiguous(), lv = h[1].value().contiguous();
        double[] out = new double[m];
        dev.latent.tensor.Device cpu = dev.latent.tensor.Device.CPU;
        switch (kind) {
            case REC -> {
                Tensor logits = model.decode(Var.constant(mu)).value().to(g.scope(), cpu);
                for (int i = 0; i < m; i++) out[i] = nll(lik, sigma, logits, i, x, i);
            }
            case ELBO -> {
                Tensor z = Tensor.empty(g.scope(), on, m, d);
                double[] kl = new double[m];
                for (int i = 0; i < m; i++)
                    kl[i] = Kernels.reparam(mu.slice(0, i, i + 1), lv.slice(0, i, i + 1), seed, streams[i], z.slice(0, i, i + 1));
                Tensor logits = model.decode(Var.constant(z)).value().to(g.scope(), cpu);
                for (int i = 0; i < m; i++) out[i] = nll(lik, sigma, logits, i, x, i) + kl[i];
            }
            case IWAE -> {
                // rows i*k + j: sample j of image i, all k samples of an image from its own stream
                Tensor mus = Tensor.empty(g.scope(), on, (long) m * k, d), lvs = Tensor.empty(g.scope(), on, (long) m * k, d);
                Tensor z = Tensor.empty(g.scope(), on, (long) m * k, d);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < k; j++) {
                        long r = (long) i * k + j;
                        Kernels.copy(mu.slice(0, i, i + 1), mus.slice(0, r, r + 1));
                        Kernels.copy(lv.slice(0, i, i + 1), lvs.slice(0, r, r + 1));
                    }
                for (int i = 0; i < m; i++) {
                    long a = (long) i * k, b = a + k;
                    Kernels.reparam(mus.slice(0, a, b), lvs.slice(0, a, b), seed, streams[i], z.slice(0, a, b));
                }
                Tensor logits = model.decode(Var.constant(z)).value().to(g.scope(), cpu);
                Tensor zh = z.to(g.scope(), cpu), mh = mus.to(g.scope(), cpu), lh = lvs.to(g.scope(), cpu);
                double[] w = new double[k];
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < k; j++) {
                        long row = (long) i * k + j;
                        w[j] = -nll(lik, sigma, logits, row, x, i) + logPriorMinusPosterior(zh, mh, lh, row, d);
                    }
                    out[i] = -logMeanExp(w);
                }
            }
        }
        return out;
    }

    /** -log p(x_xi | logits_row): BCE-with-logits summed over the pixels, or the Gaussian NLL with std sigma. */
    static double nll(Likelihood lik, double sigma, Tensor logits, long row, Tensor x, long xi) {
        Tensor o = logits.slice(0, row, row + 1), t = x.slice(0, xi, xi + 1);
        if (lik == Likelihood.BERNOULLI) return Kernels.bceWithLogits(o, t, 0f, null, 0f);
        MemorySegment os = o.contiguous().segment(), ts = t.contiguous().segment();
        long n = o.numel();
        double acc = 0, c = Math.log(sigma * Math.sqrt(2 * Math.PI));
        for (long p = 0; p < n; p++) {
            double e = os.getAtIndex(JAVA_FLOAT, p) - ts.getAtIndex(JAVA_FLOAT, p);
            acc += 0.5 * e * e / (sigma * sigma) + c;
        }
        return acc;
    }

    /** log p(z) - log q(z | mu, logvar) for one row (logvar clamped to [-30, 30] as the sampler clamps it). */
    static double logPriorMinusPosterior(Tensor z, Tensor mu, Tensor lv, long row, int d) {
        MemorySegment zs = z.segment(), ms = mu.segment(), ls = lv.segment();
        double logpz = 0, logqz = 0;
        for (int t = 0; t < d; t++) {
            double zz = zs.getAtIndex(JAVA_FLOAT, row * d + t), mm = ms.getAtIndex(JAVA_FLOAT, row * d + t);
            double l = Math.max(-30, Math.min(30, ls.getAtIndex(JAVA_FLOAT, row * d + t)));
            logpz += -0.5 * (zz * zz + LOG2PI);
            logqz += -0.5 * ((zz - mm) * (zz - mm) * Math.exp(-l) + l + LOG2PI);
        }
        return logpz - logqz;
    }

    /** log (1/k sum exp w_j), stable. */
    static double logMeanExp(double[] w) {
        double mx = Double.NEGATIVE_INFINITY, s = 0;
        for (double v : w) mx = Math.max(mx, v);
        for (double v : w) s += Math.exp(v - mx);
        return mx + Math.log(s) - Math.log(w.length);
    }
}
