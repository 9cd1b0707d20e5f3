package dev.latent.cuda;

import dev.latent.nativ.LatentNative;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.cuda.CudaTesting.*;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Attention (forward, backward) and conv2d (forward, backward data, weight, bias) through {@link CudaKernels} against
 * the CPU library at ISA ref, on attention_cuda_test.cc's and conv2d_cuda_test.cc's shapes. Those tests bound each
 * kernel's distance from the exact value by eps times the sum of |terms| of each output (computed here in double,
 * as they do); the CPU kernels are held to the same kind of bound by their own tests, so GPU and CPU may differ by
 * twice it.
 */
class CudaAttentionConvTest extends AtRefIsaOnDevice {

    @Test
    void attention() {
        long seed = 37;
        int[][] shapes = {{1, 1, 1, 1}, {1, 2, 7, 16}, {2, 1, 37, 33}, {1, 1, 70, 72}, {1, 1, 40, 128}};
        for (int[] sh : shapes)
            for (int causal = 0; causal < 2; causal++) {
                int bh = sh[0] * sh[1], t = sh[2], hs = sh[3], n = bh * t * hs;
                float scale = (float) (1.0 / Math.sqrt(hs));
                float[] q = fill(n, seed++), k = fill(n, seed++), v = fill(n, seed++), dout = fill(n, seed++);
                String what = "attention B" + sh[0] + " NH" + sh[1] + " T" + t + " HS" + hs + (causal == 1 ? " causal" : "");
                try (Arena a = Arena.ofConfined(); DeviceBuffer gq = up(cu, q); DeviceBuffer gk = up(cu, k); DeviceBuffer gv = up(cu, v);
                     DeviceBuffer gdo = up(cu, dout); DeviceBuffer go = nans(cu, n); DeviceBuffer gl = nans(cu, bh * t);
                     DeviceBuffer gdq = nans(cu, n); DeviceBuffer gdk = nans(cu, n); DeviceBuffer gdv = nans(cu, n)) {
                    MemorySegment d = a.allocate(LatentNative.ATTENTION_DESC);
                    long[] f = {sh[0], sh[1], t, hs};
                    for (int i = 0; i < 4; i++) d.set(JAVA_LONG, 8L * i, f[i]);
                    d.set(JAVA_INT, 32, causal);
                    d.set(JAVA_FLOAT, 36, scale);
                    MemorySegment ho = a.allocate(JAVA_FLOAT, n), hl = a.allocate(JAVA_FLOAT, bh * t), hdq = a.allocate(JAVA_FLOAT, n),
                            hdk = a.allocate(JAVA_FLOAT, n), hdv = a.allocate(JAVA_FLOAT, n);
                    LatentNative.get().attentionFwd(d, host(a, q), host(a, k), host(a, v), ho, hl);
                    LatentNative.get().attentionBwd(d, host(a, q), host(a, k), host(a, v), ho, hl, host(a, dout), hdq, hdk, hdv);
                    CudaKernels.attention(cu, d, gq, gk, gv, go, gl);
                    /* the backward from the CPU's o and lse, so only the backward's own error is measured */
                    try (DeviceBuffer co = up(cu, floats(ho, n)); DeviceBuffer cl = up(cu, floats(hl, bh * t))) {
                        CudaKernels.attentionBackward(cu, d, gq, gk, gv, co, cl, gdo, gdq, gdk, gdv);
                    }
                    double[][] mag = attentionMagnitudes(bh, t, hs, causal == 1, scale, q, k, v, dout);
                    double eps = 2 * 4 * U * (hs + t + 16);   /* attention_cuda_test's eps, doubled */
                    float[] lse = floats(hl, bh * t);
                    close(what + " o", down(cu, go, n), floats(ho, n), e -> eps * mag[0][e] + 1e-30);
                    close(what + " lse", down(cu, gl, bh * t), lse, e -> eps * (1 + Math.abs(lse[e])) + 1e-30);
                    close(what + " dq", down(cu, gdq, n), floats(hdq, n), e -> eps * mag[1][e] + 1e-30);
                    close(what + " dk", down(cu, gdk, n), floats(hdk, n), e -> eps * mag[2][e] + 1e-30);
                    close(what + " dv", down(cu, gdv, n), floats(hdv, n), e -> eps * mag[3][e] + 1e-30);
                }
            }
    }

