package dev.latent.cuda;

import dev.latent.tensor.Precision;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static dev.latent.cuda.CudaTesting.EMU_GEMM_EX;
import static dev.latent.cuda.CudaTesting.EMU_GEMM_STRIDED_BATCHED_EX;
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
 * cuBLAS through FFM (CuBlas, CudaVendor): on the emulated driver against its CPU stand-ins (vendor_emu.cc), on a GPU
 * against NVIDIA's library. When -Dlatent.cublas.path is set (the cuda-emulated execution sets it to libcuda_emu.so)
 * cuBLAS must load; otherwise these tests skip where none is found.
 *
 * Tolerances, per element, derived from the compute type. Exact fp32 (CUBLAS_COMPUTE_32F, and our ltk_gemm_f32): a
 * k-term float dot product in any order is within (k + 2) u sum |alpha a b| (+ one rounding of beta c) of the exact
 * value, u = 2^-24. TF32 (_FAST_TF32, ltk_gemm_tf32): each operand rounded to 10 mantissa bits (within 2^-11
 * relative to nearest, 2^-10 if truncated: we allow truncation), so each product within 2^-9 relative, plus the fp32
 * sum. bf16 (_FAST_16BF): operands within 2^-8 relative (to nearest even), products within 2^-7 + 2^-16, plus the sum.
 * Comparing two such results (vendor against ours) doubles the bound.
 */
class CuBlasTest {
    static Cuda cu;
    static CuBlas blas;

    @BeforeAll
    static void setUp() {
        cu = device();
        blas = vendor(cu, CudaVendor::blas, "latent.cublas.path", "cuBLAS", "cuBLAS");
        System.out.println("CuBlasTest: " + blas.describe());
    }

    @AfterEach
    void restore() { CudaVendor.force(null); }

    // ---- the raw column-major call against the definition ----------------------------------------------------------

    /** A column-major GEMM case: cuBLAS's own arguments. */
    record Case(int ta, int tb, int m, int n, int k, float alpha, float beta, int lda, int ldb, int ldc, int batch, long sa, long sb,
                long sc) {
        int aRows() { return ta == 0 ? m : k; }
        int aCols() { return ta == 0 ? k : m; }
        int bRows() { return tb == 0 ? k : n; }
        int bCols() { return tb == 0 ? n : k; }
        int aLen() { return (int) ((batch - 1) * sa + (long) (aCols() - 1) * lda + aRows()); }
        int bLen() { return (int) ((batch - 1) * sb + (long) (bCols() - 1) * ldb + bRows()); }
        int cLen() { return (int) ((batch - 1) * sc + (long) (n - 1) * ldc + m); }
    }

    /** The definition: C(i, j) = alpha sum_p op(A)(i, p) op(B)(p, j) + beta C(i, j); bound[] gets sum |alpha a b| + |beta c|. */
    static double[] reference(Case c, float[] a, float[] b, float[] c0, double[] bound) {
        double[] out = new double[c0.length];
        for (int i = 0; i < c0.length; i++) out[i] = c0[i];
        for (int q = 0; q < c.batch; q++)
            for (int j = 0; j < c.n; j++)
                for (int i = 0; i < c.m; i++) {
                    double s = 0, mag = 0;
                    for (int p = 0; p < c.k; p++) {
                        double x = c.ta == 0 ? a[(int) (q * c.sa) + i + p * c.lda] : a[(int) (q * c.sa) + p + i * c.lda];
                        double y = c.tb == 0 ? b[(int) (q * c.sb) + p + j * c.ldb] : b[(int) (q * c.sb) + j + p * c.ldb];
                        s += x * y;
                        mag += Math.abs(c.alpha * x * y);
                    }
                    int at = (int) (q * c.sc) + i + j * c.ldc;
                    out[at] = c.beta == 0 ? c.alpha * s : c.alpha * s + c.beta * (double) c0[at];
                    bound[at] = mag + (c.beta == 0 ? 0 : Math.abs(c.beta * (double) c0[at]));
                }
        return out;
    }

