package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.nativ.NativeException;
import dev.latent.ops.AttentionKernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.cuda.CudaTesting.EMU_SDPA_BWD;
import static dev.latent.cuda.CudaTesting.EMU_SDPA_FWD;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.down;
import static dev.latent.cuda.CudaTesting.emuCounters;
import static dev.latent.cuda.CudaTesting.emulated;
import static dev.latent.cuda.CudaTesting.fill;
import static dev.latent.cuda.CudaTesting.sdpa;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * cuDNN's SDPA forward and backward through the backend graph API (CuDnnAttention, CudaVendor.attentionBf16): on the emulated driver
 * against its stand-in (which checks the graph is the causal SDPA pattern and computes the reference), on a GPU
 * against cuDNN 9. With -Dlatent.cudnn.path set (the cuda-emulated execution sets it) cuDNN >= 9 must serve attention.
 *
 * Tolerances: the inputs are bf16 (exactly representable, so every implementation sees the same values); O is stored
 * in bf16 (2^-9 relative to nearest) and a GPU also rounds the probabilities P to bf16 before P V (2^-9 relative each,
 * so within 2^-9 sum_j P_j |v_j| <= 2^-9 max |v|): we allow 2^-7 max |v| + 2^-8 |o|. Stats (fp32 log-sum-exp):
 * 1e-4 (1 + |lse|), room for a GPU's exp2-based softmax. Gradients (bf16 outputs; a GPU also rounds P and dS to bf16
 * before their matmuls): 2^-6 of the largest |reference| of each gradient plus 2^-8 of the element.
 */
class CuDnnAttentionTest {
    static Cuda cu;
    static CuDnnAttention attn;

    @BeforeAll
    static void setUp() {
        cu = device();
        attn = sdpa(cu);
    }

    @AfterEach
    void restore() { CudaVendor.force(null); }

