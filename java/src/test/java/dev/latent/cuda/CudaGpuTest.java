package dev.latent.cuda;

import dev.latent.nativ.LatentNative;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Our kernels through the Java backend against the CPU library: on a GPU where there is one, and in every build on
 * the emulated driver (the surefire execution cuda-emulated sets -Dlatent.cuda.driver to libcuda_emu.so; there the
 * backend must come up, never skip). Skips itself only on a plain run without a GPU.
 */
class CudaGpuTest {
    @BeforeAll
    static void needDevice() {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        else assumeTrue(Cuda.available(), Cuda::unavailableReason);
    }

    private static MemorySegment random(Arena a, int n, long seed) {
        MemorySegment s = a.allocate(JAVA_FLOAT, n);
        Random r = new Random(seed);
        for (int i = 0; i < n; i++) s.setAtIndex(JAVA_FLOAT, i, r.nextFloat() * 2 - 1);
        return s;
    }

    @Test
    void axpbyMatchesCpu() {
        Cuda cu = Cuda.get();
        int n = 10007;
        try (Arena a = Arena.ofConfined(); DeviceBuffer dx = cu.alloc(n * 4L); DeviceBuffer dy = cu.alloc(n * 4L)) {
            MemorySegment x = random(a, n, 1), y = random(a, n, 2), got = a.allocate(JAVA_FLOAT, n);
            dx.copyFrom(x);
            dy.copyFrom(y);
            CudaKernels.axpby(cu, n, 1.5f, dx, -0.25f, dy);
            cu.synchronize();
            dy.copyTo(got);
            LatentNative.get().axpby(n, 1.5f, x, -0.25f, y);
            for (int i = 0; i < n; i++)
                assertEquals(y.getAtIndex(JAVA_FLOAT, i), got.getAtIndex(JAVA_FLOAT, i), 1e-6f, "element " + i);
        }
    }

    @Test
    void gemmMatchesCpu() {
        // 1030 x 2050 gives 153 tiles of 128 x 128: CudaKernels.gemm takes ltk_gemm_{f32,tf32}_128 there (>= 128)
        for (int[] shape : new int[][] {{130, 97, 75}, {1030, 2050, 21}}) gemmMatchesCpu(shape[0], shape[1], shape[2]);
    }

    private static void gemmMatchesCpu(int m, int n, int k) {
        Cuda cu = Cuda.get();
        try (Arena a = Arena.ofConfined(); DeviceBuffer da = cu.alloc(m * k * 4L); DeviceBuffer db = cu.alloc(k * n * 4L);
             DeviceBuffer dc = cu.alloc(m * n * 4L)) {
            MemorySegment A = random(a, m * k, 3), B = random(a, k * n, 4), C = a.allocate(JAVA_FLOAT, (long) m * n);
            MemorySegment got = a.allocate(JAVA_FLOAT, (long) m * n);
            MemorySegment d = a.allocate(LatentNative.GEMM_DESC);
            d.set(JAVA_INT, 0, 0);
            d.set(JAVA_INT, 4, 0);
            long[] vals = {m, n, k};
            for (int i = 0; i < 3; i++) d.set(JAVA_LONG, LatentNative.GEMM_DESC.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement(new String[] {"m", "n", "k"}[i])), vals[i]);
            d.set(JAVA_FLOAT, LatentNative.GEMM_DESC.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement("alpha")), 1f);
            for (String f : new String[] {"lda", "ldb", "ldc", "batch"})
                d.set(JAVA_LONG, LatentNative.GEMM_DESC.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement(f)),
                        f.equals("lda") ? k : f.equals("batch") ? 1 : n);
            da.copyFrom(A);
            db.copyFrom(B);
            LatentNative.get().gemm(d, A, B, C);
            for (boolean tf32 : new boolean[] {false, true}) {
                CudaKernels.gemm(cu, d, m, n, 1, da, db, dc, tf32);
                cu.synchronize();
                dc.copyTo(got);
                float tol = tf32 ? 2e-2f : 1e-4f; /* TF32: 2^-10 relative per product, |sum| <= K */
                for (int i = 0; i < m * n; i++)
                    assertEquals(C.getAtIndex(JAVA_FLOAT, i), got.getAtIndex(JAVA_FLOAT, i), tol, (tf32 ? "tf32 " : "f32 ") + m + "x" + n + "x" + k + " " + i);
            }
        }
    }
}
