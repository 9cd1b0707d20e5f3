package dev.latent.cuda;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.cuda.CudaTesting.*;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Our bf16 tensor-core kernels (issue 18: mma.sync m16n8k16, the path when cuBLAS / cuDNN are absent) through the Java
 * launchers, against double references on the bf16-ROUNDED operands (the kernels' operands): ltk_gemm_bf16_128 (the
 * 128 x 128 tile, which the launcher picks at >= 128 blocks: gemmWithinTheDerivedBound of CudaPrecisionTest covers the
 * 64 x 64 one) and ltk_attention_fwd_bf16 (CudaKernels.attentionBf16). The bounds are the emulation tests'
 * (gemm_cuda_test.cc, attention_cuda_test.cc), with room for the tensor core's own summation order on a GPU.
 */
class CudaBf16TensorCoreTest extends AtRefIsaOnDevice {

    @AfterEach
    void restore() { CudaVendor.force(null); }

    /** x rounded to bf16, to nearest even (ltk_f32_to_bf16's rounding); NaN / inf do not occur here. */
    static double bf16(float x) {
        int u = Float.floatToRawIntBits(x);
        u = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
        return Float.intBitsToFloat(u);
    }

    @Test
    void gemmOnTheBig128TileOnOurKernel() {
        // 130 batches of 7 x 9 x 37: one 128 x 128 tile each, 130 >= GEMM_BIG_MIN_BLOCKS blocks -> ltk_gemm_bf16_128
        int batch = 130, m = 7, n = 9, k = 37;
        float[] av = fill(batch * m * k, 3), bv = fill(batch * k * n, 5);
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.of(s, Device.CUDA, av, batch, m, k), b = Tensor.of(s, Device.CUDA, bv, batch, k, n);
            Tensor c = Tensor.zeros(s, Device.CUDA, batch, m, n);
            CudaVendor.force(false);
            Gemm.matmul(a, b, c, 1f, 0f, Precision.BF16);
            float[] got = c.toArray();
            double worst = 0;
            for (int q = 0; q < batch; q++)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double sum = 0, mag = 0;
                        for (int p = 0; p < k; p++) {
                            double x = bf16(av[(q * m + i) * k + p]) * bf16(bv[(q * k + p) * n + j]);
                            sum += x;
                            mag += Math.abs(x);
                        }
                        double tol = (k + 18) * U * mag + 1e-30;   /* fp32 sum of exact products, any order within 16 */
                        double err = Math.abs(got[(q * m + i) * n + j] - sum);
                        worst = Math.max(worst, err / tol);
                        assertTrue(err <= tol, "bf16 128 tile [" + q + "," + i + "," + j + "]: got " + got[(q * m + i) * n + j] + " want " + sum);
                    }
            System.out.printf("gemm bf16 128 tile: largest error / bound %.3f%n", worst);
        }
    }

    @Test
    void attentionForwardAgainstDouble() {
        long seed = 41;
        int[][] shapes = {{1, 1, 1, 8}, {1, 2, 7, 16}, {2, 1, 37, 33}, {1, 1, 70, 72}, {1, 1, 65, 128}};
        for (int[] sh : shapes)
            for (int causal = 0; causal < 2; causal++) {
                int bh = sh[0] * sh[1], t = sh[2], hs = sh[3], n = bh * t * hs;
                float scale = (float) (1.0 / Math.sqrt(hs));
                float[] q = fill(n, seed++), k = fill(n, seed++), v = fill(n, seed++);
                String what = "attention bf16 B" + sh[0] + " NH" + sh[1] + " T" + t + " HS" + hs + (causal == 1 ? " causal" : "");
                try (Arena a = Arena.ofConfined(); DeviceBuffer gq = up(cu, q); DeviceBuffer gk = up(cu, k); DeviceBuffer gv = up(cu, v);
                     DeviceBuffer go = nans(cu, n); DeviceBuffer gl = nans(cu, bh * t)) {
                    MemorySegment d = desc(a, sh, causal, scale);
                    CudaKernels.attentionBf16(cu, d, gq, gk, gv, go, gl);
                    float[] o = down(cu, go, n), lse = down(cu, gl, bh * t);
                    double[] p = new double[t];
                    for (int b = 0; b < bh; b++)
                        for (int i = 0; i < t; i++) {
                            int nk = causal == 1 ? i + 1 : t, qi = (b * t + i) * hs;
                            double mx = Double.NEGATIVE_INFINITY, smag = 0, l = 0;
                            for (int j = 0; j < nk; j++) {
                                double dot = 0, mag = 0;
                                for (int h = 0; h < hs; h++) {
                                    double x = bf16(q[qi + h]) * bf16(k[(b * t + j) * hs + h]);
                                    dot += x;
                                    mag += Math.abs(x);
                                }
                                p[j] = dot * scale;
                                mx = Math.max(mx, p[j]);
                                smag = Math.max(smag, mag * scale);
                            }
                            for (int j = 0; j < nk; j++) l += (p[j] = Math.exp(p[j] - mx));
                            double epsS = 8 * U * (hs + 16) * smag, eps = 0x1p-8 + 2 * epsS + 8 * U * (t + 16);
                            double wl = mx + Math.log(l);
                            assertTrue(Math.abs(lse[b * t + i] - wl) <= 2 * epsS + 8 * U * (t + 16) + 4 * U * Math.abs(wl),
                                    what + " lse[" + b + "," + i + "]: got " + lse[b * t + i] + " want " + wl);
                            for (int c = 0; c < hs; c++) {
                                double want = 0, mag = 0;
                                for (int j = 0; j < nk; j++) {
                                    double vv = bf16(v[(b * t + j) * hs + c]);
                                    want += p[j] / l * vv;
                                    mag += p[j] / l * Math.abs(vv);
                                }
                                assertTrue(Math.abs(o[qi + c] - want) <= eps * mag + 1e-30,
                                        what + " o[" + b + "," + i + "," + c + "]: got " + o[qi + c] + " want " + want);
                            }
                        }
                }
            }
    }

    @Test
    void attentionBackwardAgainstDouble() {
        // attentionBf16's o and lse feed attentionBackwardBf16, as a training step does; the double reference takes the
        // same lse and D = dout . o and the rounded operands (attention_cuda_test.cc's bf16_bwd_cases bounds)
        long seed = 91;
        int[][] shapes = {{1, 1, 1, 8}, {1, 2, 37, 33}, {1, 1, 40, 128}};
        for (int[] sh : shapes)
            for (int causal = 0; causal < 2; causal++) {
                int bh = sh[0] * sh[1], t = sh[2], hs = sh[3], n = bh * t * hs;
                float scale = (float) (1.0 / Math.sqrt(hs));
                float[] q = fill(n, seed++), k = fill(n, seed++), v = fill(n, seed++), dout = fill(n, seed++);
                String what = "attention bwd bf16 B" + sh[0] + " NH" + sh[1] + " T" + t + " HS" + hs + (causal == 1 ? " causal" : "");
                try (Arena a = Arena.ofConfined(); DeviceBuffer gq = up(cu, q); DeviceBuffer gk = up(cu, k); DeviceBuffer gv = up(cu, v);
                     DeviceBuffer gdo = up(cu, dout); DeviceBuffer go = nans(cu, n); DeviceBuffer gl = nans(cu, bh * t);
                     DeviceBuffer gdq = nans(cu, n); DeviceBuffer gdk = nans(cu, n); DeviceBuffer gdv = nans(cu, n)) {
                    MemorySegment d = desc(a, sh, causal, scale);
                    CudaKernels.attentionBf16(cu, d, gq, gk, gv, go, gl);
                    CudaKernels.attentionBackwardBf16(cu, d, gq, gk, gv, go, gl, gdo, gdq, gdk, gdv);
                    float[] o = down(cu, go, n), lse = down(cu, gl, bh * t);
                    float[] dq = down(cu, gdq, n), dk = down(cu, gdk, n), dv = down(cu, gdv, n);
                    double[] wq = new double[n], wk = new double[n], wv = new double[n], mq = new double[n], mk = new double[n], mv = new double[n];
                    double epsS = 0;
                    for (int b = 0; b < bh; b++) {
                        int b0 = b * t * hs;
                        for (int i = 0; i < t; i++) {
                            double di = 0;
                            for (int c = 0; c < hs; c++) di += (double) dout[b0 + i * hs + c] * o[b0 + i * hs + c];
                            for (int j = 0; j <= (causal == 1 ? i : t - 1); j++) {
                                double s = 0, sm = 0, dp = 0, dpm = 0;
                                for (int h = 0; h < hs; h++) {
                                    double x = bf16(q[b0 + i * hs + h]) * bf16(k[b0 + j * hs + h]), y = bf16(dout[b0 + i * hs + h]) * bf16(v[b0 + j * hs + h]);
                                    s += x;
                                    sm += Math.abs(x);
                                    dp += y;
                                    dpm += Math.abs(y);
                                }
                                epsS = Math.max(epsS, 4 * U * (hs + 16) * sm * scale);
                                double p = Math.exp(s * scale - lse[b * t + i]), ds = p * (dp - di) * scale, m = p * (dpm + Math.abs(di)) * scale;
                                for (int c = 0; c < hs; c++) {
                                    int ic = b0 + i * hs + c, jc = b0 + j * hs + c;
                                    wv[jc] += p * bf16(dout[ic]);
                                    mv[jc] += p * Math.abs(bf16(dout[ic]));
                                    wk[jc] += ds * bf16(q[ic]);
                                    mk[jc] += m * Math.abs(bf16(q[ic]));
                                    wq[ic] += ds * bf16(k[jc]);
                                    mq[ic] += m * Math.abs(bf16(k[jc]));
                                }
                            }
                        }
                    }
                    /* the emulation test's bounds, doubled: D here is a double dot, the kernel's an fp32 one */
                    double ev = 2 * (0x1p-8 + 2 * epsS + 4 * U * (t + 16)), ek = 2 * (0x1p-8 + 2 * epsS + 4 * U * (hs + t + 32));
                    for (int e = 0; e < n; e++) {
                        assertTrue(Math.abs(dv[e] - wv[e]) <= ev * mv[e] + 1e-30, what + " dv[" + e + "]: got " + dv[e] + " want " + wv[e]);
                        assertTrue(Math.abs(dk[e] - wk[e]) <= ek * mk[e] + 1e-30, what + " dk[" + e + "]: got " + dk[e] + " want " + wk[e]);
                        assertTrue(Math.abs(dq[e] - wq[e]) <= ek * mq[e] + 1e-30, what + " dq[" + e + "]: got " + dq[e] + " want " + wq[e]);
                    }
                }
            }
    }

    @Test
    void attentionRefusesAHeadSizeItsTilesCannotHold() {
        try (Arena a = Arena.ofConfined(); DeviceBuffer x = nans(cu, 129); DeviceBuffer l = nans(cu, 1)) {
            MemorySegment d = desc(a, new int[] {1, 1, 1, 129}, 0, 1f);
            var e = assertThrows(IllegalArgumentException.class, () -> CudaKernels.attentionBf16(cu, d, x, x, x, x, l));
            assertTrue(e.getMessage().contains("head size 129"), e.getMessage());
        }
    }

    private static MemorySegment desc(Arena a, int[] sh, int causal, float scale) {
        MemorySegment d = a.allocate(LatentNative.ATTENTION_DESC);
        for (int i = 0; i < 4; i++) d.set(JAVA_LONG, 8L * i, sh[i]);
        d.set(JAVA_INT, 32, causal);
        d.set(JAVA_FLOAT, 36, scale);
        return d;
    }
}
