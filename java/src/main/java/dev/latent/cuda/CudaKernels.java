package dev.latent.cuda;

import java.lang.foreign.MemorySegment;

/**
 * Typed launches of kernels/<op>/<op>.cu (grid and block as each kernel's header specifies). So far the ops
 * the GPU test compares with the CPU; the rest are launched the same way through {@link Cuda#launch}.
 */
public final class CudaKernels {
    private CudaKernels() {}

    /** Blocks for a grid-stride kernel of 256 threads. */
    static int strideBlocks(long n) { return (int) Math.max(1, Math.min((n + 255) / 256, 65535)); }

    /** y = a x + b y over n floats (ltk_axpby). */
    public static void axpby(Cuda cu, long n, float a, DeviceBuffer x, float b, DeviceBuffer y) {
        need(x, n * 4, "x");
        need(y, n * 4, "y");
        cu.launch("ltk_axpby", new int[] {strideBlocks(n), 1, 1}, new int[] {256, 1, 1}, 0, n, a, x, b, y);
    }

    /**
     * GEMM with an lt_gemm_desc (LatentNative.GEMM_DESC layout, already validated by the CPU-side checks):
     * tf32 picks the tensor-core kernel, else the exact-fp32 one.
     */
    public static void gemm(Cuda cu, MemorySegment desc, long m, long n, long batch, DeviceBuffer a, DeviceBuffer b,
                            DeviceBuffer c, boolean tf32) {
        int[] grid = {(int) ((n + 63) / 64), (int) ((m + 63) / 64), (int) batch};
        if (grid[1] > 65535 || batch > 65535) throw new IllegalArgumentException("gemm grid too large: M=" + m + " batch=" + batch);
        cu.launch(tf32 ? "ltk_gemm_tf32" : "ltk_gemm_f32", grid, new int[] {tf32 ? 128 : 256, 1, 1}, 0, desc, a, b, c);
    }

    private static void need(DeviceBuffer d, long bytes, String what) {
        if (d.byteSize() < bytes)
            throw new IllegalArgumentException(what + ": device buffer of " + d.byteSize() + " bytes, need " + bytes);
    }
}