    /** Runs the case through cublasGemmStridedBatchedEx as given (possibly wrong flags) and returns C. */
    static float[] run(Case c, float[] a, float[] b, float[] c0, CuBlas.Compute mode) {
        try (DeviceBuffer da = up(cu, a); DeviceBuffer db = up(cu, b); DeviceBuffer dc = up(cu, c0)) {
            int rc = blas.gemmRaw(c.ta, c.tb, c.m, c.n, c.k, c.alpha, da.address(), c.lda, c.sa, db.address(), c.ldb, c.sb, c.beta,
                    dc.address(), c.ldc, c.sc, c.batch, mode);
            assertEquals(0, rc, () -> c + ": " + blas.describeStatus(rc));
            return down(cu, dc, c0.length);
        }
    }

    static Case[] cases() {
        return new Case[] {
            new Case(0, 0, 5, 3, 7, 1f, 0f, 5, 7, 5, 1, 0, 0, 0),
            new Case(1, 0, 5, 3, 7, 1.5f, 0f, 7, 7, 5, 1, 0, 0, 0),
            new Case(0, 1, 5, 3, 7, 1f, -0.5f, 8, 4, 6, 1, 0, 0, 0),        // padded leading dimensions
            new Case(1, 1, 17, 9, 33, -2f, 0.25f, 35, 10, 19, 1, 0, 0, 0),
            new Case(0, 0, 1, 1, 1, 1f, 0f, 1, 1, 1, 1, 0, 0, 0),
            new Case(0, 1, 13, 1, 29, 1f, 0f, 13, 1, 13, 3, 13 * 29 + 5, 0, 17),   // B broadcast (stride 0), gaps between batches
            new Case(1, 0, 6, 11, 4, 1f, 1f, 4, 4, 6, 4, 24, 44 + 1, 66 + 3),
        };
    }

    static float[] input(int n, long seed) {
        return fill(Math.max(1, n), seed);
    }

    @Test
    void rawCallsFollowTheColumnMajorDefinition() {
        long seed = 1;
        for (Case c : cases()) {
            float[] a = input(c.aLen(), seed++), b = input(c.bLen(), seed++), c0 = input(c.cLen(), seed++);
            if (c.beta == 0) Arrays.fill(c0, Float.NaN);   // beta == 0: C is write-only, its NaNs must not propagate
            double[] bound = new double[c0.length];
            double[] want = reference(c, a, b, c0, bound);
            float[] got = run(c, a, b, c0, CuBlas.Compute.FP32);
            float[] wantF = new float[want.length];
            for (int i = 0; i < want.length; i++) wantF[i] = (float) want[i];
            // elements of C outside the batch matrices (gaps) must be left as they were
            CudaTesting.close("cublas " + c, got, wantF, i -> (c.k + 2) * U * bound[i] + U * Math.abs(want[i]));
        }
    }

