package dev.latent.nativ;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

import dev.latent.nativ.LatentBinding.AttentionDesc;
import dev.latent.nativ.LatentBinding.Conv2dDesc;
import dev.latent.nativ.LatentBinding.CopyDesc;
import dev.latent.nativ.LatentBinding.GemmDesc;

/**
 * Segment bounds: what a kernel will touch must lie inside the segment. The generated wrappers of {@link LatentBinding}
 * call {@link #elems} and {@link #fits} with the extents latent.h's annotations give; the descriptor checks below serve
 * the hand-written ({@code custom}) wrappers of {@link LatentNative} and read descriptors through the generated accessors.
 */
final class Bounds {
    private Bounds() {}

    /** Product of dims, refusing negative dims and overflow (as an IllegalArgumentException naming the op). */
    static long elems(String op, long... dims) {
        long p = 1;
        for (long d : dims) {
            if (d < 0) throw new IllegalArgumentException(op + ": dimensions must be >= 0, got " + java.util.Arrays.toString(dims));
            try { p = Math.multiplyExact(p, d); }
            catch (ArithmeticException e) {
                throw new IllegalArgumentException(op + ": dimensions " + java.util.Arrays.toString(dims) + " overflow a 64-bit element count");
            }
        }
        return p;
    }

    /** seg must hold count elements of elemBytes each (NULL passes: the library checks it). */
    static void fits(String op, String arg, MemorySegment seg, long count, long elemBytes) {
        if (seg == null) throw new IllegalArgumentException(op + ": " + arg + " is null (use MemorySegment.NULL)");
        if (count < 0) throw new IllegalArgumentException(op + ": " + arg + ": element count " + count + " is negative");
        if (count == 0 || seg.address() == 0) return;
        if (count > seg.byteSize() / elemBytes)
            throw new IllegalArgumentException(op + ": " + arg + " needs " + count + " x " + elemBytes + " bytes"
                    + (count > Long.MAX_VALUE / elemBytes ? "" : " = " + count * elemBytes + " bytes")
                    + " but its segment holds " + seg.byteSize() + " bytes");
    }

    static void floats(String op, String arg, MemorySegment seg, long count) { fits(op, arg, seg, count, 4); }

    /** A descriptor segment must be non-NULL and at least as large as its struct. */
    static void desc(String op, MemorySegment d, StructLayout layout) {
        if (d == null || d.address() == 0) throw new IllegalArgumentException(op + ": descriptor is NULL");
        if (d.byteSize() < layout.byteSize())
            throw new IllegalArgumentException(op + ": descriptor segment holds " + d.byteSize() + " bytes, "
                    + layout.name().orElse("the descriptor") + " needs " + layout.byteSize());
    }

    /**
     * Elements spanned by a strided-batch matrix (rows x cols, leading dimension ld, batch stride bs), the last
     * element's index + 1; 0 when nothing is touched. Negative leading dimensions or strides are refused.
     */
    static long matrixSpan(String op, String arg, long rows, long cols, long ld, long bs, long batch) {
        if (rows == 0 || cols == 0 || batch == 0) return 0;
        if (rows < 0 || cols < 0 || batch < 0 || ld < 0 || bs < 0)
            throw new IllegalArgumentException(op + ": " + arg + ": negative extent (rows " + rows + ", cols " + cols + ", ld " + ld
                    + ", batch " + batch + ", batch stride " + bs + ")");
        try {
            return Math.addExact(Math.addExact(Math.multiplyExact(batch - 1, bs), Math.multiplyExact(rows - 1, Math.max(ld, cols))), cols);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(op + ": " + arg + ": extent (rows " + rows + ", ld " + ld + ", batch " + batch
                    + ", batch stride " + bs + ") overflows 64 bits");
        }
    }

    static boolean overlaps(MemorySegment a, MemorySegment b) {
        return a.byteSize() > 0 && b.byteSize() > 0 && a.address() < b.address() + b.byteSize() && b.address() < a.address() + a.byteSize();
    }

    static void checkGemm(MemorySegment d, MemorySegment a, MemorySegment b, MemorySegment c) {
        String op = "lt_gemm";
        desc(op, d, LatentBinding.GEMM_DESC);
        boolean ta = GemmDesc.transA(d) != 0, tb = GemmDesc.transB(d) != 0;
        long m = GemmDesc.m(d), n = GemmDesc.n(d), k = GemmDesc.k(d);
        long lda = GemmDesc.lda(d), ldb = GemmDesc.ldb(d), ldc = GemmDesc.ldc(d), batch = GemmDesc.batch(d);
        long sa = GemmDesc.strideA(d), sb = GemmDesc.strideB(d), sc = GemmDesc.strideC(d);
        if (m < 0 || n < 0 || k < 0 || batch < 0)
            throw new IllegalArgumentException(op + ": m, n, k, batch must be >= 0, got m=" + m + " n=" + n + " k=" + k + " batch=" + batch);
        if (batch == 1) { sa = 0; sb = 0; sc = 0; }
        floats(op, "a (m=" + m + ", k=" + k + ", lda=" + lda + ")", a, matrixSpan(op, "a", ta ? k : m, ta ? m : k, lda, sa, batch));
        floats(op, "b (k=" + k + ", n=" + n + ", ldb=" + ldb + ")", b, matrixSpan(op, "b", tb ? n : k, tb ? k : n, ldb, sb, batch));
        floats(op, "c (m=" + m + ", n=" + n + ", ldc=" + ldc + ")", c, matrixSpan(op, "c", m, n, ldc, sc, batch));
    }