    /** Sums of |terms| of o, dq, dk, dv per element, in double (attention_cuda_test.cc's tolerance magnitudes). */
    static double[][] attentionMagnitudes(int bh, int t, int hs, boolean causal, double sc, float[] q, float[] k, float[] v, float[] dout) {
        int n = bh * t * hs;
        double[] to = new double[n], tdq = new double[n], tdk = new double[n], tdv = new double[n], p = new double[t];
        for (int b = 0; b < bh; b++) {
            int b0 = b * t * hs;
            for (int i = 0; i < t; i++) {
                int nk = causal ? i + 1 : t;
                double m = Double.NEGATIVE_INFINITY, l = 0;
                for (int j = 0; j < nk; j++) {
                    double dot = 0;
                    for (int c = 0; c < hs; c++) dot += (double) q[b0 + i * hs + c] * k[b0 + j * hs + c];
                    p[j] = dot * sc;
                    m = Math.max(m, p[j]);
                }
                for (int j = 0; j < nk; j++) l += Math.exp(p[j] - m);
                for (int j = 0; j < nk; j++) p[j] = Math.exp(p[j] - m) / l;
                double di = 0;
                for (int c = 0; c < hs; c++) {
                    double oc = 0, mag = 0;
                    for (int j = 0; j < nk; j++) {
                        oc += p[j] * v[b0 + j * hs + c];
                        mag += p[j] * Math.abs(v[b0 + j * hs + c]);
                    }
                    to[b0 + i * hs + c] = mag;
                    di += oc * dout[b0 + i * hs + c];
                }
                for (int j = 0; j < nk; j++) {
                    double dp = 0;
                    for (int c = 0; c < hs; c++) dp += (double) dout[b0 + i * hs + c] * v[b0 + j * hs + c];
                    double dsmag = p[j] * (Math.abs(dp) + Math.abs(di) + 1) * sc;
                    for (int c = 0; c < hs; c++) {
                        tdv[b0 + j * hs + c] += p[j] * Math.abs(dout[b0 + i * hs + c]);
                        tdk[b0 + j * hs + c] += dsmag * Math.abs(q[b0 + i * hs + c]);
                        tdq[b0 + i * hs + c] += dsmag * Math.abs(k[b0 + j * hs + c]);
                    }
                }
            }
        }
        return new double[][] {to, tdq, tdk, tdv};
    }

