package dev.latent.cuda;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.*;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Every typed launcher of {@link CudaKernels} except attention, conv2d and GEMM (CudaAttentionConvTest, CudaGpuTest)
 * against the CPU library at ISA ref, on the emulation tests' shapes (every SIMD and warp tail, hard inputs) and with
 * their tolerances. Where an emulation test bounds the kernel's distance from the exact value and the CPU kernel is
 * itself only within the same kind of bound, the bound is doubled (said at each place). reparam: bit for bit.
 */
class CudaKernelsTest extends AtRefIsaOnDevice {

    static LatentNative nat() { return LatentNative.get(); }

    @Test
    void elementwise() {
        double u = 1.0 / (1 << 23);   /* elementwise_cuda_test's U: one rounding (nvcc may fuse a x + b y) */
        long seed = 11;
        for (int n : new int[] {1, 3, 7, 8, 9, 15, 16, 37, 1000, 5000}) {
            float[] x = fill(n, seed++), y0 = fill(n, seed++), z = fill(n, seed++);
            try (Arena a = Arena.ofConfined(); DeviceBuffer dx = up(cu, x); DeviceBuffer dz = up(cu, z)) {
                for (float b : new float[] {0f, 0.7f}) {
                    float[] start = y0.clone();
                    if (b == 0f) java.util.Arrays.fill(start, Float.NaN);   /* b == 0: y write-only, NaN must not leak */
                    MemorySegment hy = host(a, start);
                    nat().axpby(n, 1.3f, host(a, x), b, hy);
                    try (DeviceBuffer dy = up(cu, start)) {
                        CudaKernels.axpby(cu, n, 1.3f, dx, b, dy);
                        float[] want = floats(hy, n);
                        /* one rounding of the terms, not of the result: a GPU contracts a x + b y into an FMA,
                         * so under cancellation the result differs from the CPU's by up to u (|a x| + |b y|) */
                        close("axpby n=" + n + " b=" + b, down(cu, dy, n), want,
                                i -> u * (Math.abs(1.3 * x[i]) + (b == 0f ? 0 : Math.abs(b * y0[i]))));
                    }
                }
                MemorySegment hm = a.allocate(JAVA_FLOAT, n);
                nat().mul(n, host(a, x), host(a, z), hm);
                try (DeviceBuffer dy = nans(cu, n)) {
                    CudaKernels.mul(cu, n, dx, dz, dy);
                    same("mul n=" + n, down(cu, dy, n), floats(hm, n));
                    CudaKernels.mul(cu, n, dy, dy, dy);   /* in place: y = y * y */
                    float[] sq = floats(hm, n);
                    for (int i = 0; i < n; i++) sq[i] *= sq[i];
                    same("mul in place n=" + n, down(cu, dy, n), sq);
                }
            }
        }
        int[][] rs = {{1, 1, 1}, {7, 9, 3}, {16, 37, 16}, {37, 15, 1}, {300, 8, 5}, {64, 70, 64}};
        for (int[] r : rs) {
            int n = r[0], c = r[1], p = r[2], nc = n * c, pc = p * c;
            float[] x = fill(nc, seed++), rows = fill(pc, seed++), out0 = fill(pc, seed++);
            try (Arena a = Arena.ofConfined(); DeviceBuffer dx = up(cu, x); DeviceBuffer drows = up(cu, rows);
                 DeviceBuffer dy = nans(cu, nc); DeviceBuffer dout = up(cu, out0)) {
                MemorySegment hy = a.allocate(JAVA_FLOAT, nc), hout = host(a, out0);
                nat().addRows(n, c, p, host(a, x), host(a, rows), hy);
                CudaKernels.addRows(cu, n, c, p, dx, drows, dy);
                same("addRows " + n + "x" + c + "/" + p, down(cu, dy, nc), floats(hy, nc));
                nat().sumRows(n, c, p, host(a, x), hout);
                CudaKernels.sumRows(cu, n, c, p, dx, dout);
                /* both sum in row order, the CPU in fixed chunks: a few roundings of the running sum apart */
                double tol = 4 * u * (n / p + 1);
                close("sumRows " + n + "x" + c + "/" + p, down(cu, dout, pc), floats(hout, pc), i -> tol);
            }
        }
    }