    @Test
    void aWrongTransposeFlagOrLeadingDimensionChangesTheResult() {
        // square, non-symmetric operands: both flags give a valid call, so only the values can tell them apart
        Case right = new Case(0, 1, 6, 6, 6, 1f, 0f, 6, 6, 6, 1, 0, 0, 0);
        float[] a = input(36, 11), b = input(36, 12), c0 = new float[36];
        double[] bound = new double[36];
        double[] want = reference(right, a, b, c0, bound);
        float[] ok = run(right, a, b, c0, CuBlas.Compute.FP32);
        for (int i = 0; i < 36; i++) assertEquals(want[i], ok[i], 8 * U * bound[i] + U * Math.abs(want[i]), "right flags, element " + i);
        for (Case wrong : new Case[] {
                new Case(1, 1, 6, 6, 6, 1f, 0f, 6, 6, 6, 1, 0, 0, 0),   // transa flipped
                new Case(0, 0, 6, 6, 6, 1f, 0f, 6, 6, 6, 1, 0, 0, 0),   // transb flipped
                new Case(0, 1, 6, 6, 5, 1f, 0f, 6, 6, 6, 1, 0, 0, 0),   // k wrong (valid, smaller)
                new Case(0, 1, 6, 5, 6, 1f, 0f, 6, 6, 6, 1, 0, 0, 0)}) {  // n wrong: the last column must stay as it was
            float[] got = run(wrong, a, b, c0, CuBlas.Compute.FP32);
            double worst = 0;
            for (int i = 0; i < 36; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (8 * U * bound[i] + U * Math.abs(want[i]) + 1e-30));
            assertTrue(worst > 100, "a call with " + wrong + " must not reproduce the right flags' product (largest error / tolerance "
                    + worst + "): the library ignores a flag or a size");
        }
        // a leading dimension one larger reads other elements (lda 7 over the same 6 x 6 data, k = 5 so it stays inside)
        Case padded = new Case(0, 1, 6, 6, 5, 1f, 0f, 7, 6, 6, 1, 0, 0, 0);
        Case dense = new Case(0, 1, 6, 6, 5, 1f, 0f, 6, 6, 6, 1, 0, 0, 0);
        float[] g1 = run(padded, a, b, c0, CuBlas.Compute.FP32), g2 = run(dense, a, b, c0, CuBlas.Compute.FP32);
        assertFalse(Arrays.equals(g1, g2), "lda 7 and lda 6 over the same data must differ: the library ignores lda");
    }

    @Test
    void invalidArgumentsAreRejectedWithCublasStatus() {
        try (DeviceBuffer d = cu.alloc(4096)) {
            long p = d.address();
            // lda below the stored rows of A (m for CUBLAS_OP_N): CUBLAS_STATUS_INVALID_VALUE (7), nothing computed
            assertEquals(7, blas.gemmRaw(0, 0, 8, 2, 2, 1f, p, 7, 0, p, 2, 0, 0f, p, 8, 0, 1, CuBlas.Compute.FP32));
            assertEquals(7, blas.gemmRaw(1, 0, 8, 2, 3, 1f, p, 2, 0, p, 3, 0, 0f, p, 8, 0, 1, CuBlas.Compute.FP32), "lda < k for OP_T");
            assertEquals(7, blas.gemmRaw(0, 1, 2, 4, 3, 1f, p, 2, 0, p, 3, 0, 0f, p, 2, 0, 1, CuBlas.Compute.FP32), "ldb < n for OP_T");
            assertEquals(7, blas.gemmRaw(0, 0, 4, 2, 2, 1f, p, 4, 0, p, 2, 0, 0f, p, 3, 0, 1, CuBlas.Compute.FP32), "ldc < m");
            assertEquals(7, blas.gemmRaw(0, 0, -1, 2, 2, 1f, p, 4, 0, p, 2, 0, 0f, p, 4, 0, 1, CuBlas.Compute.FP32), "m < 0");
            assertTrue(blas.describeStatus(7).startsWith("CUBLAS_STATUS_INVALID_VALUE"), blas.describeStatus(7));
        }
    }

    // ---- ops.Gemm through cuBLAS against ops.Gemm through our kernels ---------------------------------------------------

    /** A (batch, m, k) or (m, k) operand as a CUDA tensor, optionally a transposed view of a contiguous (k, m) tensor. */
    static Tensor operand(Scope s, long seed, boolean transposed, long... shape) {
        int n = 1;
        for (long d : shape) n *= (int) d;
        float[] v = fill(n, seed);
        int r = shape.length;
        if (!transposed) return Tensor.of(s, Device.CUDA, v, shape);
        long[] t = shape.clone();
        t[r - 2] = shape[r - 1];
        t[r - 1] = shape[r - 2];
        return Tensor.of(s, Device.CUDA, v, t).transpose(r - 2, r - 1);
    }