    @Test
    void conv2d() {
        long seed = 41;
        int[][] cs = {{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1}, {1, 5, 9, 8, 7, 3, 3, 2, 2, 1, 1},
                {2, 2, 6, 7, 3, 5, 2, 1, 2, 2, 0}, {1, 3, 8, 8, 2, 7, 7, 1, 1, 3, 3}, {3, 17, 5, 5, 65, 1, 1, 1, 1, 0, 0},
                {1, 4, 10, 9, 5, 4, 4, 2, 2, 1, 1}, {3, 3, 19, 21, 5, 3, 3, 1, 1, 1, 1}, // bwd_weight in 5 splits
                {2, 3, 10, 2, 4, 2, 1, 3, 3, 0, 0}, {1, 70, 9, 7, 3, 5, 3, 2, 3, 2, 1}, // bwd_data phases: empty ones, sh != sw
                {8, 3, 66, 70, 5, 3, 3, 1, 1, 1, 1}, // 145 blocks of 64 x 256: the _wide fwd / bwd_data kernels
                {4, 32, 12, 10, 20, 3, 3, 1, 1, 1, 1}}; // C R S = 288: ltk_conv2d_bwd_weight_wide, 2 splits
        for (int[] c : cs) {
            int N = c[0], C = c[1], H = c[2], W = c[3], K = c[4], R = c[5], S = c[6], sh = c[7], sw = c[8], ph = c[9], pw = c[10];
            int OH = (H + 2 * ph - R) / sh + 1, OW = (W + 2 * pw - S) / sw + 1;
            int nx = N * C * H * W, nw = K * C * R * S, ny = N * K * OH * OW;
            float[] x = fill(nx, seed++), w = fill(nw, seed++), dy = fill(ny, seed++), bk = fill(K, seed++), bc = fill(C, seed++);
            double[] ty = new double[ny], tdx = new double[nx], tdw = new double[nw], tdb = new double[K];
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++) {
                            int yi = ((n * K + k) * OH + oh) * OW + ow;
                            tdb[k] += Math.abs(dy[yi]);
                            for (int ci = 0; ci < C; ci++)
                                for (int r = 0; r < R; r++)
                                    for (int s = 0; s < S; s++) {
                                        int h = oh * sh - ph + r, ww = ow * sw - pw + s;
                                        if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                                        int xi = ((n * C + ci) * H + h) * W + ww, wi = ((k * C + ci) * R + r) * S + s;
                                        ty[yi] += Math.abs((double) x[xi] * w[wi]);
                                        tdx[xi] += Math.abs((double) dy[yi] * w[wi]);
                                        tdw[wi] += Math.abs((double) dy[yi] * x[xi]);
                                    }
                        }
            String what = "conv2d N" + N + " C" + C + " " + H + "x" + W + " K" + K + " " + R + "x" + S + " stride " + sh + "," + sw + " pad " + ph + "," + pw;
            try (Arena a = Arena.ofConfined(); DeviceBuffer gx = up(cu, x); DeviceBuffer gw = up(cu, w); DeviceBuffer gdy = up(cu, dy);
                 DeviceBuffer gbk = up(cu, bk); DeviceBuffer gbc = up(cu, bc)) {
                MemorySegment d = a.allocate(LatentNative.CONV2D_DESC);
                long[] f = {N, C, H, W, K, R, S, OH, OW};
                for (int i = 0; i < 9; i++) d.set(JAVA_LONG, 8L * i, f[i]);
                d.set(JAVA_INT, 72, sh); d.set(JAVA_INT, 76, sw); d.set(JAVA_INT, 80, ph); d.set(JAVA_INT, 84, pw);
                LatentNative nat = LatentNative.get();
                for (boolean bias : new boolean[] {false, true})
                    try (DeviceBuffer gy = nans(cu, ny); DeviceBuffer gdx = nans(cu, nx)) {
                        MemorySegment hy = a.allocate(JAVA_FLOAT, ny), hdx = a.allocate(JAVA_FLOAT, nx);
                        nat.conv2dFwd(d, host(a, x), host(a, w), bias ? host(a, bk) : MemorySegment.NULL, hy);
                        nat.conv2dBwdData(d, host(a, dy), host(a, w), bias ? host(a, bc) : MemorySegment.NULL, hdx);
                        CudaConvKernels.conv2d(cu, d, gx, gw, bias ? gbk : null, gy);
                        CudaConvKernels.conv2dBackwardData(cu, d, gdy, gw, bias ? gbc : null, gdx);
                        float[] wy = floats(hy, ny), wdx = floats(hdx, nx);
                        close(what + " y bias " + bias, down(cu, gy, ny), wy,
                                e -> tol(C * R * S, ty[e], bias ? bk[e / (OH * OW) % K] : 0, 0, wy[e]));
                        close(what + " dx bias " + bias, down(cu, gdx, nx), wdx,
                                e -> tol(K * R * S, tdx[e], bias ? bc[e / (H * W) % C] : 0, 0, wdx[e]));
                    }
                for (boolean acc : new boolean[] {false, true}) {
                    float[] dw0 = acc ? fill(nw, seed++) : new float[nw], db0 = acc ? fill(K, seed++) : new float[K];
                    if (!acc) { java.util.Arrays.fill(dw0, Float.NaN); java.util.Arrays.fill(db0, Float.NaN); }
                    try (DeviceBuffer gdw = up(cu, dw0); DeviceBuffer gdb = up(cu, db0)) {
                        MemorySegment hdw = host(a, dw0), hdb = host(a, db0);
                        nat.conv2dBwdWeight(d, host(a, x), host(a, dy), hdw, hdb, acc);
                        CudaConvKernels.conv2dBackwardWeight(cu, d, gx, gdy, gdw, gdb, acc);
                        float[] wdw = floats(hdw, nw), wdb = floats(hdb, K);
                        int depth = N * OH * OW;
                        close(what + " dw accumulate " + acc, down(cu, gdw, nw), wdw, e -> tol(depth, tdw[e], 0, acc ? dw0[e] : 0, wdw[e]));
                        close(what + " db accumulate " + acc, down(cu, gdb, K), wdb, e -> tol(depth, tdb[e], 0, acc ? db0[e] : 0, wdb[e]));
                    }
                }
            }
        }
    }

    /**
     * conv2d_cuda_test: u (8 sqrt(depth) + 3) sum |terms| + 2 u (|bias| + |accumulated| + |result|), doubled. The
     * doubling also covers bwd_weight's depth split (u (8 sqrt(chunk) + 8 sqrt(splits) + 6) sum |terms| there).
     */
    private static double tol(int depth, double mag, double bias, double acc0, double want) {
        return 2 * (U * (8 * Math.sqrt(depth) + 3) * mag + 2 * U * (Math.abs(bias) + Math.abs(acc0) + Math.abs(want))) + 1e-30;
    }
}
