package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import dev.latent.nativ.LatentBinding.AttentionDesc;
import dev.latent.nativ.LatentBinding.Conv2dDesc;
import dev.latent.nativ.LatentBinding.CopyDesc;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Typed launches of every kernel of kernels/<op>/<op>.cu, with the grid and block each kernel's header specifies
 * (and its *_cuda_test.cc uses). Buffers are device pointers: a {@link DeviceBuffer} or a {@link DeviceBuffer#slice}
 * of one. Each launcher checks sizes before the launch (IllegalArgumentException naming the operand: the kernels
 * trust them, and an out-of-bounds access on a GPU is a crash or silent corruption, not an exception). Shapes that
 * the CPU entry points validate (descriptors: lt_gemm_desc, lt_attention_desc, lt_conv2d_desc, in the same layouts as
 * LatentNative's) are read from the descriptor, so grid and checks cannot disagree with what the kernel sees.
 * Launches are asynchronous on a GPU: a fault inside a kernel surfaces at the next synchronising call.
 */
public final class CudaKernels extends CudaLaunchers {
    private CudaKernels() {}

    /** Rows per dw / db partial sum in layernorm.cu (LN_CHUNK), elements per chunk in reparam.cu and sumsq.cu. */
    static final int LN_CHUNK = Ltk.LN_CHUNK, RP_CHUNK = Ltk.RP_CHUNK, RP_THREADS = Ltk.RP_THREADS, SQ_CHUNK = Ltk.SQ_CHUNK,
            SQ_THREADS = Ltk.SQ_THREADS;
    /** Elements per chunk of sumsq.cu's reductions (ltk_sumsq_part, ltk_sumsq_seg_part): a segment table's chunk counts. */
    public static final int SUMSQ_CHUNK = SQ_CHUNK;
    /** batchnorm.cu's block size (BN_THREADS), bce.cu's chunk and block size (BCE_CHUNK, BCE_THREADS). */
    static final int BN_THREADS = Ltk.BN_THREADS, BCE_CHUNK = Ltk.BCE_CHUNK, BCE_THREADS = Ltk.BCE_THREADS;
    /** coupling.cu's block size (CP_THREADS). */
    static final int CP_THREADS = Ltk.CP_THREADS;
    /** lt_copy_desc's rank limit (LT_MAX_RANK). */
    static final int MAX_RANK = dev.latent.nativ.LatentNative.MAX_RANK;
    /** Largest head size attention.cu's shared-memory tiles hold (ATT_MAXHS). */
    public static final long ATTENTION_MAX_HS = Ltk.ATT_MAXHS;
    /** Head sizes up to this take attention.cu's register-tiled backward kernels (ATT_SMALL_HS). */
    static final long ATTENTION_SMALL_HS = Ltk.ATT_SMALL_HS;
    static final int MAX_GRID_YZ = 65535;

    /** Blocks for a grid-stride kernel of {@code threads} threads (a grid-stride loop covers the rest). */
    static int strideBlocks(long n, int threads) { return (int) Math.max(1, Math.min((n + threads - 1) / threads, 65535)); }

    static int strideBlocks(long n) { return strideBlocks(n, 256); }

    static int[] dim(long x) { return new int[] {(int) x, 1, 1}; }

    static int[] dim(long x, long y) {
        if (x > Integer.MAX_VALUE || y > MAX_GRID_YZ)
            throw new IllegalArgumentException("grid (" + x + ", " + y + ") exceeds CUDA's limits (2^31 - 1, 65535)");
        return new int[] {(int) x, (int) y, 1};
    }

    static void need(DeviceBuffer d, long bytes, String op, String what) {
        if (d == null) throw new IllegalArgumentException(op + ": " + what + " is null");
        if (d.byteSize() < bytes)
            throw new IllegalArgumentException(op + ": " + what + " is a device buffer of " + d.byteSize() + " bytes, needs " + bytes);
    }

    static void floats(String op, long n, Object... namesAndBuffers) {
        if (n < 0) throw new IllegalArgumentException(op + ": negative length " + n);
        for (int i = 0; i < namesAndBuffers.length; i += 2)
            need((DeviceBuffer) namesAndBuffers[i + 1], Math.multiplyExact(n, 4L), op, (String) namesAndBuffers[i]);
    }

    // ---- per-thread scratch (partial sums): launches on one stream run in order, so one buffer serves them all ----

    private static final ThreadLocal<DeviceBuffer> SCRATCH = new ThreadLocal<>();

    /** A scratch buffer of at least {@code bytes}, this thread's; a larger one replaces it after a synchronize. */
    static DeviceBuffer scratch(Cuda cu, long bytes) {
        DeviceBuffer s = SCRATCH.get();
        if (s != null && s.isAlive() && s.byteSize() >= bytes) return s;
        if (s != null) {
            cu.synchronize();   // a kernel launched earlier may still read or write the old one
            s.close();
        }
        s = cu.alloc(Math.max(bytes, 1 << 16));
        SCRATCH.set(s);
        return s;
    }

    // ---- pointwise.cu: F's small pointwise ops in double, rounded once (as F's CPU loops) ----

    /** The kernel's kind of F's pointwise op {@code op} (sqrt, rsqrt, square, exp, log). */
    static int pointwiseKind(String op) {
        return switch (op) {
            case "sqrt" -> Ltk.POINTWISE_SQRT;
            case "rsqrt" -> Ltk.POINTWISE_RSQRT;
            case "square" -> Ltk.POINTWISE_SQUARE;
            case "exp" -> Ltk.POINTWISE_EXP;
            case "log" -> Ltk.POINTWISE_LOG;
            default -> throw new IllegalArgumentException("pointwise: no CUDA kernel for " + op + " (sqrt, rsqrt, square, exp, log)");
        };
    }

    /** y = (float) f((double) x) over n floats, f named by {@code op}. */
    public static void pointwise(Cuda cu, String op, long n, DeviceBuffer x, DeviceBuffer y) {
        int kind = pointwiseKind(op);
        floats(op, n, "x", x, "y", y);
        if (n == 0) return;
        Ltk.ltk_pointwise_fwd(cu, dim(strideBlocks(n)), dim(256), 0, kind, n, x, y);
    }

    /** dx = (float) (dy * f'(x)) in double over n floats (dx may alias dy). */
    public static void pointwiseBackward(Cuda cu, String op, long n, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx) {
        int kind = pointwiseKind(op);
        floats(op + " backward", n, "x", x, "dy", dy, "dx", dx);
        if (n == 0) return;
        Ltk.ltk_pointwise_bwd(cu, dim(strideBlocks(n)), dim(256), 0, kind, n, x, dy, dx);
    }

    /** m (c, c) = diag(v). */
    public static void diag(Cuda cu, long c, DeviceBuffer v, DeviceBuffer m) {
        floats("diag", c, "v", v);
        floats("diag", Math.multiplyExact(c, c), "m", m);
        if (c == 0) return;
        Ltk.ltk_diag_fwd(cu, dim(strideBlocks(c * c)), dim(256), 0, c, v, m);
    }

    /** d[i] = g[i, i] of a (c, c) g. */
    public static void diagBackward(Cuda cu, long c, DeviceBuffer g, DeviceBuffer d) {
        floats("diag backward", Math.multiplyExact(c, c), "g", g);
        floats("diag backward", c, "d", d);
        if (c == 0) return;
        Ltk.ltk_diag_bwd(cu, dim(strideBlocks(c)), dim(256), 0, c, g, d);
    }

    // ---- elementwise.cu ----

    /**
     * dst[idx . dstStride] = src[idx . srcStride] over every index of the lt_copy_desc's shape (LatentNative.COPY_DESC
     * layout: rank, shape, src and dst strides in elements, all >= 0). src and dst start at each view's first element.
     */
    public static void copyStrided(Cuda cu, MemorySegment desc, DeviceBuffer src, DeviceBuffer dst) { copyStrided(cu, desc, src, dst, null); }

    /**
     * {@link #copyStrided(Cuda, MemorySegment, DeviceBuffer, DeviceBuffer)} that, where {@code dst16} is not null, also
     * writes bf16(dst) (to nearest even) into dst16 at dst's offsets (ltk_copy_strided_bf16; h-bf16act: a bf16 GEMM's A).
     */
    public static void copyStrided(Cuda cu, MemorySegment desc, DeviceBuffer src, DeviceBuffer dst, DeviceBuffer dst16) {
        int rank = CopyDesc.rank(desc);
        if (rank < 1 || rank > MAX_RANK) throw new IllegalArgumentException("copyStrided: rank " + rank + " outside [1, " + MAX_RANK + "]");
        long n = 1, lastSrc = 0, lastDst = 0;
        for (int k = 0; k < rank; k++) {
            long size = CopyDesc.shape(desc, k), ss = CopyDesc.srcStride(desc, k), ds = CopyDesc.dstStride(desc, k);
            if (size < 0 || ss < 0 || ds < 0)
                throw new IllegalArgumentException("copyStrided: dim " + k + ": size " + size + ", strides " + ss + " / " + ds + " must be >= 0");
            n = Math.multiplyExact(n, size);
            if (size > 0) {
                lastSrc = Math.addExact(lastSrc, Math.multiplyExact(size - 1, ss));
                lastDst = Math.addExact(lastDst, Math.multiplyExact(size - 1, ds));
            }
        }
        if (n == 0) return;
        floats("copyStrided", lastSrc + 1, "src", src);
        floats("copyStrided", lastDst + 1, "dst", dst);
        if (dst16 == null) Ltk.ltk_copy_strided(cu, dim(strideBlocks(n)), dim(256), 0, desc, src, dst);
        else {
            need(dst16, Math.multiplyExact(lastDst + 1, 2L), "copyStrided", "dst16");
            Ltk.ltk_copy_strided_bf16(cu, dim(strideBlocks(n)), dim(256), 0, desc, src, dst, dst16);
        }
    }

    // ---- embedding.cu, sumsq.cu ----

    /**
     * dtable[uniq[r], :] += dout[pos[p], :] for p in [start[r], start[r + 1]), in order: the backward of an embedding
     * with the positions grouped by id in increasing order (see Kernels.embeddingBackward), deterministic, the CPU's bits.
     * {@code groups} holds uniq (rows), start (rows + 1) and pos (n) as consecutive int32 arrays.
     */
    public static void embeddingBackward(Cuda cu, long rows, long n, long c, long vocab, DeviceBuffer groups, DeviceBuffer dout,
                                         DeviceBuffer dtable) {
        floats("embeddingBackward", rows + rows + 1 + n, "groups (int32)", groups);
        floats("embeddingBackward", n * c, "dout", dout);
        floats("embeddingBackward", vocab * c, "dtable", dtable);
        if (rows == 0 || c == 0) return;
        DeviceBuffer uniq = groups.slice(0, rows * 4), start = groups.slice(rows * 4, (rows + 1) * 4),
                pos = groups.slice((2 * rows + 1) * 4, Math.max(n, 1) * 4);
        Ltk.ltk_embedding_bwd(cu, dim(rows, (c + 127) / 128), dim(128), 0, rows, c, uniq, start, pos, dout, dtable);
    }

    /** The sum of x[i]^2 in double (fixed chunks and order: the same bits every run); synchronises to copy it back. */
    public static double sumOfSquares(Cuda cu, long n, DeviceBuffer x) {
        floats("sumOfSquares", n, "x", x);
        if (n == 0) return 0;
        long chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        DeviceBuffer s = scratch(cu, (chunks + 1) * 8);
        DeviceBuffer out = s.slice(0, 8), part = s.slice(8, chunks * 8);
        Ltk.ltk_sumsq_part(cu, dim(chunks), dim(SQ_THREADS), 0, n, x, part);
        Ltk.ltk_sumsq_total(cu, dim(1), dim(32), 0, chunks, part, out);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_DOUBLE);
            out.copyTo(h);
            return h.get(JAVA_DOUBLE, 0);
        }
    }

    /**
     * {@code out} (one float on the device) = (float) ((a * S + c) * scale) with S = {@link #sumOfSquares}{@code (n, x)}
     * (the same launches, so the same S), formed on the device (ltk_sumsq_affine_f32): the host's double expression on
     * that S without copying it back (the Gaussian -log p(x|z) of a training step: no host synchronisation).
     */
    public static void sumOfSquaresAffine(Cuda cu, long n, DeviceBuffer x, double a, double c, double scale, DeviceBuffer out) {
        floats("sumOfSquaresAffine", n, "x", x);
        floats("sumOfSquaresAffine", 1, "out", out);
        long chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        DeviceBuffer s = scratch(cu, Math.max(1, chunks) * 8);
        DeviceBuffer part = s.slice(0, Math.max(1, chunks) * 8);
        if (chunks > 0) Ltk.ltk_sumsq_part(cu, dim(chunks), dim(SQ_THREADS), 0, n, x, part);
        Ltk.ltk_sumsq_affine_f32(cu, dim(1), dim(32), 0, chunks, part, a, c, scale, out);
    }

    /**
     * The sum over k of {@link #sumOfSquares} of x[offset[k] .. offset[k] + len[k]), added in k order on the host: each
     * segment's partial sums and total are computed on the device exactly as {@link #sumOfSquares} computes them (the
     * same launches, so the same bits), into one device array of per-segment totals that comes back in ONE
     * synchronising copy (a flat gradient buffer's norm: one host synchronisation per step, not one per parameter).
     */
    public static double sumOfSquaresSegments(Cuda cu, DeviceBuffer x, long[] offset, long[] len) {
        int nseg = offset.length;
        if (nseg == 0) return 0;
        long chunks = 0;
        for (int k = 0; k < nseg; k++) {
            if (offset[k] < 0 || len[k] < 0 || offset[k] > x.byteSize() / 4 - len[k])
                throw new IllegalArgumentException("sumOfSquaresSegments: segment " + k + " [" + offset[k] + ", +" + len[k] + ") outside x ("
                        + x.byteSize() / 4 + " floats)");
            chunks += (len[k] + SQ_CHUNK - 1) / SQ_CHUNK;
        }
        DeviceBuffer s = scratch(cu, (nseg + chunks) * 8);
        DeviceBuffer outs = s.slice(0, nseg * 8L);
        long pc = nseg;
        for (int k = 0; k < nseg; k++) {
            if (len[k] == 0) continue;
            long ck = (len[k] + SQ_CHUNK - 1) / SQ_CHUNK;
            DeviceBuffer part = s.slice(pc * 8, ck * 8);
            Ltk.ltk_sumsq_part(cu, dim(ck), dim(SQ_THREADS), 0, len[k], x.slice(offset[k] * 4, len[k] * 4), part);
            Ltk.ltk_sumsq_total(cu, dim(1), dim(32), 0, ck, part, outs.slice(k * 8L, 8));
            pc += ck;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_DOUBLE, nseg);
            outs.copyTo(h);
            double total = 0;
            for (int k = 0; k < nseg; k++) total += len[k] == 0 ? 0 : h.getAtIndex(JAVA_DOUBLE, k);
            return total;
        }
    }

    /**
     * The squared global norm of the segments of x listed in {@code tab} and AdamW's clip factor, both left on the
     * device (no copy back, no host synchronisation): {@code tab} holds {@code nseg} rows of int64 (offset, len,
     * first_chunk) in floats, every len > 0, first_chunk the running sum of ceil(len / 4096) (the caller builds and
     * checks it: {@code Kernels.gradClip}); {@code chunks} is the sum over all rows. sumsq (8 bytes) = the same double as
     * {@link #sumOfSquaresSegments} returns for those segments (the same launches' bits, one launch for all segments
     * and one for the total); scale (4 bytes) = clip > 0 and sqrt(sumsq) > clip ? (float) (clip / (sqrt(sumsq) + 1e-6)) :
     * 1, AdamW.update's factor, for {@link #adamw(Cuda, long, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer,
     * float, float, float, float, float, DeviceBuffer, long)}.
     */
    public static void sumOfSquaresClip(Cuda cu, DeviceBuffer x, DeviceBuffer tab, long nseg, long chunks, double clip, DeviceBuffer sumsq,
                                        DeviceBuffer scale) {
        if (nseg < 0 || chunks < nseg || chunks > Integer.MAX_VALUE)
            throw new IllegalArgumentException("sumOfSquaresClip: nseg=" + nseg + " >= 0 and nseg <= chunks=" + chunks + " <= 2^31 - 1 needed");
        if (sumsq == null || scale == null || sumsq.byteSize() < 8 || scale.byteSize() < 4)
            throw new IllegalArgumentException("sumOfSquaresClip: sumsq needs 8 bytes and scale 4, got " + sumsq + " and " + scale);
        if (nseg == 0) {   // no gradient: sumsq 0, scale 1 (the kernel reads neither table nor partial sums)
            Ltk.ltk_sumsq_seg_clip(cu, dim(1), dim(32), 0, 0L, null, null, clip, sumsq, scale);
            return;
        }
        if (tab.byteSize() < nseg * 24) throw new IllegalArgumentException("sumOfSquaresClip: the table holds " + tab.byteSize() + " bytes, "
                + nseg + " rows need " + nseg * 24);
        DeviceBuffer part = scratch(cu, chunks * 8).slice(0, chunks * 8);
        Ltk.ltk_sumsq_seg_part(cu, dim(chunks), dim(SQ_THREADS), 0, nseg, tab, x, part);
        Ltk.ltk_sumsq_seg_clip(cu, dim(1), dim(32), 0, nseg, tab, part, clip, sumsq, scale);
    }

    /**
     * out[0] = (float) the sum of x[i] in double (sumsq.cu's chunks and order: the same bits every run). The result stays
     * on the device: no copy back, no synchronisation.
     */
    public static void sum(Cuda cu, long n, DeviceBuffer x, DeviceBuffer out) {
        floats("sum", n, "x", x);
        floats("sum", 1, "out", out);
        long chunks = Math.max(1, (n + SQ_CHUNK - 1) / SQ_CHUNK);
        DeviceBuffer part = scratch(cu, chunks * 8).slice(0, chunks * 8);
        if (n == 0) {
            Ltk.ltk_sum_total_f32(cu, dim(1), dim(32), 0, 0L, part, out);
            return;
        }
        Ltk.ltk_sum_part(cu, dim(chunks), dim(SQ_THREADS), 0, n, x, part);
        Ltk.ltk_sum_total_f32(cu, dim(1), dim(32), 0, chunks, part, out);
    }

    // ---- activation.cu, gelu.cu ----

    // ---- layernorm.cu ----

    /**
     * LayerNorm backward: dx overwritten (may alias dy), dw and db accumulated. dw / db are reduced in fixed chunks
     * of LN_CHUNK rows (ltk_layernorm_bwd_dwdb_part into this thread's scratch, then _sum): deterministic.
     */
    public static void layerNormBackward(Cuda cu, long rows, long c, DeviceBuffer x, DeviceBuffer w, DeviceBuffer mean,
                                         DeviceBuffer rstd, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dw, DeviceBuffer db) {
        lnCheck("layerNormBackward", rows, c);
        floats("layerNormBackward", rows * c, "x", x, "dy", dy, "dx", dx);
        floats("layerNormBackward", c, "w", w, "dw", dw, "db", db);
        floats("layerNormBackward", rows, "mean", mean, "rstd", rstd);
        if (rows == 0) return;
        long chunks = (rows + LN_CHUNK - 1) / LN_CHUNK;
        DeviceBuffer part = scratch(cu, chunks * 2 * c * 4);
        // dw / db first: they read dy, which dx may overwrite (in place, dx == dy)
        Ltk.ltk_layernorm_bwd_dwdb_part(cu, dim((c + 127) / 128, chunks), dim(128), 0, rows, c, x, mean, rstd, dy, part);
        Ltk.ltk_layernorm_bwd_dwdb_sum(cu, dim((c + 127) / 128), dim(128), 0, chunks, c, part, dw, db);
        Ltk.ltk_layernorm_bwd_dx(cu, dim((rows + 7) / 8), dim(256), 0, rows, c, x, w, mean, rstd, dy, dx);
    }

    /**
     * Residual add fused with LayerNorm, backward: dx = ds + LayerNorm's dx from dy (dx may alias dy, not ds), dw and db
     * accumulated as {@link #layerNormBackward}'s (the same two reduction kernels on s): the bits of that backward
     * followed by the add of the residual stream's gradient.
     */
    public static void layerNormResidualBackward(Cuda cu, long rows, long c, DeviceBuffer s, DeviceBuffer w, DeviceBuffer mean,
                                                 DeviceBuffer rstd, DeviceBuffer dy, DeviceBuffer ds, DeviceBuffer dx,
                                                 DeviceBuffer dw, DeviceBuffer db) {
        lnCheck("layerNormResidualBackward", rows, c);
        floats("layerNormResidualBackward", rows * c, "s", s, "dy", dy, "ds", ds, "dx", dx);
        floats("layerNormResidualBackward", c, "w", w, "dw", dw, "db", db);
        floats("layerNormResidualBackward", rows, "mean", mean, "rstd", rstd);
        if (rows == 0) return;
        long chunks = (rows + LN_CHUNK - 1) / LN_CHUNK;
        DeviceBuffer part = scratch(cu, chunks * 2 * c * 4);
        // dw / db first: they read dy, which dx may overwrite (in place, dx == dy)
        Ltk.ltk_layernorm_bwd_dwdb_part(cu, dim((c + 127) / 128, chunks), dim(128), 0, rows, c, s, mean, rstd, dy, part);
        Ltk.ltk_layernorm_bwd_dwdb_sum(cu, dim((c + 127) / 128), dim(128), 0, chunks, c, part, dw, db);
        Ltk.ltk_layernorm_residual_bwd_dx(cu, dim((rows + 7) / 8), dim(256), 0, rows, c, s, w, mean, rstd, dy, ds, dx);
    }

    private static void lnCheck(String op, long rows, long c) {
        if (rows < 0 || c < 1) throw new IllegalArgumentException(op + ": rows=" + rows + " must be >= 0 and c=" + c + " >= 1");
    }

    // ---- softmax_xent.cu ----

    // ---- gemm.cu ----

    /**
     * GEMM with an lt_gemm_desc (LatentNative.GEMM_DESC layout; the operands' extents are checked by the caller, as
     * ops.Gemm does for both devices): tf32 picks a tensor-core kernel, else an exact-fp32 one (each with 128 x 128
     * tiles for large problems, 64 x 64 otherwise: a pure function of the shape).
     */
    public static void gemm(Cuda cu, MemorySegment desc, long m, long n, long batch, DeviceBuffer a, DeviceBuffer b,
                            DeviceBuffer c, boolean tf32) {
        // the 128 x 128 tile when it alone gives >= 128 blocks (gemm.cu's gemm_big), else 64 x 64
        boolean big = (m + Ltk.G2_BM - 1) / Ltk.G2_BM * ((n + Ltk.G2_BN - 1) / Ltk.G2_BN) * batch >= Ltk.GEMM_BIG_MIN_BLOCKS;
        int t = big ? 128 : 64;
        int[] grid = {(int) ((n + t - 1) / t), (int) ((m + t - 1) / t), (int) batch};
        if ((m + t - 1) / t > MAX_GRID_YZ || batch > MAX_GRID_YZ || (n + t - 1) / t > Integer.MAX_VALUE)
            throw new IllegalArgumentException("gemm grid too large: M=" + m + " N=" + n + " batch=" + batch);
        if (m == 0 || n == 0) return;
        int[] block = {tf32 && !big ? 128 : 256, 1, 1};
        if (tf32 && big) Ltk.ltk_gemm_tf32_128(cu, grid, block, 0, desc, a, b, c);
        else if (tf32) Ltk.ltk_gemm_tf32(cu, grid, block, 0, desc, a, b, c);
        else if (big) Ltk.ltk_gemm_f32_128(cu, grid, block, 0, desc, a, b, c);
        else Ltk.ltk_gemm_f32(cu, grid, block, 0, desc, a, b, c);
    }

    /**
     * ltk_gemm_bf16 / ltk_gemm_bf16_128 (tensor cores, mma.sync m16n8k16): C (fp32) = alpha op(A) op(B) + beta C with A
     * and B bf16 (2 bytes an element, lt_gemm_desc's strides in elements; {@link #toBf16} writes them), fp32
     * accumulation. The 128 x 128 tile when it alone gives >= 128 blocks (as {@link #gemm}), else 64 x 64; the caller
     * has checked the extents (in elements) as for {@link #gemm}.
     */
    public static void gemmBf16(Cuda cu, MemorySegment desc, long m, long n, long batch, DeviceBuffer a16, DeviceBuffer b16,
                                DeviceBuffer c) {
        boolean big = (m + Ltk.G2_BM - 1) / Ltk.G2_BM * ((n + Ltk.G2_BN - 1) / Ltk.G2_BN) * batch >= Ltk.GEMM_BIG_MIN_BLOCKS;
        int t = big ? 128 : 64;
        int[] grid = {(int) ((n + t - 1) / t), (int) ((m + t - 1) / t), (int) batch};
        if ((m + t - 1) / t > MAX_GRID_YZ || batch > MAX_GRID_YZ || (n + t - 1) / t > Integer.MAX_VALUE)
            throw new IllegalArgumentException("gemm (bf16) grid too large: M=" + m + " N=" + n + " batch=" + batch);
        if (m == 0 || n == 0) return;
        if (big) Ltk.ltk_gemm_bf16_128(cu, grid, dim(256), 0, desc, a16, b16, c);
        else Ltk.ltk_gemm_bf16(cu, grid, dim(128), 0, desc, a16, b16, c);
    }

    // ---- cast.cu ----

    /** y (n bf16, 2 bytes each) = x (n floats) rounded to bfloat16, to nearest even (ltk_f32_to_bf16). */
    public static void toBf16(Cuda cu, long n, DeviceBuffer x, DeviceBuffer y) {
        floats("f32_to_bf16", n, "x", x);
        need(y, Math.multiplyExact(n, 2L), "f32_to_bf16", "y");
        if (n == 0) return;
        Ltk.ltk_f32_to_bf16(cu, dim(strideBlocks(n)), dim(256), 0, x, y, n);
    }

    /** y (n floats) = x (n bf16, 2 bytes each) widened exactly (ltk_bf16_to_f32). */
    public static void fromBf16(Cuda cu, long n, DeviceBuffer x, DeviceBuffer y) {
        need(x, Math.multiplyExact(n, 2L), "bf16_to_f32", "x");
        floats("bf16_to_f32", n, "y", y);
        if (n == 0) return;
        Ltk.ltk_bf16_to_f32(cu, dim(strideBlocks(n)), dim(256), 0, x, y, n);
    }

    /**
     * y (n floats) = x (n bf16, 2 bytes each) widened exactly, or y += it in fp32 when {@code accumulate}
     * (ltk_bf16_to_f32_acc): the way back from a bf16 result of cuDNN's bf16 convolutions.
     */
    public static void fromBf16(Cuda cu, long n, DeviceBuffer x, DeviceBuffer y, boolean accumulate) {
        need(x, Math.multiplyExact(n, 2L), "bf16_to_f32", "x");
        floats("bf16_to_f32", n, "y", y);
        if (n == 0) return;
        Ltk.ltk_bf16_to_f32_acc(cu, dim(strideBlocks(n)), dim(256), 0, x, y, n, accumulate ? 1 : 0);
    }

    /**
     * y = x rounded to TF32 (tf32 true: 10-bit mantissa, to nearest, ties away from zero, as ltk_gemm_tf32 rounds) or
     * to bf16 (to nearest even), kept as floats (ltk_round_operand); y may be x.
     */
    public static void roundOperand(Cuda cu, long n, DeviceBuffer x, DeviceBuffer y, boolean tf32) {
        floats("round_operand", n, "x", x, "y", y);
        if (n == 0) return;
        Ltk.ltk_round_operand(cu, dim(strideBlocks(n)), dim(256), 0, x, y, n, tf32 ? Ltk.CAST_TF32 : Ltk.CAST_BF16);
    }

    // ---- attention.cu ----

    private record Att(long b, long nh, long t, long hs) {
        long bh() { return b * nh; }
        long numel() { return b * nh * t * hs; }
    }

    private static Att att(String op, MemorySegment d) {
        Att a = new Att(AttentionDesc.b(d), AttentionDesc.nh(d), AttentionDesc.t(d), AttentionDesc.hs(d));
        if (a.b < 1 || a.nh < 1 || a.t < 1 || a.hs < 1)
            throw new IllegalArgumentException(op + ": B, NH, T, HS must be >= 1, got " + a);
        if (a.hs > ATTENTION_MAX_HS)
            throw new IllegalArgumentException(op + ": head size " + a.hs + " > " + ATTENTION_MAX_HS + " (attention.cu's shared-memory tiles)");
        if (a.bh() > MAX_GRID_YZ) throw new IllegalArgumentException(op + ": B * NH = " + a.bh() + " > " + MAX_GRID_YZ + " (grid.y)");
        return a;
    }

    /** The forwards' checks (fp32 and bf16): the desc, then q, k, v, o (B, NH, T, HS) and lse (B, NH, T) in fp32. */
    private static Att attForward(String op, MemorySegment desc, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
                                  DeviceBuffer lse) {
        Att a = att(op, desc);
        floats(op, a.numel(), "q", q, "k", k, "v", v, "o", o);
        floats(op, a.bh() * a.t, "lse", lse);
        return a;
    }

    /**
     * The backwards' prologue (fp32 and bf16): the sizes of every operand checked against {@code a}, then D = rowwise
     * dout . o (fp32, ltk_attention_bwd_dot) into this thread's scratch, which it returns for the dk / dv and dq passes.
     */
    private static DeviceBuffer attBackwardDot(Cuda cu, String op, Att a, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v,
                                               DeviceBuffer o, DeviceBuffer lse, DeviceBuffer dout, DeviceBuffer dq,
                                               DeviceBuffer dk, DeviceBuffer dv) {
        floats(op, a.numel(), "q", q, "k", k, "v", v, "o", o, "dout", dout, "dq", dq, "dk", dk, "dv", dv);
        floats(op, a.bh() * a.t, "lse", lse);
        long rows = a.bh() * a.t;
        DeviceBuffer dvec = scratch(cu, rows * 4);
        Ltk.ltk_attention_bwd_dot(cu, dim((rows + 7) / 8), dim(256), 0, rows, a.hs, dout, o, dvec);
        return dvec;
    }

    /** Attention forward with an lt_attention_desc: q, k, v, o (B, NH, T, HS), lse (B, NH, T). */
    public static void attention(Cuda cu, MemorySegment desc, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v,
                                 DeviceBuffer o, DeviceBuffer lse) {
        Att a = attForward("attention", desc, q, k, v, o, lse);
        Ltk.ltk_attention_fwd(cu, dim((a.t + 31) / 32, a.bh()), dim(64), 0, desc, q, k, v, o, lse);
    }

    /**
     * bf16 attention forward on tensor cores (ltk_attention_fwd_bf16, mma.sync m16n8k16): the lt_attention_fwd_bf16
     * contract (latent.h): fp32 q, k, v, o (B, NH, T, HS) and lse (B, NH, T); the operands of Q K^T and P V rounded to
     * bf16 (nearest even) in the kernel, fp32 sums and softmax. Our own path for when cuDNN's SDPA is absent (issue 18);
     * not yet called by CudaBackend (its bf16 attention is wired by the SDPA hook's owner).
     */
    public static void attentionBf16(Cuda cu, MemorySegment desc, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v,
                                     DeviceBuffer o, DeviceBuffer lse) {
        Att a = attForward("attentionBf16", desc, q, k, v, o, lse);
        Ltk.ltk_attention_fwd_bf16(cu, dim((a.t + 63) / 64, a.bh()), dim(128), 0, desc, q, k, v, o, lse);
    }

    /**
     * Attention backward: D = rowwise dout . o (this thread's scratch), then dk / dv and dq in separate passes (no
     * atomics). dq, dk, dv overwritten.
     */
    public static void attentionBackward(Cuda cu, MemorySegment desc, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v,
                                         DeviceBuffer o, DeviceBuffer lse, DeviceBuffer dout, DeviceBuffer dq,
                                         DeviceBuffer dk, DeviceBuffer dv) {
        Att a = att("attentionBackward", desc);
        DeviceBuffer dvec = attBackwardDot(cu, "attentionBackward", a, q, k, v, o, lse, dout, dq, dk, dv);
        if (a.hs <= ATTENTION_SMALL_HS) {   // register-tiled kernels; their shared tiles hold HS <= 64
            Ltk.ltk_attention_bwd_dkdv64(cu, dim((a.t + 31) / 32, a.bh()), dim(64), 0, desc, q, k, v, lse, dvec, dout, dk, dv);
            Ltk.ltk_attention_bwd_dq64(cu, dim((a.t + 31) / 32, a.bh()), dim(64), 0, desc, q, k, v, lse, dvec, dout, dq);
        } else {
            Ltk.ltk_attention_bwd_dkdv(cu, dim((a.t + 7) / 8, a.bh()), dim(128), 0, desc, q, k, v, lse, dvec, dout, dk, dv);
            Ltk.ltk_attention_bwd_dq(cu, dim((a.t + 7) / 8, a.bh()), dim(128), 0, desc, q, k, v, lse, dvec, dout, dq);
        }
    }

    /**
     * bf16 attention backward on tensor cores (the lt_attention_bwd_bf16 contract: the operands of dout V^T, dS K,
     * P^T dout and dS^T Q rounded to bf16, fp32 sums): D = rowwise dout . o (fp32, this thread's scratch), then
     * ltk_attention_bwd_dkdv_bf16 and ltk_attention_bwd_dq_bf16 (separate passes, no atomics). dq, dk, dv overwritten.
     * Pairs with {@link #attentionBf16}'s o and lse; not yet called by CudaBackend.
     */
    public static void attentionBackwardBf16(Cuda cu, MemorySegment desc, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v,
                                             DeviceBuffer o, DeviceBuffer lse, DeviceBuffer dout, DeviceBuffer dq,
                                             DeviceBuffer dk, DeviceBuffer dv) {
        Att a = att("attentionBackwardBf16", desc);
        DeviceBuffer dvec = attBackwardDot(cu, "attentionBackwardBf16", a, q, k, v, o, lse, dout, dq, dk, dv);
        int[] grid = dim((a.t + 31) / 32, a.bh());
        Ltk.ltk_attention_bwd_dkdv_bf16(cu, grid, dim(64), 0, desc, q, k, v, lse, dvec, dout, dk, dv);
        Ltk.ltk_attention_bwd_dq_bf16(cu, grid, dim(64), 0, desc, q, k, v, lse, dvec, dout, dq);
    }

    // ---- adamw.cu ----

    /**
     * One AdamW step (PyTorch's order) over n parameters. The scalars (ltk_adamw_consts) are computed here in double
     * and rounded to float exactly as adamw.c computes them, so both devices see the same constants; the checks are
     * lt_adamw's.
     */
    public static void adamw(Cuda cu, long n, DeviceBuffer p, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v, float lr,
                             float beta1, float beta2, float eps, float weightDecay, float gradScale, long step) {
        if (!(lr >= 0) || !Float.isFinite(lr) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)
                || !Float.isFinite(eps) || !(weightDecay >= 0) || !Float.isFinite(weightDecay) || !(gradScale >= 0)
                || !Float.isFinite(gradScale) || step < 1)
            throw new IllegalArgumentException("adamw: lr=" + lr + " >= 0, beta1=" + beta1 + " and beta2=" + beta2 + " in [0, 1), eps="
                    + eps + " > 0, weightDecay=" + weightDecay + " >= 0, gradScale=" + gradScale + " >= 0 (all finite), step=" + step + " >= 1 needed");
        floats("adamw", n, "param", p, "grad", g, "m", m, "v", v);
        if (n == 0) return;
        try (Arena a = Arena.ofConfined()) {
            Ltk.ltk_adamw(cu, dim(strideBlocks(n)), dim(256), 0, adamwConsts(a, lr, beta1, beta2, eps, weightDecay, gradScale, step), n, p, g, m, v);
        }
    }

    /**
     * {@link #adamw(Cuda, long, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, float, float, float, float, float,
     * float, long)} with the gradient scale read by the kernel from device memory ({@code gradScale}: 4 bytes, a float,
     * written by {@link #sumOfSquaresClip}): the same bits as passing that float by value, without it on the host.
     */
    public static void adamw(Cuda cu, long n, DeviceBuffer p, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v, float lr,
                             float beta1, float beta2, float eps, float weightDecay, DeviceBuffer gradScale, long step) {
        if (gradScale == null || gradScale.byteSize() < 4)
            throw new IllegalArgumentException("adamw: the device gradient scale must be a 4-byte device buffer, got " + gradScale);
        if (!(lr >= 0) || !Float.isFinite(lr) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)
                || !Float.isFinite(eps) || !(weightDecay >= 0) || !Float.isFinite(weightDecay) || step < 1)
            throw new IllegalArgumentException("adamw: lr=" + lr + " >= 0, beta1=" + beta1 + " and beta2=" + beta2 + " in [0, 1), eps="
                    + eps + " > 0, weightDecay=" + weightDecay + " >= 0 (all finite), step=" + step + " >= 1 needed");
        floats("adamw", n, "param", p, "grad", g, "m", m, "v", v);
        if (n == 0) return;
        try (Arena a = Arena.ofConfined()) {
            Ltk.ltk_adamw_dscale(cu, dim(strideBlocks(n)), dim(256), 0, adamwConsts(a, lr, beta1, beta2, eps, weightDecay, 1f, step),
                    gradScale, n, p, g, m, v);
        }
    }

    /** The bytes of one ltk_adamw_consts (nine floats). */
    public static final long ADAMW_CONSTS_BYTES = 36;

    /**
     * Writes the constants of one AdamW step (ltk_adamw_consts, the same floats the by-value kernels get) into {@code dst}
     * at byte {@code offset}, by an asynchronous upload from page-locked staging (no host synchronisation): the half of
     * an update that a CUDA graph cannot replay, done before each step (see {@link #adamwStaged}).
     */
    public static void stageAdamwConsts(DeviceBuffer dst, long offset, float lr, float beta1, float beta2, float eps,
                                        float weightDecay, long step) {
        if (!(lr >= 0) || !Float.isFinite(lr) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)
                || !Float.isFinite(eps) || !(weightDecay >= 0) || !Float.isFinite(weightDecay) || step < 1)
            throw new IllegalArgumentException("adamw: lr=" + lr + " >= 0, beta1=" + beta1 + " and beta2=" + beta2 + " in [0, 1), eps="
                    + eps + " > 0, weightDecay=" + weightDecay + " >= 0 (all finite), step=" + step + " >= 1 needed");
        need(dst, offset + ADAMW_CONSTS_BYTES, "adamw", "constants");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment k = adamwConsts(a, lr, beta1, beta2, eps, weightDecay, 1f, step);
            Staging.upload(dst.slice(offset, ADAMW_CONSTS_BYTES), k);
        }
    }

    /**
     * One AdamW step with its constants read from device memory ({@code consts}: 36 bytes written by {@link
     * #stageAdamwConsts}) and the gradient scale from {@code gradScale} (4 bytes on the device, the clip factor) or 1 when
     * null: nothing that changes from step to step is passed by value, so a CUDA graph replays it. The same bits as
     * the by-value kernel.
     */
    public static void adamwStaged(Cuda cu, long n, DeviceBuffer consts, DeviceBuffer gradScale, DeviceBuffer p, DeviceBuffer g,
                                   DeviceBuffer m, DeviceBuffer v) {
        need(consts, ADAMW_CONSTS_BYTES, "adamw", "constants");
        if (gradScale != null) need(gradScale, 4, "adamw", "gradient scale");
        floats("adamw", n, "param", p, "grad", g, "m", m, "v", v);
        if (n == 0) return;
        Ltk.ltk_adamw_dconsts(cu, dim(strideBlocks(n)), dim(256), 0, consts, gradScale, n, p, g, m, v);
    }

    /** ltk_adamw_consts, computed in double and rounded to float as adamw.c does. */
    private static MemorySegment adamwConsts(Arena a, float lr, float beta1, float beta2, float eps, float weightDecay, float gradScale, long step) {
        double t = step, b1 = beta1, b2 = beta2;
        MemorySegment k = a.allocate(9 * 4L, 4);
        float[] f = {gradScale, (float) (1.0 - (double) lr * weightDecay), beta1, (float) (1.0 - b1), beta2,
                (float) (1.0 - b2), (float) (lr / (1.0 - Math.pow(b1, t))), (float) Math.sqrt(1.0 - Math.pow(b2, t)), eps};
        for (int i = 0; i < f.length; i++) k.setAtIndex(JAVA_FLOAT, i, f[i]);
        return k;
    }
}