    @Test
    void activations() {
        long seed = 3;
        for (int kind = 0; kind < 4; kind++)
            for (int n : new int[] {1, 7, 9, 37, 3000}) {
                float alpha = 0.2f;
                float[] x = fill(n, seed++), dy = fill(n, seed++);
                for (int i = 0; i < n; i++) x[i] *= 12;
                if (n > 8) { x[0] = 88f; x[1] = -88f; x[2] = 0f; x[3] = -0f; }
                try (Arena a = Arena.ofConfined(); DeviceBuffer dx = up(cu, x); DeviceBuffer ddy = up(cu, dy);
                     DeviceBuffer dyOut = nans(cu, n); DeviceBuffer ddx = nans(cu, n)) {
                    MemorySegment hy = a.allocate(JAVA_FLOAT, n), hdx = a.allocate(JAVA_FLOAT, n);
                    nat().actFwd(kind, n, alpha, host(a, x), hy);
                    float[] y = floats(hy, n);
                    /* the backward of tanh / sigmoid reads the forward output: give both the CPU's */
                    float[] in = kind >= 2 ? y : x;
                    nat().actBwd(kind, n, alpha, host(a, in), host(a, dy), hdx);
                    float[] want = floats(hdx, n);
                    CudaKernels.activation(cu, kind, n, alpha, dx, dyOut);
                    try (DeviceBuffer din = up(cu, in)) {
                        CudaKernels.activationBackward(cu, kind, n, alpha, din, ddy, ddx);
                    }
                    int k = kind;
                    /* activation_cuda_test: relu / leaky exact (one product), tanh / sigmoid 4 ulp of the value, backward
                     * 4 ulp of dy (|f'| + |in|), each from the exact value; the CPU kernel is within the same: doubled */
                    close("act" + kind + " fwd n=" + n, down(cu, dyOut, n), y, i -> k < 2 ? U * Math.abs(y[i]) : 8 * U * Math.abs(y[i]) + 1e-37);
                    close("act" + kind + " bwd n=" + n, down(cu, ddx, n), want,
                            i -> 8 * U * Math.abs(dy[i]) * (Math.abs(want[i] / (dy[i] == 0 ? 1 : dy[i])) + Math.abs(in[i])) + 1e-37);
                }
            }
    }

    @Test
    void gelu() {
        float[] base = fill(4000, 5);
        float[] special = {0f, -0f, 1e-30f, -1e-30f, 1f, -1f, 39.9f, 40f, 41f, -12f, -13.5f, -39f, -41f, 1e30f, -1e30f,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN};
        int n = base.length + special.length;
        float[] x = new float[n];
        for (int i = 0; i < base.length; i++) x[i] = base[i] * 9;
        System.arraycopy(special, 0, x, base.length, special.length);
        float[] dy = fill(n, 6), ones = new float[n];
        java.util.Arrays.fill(ones, 1f);
        try (Arena a = Arena.ofConfined(); DeviceBuffer dx = up(cu, x); DeviceBuffer ddy = up(cu, dy);
             DeviceBuffer dyOut = nans(cu, n); DeviceBuffer ddx = nans(cu, n)) {
            MemorySegment hy = a.allocate(JAVA_FLOAT, n), hdx = a.allocate(JAVA_FLOAT, n), hd1 = a.allocate(JAVA_FLOAT, n);
            nat().geluFwd(n, host(a, x), hy);
            nat().geluBwd(n, host(a, x), host(a, dy), hdx);
            nat().geluBwd(n, host(a, x), host(a, ones), hd1);   /* gelu'(x) = Phi + x phi, within 1 ulp (double inside) */
            float[] y = floats(hy, n), want = floats(hdx, n), d1 = floats(hd1, n);
            CudaKernels.gelu(cu, n, dx, dyOut);
            CudaKernels.geluBackward(cu, n, dx, ddy, ddx);
            /* gelu_cuda_test: (8 + 2 c^2) ulp of each term, c = x clamped to [-40, 40]; + 1 ulp for the CPU's own error.
             * The terms of dx: |dy| (Phi + |c phi|) = |dy| (gelu' + 2 max(0, -c) phi). */
            close("gelu fwd", down(cu, dyOut, n), y, i -> k(x[i]) * Math.abs(y[i]) + 1e-37);
            close("gelu bwd", down(cu, ddx, n), want, i -> {
                double c = Math.max(-40, Math.min(40, x[i])), phi = Math.exp(-0.5 * c * c) * 0.3989422804014327;
                return k(x[i]) * Math.abs(dy[i]) * (Math.abs(d1[i]) + 2 * Math.max(0, -c) * phi) + 1e-37;
            });
        }
    }

    private static double k(float x) {
        double c = Float.isNaN(x) ? 0 : Math.max(-40, Math.min(40, x));
        return (9 + 2 * c * c) * U;
    }