    static void checkAttention(String op, MemorySegment d, String[] names, MemorySegment[] bhts, MemorySegment lse) {
        desc(op, d, LatentBinding.ATTENTION_DESC);
        long b = AttentionDesc.b(d), nh = AttentionDesc.nh(d), t = AttentionDesc.t(d), hs = AttentionDesc.hs(d);
        long e = elems(op, b, nh, t, hs);
        for (int i = 0; i < names.length; i++) floats(op, names[i] + " (b=" + b + ", nh=" + nh + ", t=" + t + ", hs=" + hs + ")", bhts[i], e);
        floats(op, "lse", lse, elems(op, b, nh, t));
    }

    /** in0: x or dx (N, C, H, W); w (K, C, R, S); bias (K; C for bwd_data); out: y or dy (N, K, OH, OW). */
    static void checkConv(String op, MemorySegment d, String[] names, MemorySegment in0, MemorySegment w, MemorySegment bias, MemorySegment out) {
        desc(op, d, LatentBinding.CONV2D_DESC);
        long n = Conv2dDesc.n(d), c = Conv2dDesc.c(d), h = Conv2dDesc.h(d), wd = Conv2dDesc.w(d);
        long k = Conv2dDesc.k(d), r = Conv2dDesc.r(d), s = Conv2dDesc.s(d), oh = Conv2dDesc.oh(d), ow = Conv2dDesc.ow(d);
        floats(op, names[0] + " (n=" + n + ", c=" + c + ", h=" + h + ", w=" + wd + ")", in0, elems(op, n, c, h, wd));
        floats(op, names[1] + " (k=" + k + ", c=" + c + ", r=" + r + ", s=" + s + ")", w, elems(op, k, c, r, s));
        boolean biasOverC = op.startsWith("lt_conv2d_bwd_data");   // the transposed conv's bias is per input channel
        floats(op, names[2] + (biasOverC ? " (c=" + c + ")" : " (k=" + k + ")"), bias, elems(op, biasOverC ? c : k));
        floats(op, names[3] + " (n=" + n + ", k=" + k + ", oh=" + oh + ", ow=" + ow + ")", out, elems(op, n, k, oh, ow));
    }

    static void checkCopy(MemorySegment d, MemorySegment src, MemorySegment dst) {
        String op = "lt_copy_strided";
        desc(op, d, LatentBinding.COPY_DESC);
        int rank = CopyDesc.rank(d);
        if (rank < 1 || rank > LatentBinding.MAX_RANK)
            throw new IllegalArgumentException(op + ": rank " + rank + " outside [1, " + LatentBinding.MAX_RANK + "]");
        long[] shape = new long[rank];
        long srcSpan = 1, dstSpan = 1;
        try {
            for (int i = 0; i < rank; i++) {
                long sh = CopyDesc.shape(d, i), ss = CopyDesc.srcStride(d, i), ds = CopyDesc.dstStride(d, i);
                shape[i] = sh;
                if (sh < 0 || ss < 0 || ds < 0)
                    throw new IllegalArgumentException(op + ": dim " + i + ": shape " + sh + ", strides " + ss + "/" + ds + " must be >= 0");
                if (sh == 0) return;   // nothing is touched
                srcSpan = Math.addExact(srcSpan, Math.multiplyExact(sh - 1, ss));
                dstSpan = Math.addExact(dstSpan, Math.multiplyExact(sh - 1, ds));
            }
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(op + ": shape " + java.util.Arrays.toString(shape) + " with these strides overflows 64 bits");
        }
        floats(op, "src (shape " + java.util.Arrays.toString(shape) + ")", src, srcSpan);
        floats(op, "dst (shape " + java.util.Arrays.toString(shape) + ")", dst, dstSpan);
    }

    /** x (n, cin, t), w (cout, cin, k), bias (cout), y (n, cout, t); names in that order (bias's may be null: not passed). */
    static void checkConv1d(String op, long n, long cin, long t, long cout, long k, String[] names, MemorySegment x,
                            MemorySegment w, MemorySegment bias, MemorySegment y) {
        floats(op, names[0] + " (n=" + n + ", cin=" + cin + ", t=" + t + ")", x, elems(op, n, cin, t));
        floats(op, names[1] + " (cout=" + cout + ", cin=" + cin + ", k=" + k + ")", w, elems(op, cout, cin, k));
        if (names[2] != null) floats(op, names[2] + " (cout=" + cout + ")", bias, elems(op, cout));
        floats(op, names[3] + " (n=" + n + ", cout=" + cout + ", t=" + t + ")", y, elems(op, n, cout, t));
    }
}
