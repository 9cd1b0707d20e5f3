package dev.latent.models.flow;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Glow's building blocks (Kingma and Dhariwal 2018), each with forward, inverse and log-determinant, written with
 * differentiable ops (so their backward is autograd's): squeeze / unsqueeze, ActNorm with data-dependent
 * initialisation, and the invertible 1x1 convolution in LU-decomposed form, whose log-determinant is
 * H W sum(log |s|) in O(C). Tested for invertibility and against brute-force Jacobians (FlowTest).
 * Assembled into the model by {@link Glow}.
 */
public final class GlowLayers {
    private GlowLayers() {}

    /** (N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels. Volume preserving (log-det 0). */
    public static Var squeeze(Var x) {
        long[] s = x.shape();
        if (s.length != 4 || s[2] % 2 != 0 || s[3] % 2 != 0) throw new IllegalArgumentException("squeeze: (N, C, H, W) with even H, W needed, got " + x.value());
        Var p = F.permute(x, new long[] {s[0], s[1], s[2] / 2, 2, s[3] / 2, 2}, 0, 1, 3, 5, 2, 4);
        return F.reshape(p, s[0], s[1] * 4, s[2] / 2, s[3] / 2);
    }

    /** The inverse of {@link #squeeze}. */
    public static Var unsqueeze(Var x) {
        long[] s = x.shape();
        if (s.length != 4 || s[1] % 4 != 0) throw new IllegalArgumentException("unsqueeze: (N, 4C, H, W) needed, got " + x.value());
        Var p = F.permute(x, new long[] {s[0], s[1] / 4, 2, 2, s[2], s[3]}, 0, 1, 4, 2, 5, 3);
        return F.reshape(p, s[0], s[1] / 4, s[2] * 2, s[3] * 2);
    }

    /** ActNorm: y = (x + b) exp(logs) per channel; log-det per image = H W sum(logs). */
    public static final class ActNorm implements Module {
        public final Var bias, logs;
        private boolean initialized;

        public ActNorm(Scope scope, long c) {
            bias = Var.param(Init.constant(scope, 0f, c));
            logs = Var.param(Init.constant(scope, 0f, c));
        }

        /** Skip the data-dependent init (the parameters were loaded or set). */
        public void markInitialized() { initialized = true; }

        /** Data-dependent init on the first batch: per-channel mean 0 and variance 1 of the output. */
        void init(Tensor x) {
            long n = x.size(0), c = x.size(1), hw = x.numel() / (n * c);
            float[] xs = x.toArray();   /* on a device: an explicit copy (once, on the first batch) */
            float[] b = new float[(int) c], ls = new float[(int) c];
            for (int ch = 0; ch < c; ch++) {
                double s = 0, q = 0;
                for (long i = 0; i < n; i++) for (long j = 0; j < hw; j++) s += xs[(int) ((i * c + ch) * hw + j)];
                double m = s / (n * hw);
                for (long i = 0; i < n; i++) for (long j = 0; j < hw; j++) { double d = xs[(int) ((i * c + ch) * hw + j)] - m; q += d * d; }
                double sd = Math.sqrt(q / (n * hw));
                b[ch] = (float) -m;
                ls[ch] = (float) -Math.log(sd + 1e-6);
            }
            set(bias.value(), b);
            set(logs.value(), ls);
            initialized = true;
        }

        /** Writes v into the parameter t (on a device: through a copy in the current graph's scope). */
        private static void set(Tensor t, float[] v) {
            if (t.device() == dev.latent.tensor.Device.CPU) MemorySegment.copy(v, 0, t.segment(), JAVA_FLOAT, 0, v.length);
            else dev.latent.ops.Kernels.copy(Tensor.of(Graph.current().scope(), t.device(), v, t.shape()), t);
        }

        /** {y, log-det (scalar, per image)}. */
        public Var[] forward(Var x) {
            if (!initialized) init(x.value());
            long[] s = x.shape();
            Var y = F.mul(F.add(x, F.channelBroadcast(bias, s)), F.channelBroadcast(F.exp(logs), s));
            return new Var[] {y, F.scale(F.sum(logs), (float) (s[2] * s[3]))};
        }

        public Tensor inverse(Tensor y) {
            long n = y.size(0), c = y.size(1), hw = y.numel() / (n * c);
            if (y.device() != dev.latent.tensor.Device.CPU) {   /* sampling: explicit copies, the CPU's double formula */
                float[] ys = y.toArray(), bs = bias.value().toArray(), ls = logs.value().toArray(), xs = new float[ys.length];
                for (int ch = 0; ch < c; ch++) {
                    double b = bs[ch], e = Math.exp(-ls[ch]);
                    for (long i = 0; i < n; i++)
                        for (long j = 0; j < hw; j++) {
                            int k = (int) ((i * c + ch) * hw + j);
                            xs[k] = (float) (ys[k] * e - b);
                        }
                }
                return Tensor.of(Graph.current().scope(), y.device(), xs, y.shape());
            }
            Tensor x = Graph.current().empty(y.shape());
            MemorySegment ys = y.contiguous().segment(), xs = x.segment();
            for (long ch = 0; ch < c; ch++) {
                double b = bias.value().segment().getAtIndex(JAVA_FLOAT, ch), e = Math.exp(-logs.value().segment().getAtIndex(JAVA_FLOAT, ch));
                for (long i = 0; i < n; i++)
                    for (long j = 0; j < hw; j++) {
                        long k = (i * c + ch) * hw + j;
                        xs.setAtIndex(JAVA_FLOAT, k, (float) (ys.getAtIndex(JAVA_FLOAT, k) * e - b));
                    }
            }
            return x;
        }

        @Override
        public void collect(String prefix, Map<String, Var> out) {
            out.put(prefix + "bias", bias);
            out.put(prefix + "logs", logs);
        }
    }

    /**
     * Invertible 1x1 convolution, W = P L (U + diag(sign exp(log_s))) with P a fixed permutation, L unit lower
     * triangular and U strictly upper triangular (their free entries are the parameters, kept triangular by masks),
     * initialised from a random rotation's LU decomposition. log |det W| = sum(log_s), so the per-image log-det is
     * H W sum(log_s): O(C) instead of O(C^3).
     */
    public static final class InvConv1x1 implements Module {
        public final int c;
        public final Var lower, upper, logS;
        Tensor p, sign, lowerMask, upperMask, eye;   // constants: moved with the parameters by to()

        public InvConv1x1(Scope scope, int c, long seed) {
            this.c = c;
            // a random orthogonal matrix (Gram-Schmidt of a Philox normal matrix), then LU with partial pivoting
            double[][] q = new double[c][c];
            Tensor g = Init.normal(scope, seed, 77, 1.0, c, c);
            for (int i = 0; i < c; i++) for (int j = 0; j < c; j++) q[i][j] = g.segment().getAtIndex(JAVA_FLOAT, (long) i * c + j);
            for (int i = 0; i < c; i++) {
                for (int k = 0; k < i; k++) {
                    double d = 0;
                    for (int j = 0; j < c; j++) d += q[i][j] * q[k][j];
                    for (int j = 0; j < c; j++) q[i][j] -= d * q[k][j];
                }
                double nrm = 0;
                for (int j = 0; j < c; j++) nrm += q[i][j] * q[i][j];
                nrm = Math.sqrt(nrm);
                for (int j = 0; j < c; j++) q[i][j] /= nrm;
            }
            int[] perm = new int[c];
            for (int i = 0; i < c; i++) perm[i] = i;
            double[][] a = new double[c][];
            for (int i = 0; i < c; i++) a[i] = q[i].clone();
            double[][] l = new double[c][c];
            for (int k = 0; k < c; k++) {
                int piv = k;
                for (int i = k + 1; i < c; i++) if (Math.abs(a[i][k]) > Math.abs(a[piv][k])) piv = i;
                double[] t = a[k]; a[k] = a[piv]; a[piv] = t;
                double[] tl = l[k]; l[k] = l[piv]; l[piv] = tl;
                int tp = perm[k]; perm[k] = perm[piv]; perm[piv] = tp;
                for (int i = k + 1; i < c; i++) {
                    double f = a[i][k] / a[k][k];
                    l[i][k] = f;
                    for (int j = k; j < c; j++) a[i][j] -= f * a[k][j];
                }
            }
            // q = P^T L U  with  P^T = rows perm: (P L U)[perm[i]] ... store P such that W = P L U
            p = Tensor.zeros(scope, c, c);
            for (int i = 0; i < c; i++) p.segment().setAtIndex(JAVA_FLOAT, (long) perm[i] * c + i, 1f);
            lower = Var.param(Tensor.zeros(scope, c, c));
            upper = Var.param(Tensor.zeros(scope, c, c));
            logS = Var.param(Tensor.zeros(scope, c));
            sign = Tensor.zeros(scope, c);
            lowerMask = Tensor.zeros(scope, c, c);
            upperMask = Tensor.zeros(scope, c, c);
            eye = Tensor.zeros(scope, c, c);
            for (int i = 0; i < c; i++) {
                eye.segment().setAtIndex(JAVA_FLOAT, (long) i * c + i, 1f);
                sign.segment().setAtIndex(JAVA_FLOAT, i, (float) Math.signum(a[i][i]));
                logS.value().segment().setAtIndex(JAVA_FLOAT, i, (float) Math.log(Math.abs(a[i][i])));
                for (int j = 0; j < c; j++) {
                    if (j < i) { lowerMask.segment().setAtIndex(JAVA_FLOAT, (long) i * c + j, 1f); lower.value().segment().setAtIndex(JAVA_FLOAT, (long) i * c + j, (float) l[i][j]); }
                    if (j > i) { upperMask.segment().setAtIndex(JAVA_FLOAT, (long) i * c + j, 1f); upper.value().segment().setAtIndex(JAVA_FLOAT, (long) i * c + j, (float) a[i][j]); }
                }
            }
        }

        /** The parameters and the constant matrices (permutation, masks, signs) to {@code device}. */
        @Override
        public void to(Scope scope, dev.latent.tensor.Device device) {
            Module.super.to(scope, device);
            if (p.device() == device) return;
            p = p.to(scope, device); sign = sign.to(scope, device); lowerMask = lowerMask.to(scope, device);
            upperMask = upperMask.to(scope, device); eye = eye.to(scope, device);
        }

        /** W = P (L + I) (U + diag(sign exp(log_s))), differentiable in L, U, log_s. */
        public Var weight() {
            Var l = F.add(F.mul(lower, Var.constant(lowerMask)), Var.constant(eye));
            Var u = F.add(F.mul(upper, Var.constant(upperMask)), F.diag(F.mul(Var.constant(sign), F.exp(logS))));
            return F.matmul(Var.constant(p), F.matmul(l, u));
        }

        /**
         * {y = W x per pixel, log-det per image = H W sum(log_s)}. Always fp32, also in a BF16 graph (and its backward):
         * the log-det is exact for the fp32 W, so y must be W x with W's and x's operands unrounded.
         */
        public Var[] forward(Var x) {
            long[] s = x.shape();
            if (s[1] != c) throw new IllegalArgumentException("InvConv1x1: " + c + " channels expected, got " + x.value());
            try (var exact = Graph.current().at(dev.latent.tensor.Precision.FP32)) {
                Var y = F.conv2d(x, F.reshape(weight(), c, c, 1, 1), null, 1, 0);
                return new Var[] {y, F.scale(F.sum(logS), (float) (s[2] * s[3]))};
            }
        }

        /** x = W^-1 y per pixel (W inverted in double). */
        public Tensor inverse(Tensor y) {
            double[][] w = new double[c][c];
            try (Graph g = Graph.inference()) {
                float[] wt = weight().value().toArray();   /* (C, C): from a device, a copy */
                for (int i = 0; i < c; i++) for (int j = 0; j < c; j++) w[i][j] = wt[i * c + j];
            }
            double[][] inv = invert(w);
            float[] wf = new float[c * c];
            for (int i = 0; i < c; i++) for (int j = 0; j < c; j++) wf[i * c + j] = (float) inv[i][j];
            Tensor wi = Tensor.of(Graph.current().scope(), y.device(), wf, c, c, 1, 1);
            return F.conv2d(Var.constant(y), Var.constant(wi), null, 1, 0).value();
        }

        static double[][] invert(double[][] m) {
            int n = m.length;
            double[][] a = new double[n][2 * n];
            for (int i = 0; i < n; i++) { System.arraycopy(m[i], 0, a[i], 0, n); a[i][n + i] = 1; }
            for (int k = 0; k < n; k++) {
                int piv = k;
                for (int i = k + 1; i < n; i++) if (Math.abs(a[i][k]) > Math.abs(a[piv][k])) piv = i;
                double[] t = a[k]; a[k] = a[piv]; a[piv] = t;
                double d = a[k][k];
                for (int j = 0; j < 2 * n; j++) a[k][j] /= d;
                for (int i = 0; i < n; i++) {
                    if (i == k) continue;
                    double f = a[i][k];
                    for (int j = 0; j < 2 * n; j++) a[i][j] -= f * a[k][j];
                }
            }
            double[][] r = new double[n][n];
            for (int i = 0; i < n; i++) System.arraycopy(a[i], n, r[i], 0, n);
            return r;
        }

        @Override
        public void collect(String prefix, Map<String, Var> out) {
            out.put(prefix + "lower", lower);
            out.put(prefix + "upper", upper);
            out.put(prefix + "log_s", logS);
        }
    }
}