    @Test
    void layerNorm() {
        long seed = 23;
        double[][] cases = {{1, 1, 0}, {3, 7, 0}, {9, 33, 0}, {17, 64, 100}, {300, 45, 0}, {5, 768, 3}, {530, 16, 0}};
        for (double[] cs : cases) {
            int rows = (int) cs[0], c = (int) cs[1], n = rows * c;
            float off = (float) cs[2];
            float[] x = fill(n, seed++), w = fill(c, seed++), b = fill(c, seed++), dy = fill(n, seed++);
            for (int i = 0; i < n; i++) x[i] += off;
            float[] dw0 = fill(c, seed++), db0 = fill(c, seed++);
            String what = "layerNorm " + rows + "x" + c;
            try (Arena a = Arena.ofConfined(); DeviceBuffer dx = up(cu, x); DeviceBuffer gw = up(cu, w); DeviceBuffer gb = up(cu, b);
                 DeviceBuffer gy = nans(cu, n); DeviceBuffer gmean = nans(cu, rows); DeviceBuffer grstd = nans(cu, rows)) {
                MemorySegment hy = a.allocate(JAVA_FLOAT, n), hm = a.allocate(JAVA_FLOAT, rows), hr = a.allocate(JAVA_FLOAT, rows);
                nat().layernormFwd(rows, c, 1e-5f, host(a, x), host(a, w), host(a, b), hy, hm, hr);
                float[] y = floats(hy, n), mw = floats(hm, rows), rw = floats(hr, rows);
                CudaKernels.layerNorm(cu, rows, c, 1e-5f, dx, gw, gb, gy, gmean, grstd);
                /* layernorm_cuda_test: float sums of C terms, (2 + log2 C) 8 u of the magnitude of each result's terms */
                double k = (2 + Math.log(c) / Math.log(2)) * 8 * U;
                close(what + " y", down(cu, gy, n), y, e -> {
                    int i = e / c, j = e % c;
                    double xh = Math.abs((x[e] - (double) mw[i]) * rw[i]);
                    return k * (xh * Math.abs(w[j]) + Math.abs(b[j]) + Math.abs(x[e]) * rw[i] * Math.abs(w[j])) + 1e-30;
                });
                close(what + " mean", down(cu, gmean, rows), mw, i -> k * (Math.abs(mw[i]) + Math.abs(off) + 1));
                close(what + " rstd", down(cu, grstd, rows), rw, i -> k * rw[i] * (1 + Math.abs(off) * rw[i]));
                /* backward from the CPU's statistics, so only the backward's own error is measured; dx in place over dy */
                MemorySegment hdx = a.allocate(JAVA_FLOAT, n), hdw = host(a, dw0), hdb = host(a, db0);
                nat().layernormBwd(rows, c, host(a, x), host(a, w), hm, hr, host(a, dy), hdx, hdw, hdb);
                try (DeviceBuffer gm = up(cu, mw); DeviceBuffer gr = up(cu, rw); DeviceBuffer gdx = up(cu, dy);
                     DeviceBuffer gdw = up(cu, dw0); DeviceBuffer gdb = up(cu, db0)) {
                    CudaKernels.layerNormBackward(cu, rows, c, dx, gw, gm, gr, gdx, gdx, gdw, gdb);
                    double[] sa = new double[rows], sb = new double[rows];
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < c; j++) {
                            double xh = Math.abs((x[i * c + j] - (double) mw[i]) * rw[i]), dn = Math.abs((double) dy[i * c + j] * w[j]);
                            sa[i] += dn / c;
                            sb[i] += dn * xh / c;
                        }
                    float[] wdx = floats(hdx, n), wdw = floats(hdw, c), wdb = floats(hdb, c);
                    close(what + " dx", down(cu, gdx, n), wdx, e -> {
                        int i = e / c, j = e % c;
                        double xh = Math.abs((x[e] - (double) mw[i]) * rw[i]);
                        return k * rw[i] * (Math.abs((double) dy[e] * w[j]) + sa[i] + xh * sb[i]) * (1 + Math.abs(off) * rw[i]) + 1e-30;
                    });
                    double[] mgw = new double[c], mgb = new double[c];
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < c; j++) {
                            mgw[j] += Math.abs((double) dy[i * c + j] * ((double) x[i * c + j] - mw[i]) * rw[i]);
                            mgb[j] += Math.abs((double) dy[i * c + j]);
                        }
                    /* dw, db: `rows` terms summed in fixed chunks, 4 u (rows + 2) of the sum of |terms| */
                    close(what + " dw", down(cu, gdw, c), wdw, j -> 4 * U * (rows + 2) * (mgw[j] + Math.abs(wdw[j])) + 1e-30);
                    close(what + " db", down(cu, gdb, c), wdb, j -> 4 * U * (rows + 2) * (mgb[j] + Math.abs(wdb[j])) + 1e-30);
                }
            }
        }
    }

    @Test
    void softmaxCrossEntropy() {
        SplittableRandom r = new SplittableRandom(29);
        int[][] cases = {{1, 1, 0}, {3, 7, 0}, {4, 37, 1}, {5, 256, 2}, {6, 1000, 3}, {2, 3001, 0}};
        for (int[] cs : cases) {
            int rows = cs[0], v = cs[1], kind = cs[2], nv = rows * v;
            float[] x = new float[nv];
            for (int e = 0; e < nv; e++) {
                float u = (float) (r.nextDouble() * 2 - 1) * 4f;
                x[e] = kind == 1 ? -Math.abs(u) - 50f : kind == 2 ? (r.nextBoolean() ? 88f : -88f) * (u > 0 ? 1 : 0.5f)
                        : kind == 3 ? Math.round(u) : u;   /* all-negative, +-88, ties */
            }
            int[] t = new int[rows];
            for (int i = 0; i < rows; i++) t[i] = r.nextInt(v);
            if (rows > 2) t[1] = -1;   /* ignored */
            for (boolean inPlace : new boolean[] {false, true}) {
                String what = "softmaxXent " + rows + "x" + v + " kind " + kind + (inPlace ? " in place" : "");
                try (Arena a = Arena.ofConfined(); DeviceBuffer dt = upInts(cu, t); DeviceBuffer gl = nans(cu, rows);
                     DeviceBuffer dx = up(cu, x); DeviceBuffer gd = inPlace ? dx : nans(cu, nv)) {
                    MemorySegment hl = a.allocate(JAVA_FLOAT, rows), hd = a.allocate(JAVA_FLOAT, nv);
                    nat().softmaxXent(rows, v, host(a, x), hostInts(a, t), hl, hd, 0.5f);
                    float[] lw = floats(hl, rows), dw = floats(hd, nv);
                    CudaKernels.softmaxCrossEntropy(cu, rows, v, dx, dt, gl, gd, 0.5f);
                    /* softmax_xent_cuda_test: loss 8 u (|M| + |log S| + |x_t| + 1) + V u; dlogits (V + 8) u |p| dscale + u */
                    close(what + " loss", down(cu, gl, rows), lw, i -> {
                        if (t[i] < 0) return 0;
                        float m = Float.NEGATIVE_INFINITY;
                        for (int j = 0; j < v; j++) m = Math.max(m, x[i * v + j]);
                        return 8 * U * (Math.abs(m) + Math.abs(lw[i] - m) + Math.abs(x[i * v + t[i]]) + 1) + v * U + 1e-30;
                    });
                    close(what + " dlogits", down(cu, gd, nv), dw, e -> {
                        int i = e / v, j = e % v;
                        double p = Math.abs(dw[e] + (j == t[i] ? 0.5 : 0.0));
                        return (v + 8) * U * p + 2 * U * 0.5 + 1e-30;
                    });
                }
            }
        }
    }

    @Test
    void adamw() {
        long seed = 17;
        for (int n : new int[] {1, 3, 8, 9, 37, 1000, 4099}) {
            float[] p = fill(n, seed++), m = new float[n], v = new float[n];
            try (Arena a = Arena.ofConfined(); DeviceBuffer gp = up(cu, p); DeviceBuffer gm = up(cu, m); DeviceBuffer gv = up(cu, v)) {
                for (int step = 1; step <= 3; step++) {
                    float[] g = fill(n, seed++);
                    if (n > 4) { g[0] = 0f; g[1] = 1e-20f; g[2] = 1e4f; }
                    /* the CPU's step from the device's previous state */
                    float[] m0 = down(cu, gm, n), v0 = down(cu, gv, n);
                    MemorySegment hp = host(a, down(cu, gp, n)), hm = host(a, m0), hv = host(a, v0);
                    MemorySegment d = a.allocate(LatentNative.ADAMW_DESC);
                    float[] f = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f};
                    for (int i = 0; i < f.length; i++) d.set(JAVA_FLOAT, 4L * i, f[i]);
                    d.set(JAVA_LONG, 24, step);
                    nat().adamw(d, n, hp, host(a, g), hm, hv);
                    try (DeviceBuffer gg = up(cu, g)) {
                        CudaKernels.adamw(cu, n, gp, gg, gm, gv, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, step);
                    }
                    float[] wm = floats(hm, n), wv = floats(hv, n), wp = floats(hp, n);
                    String what = "adamw n=" + n + " step " + step;
                    /* adamw_cuda_test: m, v 4 u; p 8 u of |p| plus 8 u of the update (<= 4 lr / (1 - b1^t)) */
                    /* of the terms b1 m + (1 - b1) g, not of the result: a GPU contracts them into FMAs (measured on an
                     * H200: m 50 ulp of the result apart under cancellation, within one rounding of the terms) */
                    close(what + " m", down(cu, gm, n), wm, i -> 1e-30 + 4 * U * (0.9 * Math.abs(m0[i]) + 0.1 * Math.abs(0.5 * g[i])));
                    close(what + " v", down(cu, gv, n), wv, i -> 1e-30 + 4 * U * (0.999 * Math.abs(v0[i]) + 0.001 * 0.25 * g[i] * g[i]));
                    double up = 8 * U * 1e-3 / (1 - Math.pow(0.9, step)) * 4;
                    close(what + " p", down(cu, gp, n), wp, i -> up + 8 * U * Math.abs(wp[i]));
                }
            }
        }
    }

    @Test
    void reparamIsBitIdentical() {
        long rng = 11;
        for (int n : new int[] {1, 7, 8, 9, 31, 33, 1023, 4096, 4097, 10007, 70001})
            for (int variant = 0; variant < 3; variant++) {
                long seed = variant == 1 ? 0xDEADBEEFCAFEF00DL : 42 + n, stream = variant == 1 ? 0x123456789L : 7;
                float[] mu = fill(n, rng++), lv = fill(n, rng++), dz = fill(n, rng++);
                for (int i = 0; i < n; i++) {
                    if (variant == 0) mu[i] = lv[i] = 0f;   /* z = eps */
                    if (variant == 1) lv[i] *= 40f;          /* past the clamp */
                    if (variant == 2) lv[i] *= 3f;
                }
                if (variant == 2 && n > 5) lv[n / 2] = Float.NaN;
                String what = "reparam n=" + n + " variant " + variant;
                try (Arena a = Arena.ofConfined(); DeviceBuffer gmu = up(cu, mu); DeviceBuffer glv = up(cu, lv); DeviceBuffer gdz = up(cu, dz);
                     DeviceBuffer gz = nans(cu, n); DeviceBuffer gdm = nans(cu, n); DeviceBuffer gdl = nans(cu, n)) {
                    MemorySegment hz = a.allocate(JAVA_FLOAT, n), kl = a.allocate(JAVA_DOUBLE), hdm = a.allocate(JAVA_FLOAT, n),
                            hdl = a.allocate(JAVA_FLOAT, n);
                    nat().reparamFwd(n, host(a, mu), host(a, lv), seed, stream, hz, kl);
                    nat().reparamBwd(n, host(a, mu), host(a, lv), seed, stream, host(a, dz), 0.37f, hdm, hdl);
                    double gkl = CudaProbKernels.reparam(cu, n, gmu, glv, seed, stream, gz);
                    CudaProbKernels.reparamBackward(cu, n, gmu, glv, seed, stream, gdz, 0.37f, gdm, gdl);
                    same(what + (variant == 0 ? " eps" : " z"), down(cu, gz, n), floats(hz, n));
                    double want = kl.get(JAVA_DOUBLE, 0);
                    assertTrue(Double.doubleToLongBits(gkl) == Double.doubleToLongBits(want) || Double.isNaN(gkl) && Double.isNaN(want),
                            what + ": kl " + gkl + ", CPU " + want);
                    same(what + " dmu", down(cu, gdm, n), floats(hdm, n));
                    same(what + " dlogvar", down(cu, gdl, n), floats(hdl, n));
                }
            }
    }

    @Test
    void copyEmbeddingSumOfSquares() {
        long seed = 91;
        /* strided copy, exactly (elementwise_cuda_test's cases): a reversed-axes view into a contiguous and a padded buffer */
        for (long[] shape : new long[][] {{3, 2, 4, 7, 5}, {9, 37}, {37}, {2, 3, 1, 4, 2, 3}})
            for (int pad = 0; pad < 2; pad++) {
                int rank = shape.length, n = 1;
                for (long d : shape) n *= (int) d;
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment d = a.allocate(LatentNative.COPY_DESC);
                    d.set(JAVA_INT, 0, rank);
                    long st = 1, ds = 1;
                    for (int k = 0; k < rank; k++) { d.set(JAVA_LONG, 8 + 8L * k, shape[k]); d.set(JAVA_LONG, 56 + 8L * k, st); st *= shape[k]; }
                    for (int k = rank - 1; k >= 0; k--) { d.set(JAVA_LONG, 104 + 8L * k, ds); ds *= shape[k] + (k == rank - 1 ? 3L * pad : 0); }
                    float[] src = fill(n, seed++), start = new float[(int) ds];
                    java.util.Arrays.fill(start, 7f);   /* the padding must stay 7 */
                    MemorySegment want = host(a, start);
                    nat().copyStrided(d, host(a, src), want);
                    try (DeviceBuffer gs = up(cu, src); DeviceBuffer gd = up(cu, start)) {
                        CudaKernels.copyStrided(cu, d, gs, gd);
                        same("copyStrided " + java.util.Arrays.toString(shape) + " pad " + pad, down(cu, gd, (int) ds), floats(want, (int) ds));
                    }
                }
            }
        /* embedding: the gather exactly; the backward bit for bit (the CPU's order of additions per element) */
        for (int[] k : new int[][] {{1, 1, 1}, {7, 3, 5}, {64, 37, 65}, {300, 129, 11}}) {
            int n = k[0], c = k[1], vocab = k[2];
            SplittableRandom r = new SplittableRandom(seed++);
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) ids[i] = r.nextInt(vocab);
            if (n > 3) { ids[1] = ids[0]; ids[n - 1] = vocab - 1; }
            float[] table = fill(vocab * c, seed++), dout = fill(n * c, seed++);
            try (Arena a = Arena.ofConfined(); Scope s = Scope.confined()) {
                var ht = Tensor.of(s, table, vocab, c);
                var gt = ht.to(s, Device.CUDA);
                var hout = Tensor.empty(s, n, c);
                var gout = Tensor.empty(s, Device.CUDA, n, c);
                MemorySegment hid = a.allocateFrom(JAVA_INT, ids);
                Kernels.embedding(hid, ht, hout);
                Kernels.embedding(hid, gt, gout);
                same("embedding n=" + n + " c=" + c, gout.toArray(), hout.toArray());
                MemorySegment want = host(a, table);
                nat().embeddingBwd(n, c, vocab, hid, host(a, dout), want);
                var gd = Tensor.of(s, Device.CUDA, dout, n, c);
                Kernels.embeddingBackward(hid, gd, gt);
                same("embeddingBackward n=" + n + " c=" + c + " vocab=" + vocab, gt.toArray(), floats(want, vocab * c));
            }
        }
        /* sum of squares: sumsq_cuda_test's bound, 2^-53 (4096 + 16 + 8 + 2 chunks) of the sum */
        for (int n : new int[] {1, 7, 255, 4095, 4096, 4097, 3 * 4096 + 5}) {
            float[] x = fill(n, seed++);
            if (n > 10) { x[3] = 1e30f; x[5] = -1e30f; x[6] = 0f; }
            try (Arena a = Arena.ofConfined(); DeviceBuffer gx = up(cu, x)) {
                double want = nat().sumsq(n, host(a, x), a.allocate(JAVA_DOUBLE)), got = CudaKernels.sumOfSquares(cu, n, gx);
                long chunks = (n + 4095) / 4096;
                assertEquals(want, got, Math.scalb(4096.0 + 16 + 8 + 2 * chunks, -53) * want, "sumOfSquares n=" + n);
            }
        }
    }

    @Test
    void argumentsAreCheckedBeforeTheLaunch() {
        try (DeviceBuffer small = cu.alloc(16); DeviceBuffer big = cu.alloc(4096)) {
            var e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.axpby(cu, 5, 1f, small, 0f, big));
            assertTrue(e.getMessage().contains("axpby: x") && e.getMessage().contains("16 bytes") && e.getMessage().contains("20"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.addRows(cu, 7, 4, 0, big, big, big));
            assertTrue(e.getMessage().contains("period=0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.layerNorm(cu, 4, 5, 1e-5f, big, big, small, big, big, big));
            assertTrue(e.getMessage().contains("layerNorm: b"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.activation(cu, 7, 4, 0f, big, big));
            assertTrue(e.getMessage().contains("kind 7"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.adamw(cu, 4, big, big, big, big, 1e-3f, 1f, 0.999f, 1e-8f, 0f, 1f, 1));
            assertTrue(e.getMessage().contains("beta1=1.0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> small.slice(8, 16));
            assertTrue(e.getMessage().contains("16-byte"), e.getMessage());
            try (Arena a = Arena.ofConfined()) {
                MemorySegment d = a.allocate(LatentNative.ATTENTION_DESC);
                long[] shape = {1, 1, 8, 129};
                for (int i = 0; i < 4; i++) d.set(JAVA_LONG, 8L * i, shape[i]);
                e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.attention(cu, d, big, big, big, big, big));
                assertTrue(e.getMessage().contains("head size 129"), e.getMessage());
            }
        }
        DeviceBuffer gone = cu.alloc(64);
        DeviceBuffer view = gone.slice(16, 16);
        gone.close();
        assertThrows(IllegalStateException.class, view::address, "a slice dies with its root buffer");
    }
    private static DeviceBuffer upOrNull(Cuda cu, float[] v, boolean present) { return present ? up(cu, v) : null; }

    private static void closeIfNotNull(DeviceBuffer... bs) { for (DeviceBuffer b : bs) if (b != null) b.close(); }

    /** batchnorm_cuda_test's tolerance: both sides compute in double and round once, only the order of the double
     * sums differs, so one float ulp of the reference plus 2^-40 of the magnitude of the result's terms. */
    private static void ulpClose(String what, float[] got, float[] want, double mag) {
        close(what, got, want, i -> Math.ulp(want[i]) + 0x1p-40 * mag + 1e-37);
    }

    @Test
    void batchNorm() {
        long seed = 131;
        /* batchnorm_cuda_test's shapes: count 1, HW = 1 below / above the block size, tails, HW > block, offset 100 */
        long[][] cases = {{1, 1, 1, 0, 1, 1}, {2, 3, 1, 0, 1, 1}, {300, 2, 1, 0, 0, 1}, {4, 3, 16, 0, 1, 0}, {3, 5, 49, 100, 1, 1},
                {2, 2, 300, 0, 1, 1}, {7, 3, 37, 3, 0, 0}};
        for (long[] cs : cases) {
            int n = (int) cs[0], c = (int) cs[1], hw = (int) cs[2], len = n * c * hw;
            float off = cs[3];
            boolean affine = cs[4] != 0, running = cs[5] != 0;
            float[] x = fill(len, seed++), g = fill(c, seed++), b = fill(c, seed++), dy = fill(len, seed++), rm = fill(c, seed++),
                    rv = new float[c], dg0 = fill(c, seed++), db0 = fill(c, seed++);
            for (int i = 0; i < len; i++) x[i] = 2 * x[i] + off;
            for (int j = 0; j < c; j++) rv[j] = 0.5f + j;
            String what = "batchNorm " + n + "x" + c + "x" + hw;
            double mag = (1 + 10 * Math.abs(off)) * len;  /* bounds the sum of |terms| of every output (|x| rstd <= 10 (1 + |off|) here) */
            try (Arena a = Arena.ofConfined()) {
                MemorySegment hy = a.allocate(JAVA_FLOAT, len), hm = a.allocate(JAVA_FLOAT, c), hr = a.allocate(JAVA_FLOAT, c),
                        hrm = host(a, rm), hrv = host(a, rv), hg = affine ? host(a, g) : MemorySegment.NULL,
                        hb = affine ? host(a, b) : MemorySegment.NULL;
                nat().batchnorm2dFwdTrain(n, c, hw, 1e-5f, 0.1f, host(a, x), hg, hb, hy, hm, hr,
                        running ? hrm : MemorySegment.NULL, running ? hrv : MemorySegment.NULL);
                DeviceBuffer gx = up(cu, x), gg = upOrNull(cu, g, affine), gb = upOrNull(cu, b, affine), gy = nans(cu, len),
                        gm = nans(cu, c), gr = nans(cu, c), grm = upOrNull(cu, rm, running), grv = upOrNull(cu, rv, running);
                try {
                    CudaProbKernels.batchNormTrain(cu, n, c, hw, 1e-5f, 0.1f, gx, gg, gb, gy, gm, gr, grm, grv);
                    ulpClose(what + " y", down(cu, gy, len), floats(hy, len), mag);
                    ulpClose(what + " mean", down(cu, gm, c), floats(hm, c), mag);
                    ulpClose(what + " rstd", down(cu, gr, c), floats(hr, c), mag);
                    if (running) {
                        ulpClose(what + " runningMean", down(cu, grm, c), floats(hrm, c), mag);
                        ulpClose(what + " runningVar", down(cu, grv, c), floats(hrv, c), mag);
                    }
                    /* inference with the CPU's updated running statistics: the same double formula, one rounding */
                    MemorySegment hyi = a.allocate(JAVA_FLOAT, len);
                    nat().batchnorm2dFwdInfer(n, c, hw, 1e-5f, host(a, x), hg, hb, hrm, hrv, hyi);
                    try (DeviceBuffer im = up(cu, floats(hrm, c)); DeviceBuffer iv = up(cu, floats(hrv, c)); DeviceBuffer gyi = nans(cu, len)) {
                        CudaProbKernels.batchNormInfer(cu, n, c, hw, 1e-5f, gx, gg, gb, im, iv, gyi);
                        ulpClose(what + " infer y", down(cu, gyi, len), floats(hyi, len), mag);
                    }
                    /* backward from the CPU's statistics; dgamma / dbeta accumulate onto random values */
                    MemorySegment hdx = a.allocate(JAVA_FLOAT, len), hdg = host(a, dg0), hdb = host(a, db0);
                    nat().batchnorm2dBwd(n, c, hw, host(a, x), hg, hm, hr, host(a, dy), hdx, affine ? hdg : MemorySegment.NULL,
                            affine ? hdb : MemorySegment.NULL);
                    try (DeviceBuffer sm = up(cu, floats(hm, c)); DeviceBuffer sr = up(cu, floats(hr, c)); DeviceBuffer gdy = up(cu, dy);
                         DeviceBuffer gdx = nans(cu, len); DeviceBuffer gdg = up(cu, dg0); DeviceBuffer gdb = up(cu, db0)) {
                        CudaProbKernels.batchNormBackward(cu, n, c, hw, gx, gg, sm, sr, gdy, gdx, affine ? gdg : null, affine ? gdb : null);
                        ulpClose(what + " dx", down(cu, gdx, len), floats(hdx, len), mag);
                        ulpClose(what + " dgamma", down(cu, gdg, c), floats(hdg, c), mag);
                        ulpClose(what + " dbeta", down(cu, gdb, c), floats(hdb, c), mag);
                    }
                } finally {
                    closeIfNotNull(gx, gg, gb, gy, gm, gr, grm, grv);
                }
            }
        }
    }

    @Test
    void bceWithLogits() {
        long seed = 171;
        for (int n : new int[] {1, 7, 257, 4097, 3 * 4096 + 5})
            for (int mode = 0; mode < 4; mode++) {   /* 0 targets, 1 constant target, 2 no dlogits, 3 dlogits in place */
                float[] x = fill(n, seed++), t = fill(n, seed++);
                for (int i = 0; i < n; i++) { x[i] *= 8; t[i] = 0.5f * (t[i] + 1); }
                float[] hard = {88, -88, 30, -30, 0, 1e-30f};
                for (int i = 0; i < Math.min(n, hard.length); i++) x[(i * 131) % n] = hard[i];
                float dscale = 1f / n, tc = 0.9f;
                String what = "bceWithLogits n=" + n + " mode " + mode;
                try (Arena a = Arena.ofConfined(); DeviceBuffer gx = up(cu, x); DeviceBuffer gt = up(cu, t); DeviceBuffer gd = nans(cu, n)) {
                    MemorySegment loss = a.allocate(JAVA_DOUBLE), hd = a.allocate(JAVA_FLOAT, n);
                    nat().bceLogits(n, host(a, x), mode == 1 ? MemorySegment.NULL : host(a, t), tc, loss, mode == 2 ? MemorySegment.NULL : hd, dscale);
                    double want = loss.get(JAVA_DOUBLE, 0);
                    double got = CudaProbKernels.bceWithLogits(cu, n, gx, mode == 1 ? null : gt, tc, mode == 2 ? null : mode == 3 ? gx : gd, dscale);
                    double mag = 0;
                    for (int i = 0; i < n; i++) {
                        double v = x[i], tt = mode == 1 ? tc : t[i];
                        mag += Math.abs(Math.max(v, 0) - v * tt) + Math.log1p(Math.exp(-Math.abs(v)));
                    }
                    long chunks = (n + 4095) / 4096;
                    /* bce_cuda_test: 2^-53 (min(n, 4096) + 2 chunks + 32) of the sum of |l_i| */
                    double tol = 0x1p-53 * (Math.min(n, 4096) + 2 * chunks + 32) * mag;
                    assertTrue(Math.abs(got - want) <= tol, what + ": loss " + got + " vs the CPU's " + want + " (tol " + tol + ")");
                    if (mode != 2) {
                        float[] w = floats(hd, n);
                        close(what + " dlogits", down(cu, mode == 3 ? gx : gd, n), w, i -> Math.ulp(w[i]) + 0x1p-50 * dscale + 1e-37);
                    }
                }
            }
    }
    private static DeviceBuffer upDoubles(Cuda cu, double[] v) {
        DeviceBuffer d = cu.alloc(Math.max(1, v.length) * 8L);
        try (Arena a = Arena.ofConfined()) { d.copyFrom(a.allocateFrom(JAVA_DOUBLE, v)); }
        return d;
    }

    private static double[] downDoubles(Cuda cu, DeviceBuffer d, int n) {
        cu.synchronize();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_DOUBLE, n);
            d.copyTo(h);
            return h.toArray(JAVA_DOUBLE);
        }
    }

    /** coupling_cuda_test's cases and tolerances: float outputs within one ulp + 2^-36, sums within 2^-53 (hw + n + 40) of sum |terms|. */
    @Test
    void coupling() {
        long seed = 211;
        float scale = 0.7f;
        for (int[] cs : new int[][] {{1, 1, 0}, {3, 7, 1}, {2, 255, 0}, {4, 257, 1}, {2, 784, 0}}) {
            int n = cs[0], hw = cs[1], len = n * hw;
            boolean randomMask = cs[2] != 0;
            float[] b = new float[hw], y = fill(len, seed++), h = fill(2 * len, seed++), dout = fill(len, seed++), rb = fill(hw, seed++);
            for (int j = 0; j < hw; j++) b[j] = randomMask ? (rb[j] > 0 ? 1 : 0) : (j & 1);
            for (int i = 0; i < 2 * len; i++) h[i] *= 3;
            double[] dld = new double[n];
            float[] r = fill(n, seed++);
            for (int i = 0; i < n; i++) dld[i] = r[i];
            String what = "coupling " + n + "x" + hw;
            try (Arena a = Arena.ofConfined(); DeviceBuffer gb = up(cu, b); DeviceBuffer gy = up(cu, y); DeviceBuffer gh = up(cu, h);
                 DeviceBuffer go = nans(cu, len); DeviceBuffer gld = cu.alloc(8L * n); DeviceBuffer gi = nans(cu, len);
                 DeviceBuffer gdout = up(cu, dout); DeviceBuffer gdld = upDoubles(cu, dld); DeviceBuffer gdy = nans(cu, len);
                 DeviceBuffer gdh = nans(cu, 2 * len); DeviceBuffer gds = upDoubles(cu, new double[] {0.25})) {
                MemorySegment hb = host(a, b), hy = host(a, y), hh = host(a, h), ho = a.allocate(JAVA_FLOAT, len), hld = a.allocate(JAVA_DOUBLE, n);
                nat().couplingFwd(n, hw, hb, hy, hh, scale, ho, hld);
                CudaProbKernels.couplingForward(cu, n, hw, gb, gy, gh, scale, go, gld);
                float[] ow = floats(ho, len);
                close(what + " out", down(cu, go, len), ow, i -> Math.ulp(ow[i]) + 0x1p-36);
                double[] ldw = hld.toArray(JAVA_DOUBLE), ld = downDoubles(cu, gld, n);
                for (int i = 0; i < n; i++) {
                    double mag = 0;
                    for (int j = 0; j < hw; j++) mag += Math.abs(Math.tanh(h[2 * i * hw + j])) * scale * (1 - b[j]);
                    assertEquals(ldw[i], ld[i], 0x1p-53 * (hw + 40) * mag + 1e-300, what + " logdet[" + i + "]");
                }
                MemorySegment hi = a.allocate(JAVA_FLOAT, len);
                nat().couplingInv(n, hw, hb, ho, hh, scale, hi);
                try (DeviceBuffer gyp = up(cu, ow)) {
                    CudaProbKernels.couplingInverse(cu, n, hw, gb, gyp, gh, scale, gi);
                }
                float[] iw = floats(hi, len);
                close(what + " inverse", down(cu, gi, len), iw, i -> Math.ulp(iw[i]) + 0x1p-36);
                MemorySegment hdy = a.allocate(JAVA_FLOAT, len), hdh = a.allocate(JAVA_FLOAT, 2 * len), hds = a.allocateFrom(JAVA_DOUBLE, 0.25);
                nat().couplingBwd(n, hw, hb, hy, hh, scale, host(a, dout), a.allocateFrom(JAVA_DOUBLE, dld), hdy, hdh, hds);
                CudaProbKernels.couplingBackward(cu, n, hw, gb, gy, gh, scale, gdout, gdld, gdy, gdh, gds);
                float[] dyw = floats(hdy, len), dhw = floats(hdh, 2 * len);
                close(what + " dy", down(cu, gdy, len), dyw, i -> Math.ulp(dyw[i]) + 0x1p-36);
                close(what + " dh", down(cu, gdh, 2 * len), dhw, i -> Math.ulp(dhw[i]) + 0x1p-36);
                double mag = 0.25;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < hw; j++) {
                        double th = Math.tanh(h[2 * i * hw + j]), e = Math.exp(th * scale * (1 - b[j]));
                        mag += Math.abs(((double) dout[i * hw + j] * y[i * hw + j] * e + dld[i]) * (1 - b[j]) * th);
                    }
                assertEquals(hds.get(JAVA_DOUBLE, 0), downDoubles(cu, gds, 1)[0], 0x1p-53 * (hw + n + 40) * mag, what + " dscale");
            }
        }
        try (DeviceBuffer x = cu.alloc(64)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CudaProbKernels.couplingForward(cu, 1, 4, x, x, x, 1f, x, null));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
        }
    }
}
