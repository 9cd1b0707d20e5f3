package dev.latent.ops;

import dev.latent.tensor.Precision;
import dev.latent.TestUtil;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * lt_gemm through the Java op, against a double-precision reference written here, at whatever ISA the
 * suite runs under (ci/test.sh runs it at avx2 and at ref), plus ref-vs-avx2 in one JVM.
 * Tolerance: fp32 accumulation of k products of values in [-1, 1) has error ~ eps * sqrt(k) typical and
 * eps * k worst; atol = 2e-6 * k + 1e-6 is loose enough for any blocking order and tight enough to catch a
 * missing or doubled term (which costs >= ~1e-3 here).
 */
class GemmTest {
    static Stream<Arguments> shapes() {
        List<Arguments> out = new ArrayList<>();
        int[] sizes = {1, 3, 7, 8, 9, 15, 16, 37};
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 24; i++) {
            int m = sizes[r.nextInt(sizes.length)], n = sizes[r.nextInt(sizes.length)], k = sizes[r.nextInt(sizes.length)];
            out.add(Arguments.of(m, n, k, r.nextBoolean(), r.nextBoolean(), i % 3 == 0 ? 0f : i % 3 == 1 ? 1f : 0.5f));
        }
        // Non-multiples of any tile, and sizes past the cache blocks.
        out.add(Arguments.of(101, 67, 259, false, false, 0f));
        out.add(Arguments.of(130, 257, 300, true, false, 1f));
        out.add(Arguments.of(257, 129, 65, false, true, 0f));
        out.add(Arguments.of(300, 520, 513, true, true, 1f));
        out.add(Arguments.of(1, 1000, 17, false, false, 0f));
        out.add(Arguments.of(1000, 1, 17, true, true, 0f));
        return out.stream();
    }

    static double[] reference(float[] a, float[] b, float[] c0, int m, int n, int k, boolean ta, boolean tb, float alpha, float beta) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double) (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * (double) c0[i * n + j]);
            }
        return c;
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} ta={3} tb={4} beta={5}")
    @MethodSource("shapes")
    void matchesDoubleReference(int m, int n, int k, boolean ta, boolean tb, float beta) {
        float alpha = 1.25f;
        float[] a = TestUtil.randn(m * 31L + k, m * k), b = TestUtil.randn(n * 17L + k, k * n), c0 = TestUtil.randn(5, m * n);
        double[] want = reference(a, b, c0, m, n, k, ta, tb, alpha, beta);
        try (Scope s = Scope.confined()) {
            // A transposed operand is stored transposed and passed as a transposed view: no copy, trans flag set.
            Tensor ta_ = ta ? Tensor.of(s, a, k, m).transpose(0, 1) : Tensor.of(s, a, m, k);
            Tensor tb_ = tb ? Tensor.of(s, b, n, k).transpose(0, 1) : Tensor.of(s, b, k, n);
            Tensor c = Tensor.of(s, beta == 0 ? nans(m * n) : c0, m, n);
            Gemm.matmul(ta_, tb_, c, alpha, beta);
            TestUtil.assertClose("gemm " + m + "x" + n + "x" + k, c.toArray(), want, 2e-6 * k + 1e-6, 1e-5);
        }
    }

    private static float[] nans(int n) {
        float[] x = new float[n];
        Arrays.fill(x, Float.NaN);
        return x;
    }

    @Test
    void leadingDimensionsAndBatchedViews() {
        int batch = 3, m = 13, n = 11, k = 9, ld = 20;
        try (Scope s = Scope.confined()) {
            // A is a column slice of a wider matrix (lda = 20), B is shared across the batch (stride 0).
            Tensor aw = Tensor.of(s, TestUtil.randn(1, batch * m * ld), batch, m, ld);
            Tensor a = aw.slice(2, 3, 3 + k);
            Tensor b = Tensor.of(s, TestUtil.randn(2, k * n), k, n);
            Tensor c = Tensor.of(s, nans(batch * m * n), batch, m, n);
            Gemm.matmul(a, b, c, 1f, 0f);
            float[] got = c.toArray(), bb = b.toArray();
            for (int bi = 0; bi < batch; bi++) {
                float[] ai = a.slice(0, bi, bi + 1).reshape(m, k).toArray();
                double[] want = reference(ai, bb, null, m, n, k, false, false, 1f, 0f);
                TestUtil.assertClose("batch " + bi, Arrays.copyOfRange(got, bi * m * n, (bi + 1) * m * n), want, 1e-5, 1e-5);
            }
        }
    }

    @Test
    void zeroKScalesCAndEmptyShapesAreNoOps() {
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.zeros(s, 4, 0), b = Tensor.zeros(s, 0, 3);
            Tensor c = Tensor.of(s, new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 4, 3);
            Gemm.matmul(a, b, c, 1f, 2f);
            assertArrayEquals(new float[] {2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24}, c.toArray());
            Gemm.matmul(Tensor.zeros(s, 0, 5), Tensor.zeros(s, 5, 3), Tensor.zeros(s, 0, 3), 1f, 0f);
        }
    }

    @Test
    void refAndAvx2AgreeAndThreadCountDoesNotChangeBits() {
        LatentNative nat = LatentNative.get();
        int m = 333, n = 271, k = 517;
        int isa = nat.isa(), threads = nat.numThreads();
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.rand(s, 3, 0, m, k), b = Tensor.rand(s, 3, 1, k, n);
            float[][] out = new float[4][];
            int i = 0;
            for (int level : new int[] {LatentNative.ISA_REF, nat.isaSupported()})
                for (int t : new int[] {1, 2}) {
                    nat.setIsa(level);
                    nat.setNumThreads(t);
                    out[i++] = Gemm.matmul(s, a, b).toArray();
                }
            assertArrayEquals(out[0], out[1], "ref: 1 vs 2 threads must be bit-identical");
            assertArrayEquals(out[2], out[3], "best ISA: 1 vs 2 threads must be bit-identical");
            double[] ref = new double[out[0].length];
            for (int j = 0; j < ref.length; j++) ref[j] = out[0][j];
            TestUtil.assertClose("avx2 vs ref", out[2], ref, 2e-6 * k, 1e-5);
        } finally {
            nat.setIsa(isa);
            nat.setNumThreads(threads);
        }
    }

    /**
     * BF16 precision: where AVX512_BF16 runs (ISA avx512), against the double product of the fp32 operands with the
     * bf16 bound (bf16 keeps 8 significant bits: |bf16(x) - x| <= 2^-8 |x|, so each product errs by at most
     * (2^-7 + 2^-16) |a b|; summed, atol = (2^-7 + 2^-16) * sum|alpha a b| per element, taken here as the
     * element's own sum plus the fp32 term), and 1 vs 2 threads bit-identical; elsewhere refused naming AVX512_BF16.
     */
    @Test
    void bf16PrecisionWithinItsBoundOrRefused() {
        LatentNative nat = LatentNative.get();
        int m = 67, n = 131, k = 301;
        float alpha = 0.75f;
        float[] a = TestUtil.randn(41, m * k), b = TestUtil.randn(43, k * n);
        try (Scope s = Scope.confined()) {
            Tensor ta = Tensor.of(s, a, m, k), tb = Tensor.of(s, b, k, n), c = Tensor.of(s, nans(m * n), m, n);
            if (nat.isa() < LatentNative.ISA_AVX512 || !nat.cpuBf16()) {
                var e = assertThrows(dev.latent.nativ.NativeException.class, () -> Gemm.matmul(ta, tb, c, alpha, 0f, Precision.BF16));
                assertTrue(e.getMessage().contains("AVX512_BF16"), e.getMessage());
                return;
            }
            int threads = nat.numThreads();
            float[] one, two;
            try {
                nat.setNumThreads(1);
                Gemm.matmul(ta, tb, c, alpha, 0f, Precision.BF16);
                one = c.toArray();
                nat.setNumThreads(2);
                Gemm.matmul(ta, tb, c, alpha, 0f, Precision.BF16);
                two = c.toArray();
            } finally {
                nat.setNumThreads(threads);
            }
            assertArrayEquals(one, two, "bf16: 1 vs 2 threads must be bit-identical");
            double worstRatio = 0, bound = 1.0 / 128 + 1.0 / 65536;
            boolean anyOffFp32 = false;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double x = (double) a[i * k + p] * b[p * n + j];
                        sum += x;
                        mag += Math.abs(x);
                    }
                    double want = alpha * sum, lim = (bound + 1e-6) * Math.abs(alpha) * mag;
                    double diff = Math.abs(one[i * n + j] - want);
                    worstRatio = Math.max(worstRatio, diff / lim);
                    if (diff > 1e-5 * Math.abs(alpha) * mag) anyOffFp32 = true;
                }
            assertTrue(worstRatio <= 1, "bf16 error beyond (2^-7 + 2^-16) sum|alpha a b|: worst ratio " + worstRatio);
            // The rounding must really happen: fp32 operands would agree to ~1e-6 of mag everywhere.
            assertTrue(anyOffFp32, "bf16 result indistinguishable from fp32: operands not rounded?");
            var e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(ta, tb, c, alpha, 0f, null));
            assertTrue(e.getMessage().contains("precision"), e.getMessage());
        }
    }

    @Test
    void badInputsGiveClearExceptions() {
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.zeros(s, 4, 5), b = Tensor.zeros(s, 6, 3), c = Tensor.zeros(s, 4, 3);
            var e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(a, b, c, 1f, 0f));
            assertTrue(e.getMessage().contains("[4, 5]") && e.getMessage().contains("[6, 3]"), e.getMessage());
            // Neither row- nor column-major: batch 2 of 5 x 4 matrices with strides (2, 10).
            Tensor strided = Tensor.zeros(s, 4, 5, 2).transpose(0, 2);
            var e1 = assertThrows(IllegalArgumentException.class,
                    () -> Gemm.matmul(strided, Tensor.zeros(s, 4, 3), Tensor.zeros(s, 2, 5, 3), 1f, 0f));
            assertTrue(e1.getMessage().contains("neither row- nor column-major"), e1.getMessage());
            Tensor cT = Tensor.zeros(s, 3, 4).transpose(0, 1);
            var e2 = assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(a, Tensor.zeros(s, 5, 3), cT, 1f, 0f));
            assertTrue(e2.getMessage().contains("C must be row-major"), e2.getMessage());
            // Raw API: segment too small, negative sizes, null.
            MemorySegment small = s.allocate(4 * 10);
            var e3 = assertThrows(IllegalArgumentException.class,
                    () -> Gemm.sgemm(false, false, 4, 4, 4, 1f, small, 4, small, 4, 0f, small, 4));
            assertTrue(e3.getMessage().contains("needs 16 floats") && e3.getMessage().contains("holds 10"), e3.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> Gemm.sgemm(false, false, -1, 4, 4, 1f, small, 4, small, 4, 0f, small, 4));
            assertThrows(IllegalArgumentException.class,
                    () -> Gemm.sgemm(false, false, 2, 2, 2, 1f, MemorySegment.NULL, 2, small, 2, 0f, small, 2));
            var e4 = assertThrows(IllegalArgumentException.class,
                    () -> Gemm.sgemm(false, false, 2, 2, 3, 1f, small, 2, small, 2, 0f, small, 2));
            assertTrue(e4.getMessage().contains("leading dimension of A is 2 < 3"), e4.getMessage());
        }
    }

    @Test
    void closedScopeIsRejectedBeforeTheDowncall() {
        Scope s = Scope.confined();
        Tensor a = Tensor.zeros(s, 2, 2), b = Tensor.zeros(s, 2, 2), c = Tensor.zeros(s, 2, 2);
        s.close();
        var e = assertThrows(IllegalStateException.class, () -> Gemm.matmul(a, b, c, 1f, 0f));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void nativeValidationIsTheSecondLine() {
        // The Java checks normally stop bad descriptors; this proves the C side also refuses them cleanly.
        LatentNative nat = LatentNative.get();
        try (Scope s = Scope.confined()) {
            MemorySegment d = s.allocate(LatentNative.GEMM_DESC.byteSize());
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 8, 4);    // m
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 16, 4);   // n
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 24, 4);   // k
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 40, 1);   // lda < k
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 48, 4);
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 56, 4);
            d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 64, 1);
            MemorySegment buf = s.allocate(64 * 4);
            var e = assertThrows(dev.latent.nativ.NativeException.class, () -> nat.gemm(d, buf, buf, buf));
            assertTrue(e.getMessage().contains("lda"), e.getMessage());
        }
    }
}
