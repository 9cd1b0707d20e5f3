package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nativ.NativeException;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaTesting.EMU_LT_MATMUL;
import static dev.latent.cuda.CudaTesting.U;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.down;
import static dev.latent.cuda.CudaTesting.emuCounters;
import static dev.latent.cuda.CudaTesting.emulated;
import static dev.latent.cuda.CudaTesting.fill;
import static dev.latent.cuda.CudaTesting.up;
import static dev.latent.cuda.CudaTesting.vendor;
import static org.junit.jupiter.api.Assertions.*;

/**
 * cuBLASLt through FFM (CuBlasLt, CudaVendor.gemmBias, F.linear): on the emulated driver against its CPU stand-ins
 * (vendor_emu.cc), on a GPU against NVIDIA's library. With -Dlatent.cublaslt.path set (the cuda-emulated execution sets
 * it) cuBLASLt must load; otherwise these tests skip where none is found.
 *
 * Tolerances as CuBlasTest's for the product ((k + 2) u sum |a b|, u = 2^-24, exact fp32 compute), plus one rounding
 * of the bias add; the GELU epilogue (tanh form) adds 2^-11 relative + 1e-6 absolute, room for a GPU's fast tanh.
 */
class CuBlasLtTest {
    static Cuda cu;
    static CuBlasLt lt;

    @BeforeAll
    static void setUp() {
        cu = device();
        lt = vendor(cu, CudaVendor::blasLt, "latent.cublaslt.path", "cuBLASLt", "cuBLASLt");
        System.out.println("CuBlasLtTest: " + lt.describe());
    }

    @AfterEach
    void restore() { CudaVendor.force(null); }

    /** A column-major problem in cuBLASLt's own terms. */
    record Case(int ta, int tb, int m, int n, int k, float alpha, float beta, int lda, int ldb, int ldc) {
        int aLen() { return (ta == 0 ? k - 1 : m - 1) * lda + (ta == 0 ? m : k); }
        int bLen() { return (tb == 0 ? n - 1 : k - 1) * ldb + (tb == 0 ? k : n); }
        int cLen() { return (n - 1) * ldc + m; }
    }