    /** max over elements of |vendor - ours| / bound, where bound is per element (2 factor) sum |alpha a b| + |beta c| (host double). */
    static double compareVendorToOurs(Precision prec, boolean tf32, double perProduct, Tensor a, Tensor b, Tensor c0, float alpha,
                                      float beta) {
        long k = a.size(-1);
        float[] av = a.contiguous().toArray(), bv = b.contiguous().toArray(), cv = c0.toArray();
        long m = a.size(-2), n = b.size(-1), batch = c0.rank() == 3 ? c0.size(0) : 1;
        boolean aBatched = a.rank() == 3, bBatched = b.rank() == 3;
        double[] bound = new double[cv.length];
        for (int q = 0; q < batch; q++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double mag = 0;
                    for (int p = 0; p < k; p++)
                        mag += Math.abs(alpha * (double) av[(int) ((aBatched ? q * m * k : 0) + i * k + p)]
                                * bv[(int) ((bBatched ? q * k * n : 0) + p * n + j)]);
                    int at = (int) (q * m * n + i * n + j);
                    bound[at] = mag + (beta == 0 ? 0 : Math.abs(beta * cv[at]));
                }
        boolean wasTf32 = Gemm.cudaTf32();
        Gemm.setCudaTf32(tf32);
        try (Scope s = Scope.confined()) {
            Tensor cVendor = c0.to(s, Device.CUDA), cOurs = c0.to(s, Device.CUDA);
            long[] before = emuCounters();
            CudaVendor.force(true);
            Gemm.matmul(a, b, cVendor, alpha, beta, prec);
            long[] mid = emuCounters();
            if (before != null) {
                long calls = mid[EMU_GEMM_EX] + mid[EMU_GEMM_STRIDED_BATCHED_EX] - before[EMU_GEMM_EX] - before[EMU_GEMM_STRIDED_BATCHED_EX];
                assertEquals(1, calls, "Gemm.matmul on CUDA with cuBLAS loaded makes exactly one stand-in call");
                assertEquals(1, batch == 1 ? mid[EMU_GEMM_EX] - before[EMU_GEMM_EX]
                        : mid[EMU_GEMM_STRIDED_BATCHED_EX] - before[EMU_GEMM_STRIDED_BATCHED_EX], "batched GEMMs take the strided-batched call");
            }
            if (prec == Precision.BF16) return worst(cVendor.toArray(), referenceProduct(a, b, c0, alpha, beta), bound, perProduct, k);
            CudaVendor.force(false);
            Gemm.matmul(a, b, cOurs, alpha, beta, prec);
            if (before != null) {
                long[] after = emuCounters();
                assertArrayEquals(Arrays.copyOfRange(mid, EMU_GEMM_EX, EMU_GEMM_STRIDED_BATCHED_EX + 1),
                        Arrays.copyOfRange(after, EMU_GEMM_EX, EMU_GEMM_STRIDED_BATCHED_EX + 1), "LATENT_CUDA_VENDOR=0 routing: no cuBLAS call");
            }
            float[] gv = cVendor.toArray(), go = cOurs.toArray();
            double[] ours = new double[go.length];
            for (int i = 0; i < go.length; i++) ours[i] = go[i];
            return worst(gv, ours, bound, 2 * perProduct, k);
        } finally {
            Gemm.setCudaTf32(wasTf32);
        }
    }

    /** The exact product in double, C's layout, for the bf16 check (our kernels have no bf16 GEMM to compare with). */
    static double[] referenceProduct(Tensor a, Tensor b, Tensor c0, float alpha, float beta) {
        float[] av = a.contiguous().toArray(), bv = b.contiguous().toArray(), cv = c0.toArray();
        long m = a.size(-2), k = a.size(-1), n = b.size(-1), batch = c0.rank() == 3 ? c0.size(0) : 1;
        double[] out = new double[cv.length];
        for (int q = 0; q < batch; q++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                        s += (double) av[(int) ((a.rank() == 3 ? q * m * k : 0) + i * k + p)] * bv[(int) ((b.rank() == 3 ? q * k * n : 0) + p * n + j)];
                    int at = (int) (q * m * n + i * n + j);
                    out[at] = beta == 0 ? alpha * s : alpha * s + beta * (double) cv[at];
                }
        return out;
    }