    static short bf16(float x) {
        int u = Float.floatToRawIntBits(x);
        if ((u & 0x7f800000) == 0x7f800000) return (short) ((u >>> 16) | ((u & 0xffff) != 0 ? 0x40 : 0));
        return (short) ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16);
    }

    static float f32(short b) { return Float.intBitsToFloat((b & 0xffff) << 16); }

    static DeviceBuffer upBf16(short[] v) {
        DeviceBuffer d = cu.alloc(Math.max(1, v.length) * 2L);
        try (Arena a = Arena.ofConfined()) { d.copyFrom(a.allocateFrom(JAVA_SHORT, v)); }
        return d;
    }

    static short[] downBf16(DeviceBuffer d, int n) {
        cu.synchronize();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(JAVA_SHORT, n);
            d.copyTo(s);
            return s.toArray(JAVA_SHORT);
        }
    }

    /** Random values rounded to bf16: what every implementation sees exactly. */
    static float[] bf16Values(int n, long seed, float scale) {
        float[] v = fill(n, seed);
        for (int i = 0; i < n; i++) v[i] = f32(bf16(v[i] * scale));
        return v;
    }

    static short[] bits(float[] v) {
        short[] s = new short[v.length];
        for (int i = 0; i < v.length; i++) s[i] = bf16(v[i]);
        return s;
    }

    /** Causal attention in double: o (B, H, T, D) and lse (B, H, T). */
    static void reference(int B, int H, int T, int D, float scale, float[] q, float[] k, float[] v, double[] o, double[] lse) {
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < T; i++) {
                double[] s = new double[i + 1];
                double m = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    double dot = 0;
                    for (int c = 0; c < D; c++) dot += (double) q[(bh * T + i) * D + c] * k[(bh * T + j) * D + c];
                    s[j] = scale * dot;
                    m = Math.max(m, s[j]);
                }
                double l = 0;
                for (int j = 0; j <= i; j++) l += (s[j] = Math.exp(s[j] - m));
                for (int c = 0; c < D; c++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) acc += s[j] / l * v[(bh * T + j) * D + c];
                    o[(bh * T + i) * D + c] = acc;
                }
                lse[bh * T + i] = m + Math.log(l);
            }
    }

    record Result(float[] o, float[] lse) {}

    static Result run(int B, int H, int T, int D, float scale, float[] q, float[] k, float[] v, CuDnnAttention.Variant variant) {
        int n = B * H * T * D;
        try (DeviceBuffer dq = upBf16(bits(q)); DeviceBuffer dk = upBf16(bits(k)); DeviceBuffer dv = upBf16(bits(v));
             DeviceBuffer dO = upBf16(new short[n]); DeviceBuffer dl = CudaTesting.up(cu, new float[B * H * T])) {
            if (variant == CuDnnAttention.Variant.CAUSAL)
                assertTrue(CudaVendor.attentionBf16(cu, B, H, T, D, scale, dq, dk, dv, dO, dl), "cuDNN did not serve the attention");
            else
                attn.forward(B, H, T, D, scale, dq.address(), dk.address(), dv.address(), dO.address(), dl.address(), variant);
            short[] ob = downBf16(dO, n);
            float[] o = new float[n];
            for (int i = 0; i < n; i++) o[i] = f32(ob[i]);
            return new Result(o, down(cu, dl, B * H * T));
        }
    }

    static void compare(String what, Result r, double[] o, double[] lse, float[] v) {
        double vmax = 0;
        for (float x : v) vmax = Math.max(vmax, Math.abs(x));
        double worst = 0;
        for (int i = 0; i < o.length; i++) {
            double tol = Math.scalb(vmax, -7) + Math.scalb(Math.abs(o[i]), -8);
            double e = Math.abs(r.o[i] - o[i]) / tol;
            assertTrue(e <= 1, what + ": o[" + i + "] = " + r.o[i] + ", want " + o[i] + " (tolerance " + tol + ")");
            worst = Math.max(worst, e);
        }
        for (int i = 0; i < lse.length; i++) {
            double tol = 1e-4 * (1 + Math.abs(lse[i]));
            assertTrue(Math.abs(r.lse[i] - lse[i]) <= tol, what + ": lse[" + i + "] = " + r.lse[i] + ", want " + lse[i]);
        }
        System.out.printf("%s: largest o error / tolerance %.3f%n", what, worst);
    }

    @Test
    void causalForwardMatchesTheDefinitionAndReusesItsPlan() {
        int[][] shapes = {{2, 3, 7, 8}, {1, 2, 33, 16}, {1, 1, 1, 8}};
        long seed = 1;
        for (int[] s : shapes) {
            int B = s[0], H = s[1], T = s[2], D = s[3], n = B * H * T * D;
            float scale = (float) (1 / Math.sqrt(D));
            float[] q = bf16Values(n, seed++, 2f), k = bf16Values(n, seed++, 2f), v = bf16Values(n, seed++, 1f);
            double[] o = new double[n], lse = new double[B * H * T];
            reference(B, H, T, D, scale, q, k, v, o, lse);
            long[] before = emulated() ? emuCounters() : null;
            compare("sdpa " + java.util.Arrays.toString(s), run(B, H, T, D, scale, q, k, v, CuDnnAttention.Variant.CAUSAL), o, lse, v);
            if (before != null) assertEquals(1, emuCounters()[EMU_SDPA_FWD] - before[EMU_SDPA_FWD], "cudnnBackendExecute calls");
            int plans = attn.planCount();
            run(B, H, T, D, scale, q, k, v, CuDnnAttention.Variant.CAUSAL);
            assertEquals(plans, attn.planCount(), "the same shape must reuse its execution plan");
        }
    }

    /** cuDNN's Stats is our kernels' lse, and O agrees with our fp32 attention kernel on the same (bf16-valued) inputs. */
    @Test
    void statsAreOurLseContract() {
        int B = 2, H = 2, T = 19, D = 16, n = B * H * T * D;
        float scale = 0.25f;
        float[] q = bf16Values(n, 41, 2f), k = bf16Values(n, 42, 2f), v = bf16Values(n, 43, 1f);
        Result r = run(B, H, T, D, scale, q, k, v, CuDnnAttention.Variant.CAUSAL);
        try (Graph g = Graph.open()) {
            Tensor tq = Tensor.of(g.scope(), Device.CUDA, q, B, H, T, D), tk = Tensor.of(g.scope(), Device.CUDA, k, B, H, T, D),
                    tv = Tensor.of(g.scope(), Device.CUDA, v, B, H, T, D);
            Tensor to = Tensor.zeros(g.scope(), Device.CUDA, B, H, T, D), tl = Tensor.zeros(g.scope(), Device.CUDA, B, H, T);
            CudaVendor.force(false);   // our kernel, whatever serves attention
            AttentionKernels.attention(tq, tk, tv, true, scale, to, tl);
            float[] ours = to.toArray(), lse = tl.toArray();
            double[] od = new double[n], ld = new double[B * H * T];
            for (int i = 0; i < n; i++) od[i] = ours[i];
            for (int i = 0; i < ld.length; i++) ld[i] = lse[i];
            compare("sdpa vs our attention kernel", r, od, ld, v);
        }
    }

    /** Causal attention backward in double from the given o and lse (as cuDNN's backward recomputes P from Stats). */
    static void referenceBackward(int B, int H, int T, int D, float scale, float[] q, float[] k, float[] v, float[] o, float[] lse,
                                  float[] dout, double[] dq, double[] dk, double[] dv) {
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < T; i++) {
                double dsum = 0;
                for (int c = 0; c < D; c++) dsum += (double) dout[(bh * T + i) * D + c] * o[(bh * T + i) * D + c];
                for (int j = 0; j <= i; j++) {
                    double dot = 0, dp = 0;
                    for (int c = 0; c < D; c++) {
                        dot += (double) q[(bh * T + i) * D + c] * k[(bh * T + j) * D + c];
                        dp += (double) dout[(bh * T + i) * D + c] * v[(bh * T + j) * D + c];
                    }
                    double p = Math.exp(scale * dot - lse[bh * T + i]), ds = p * (dp - dsum) * scale;
                    for (int c = 0; c < D; c++) {
                        dv[(bh * T + j) * D + c] += p * dout[(bh * T + i) * D + c];
                        dq[(bh * T + i) * D + c] += ds * k[(bh * T + j) * D + c];
                        dk[(bh * T + j) * D + c] += ds * q[(bh * T + i) * D + c];
                    }
                }
            }
    }

    static float[] runBackward(int B, int H, int T, int D, float scale, float[] q, float[] k, float[] v, float[] o, float[] lse, float[] dout,
                               CuDnnAttention.Variant variant) {
        int n = B * H * T * D;
        try (DeviceBuffer dq = upBf16(bits(q)); DeviceBuffer dk = upBf16(bits(k)); DeviceBuffer dv = upBf16(bits(v));
             DeviceBuffer dO = upBf16(bits(o)); DeviceBuffer dd = upBf16(bits(dout)); DeviceBuffer dl = CudaTesting.up(cu, lse);
             DeviceBuffer gq = upBf16(new short[n]); DeviceBuffer gk = upBf16(new short[n]); DeviceBuffer gv = upBf16(new short[n])) {
            if (variant == CuDnnAttention.Variant.CAUSAL)
                assertTrue(CudaVendor.attentionBackwardBf16(cu, B, H, T, D, scale, dq, dk, dv, dO, dd, dl, gq, gk, gv),
                        "cuDNN did not serve the attention backward");
            else
                attn.backward(B, H, T, D, scale, dq.address(), dk.address(), dv.address(), dO.address(), dd.address(), dl.address(),
                        gq.address(), gk.address(), gv.address(), variant);
            float[] out = new float[3 * n];
            short[][] g = {downBf16(gq, n), downBf16(gk, n), downBf16(gv, n)};
            for (int w = 0; w < 3; w++)
                for (int i = 0; i < n; i++) out[w * n + i] = f32(g[w][i]);
            return out;
        }
    }

    static void compareGrads(String what, float[] got, double[][] want) {
        int n = want[0].length;
        String[] names = {"dq", "dk", "dv"};
        for (int w = 0; w < 3; w++) {
            double max = 0;
            for (double x : want[w]) max = Math.max(max, Math.abs(x));
            double worst = 0;
            for (int i = 0; i < n; i++) {
                double tol = Math.scalb(max, -6) + Math.scalb(Math.abs(want[w][i]), -8) + 1e-30;
                double e = Math.abs(got[w * n + i] - want[w][i]) / tol;
                assertTrue(e <= 1, what + ": " + names[w] + "[" + i + "] = " + got[w * n + i] + ", want " + want[w][i] + " (tolerance " + tol + ")");
                worst = Math.max(worst, e);
            }
            System.out.printf("%s %s: largest error / tolerance %.3f%n", what, names[w], worst);
        }
    }

    /** The backward from cuDNN's own forward (O, Stats) against the definition and against our fp32 backward kernel. */
    @Test
    void causalBackwardMatchesTheDefinitionAndOurKernel() {
        int[][] shapes = {{2, 3, 7, 8}, {1, 2, 33, 16}, {1, 1, 1, 8}};
        long seed = 61;
        for (int[] s : shapes) {
            int B = s[0], H = s[1], T = s[2], D = s[3], n = B * H * T * D;
            float scale = (float) (1 / Math.sqrt(D));
            float[] q = bf16Values(n, seed++, 2f), k = bf16Values(n, seed++, 2f), v = bf16Values(n, seed++, 1f), dout = bf16Values(n, seed++, 1f);
            Result fwd = run(B, H, T, D, scale, q, k, v, CuDnnAttention.Variant.CAUSAL);   // o already bf16 values
            double[][] want = {new double[n], new double[n], new double[n]};
            referenceBackward(B, H, T, D, scale, q, k, v, fwd.o, fwd.lse, dout, want[0], want[1], want[2]);
            long[] before = emulated() ? emuCounters() : null;
            float[] got = runBackward(B, H, T, D, scale, q, k, v, fwd.o, fwd.lse, dout, CuDnnAttention.Variant.CAUSAL);
            if (before != null) assertEquals(1, emuCounters()[EMU_SDPA_BWD] - before[EMU_SDPA_BWD], "backward cudnnBackendExecute calls");
            String what = "sdpa backward " + java.util.Arrays.toString(s);
            compareGrads(what, got, want);
            // our fp32 backward kernel from the same o and lse: the two backwards agree within the bf16 tolerance
            try (Graph g = Graph.open()) {
                long[] shape = {B, H, T, D};
                Tensor tq = Tensor.of(g.scope(), Device.CUDA, q, shape), tk = Tensor.of(g.scope(), Device.CUDA, k, shape),
                        tv = Tensor.of(g.scope(), Device.CUDA, v, shape), to = Tensor.of(g.scope(), Device.CUDA, fwd.o, shape),
                        tl = Tensor.of(g.scope(), Device.CUDA, fwd.lse, B, H, T), td = Tensor.of(g.scope(), Device.CUDA, dout, shape);
                Tensor gq = Tensor.zeros(g.scope(), Device.CUDA, shape), gk = Tensor.zeros(g.scope(), Device.CUDA, shape),
                        gv = Tensor.zeros(g.scope(), Device.CUDA, shape);
                CudaVendor.force(false);
                AttentionKernels.attentionBackward(tq, tk, tv, to, tl, td, true, scale, gq, gk, gv);
                CudaVendor.force(null);
                float[][] ours = {gq.toArray(), gk.toArray(), gv.toArray()};
                double[][] od = new double[3][n];
                for (int w = 0; w < 3; w++) for (int i = 0; i < n; i++) od[w][i] = ours[w][i];
                compareGrads(what + " vs our kernel", got, od);
            }
        }
    }

    @Test
    void anotherGraphIsRefused() {
        int B = 1, H = 1, T = 5, D = 8, n = B * H * T * D;
        float[] q = bf16Values(n, 51, 1f), k = bf16Values(n, 52, 1f), v = bf16Values(n, 53, 1f);
        for (CuDnnAttention.Variant bad : new CuDnnAttention.Variant[] {CuDnnAttention.Variant.MASK_REVERSED, CuDnnAttention.Variant.UNSCALED}) {
            NativeException e = assertThrows(NativeException.class, () -> run(B, H, T, D, 0.5f, q, k, v, bad), bad.toString());
            if (attn.standIn()) assertTrue(e.getMessage().contains("CUDNN_STATUS_BAD_PARAM") && e.getMessage().contains("causal SDPA forward"),
                    bad + ": " + e.getMessage());
            float[] o = new float[n], lse = new float[B * H * T];
            NativeException eb = assertThrows(NativeException.class, () -> runBackward(B, H, T, D, 0.5f, q, k, v, o, lse, v, bad),
                    "backward " + bad);
            if (attn.standIn()) assertTrue(eb.getMessage().contains("CUDNN_STATUS_BAD_PARAM") && eb.getMessage().contains("causal SDPA backward"),
                    "backward " + bad + ": " + eb.getMessage());
        }
    }

    @Test
    void vendorOffServesNothing() {
        CudaVendor.force(false);
        try (DeviceBuffer d = cu.alloc(4096)) {
            assertFalse(CudaVendor.attentionBf16(cu, 1, 1, 4, 8, 0.5f, d, d, d, d, d));
            assertFalse(CudaVendor.attentionBackwardBf16(cu, 1, 1, 4, 8, 0.5f, d, d, d, d, d, d, d, d, d));
        }
    }
}
