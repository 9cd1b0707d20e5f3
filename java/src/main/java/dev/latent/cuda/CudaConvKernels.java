package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.cuda.CudaKernels.*;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.latent.nativ.LatentBinding.Conv2dDesc;

/**
 * Typed launches of the convolution kernels (conv2d.cu, conv1d.cu), split out of {@link CudaKernels} by op family; the
 * same contract: sizes checked before the launch (IllegalArgumentException naming the operand; descriptors read through
 * the generated accessors of the pinned lt_conv2d_desc layout), grids and blocks as each kernel's header specifies.
 */
public final class CudaConvKernels {
    private CudaConvKernels() {}

    // ---- conv2d.cu ----

    private record ConvDims(long n, long c, long h, long w, long k, long r, long s, long oh, long ow) {
        long x() { return n * c * h * w; }
        long y() { return n * k * oh * ow; }
        long wt() { return k * c * r * s; }
    }

    private static ConvDims conv(String op, MemorySegment d) {
        long[] f = {Conv2dDesc.n(d), Conv2dDesc.c(d), Conv2dDesc.h(d), Conv2dDesc.w(d), Conv2dDesc.k(d), Conv2dDesc.r(d),
                Conv2dDesc.s(d), Conv2dDesc.oh(d), Conv2dDesc.ow(d)};
        ConvDims g = new ConvDims(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]);
        for (long v : f) if (v < 1) throw new IllegalArgumentException(op + ": every size must be >= 1, got " + g);
        // conv2d.cu indexes in 32 bits (64-bit division spilled bwd_data): each tensor under 2^31 elements.
        if (g.x() >= 1L << 31 || g.y() >= 1L << 31 || g.wt() >= 1L << 31)
            throw new IllegalArgumentException(op + ": x, y and w must each have fewer than 2^31 elements on CUDA, got " + g);
        return g;
    }

    /**
     * conv2d.cu's conv2d_wide: the 64 x 256 tile (ltk_conv2d_*_wide) when it alone gives >= 128 blocks, else 64 x 64
     * (a pure function of the shape).
     */
    static boolean convWide(long ncol, long m, long phases) {
        return (ncol + Ltk.CW_BN - 1) / Ltk.CW_BN * ((m + Ltk.CONV_BM - 1) / Ltk.CONV_BM) * phases >= Ltk.CONV_WIDE_MIN_BLOCKS;
    }

    /**
     * y = conv(x, w) + bias (bias (K) or null), lt_conv2d_desc geometry. Grid (ceil(N OH OW / tile), ceil(K / 64)),
     * tile 256 (ltk_conv2d_fwd_wide) or 64 by {@link #convWide}.
     */
    public static void conv2d(Cuda cu, MemorySegment desc, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y) {
        ConvDims g = conv("conv2d", desc);
        floats("conv2d", g.x(), "x", x);
        floats("conv2d", g.wt(), "w", w);
        floats("conv2d", g.y(), "y", y);
        if (bias != null) floats("conv2d", g.k, "bias", bias);
        long ncol = g.n * g.oh * g.ow;
        boolean wide = convWide(ncol, g.k, 1);
        int tn = wide ? 256 : 64;
        int[] grid = dim((ncol + tn - 1) / tn, (g.k + 63) / 64);
        if (wide) Ltk.ltk_conv2d_fwd_wide(cu, grid, dim(256), 0, desc, x, w, bias, y);
        else Ltk.ltk_conv2d_fwd(cu, grid, dim(256), 0, desc, x, w, bias, y);
    }

    /**
     * dx = conv^T(dy, w) + bias (bias (C) or null: a transposed convolution's forward). Grid (ceil(N ceil(H/sh)
     * ceil(W/sw) / tile), ceil(C / 64), sh sw): one GEMM per stride phase; tile 256 (_wide) or 64 by {@link #convWide}.
     */
    public static void conv2dBackwardData(Cuda cu, MemorySegment desc, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx) {
        ConvDims g = conv("conv2dBackwardData", desc);
        floats("conv2dBackwardData", g.y(), "dy", dy);
        floats("conv2dBackwardData", g.wt(), "w", w);
        floats("conv2dBackwardData", g.x(), "dx", dx);
        if (bias != null) floats("conv2dBackwardData", g.c, "bias", bias);
        // one implicit GEMM per stride phase of (h, w) (grid z); phase 0 has the most columns
        int sh = Conv2dDesc.strideH(desc), sw = Conv2dDesc.strideW(desc);
        if (sh < 1 || sw < 1 || (long) sh * sw > MAX_GRID_YZ)
            throw new IllegalArgumentException("conv2dBackwardData: strides must be >= 1 (and sh sw <= 65535), got " + sh + ", " + sw);
        long ncol = g.n * ((g.h + sh - 1) / sh) * ((g.w + sw - 1) / sw);
        boolean wide = convWide(ncol, g.c, (long) sh * sw);
        int tn = wide ? 256 : 64;
        int[] grid = dim((ncol + tn - 1) / tn, (g.c + 63) / 64);
        grid[2] = sh * sw;
        if (wide) Ltk.ltk_conv2d_bwd_data_wide(cu, grid, dim(256), 0, desc, dy, w, bias, dx);
        else Ltk.ltk_conv2d_bwd_data(cu, grid, dim(256), 0, desc, dy, w, bias, dx);
    }

    /** bwd_weight's tile (conv2d.cu's conv2d_bwd_weight_wide): 64 x 256 when C R S >= 256, else 64 x 64. */
    static boolean conv2dBackwardWeightWide(ConvDims g) {
        return g.c * g.r * g.s >= 256;
    }

    /**
     * bwd_weight's depth split (conv2d.cu's conv2d_bwd_weight_chunk, a pure function of the shape): splits to reach
     * about 512 blocks (256 for the wide tile), each at least 256 deep, chunks a multiple of 16. Returns the chunk;
     * splits = ceil(depth / chunk).
     */
    static long conv2dBackwardWeightChunk(ConvDims g) {
        boolean wide = conv2dBackwardWeightWide(g);
        long depth = g.n * g.oh * g.ow, tn = wide ? 256 : 64, target = wide ? 256 : 512;
        long tiles = (g.c * g.r * g.s + tn - 1) / tn * ((g.k + 63) / 64);
        long splits = Math.max(1, Math.min(Math.min((target + tiles - 1) / tiles, (depth + 255) / 256), 65535));
        long per = (depth + splits - 1) / splits;
        return (per + 15) / 16 * 16;
    }

    /**
     * dw (K, C, R, S) (+)= dy (x) x; db (K) (+)= the sum of dy per filter when db is not null. The depth N OH OW is
     * split across grid z when the K x CRS grid alone is small (partials in this thread's scratch, then
     * ltk_conv2d_bwd_weight_sum adds them in split order).
     */
    public static void conv2dBackwardWeight(Cuda cu, MemorySegment desc, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw,
                                            DeviceBuffer db, boolean accumulate) {
        ConvDims g = conv("conv2dBackwardWeight", desc);
        floats("conv2dBackwardWeight", g.x(), "x", x);
        floats("conv2dBackwardWeight", g.y(), "dy", dy);
        floats("conv2dBackwardWeight", g.wt(), "dw", dw);
        if (db != null) floats("conv2dBackwardWeight", g.k, "db", db);
        int acc = accumulate ? 1 : 0;
        long chunk = conv2dBackwardWeightChunk(g), splits = (g.n * g.oh * g.ow + chunk - 1) / chunk;
        boolean wide = conv2dBackwardWeightWide(g);
        long tn = wide ? 256 : 64;
        int[] grid = dim((g.c * g.r * g.s + tn - 1) / tn, (g.k + 63) / 64);
        grid[2] = (int) splits;   // <= 512 by construction
        if (splits == 1) {
            if (wide) Ltk.ltk_conv2d_bwd_weight_wide(cu, grid, dim(256), 0, desc, x, dy, dw, acc, null, chunk);
            else Ltk.ltk_conv2d_bwd_weight(cu, grid, dim(256), 0, desc, x, dy, dw, acc, null, chunk);
        } else {
            // each split's partial dW in this thread's scratch, then summed in split order (deterministic)
            long nw = g.wt();
            DeviceBuffer part = scratch(cu, splits * nw * 4);
            if (wide) Ltk.ltk_conv2d_bwd_weight_wide(cu, grid, dim(256), 0, desc, x, dy, dw, 0, part, chunk);
            else Ltk.ltk_conv2d_bwd_weight(cu, grid, dim(256), 0, desc, x, dy, dw, 0, part, chunk);
            Ltk.ltk_conv2d_bwd_weight_sum(cu, dim(Math.min((nw + 255) / 256, 1024)), dim(256), 0, nw, (int) splits,
                      part, dw, acc);
        }
        if (db != null) Ltk.ltk_conv2d_bwd_bias(cu, dim(g.k), dim(256), 0, desc, dy, db, acc);
    }

    /** db (K) (+)= the sum of dy (N, K, OH, OW) per filter alone (ltk_conv2d_bwd_bias): also any per-channel sum. */
    public static void conv2dBackwardBias(Cuda cu, MemorySegment desc, DeviceBuffer dy, DeviceBuffer db, boolean accumulate) {
        ConvDims g = conv("conv2dBackwardBias", desc);
        floats("conv2dBackwardBias", g.y(), "dy", dy);
        floats("conv2dBackwardBias", g.k, "db", db);
        Ltk.ltk_conv2d_bwd_bias(cu, dim(g.k), dim(256), 0, desc, dy, db, accumulate ? 1 : 0);
    }

    // ---- conv1d.cu (issue 21: dilated causal 1-D convolution) ----

    /** conv1d.cu's block size (C1_THREADS). */
    static final int C1_THREADS = Ltk.C1_THREADS;

    private static void conv1dSizes(String op, long n, long ci, long t, long co, long k, long d) {
        if (n < 1 || ci < 1 || t < 1 || co < 1 || k < 1 || d < 1)
            throw new IllegalArgumentException(op + ": sizes and dilation must be >= 1, got n=" + n + " cin=" + ci + " t=" + t
                    + " cout=" + co + " k=" + k + " dilation=" + d);
        try { Math.multiplyExact(k - 1, d); }
        catch (ArithmeticException e) { throw new IllegalArgumentException(op + ": (k - 1) x dilation overflows 64 bits"); }
    }

    /** y = causal dilated conv(x, w) + bias (bias (Cout) or null): one thread per output, grid-stride. */
    public static void conv1d(Cuda cu, long n, long ci, long t, long co, long k, long d, DeviceBuffer x, DeviceBuffer w,
                              DeviceBuffer bias, DeviceBuffer y) {
        conv1dSizes("conv1d", n, ci, t, co, k, d);
        long ny = Math.multiplyExact(Math.multiplyExact(n, co), t);
        floats("conv1d", Math.multiplyExact(Math.multiplyExact(n, ci), t), "x", x);
        floats("conv1d", Math.multiplyExact(Math.multiplyExact(co, ci), k), "w", w);
        floats("conv1d", ny, "y", y);
        if (bias != null) floats("conv1d", co, "bias", bias);
        Ltk.ltk_conv1d_fwd(cu, dim(strideBlocks(ny, C1_THREADS)), dim(C1_THREADS), 0, n, ci, t, co, k, d, x, w, bias, y);
    }

    /** dx = conv^T(dy, w), overwritten: one thread per dx element, grid-stride. */
    public static void conv1dBackwardData(Cuda cu, long n, long ci, long t, long co, long k, long d, DeviceBuffer dy,
                                          DeviceBuffer w, DeviceBuffer dx) {
        conv1dSizes("conv1dBackwardData", n, ci, t, co, k, d);
        long nx = Math.multiplyExact(Math.multiplyExact(n, ci), t);
        floats("conv1dBackwardData", Math.multiplyExact(Math.multiplyExact(n, co), t), "dy", dy);
        floats("conv1dBackwardData", Math.multiplyExact(Math.multiplyExact(co, ci), k), "w", w);
        floats("conv1dBackwardData", nx, "dx", dx);
        Ltk.ltk_conv1d_bwd_data(cu, dim(strideBlocks(nx, C1_THREADS)), dim(C1_THREADS), 0, n, ci, t, co, k, d, dy, w, dx);
    }

    /** dw (Cout, Cin, K) and db (Cout, or null) from x and dy: one block per element, a fixed-order block reduction. */
    public static void conv1dBackwardWeight(Cuda cu, long n, long ci, long t, long co, long k, long d, DeviceBuffer x,
                                            DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer db, boolean accumulate) {
        conv1dSizes("conv1dBackwardWeight", n, ci, t, co, k, d);
        long nw = Math.multiplyExact(Math.multiplyExact(co, ci), k);
        if (nw > Integer.MAX_VALUE) throw new IllegalArgumentException("conv1dBackwardWeight: " + nw + " weights exceed one grid on CUDA");
        floats("conv1dBackwardWeight", Math.multiplyExact(Math.multiplyExact(n, ci), t), "x", x);
        floats("conv1dBackwardWeight", Math.multiplyExact(Math.multiplyExact(n, co), t), "dy", dy);
        floats("conv1dBackwardWeight", nw, "dw", dw);
        int acc = accumulate ? 1 : 0;
        Ltk.ltk_conv1d_bwd_weight(cu, dim(nw), dim(C1_THREADS), 0, n, ci, t, co, k, d, x, dy, dw, acc);
        if (db != null) {
            floats("conv1dBackwardWeight", co, "db", db);
            Ltk.ltk_conv1d_bwd_bias(cu, dim(co), dim(C1_THREADS), 0, n, t, co, dy, db, acc);
        }
    }
}