    /** Largest |got - want| / ((perProduct + (k + 2) u) bound + u |want|); fails above 1. */
    static double worst(float[] got, double[] want, double[] bound, double perProduct, long k) {
        double w = 0;
        for (int i = 0; i < got.length; i++) {
            double tol = (perProduct + (k + 2) * U) * bound[i] + U * Math.abs(want[i]) + 1e-30;
            double e = Math.abs(got[i] - want[i]) / tol;
            assertFalse(Double.isNaN(got[i]), "element " + i + " is NaN");
            w = Math.max(w, e);
        }
        assertTrue(w <= 1, "largest error / tolerance " + w);
        return w;
    }

    @Test
    void gemmThroughCublasMatchesOurKernelsOnOddShapes() {
        try (Scope s = Scope.confined()) {
            long seed = 100;
            double w = 0;
            // (m, k, n) odd and tiny, A and B transposed or not, 2-D, batched, and a rank-2 operand broadcast over the batch
            long[][] shapes = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {65, 31, 67}, {130, 7, 129}};
            for (long[] sh : shapes)
                for (int t = 0; t < 4; t++) {
                    Tensor a = operand(s, seed++, (t & 1) != 0, sh[0], sh[1]), b = operand(s, seed++, (t & 2) != 0, sh[1], sh[2]);
                    Tensor c = Tensor.of(s, Device.CUDA, fill((int) (sh[0] * sh[2]), seed++), sh[0], sh[2]);
                    w = Math.max(w, compareVendorToOurs(Precision.FP32, false, 0, a, b, c, 1f, 0f));
                    w = Math.max(w, compareVendorToOurs(Precision.FP32, false, 0, a, b, c, -0.75f, 1.25f));
                }
            Tensor a3 = operand(s, seed++, false, 3, 19, 11), b3 = operand(s, seed++, true, 3, 11, 23), c3 = Tensor.zeros(s, Device.CUDA, 3, 19, 23);
            w = Math.max(w, compareVendorToOurs(Precision.FP32, false, 0, a3, b3, c3, 1f, 0f));
            Tensor b2 = operand(s, seed++, true, 11, 23);   // rank 2, broadcast over the batch: stride 0
            w = Math.max(w, compareVendorToOurs(Precision.FP32, false, 0, a3, b2, c3, 0.5f, 0f));
            System.out.printf("cuBLAS vs our GEMM, fp32: largest error / tolerance %.3f%n", w);
        }
    }

    @Test
    void tf32AndBf16ComputeModes() {
        try (Scope s = Scope.confined()) {
            Tensor a = operand(s, 7, true, 37, 70), b = operand(s, 8, false, 70, 45), c = Tensor.zeros(s, Device.CUDA, 37, 45);
            double tf = compareVendorToOurs(Precision.FP32, true, 0x1p-9, a, b, c, 1f, 0f);
            double bf = compareVendorToOurs(Precision.BF16, false, 0x1p-7 + 0x1p-16, a, b, c, 1f, 0f);
            System.out.printf("cuBLAS TF32 vs ours: %.3f, cuBLAS bf16 vs exact: %.3f of the tolerance%n", tf, bf);
            if (blas.standIn) {
                // the stand-in rounds operands to bf16: the result must differ from fp32 (it is not silently fp32)
                Tensor c1 = Tensor.zeros(s, Device.CUDA, 37, 45), c2 = Tensor.zeros(s, Device.CUDA, 37, 45);
                CudaVendor.force(true);
                Gemm.matmul(a, b, c1, 1f, 0f, Precision.BF16);
                Gemm.matmul(a, b, c2, 1f, 0f, Precision.FP32);
                assertFalse(Arrays.equals(c1.toArray(), c2.toArray()), "bf16 compute must round the operands");
            }
        }
    }

    @Test
    void vendorOffRunsBf16OnOurKernelAndLeavesCublasAlone() {
        // issue 18: bf16 no longer needs cuBLAS: with the vendor off, ltk_gemm_bf16 serves it (no stand-in call), on the
        // same bf16 operands (converted on the device, to nearest even), so it agrees with cuBLAS's bf16 GEMM to the fp32
        // summation error: 2 (k + 2) u sum |a b| (the stand-in sums in double, ours in fp32)
        try (Scope s = Scope.confined()) {
            int k = 37;
            Tensor a = operand(s, 1, false, 5, k), b = operand(s, 2, true, k, 6);
            Tensor cOurs = Tensor.zeros(s, Device.CUDA, 5, 6), cVendor = Tensor.zeros(s, Device.CUDA, 5, 6);
            CudaVendor.force(false);
            long[] before = emuCounters();
            Gemm.matmul(a, b, cOurs, 1f, 0f, Precision.BF16);
            long[] after = emuCounters();
            if (before != null)
                assertArrayEquals(Arrays.copyOfRange(before, EMU_GEMM_EX, EMU_GEMM_STRIDED_BATCHED_EX + 1),
                        Arrays.copyOfRange(after, EMU_GEMM_EX, EMU_GEMM_STRIDED_BATCHED_EX + 1), "LATENT_CUDA_VENDOR=0: no cuBLAS call");
            assertTrue(CudaVendor.describe().get(0).contains("our kernels (LATENT_CUDA_VENDOR=0)"), CudaVendor.describe().toString());
            CudaVendor.force(true);
            Gemm.matmul(a, b, cVendor, 1f, 0f, Precision.BF16);
            float[] av = a.contiguous().toArray(), bv = b.contiguous().toArray(), go = cOurs.toArray(), gv = cVendor.toArray();
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 6; j++) {
                    double mag = 0;
                    for (int p = 0; p < k; p++) mag += Math.abs((double) av[i * k + p] * bv[p * 6 + j]) * 1.01;   /* bf16 operands: within 1% */
                    assertEquals(gv[i * 6 + j], go[i * 6 + j], 2 * (k + 2) * U * mag + 1e-30, "bf16 ours vs cuBLAS [" + i + "," + j + "]");
                }
        }
    }

    @Test
    void theWorkspaceAndStreamAreOurs() {
        // the handle runs on the legacy default stream (ours) with our workspace: a GEMM right after our kernel wrote A
        // must see A's new values without any synchronisation in between
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.zeros(s, Device.CUDA, 3, 3), b = Tensor.of(s, Device.CUDA, new float[] {1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3);
            dev.latent.ops.Kernels.axpby(0f, a, 0f, a);
            dev.latent.ops.Kernels.addRows(a, Tensor.of(s, Device.CUDA, new float[] {1, 2, 3}, 1, 3), a);
            Tensor c = Tensor.zeros(s, Device.CUDA, 3, 3);
            CudaVendor.force(true);
            Gemm.matmul(a, b, c, 1f, 0f);
            assertArrayEquals(new float[] {1, 2, 3, 1, 2, 3, 1, 2, 3}, c.toArray());
        }
    }

    @Test
    void discoveryOrder() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("latent-cublas");
        java.nio.file.Path fake = dir.resolve("libcublas.so.13");
        java.nio.file.Files.writeString(fake, "not a library");
        String was = System.getProperty("latent.cublas.path");
        try {
            System.setProperty("latent.cublas.path", dir.toString());
            var c = CudaVendor.candidates("latent.cublas.path", CudaVendor.CUBLAS_SONAMES);
            assertEquals(fake.toAbsolutePath().normalize().toString(), c.get(0), "the property's folder comes first: " + c);
            assertEquals("libcublas.so.12", c.get(c.size() - 1), "the linker's own search by soname comes last: " + c);
            System.setProperty("latent.cublas.path", fake.toString());
            assertEquals(fake.toAbsolutePath().toString(), CudaVendor.candidates("latent.cublas.path", CudaVendor.CUBLAS_SONAMES).get(0));
        } finally {
            if (was == null) System.clearProperty("latent.cublas.path");
            else System.setProperty("latent.cublas.path", was);
            java.nio.file.Files.deleteIfExists(fake);
            java.nio.file.Files.deleteIfExists(dir);
        }
    }
}