    static double gelu(double x) { return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))); }

    /** want[] = epilogue(alpha op(A) op(B) + beta C + bias), pre[] the pre-activation, bound[] the product's magnitude. */
    static void reference(Case c, CuBlasLt.Epilogue e, float[] a, float[] b, float[] c0, float[] bias, double[] want, double[] pre,
                          double[] bound) {
        for (int i = 0; i < c0.length; i++) want[i] = c0[i];
        for (int j = 0; j < c.n; j++)
            for (int i = 0; i < c.m; i++) {
                double s = 0, mag = 0;
                for (int p = 0; p < c.k; p++) {
                    double x = c.ta == 0 ? a[i + p * c.lda] : a[p + i * c.lda];
                    double y = c.tb == 0 ? b[p + j * c.ldb] : b[j + p * c.ldb];
                    s += x * y;
                    mag += Math.abs(c.alpha * x * y);
                }
                int at = i + j * c.ldc;
                double v = c.alpha * s + (c.beta == 0 ? 0 : c.beta * (double) c0[at]);
                if (e.bias()) v += bias[i];
                pre[at] = v;
                want[at] = e == CuBlasLt.Epilogue.GELU_BIAS || e == CuBlasLt.Epilogue.GELU_AUX_BIAS ? gelu(v) : v;
                bound[at] = mag + Math.abs(c.beta * (double) c0[at]) + Math.abs(v);
            }
    }

    /** Runs the case through cublasLtMatmul with the given (possibly wrong) flags and epilogue; returns D (and aux into auxOut). */
    static float[] run(Case c, int ta, int tb, CuBlasLt.Epilogue e, float[] a, float[] b, float[] c0, float[] bias, float[] auxOut) {
        try (DeviceBuffer da = up(cu, a); DeviceBuffer db = up(cu, b); DeviceBuffer dc = up(cu, c0); DeviceBuffer dbias = up(cu, bias);
             DeviceBuffer daux = up(cu, new float[c0.length])) {
            lt.matmul(ta, tb, c.m, c.n, c.k, c.alpha, da.address(), c.lda, db.address(), c.ldb, c.beta, dc.address(), c.ldc, e,
                    dbias.address(), daux.address(), c.ldc, CuBlas.Compute.FP32);
            if (auxOut != null) System.arraycopy(down(cu, daux, c0.length), 0, auxOut, 0, c0.length);
            return down(cu, dc, c0.length);
        }
    }

    /** The largest |got - want| / tolerance over D's elements (gaps between columns must stay as they were). */
    static double worst(Case c, CuBlasLt.Epilogue e, float[] got, double[] want, double[] bound) {
        double w = 0;
        boolean act = e == CuBlasLt.Epilogue.GELU_BIAS || e == CuBlasLt.Epilogue.GELU_AUX_BIAS;
        for (int i = 0; i < got.length; i++) {
            double tol = (c.k + 3) * U * bound[i] + U * Math.abs(want[i]) + (act ? Math.scalb(Math.abs(want[i]), -11) + 1e-6 : 0) + 1e-30;
            double d = Math.abs(got[i] - want[i]);
            if (Double.isNaN(got[i])) return Double.POSITIVE_INFINITY;
            w = Math.max(w, d / tol);
        }
        return w;
    }

    static final Case[] CASES = {
        new Case(0, 0, 5, 3, 7, 1f, 0f, 5, 7, 5),
        new Case(1, 0, 5, 3, 7, 1.5f, 0f, 7, 7, 5),
        new Case(0, 1, 5, 3, 7, 1f, -0.5f, 8, 4, 6),    // padded leading dimensions, beta != 0
        new Case(1, 1, 17, 9, 33, -2f, 0.25f, 35, 10, 19),
        new Case(1, 0, 64, 24, 48, 1f, 0f, 48, 48, 64), // the Linear layer's shape: W^T x^T
    };

    @Test
    void everyEpilogueAndTransposeFollowsTheDefinition() {
        long seed = 1;
        for (Case c : CASES)
            for (CuBlasLt.Epilogue e : CuBlasLt.Epilogue.values()) {
                float[] a = fill(c.aLen(), seed++), b = fill(c.bLen(), seed++), c0 = fill(c.cLen(), seed++), bias = fill(c.m, seed++);
                double[] want = new double[c0.length], pre = new double[c0.length], bound = new double[c0.length];
                reference(c, e, a, b, c0, bias, want, pre, bound);
                float[] aux = new float[c0.length];
                float[] got = run(c, c.ta, c.tb, e, a, b, c0, bias, aux);
                double w = worst(c, e, got, want, bound);
                assertTrue(w <= 1, c + " " + e + ": largest error / tolerance " + w);
                if (e.aux()) {
                    double wa = worst(c, CuBlasLt.Epilogue.BIAS, aux, pre, bound);
                    assertTrue(wa <= 1, c + " " + e + ": the aux (pre-activation) output, largest error / tolerance " + wa);
                }
            }
    }

    /** The comparison above would fail if the epilogue or a transpose attribute were wrong: each mistake is caught. */
    @Test
    void aWrongEpilogueOrTransposeAttributeIsCaught() {
        Case c = new Case(1, 0, 6, 6, 6, 1f, 0f, 6, 6, 6);   // square: every flag combination is a valid call
        float[] a = fill(36, 21), b = fill(36, 22), c0 = new float[36], bias = fill(6, 23);
        double[] want = new double[36], pre = new double[36], bound = new double[36];
        reference(c, CuBlasLt.Epilogue.BIAS, a, b, c0, bias, want, pre, bound);
        assertTrue(worst(c, CuBlasLt.Epilogue.BIAS, run(c, 1, 0, CuBlasLt.Epilogue.BIAS, a, b, c0, bias, null), want, bound) <= 1);
        assertTrue(worst(c, CuBlasLt.Epilogue.BIAS, run(c, 1, 0, CuBlasLt.Epilogue.DEFAULT, a, b, c0, bias, null), want, bound) > 1,
                "the bias epilogue left out went unnoticed");
        assertTrue(worst(c, CuBlasLt.Epilogue.BIAS, run(c, 1, 0, CuBlasLt.Epilogue.GELU_BIAS, a, b, c0, bias, null), want, bound) > 1,
                "a GELU epilogue in place of BIAS went unnoticed");
        assertTrue(worst(c, CuBlasLt.Epilogue.BIAS, run(c, 0, 0, CuBlasLt.Epilogue.BIAS, a, b, c0, bias, null), want, bound) > 1,
                "a wrong TRANSA went unnoticed");
        assertTrue(worst(c, CuBlasLt.Epilogue.BIAS, run(c, 1, 1, CuBlasLt.Epilogue.BIAS, a, b, c0, bias, null), want, bound) > 1,
                "a wrong TRANSB went unnoticed");
    }

    @Test
    void aLeadingDimensionBelowTheRowsIsRefusedWithTheLibrarysStatus() {
        try (DeviceBuffer a = up(cu, fill(64, 1)); DeviceBuffer b = up(cu, fill(64, 2)); DeviceBuffer c = up(cu, new float[64])) {
            NativeException e = assertThrows(NativeException.class, () -> lt.matmul(0, 0, 5, 3, 7, 1f, a.address(), 4, b.address(), 7, 0f,
                    c.address(), 5, CuBlasLt.Epilogue.DEFAULT, 0, 0, 0, CuBlas.Compute.FP32));
            assertTrue(e.getMessage().contains("CUBLAS_STATUS_INVALID_VALUE"), e.getMessage());
        }
    }

    /** F.linear on CUDA: the bias rides cuBLASLt's epilogue (one cublasLtMatmul), values and gradients as the CPU's. */
    @Test
    void linearFusesItsBiasIntoOneCublasLtCallAndMatchesTheCpu() {
        long n = 24, in = 48, out = 64;
        float[] xs = fill((int) (n * in), 31), ws = fill((int) (out * in), 32), bs = fill((int) out, 33), dys = fill((int) (n * out), 34);
        float[][] cpu = linear(Device.CPU, xs, ws, bs, dys, n, in, out);
        long[] before = emulated() ? emuCounters() : null;
        float[][] gpu = linear(Device.CUDA, xs, ws, bs, dys, n, in, out);
        if (before != null) {
            long[] after = emuCounters();
            assertEquals(1, after[EMU_LT_MATMUL] - before[EMU_LT_MATMUL], "cublasLtMatmul calls for one linear forward");
        }
        linear(Device.CUDA, xs, ws, bs, dys, n, in, out);
        int planned = lt.planCount();
        linear(Device.CUDA, xs, ws, bs, dys, n, in, out);
        assertEquals(planned, lt.planCount(), "the same shape must reuse its plan");
        String[] names = {"y", "dx", "dW", "db"};
        for (int i = 0; i < 4; i++) {
            double max = 0;
            for (float v : cpu[i]) max = Math.max(max, Math.abs(v));
            double tol = 1e-5 * max + 1e-12;
            CudaTesting.close("linear " + names[i], gpu[i], cpu[i], j -> tol);
        }
        // LATENT_CUDA_VENDOR=0: no cublasLtMatmul, the same values from our GEMM and bias kernel
        CudaVendor.force(false);
        long[] b0 = emulated() ? emuCounters() : null;
        float[][] ours = linear(Device.CUDA, xs, ws, bs, dys, n, in, out);
        if (b0 != null) assertEquals(0, emuCounters()[EMU_LT_MATMUL] - b0[EMU_LT_MATMUL], "cuBLASLt ran with the vendor libraries off");
        double max = 0;
        for (float v : cpu[0]) max = Math.max(max, Math.abs(v));
        double tol = 1e-5 * max + 1e-12;
        CudaTesting.close("linear y, our kernels", ours[0], cpu[0], j -> tol);
    }

    static float[][] linear(Device dev, float[] xs, float[] ws, float[] bs, float[] dys, long n, long in, long out) {
        try (Graph g = Graph.open()) {
            Var x = Var.param(Tensor.of(g.scope(), dev, xs, n, in));
            Var w = Var.param(Tensor.of(g.scope(), dev, ws, out, in));
            Var b = Var.param(Tensor.of(g.scope(), dev, bs, out));
            Var y = F.linear(x, w, b);
            Var dy = Var.constant(Tensor.of(g.scope(), dev, dys, n, out));
            g.backward(F.sum(F.mul(y, dy)));
            return new float[][] {y.value().toArray(), x.grad().value().toArray(), w.grad().value().toArray(), b.grad().value().toArray()};
        }
    }
}
