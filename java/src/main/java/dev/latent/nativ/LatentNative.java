package dev.latent.nativ;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

import static dev.latent.nativ.Bounds.checkAttention;
import static dev.latent.nativ.Bounds.checkConv;
import static dev.latent.nativ.Bounds.checkConv1d;
import static dev.latent.nativ.Bounds.checkCopy;
import static dev.latent.nativ.Bounds.checkGemm;
import static dev.latent.nativ.Bounds.desc;
import static dev.latent.nativ.Bounds.elems;
import static dev.latent.nativ.Bounds.fits;
import static dev.latent.nativ.Bounds.floats;
import static dev.latent.nativ.Bounds.matrixSpan;
import static dev.latent.nativ.Bounds.overlaps;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The binding of liblatent's {@code lt_*} symbols (native/include/latent.h). Everything mechanical (constants, the
 * descriptor {@link StructLayout}s and their accessors, the downcall handles, and the checked wrapper of every function
 * whose prototype gives its pointers' extents) is generated into {@link LatentBinding} from latent.h; this class is the
 * hand-written rest of the safety layer: loading, and the wrappers of the functions latent.h marks {@code custom}
 * (descriptors, out-parameters, pointer arrays). Shape and meaning checks live in the ops that call it; here a non-zero
 * status becomes a {@link NativeException}, and every entry point that takes raw {@link MemorySegment}s first checks
 * that each segment holds what the kernel will touch (element counts from the arguments, extents from the descriptor,
 * descriptors against their {@link StructLayout}): a too-small segment is an {@link IllegalArgumentException} naming
 * the op, the argument and both sizes, never a read or write past its end. NULL segments pass through (the library
 * refuses or skips them itself).
 */
public final class LatentNative extends LatentFunctions {
    private static volatile LatentNative instance;

    private final MethodHandle abiVersionCritical;

    /** The process-wide binding, loaded on first use (see {@link NativeLoader} for where it looks). */
    public static LatentNative get() {
        LatentNative n = instance;
        if (n == null) {
            synchronized (LatentNative.class) {
                n = instance;
                if (n == null) {
                    n = open(NativeLoader.locate(LatentNative.class.getClassLoader()), Arena.global());
                    System.getLogger("dev.latent").log(System.Logger.Level.INFO,
                            "latent: native library {0}, ISA {1}{2}, {3} threads", n.path(), isaName(n.isa()),
                            n.isaReason().isEmpty() ? "" : " (" + n.isaReason() + ")", n.numThreads());
                    instance = n;
                }
            }
        }
        return n;
    }

    /** Opens a specific library file; fails with a clear error when its ABI version is not ours. */
    public static LatentNative open(Path lib, Arena arena) {
        SymbolLookup lookup = NativeLoader.open(lib, arena);
        Linker linker = Linker.nativeLinker();
        MethodHandle abi = linker.downcallHandle(find(lookup, lib, "lt_abi_version"), FunctionDescriptor.of(JAVA_INT));
        int version;
        try {
            version = (int) abi.invokeExact();
        } catch (Throwable t) {
            throw new UnsatisfiedLinkError("lt_abi_version() failed in " + lib + ": " + t);
        }
        if (version != ABI_VERSION)
            throw new UnsatisfiedLinkError("ABI mismatch: " + lib + " reports lt_abi_version() = " + version
                    + " but this Latent jar needs " + ABI_VERSION + "; use the native jar of the same release");
        return new LatentNative(lib, lookup, linker);
    }

    private LatentNative(Path path, SymbolLookup l, Linker linker) {
        super(path, l, linker);
        // Linker.Option.critical skips the thread-state transition: only for tiny calls, and measured in
        // FfmBench against the plain handle. Kernels never use it (they would stall GC for their duration).
        abiVersionCritical = linker.downcallHandle(find(l, path, "lt_abi_version"), FunctionDescriptor.of(JAVA_INT),
                Linker.Option.critical(false));
    }

    private static MemorySegment find(SymbolLookup l, Path lib, String name) {
        return l.find(name).orElseThrow(() -> new UnsatisfiedLinkError("symbol " + name + " missing in " + lib));
    }

    /** ref, avx2 or avx512. */
    public static String isaName(int isa) { return isa == ISA_AVX512 ? "avx512" : isa == ISA_AVX2 ? "avx2" : "ref"; }

    /** Parses ref|avx2|avx512 (as LATENT_MAX_ISA takes them). */
    public static int parseIsa(String name) {
        return switch (name) {
            case "ref" -> ISA_REF;
            case "avx2" -> ISA_AVX2;
            case "avx512" -> ISA_AVX512;
            default -> throw new IllegalArgumentException("ISA '" + name + "': expected ref, avx2 or avx512");
        };
    }

    // ---- runtime ----

    /** Whether the CPU has AVX512_BF16 (and the avx512 level): bf16 kernels need it; nothing emulates bf16. */
    public boolean cpuBf16() { return lt_cpu_bf16() != 0; }

    /** Resizes the worker pool (n >= 1). */
    public void setNumThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads must be >= 1, got " + n);
        lt_set_num_threads(n);
    }

    /** lt_abi_version through a {@code Linker.Option.critical} handle (FfmBench's probe). */
    public int abiVersionCritical() {
        try { return (int) abiVersionCritical.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    /** sizeof and the offsets of the descriptor struct {@code which} (lt_struct_info). */
    public long[] structInfo(int which, int fields) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, fields + 1);
            lt_struct_info(which, out, fields + 1);
            return out.toArray(JAVA_LONG);
        }
    }

    /** philox4x32_10(ctr[4], key[2]), for known-answer tests. */
    public int[] philox4x32_10(int[] ctr, int[] key) {
        if (ctr.length != 4 || key.length != 2)
            throw new IllegalArgumentException("philox needs ctr[4] and key[2], got " + ctr.length + ", " + key.length);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment c = a.allocateFrom(JAVA_INT, ctr), k = a.allocateFrom(JAVA_INT, key);
            MemorySegment o = a.allocate(JAVA_INT, 4);
            lt_philox4x32_10(c, k, o);
            return o.toArray(JAVA_INT);
        }
    }

    // ---- GEMM ----

    /** Raw: desc is a filled {@link #GEMM_DESC}; operands are checked by dev.latent.ops.Gemm. */
    public void gemm(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        checkGemm(desc, a, b, c);
        lt_gemm(desc, a, b, c);
    }

    /** Raw lt_gemm_rows (skinny C = A B^T without packing; trans_a 0, trans_b 1, batch 1): desc is a filled {@link #GEMM_DESC}, bounds checked here. */
    public void gemmRows(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        checkGemm(desc, a, b, c);
        lt_gemm_rows(desc, a, b, c);
    }

    /** Floats that {@link #gemmRowsPack} writes for B (n, k): ceil(n / 16) * 16 * k. */
    public long gemmRowsPackedSize(long n, long k) {
        String op = "lt_gemm_rows_packed_size";
        elems(op, n, k);
        long size = lt_gemm_rows_packed_size(n, k);
        if (size < 0) throw new IllegalArgumentException(op + ": n " + n + " x k " + k + " overflows");
        return size;
    }

    /** Raw lt_gemm_rows_pack: B (n, k) at row stride ldb into {@link #gemmRowsPackedSize} floats of k-major 16-column panels. */
    public void gemmRowsPack(long n, long k, MemorySegment b, long ldb, MemorySegment packed) {
        String op = "lt_gemm_rows_pack";
        long size = gemmRowsPackedSize(n, k);
        if (ldb < Math.max(1, k)) throw new IllegalArgumentException(op + ": ldb " + ldb + " must be >= max(1, k = " + k + ")");
        if (n > 0 && k > 0) floats(op, "b", b, elems(op, n - 1, ldb) + k);
        floats(op, "packed", packed, size);
        lt_gemm_rows_pack(n, k, b, ldb, packed);
    }

    /**
     * Raw lt_gemm_rows_packed: C (m, n) at row stride ldc = A (m, k) at row stride lda times B^T (+ bias (n) unless
     * bias is {@link MemorySegment#NULL}), B packed by {@link #gemmRowsPack}. Bits independent of m, threads and ISA.
     */
    public void gemmRowsPacked(long m, long n, long k, MemorySegment a, long lda, MemorySegment packed, MemorySegment bias, MemorySegment c, long ldc) {
        String op = "lt_gemm_rows_packed";
        long size = gemmRowsPackedSize(n, k);
        elems(op, m, n, k);
        if (lda < Math.max(1, k) || ldc < Math.max(1, n))
            throw new IllegalArgumentException(op + ": lda " + lda + " must be >= max(1, k = " + k + "), ldc " + ldc + " >= max(1, n = " + n + ")");
        if (m > 0 && n > 0) {
            if (k > 0) floats(op, "a", a, elems(op, m - 1, lda) + k);
            floats(op, "packed", packed, size);
            floats(op, "bias", bias, n);
            floats(op, "c", c, elems(op, m - 1, ldc) + n);
        }
        lt_gemm_rows_packed(m, n, k, a, lda, packed, bias, c, ldc);
    }

    /** Raw lt_gemm_bf16 (same descriptor; operands rounded to bf16, fp32 accumulation); NativeException
     * (UNSUPPORTED) where the CPU or the ISA level in use lacks AVX512_BF16. */
    public void gemmBf16(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        lt_gemm_bf16(desc, a, b, c);
    }

    // ---- machine ceilings ----

    /** FMA ceiling at AVX2, GFLOP/s. */
    public double peakFma(int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            lt_peak_fma(threads, iters, out);
            return out.get(JAVA_DOUBLE, 0);
        }
    }

    /** FMA ceiling at {@code isa} ({@link #ISA_AVX2}: ymm, {@link #ISA_AVX512}: zmm), GFLOP/s; throws
     * LatentException (UNSUPPORTED) when the level in use lacks that ISA. */
    public double peakFmaIsa(int isa, int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            lt_peak_fma_isa(isa, threads, iters, out);
            return out.get(JAVA_DOUBLE, 0);
        }
    }

    /** AVX512_BF16 dot-product ceiling (64 flops per vdpbf16ps), GFLOP/s; throws (UNSUPPORTED) without it. */
    public double peakBf16(int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            lt_peak_bf16(threads, iters, out);
            return out.get(JAVA_DOUBLE, 0);
        }
    }

    /** STREAM triad bandwidth, GB/s. */
    public double peakTriad(int threads, long n, int reps) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            lt_peak_triad(threads, n, reps, out);
            return out.get(JAVA_DOUBLE, 0);
        }
    }

    // ---- kernels with descriptors, out-parameters or pointer arrays: raw entry points; shapes are checked by the
    //      callers in dev.latent.ops, segment bounds here ----

    /** Raw lt_attention_fwd: desc is a filled {@link #ATTENTION_DESC}. */
    public void attentionFwd(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o, MemorySegment lse) {
        checkAttention("lt_attention_fwd", desc, new String[] {"q", "k", "v", "o"}, new MemorySegment[] {q, k, v, o}, lse);
        lt_attention_fwd(desc, q, k, v, o, lse);
    }

    /** Raw lt_attention_bwd. */
    public void attentionBwd(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o,
                             MemorySegment lse, MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv) {
        checkAttention("lt_attention_bwd", desc, new String[] {"q", "k", "v", "o", "dout", "dq", "dk", "dv"}, new MemorySegment[] {q, k, v, o, dout, dq, dk, dv}, lse);
        lt_attention_bwd(desc, q, k, v, o, lse, dout, dq, dk, dv);
    }

    /** lt_attention_fwd_bf16: operands of Q K^T and P V rounded to bf16, fp32 accumulation; NativeException
     * (LT_ERR_UNSUPPORTED) without AVX512_BF16 at ISA avx512. */
    public void attentionFwdBf16(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o, MemorySegment lse) {
        checkAttention("lt_attention_fwd_bf16", desc, new String[] {"q", "k", "v", "o"}, new MemorySegment[] {q, k, v, o}, lse);
        lt_attention_fwd_bf16(desc, q, k, v, o, lse);
    }

    /** lt_attention_bwd_bf16: the backward's five matmuls with bf16 operands, fp32 accumulation. */
    public void attentionBwdBf16(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o,
                                 MemorySegment lse, MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv) {
        checkAttention("lt_attention_bwd_bf16", desc, new String[] {"q", "k", "v", "o", "dout", "dq", "dk", "dv"}, new MemorySegment[] {q, k, v, o, dout, dq, dk, dv}, lse);
        lt_attention_bwd_bf16(desc, q, k, v, o, lse, dout, dq, dk, dv);
    }

    /** Per-thread scratch of lt_attention_decode_fwd: descriptor, pointer arrays and lengths, grown on demand. */
    private static final ThreadLocal<MemorySegment[]> DECODE_SCRATCH = ThreadLocal.withInitial(() -> new MemorySegment[1]);

    /**
     * lt_attention_decode_fwd (inference only): row r's query q[r*ldq ..] (nh*hs floats) against rows 0 .. len[r]-1 of
     * its caches k[r], v[r] (row stride ldkv floats), written to o[r*ldo ..]. Every segment is checked to hold what the
     * kernel will touch (q and o their rows, each cache its len[r] rows), and o must not overlap q; the pointer arrays
     * are built here from the segments, so no raw address crosses this method.
     */
    public void attentionDecodeFwd(long rows, long nh, long hs, float scale, MemorySegment q, long ldq, MemorySegment[] k,
                                   MemorySegment[] v, long ldkv, int[] len, MemorySegment o, long ldo) {
        String op = "lt_attention_decode_fwd";
        if (rows < 0 || nh < 1 || hs < 1)
            throw new IllegalArgumentException(op + ": rows " + rows + " must be >= 0, nh " + nh + " and hs " + hs + " >= 1");
        long c = elems(op, nh, hs);
        if (ldq < c || ldkv < c || ldo < c)
            throw new IllegalArgumentException(op + ": ldq " + ldq + ", ldkv " + ldkv + ", ldo " + ldo + " must be >= nh*hs = " + c);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException(op + ": scale " + scale + " must be finite");
        if (k == null || v == null || len == null || k.length < rows || v.length < rows || len.length < rows)
            throw new IllegalArgumentException(op + ": k, v and len must hold " + rows + " entries");
        if (rows == 0) return;
        floats(op, "q (rows=" + rows + ", ldq=" + ldq + ")", q, matrixSpan(op, "q", rows, c, ldq, 0, 1));
        floats(op, "o (rows=" + rows + ", ldo=" + ldo + ")", o, matrixSpan(op, "o", rows, c, ldo, 0, 1));
        if (overlaps(q, o))
            throw new IllegalArgumentException(op + ": o overlaps q");
        for (int r = 0; r < rows; r++) {
            if (len[r] < 1) throw new IllegalArgumentException(op + ": len[" + r + "] = " + len[r] + " must be >= 1");
            if (k[r] == null || v[r] == null || k[r].address() == 0 || v[r].address() == 0)
                throw new IllegalArgumentException(op + ": cache " + (k[r] == null || k[r].address() == 0 ? "k" : "v") + "[" + r + "] is null");
            long span = matrixSpan(op, "cache", len[r], c, ldkv, 0, 1);
            floats(op, "k[" + r + "] (len=" + len[r] + ", ldkv=" + ldkv + ")", k[r], span);
            floats(op, "v[" + r + "] (len=" + len[r] + ", ldkv=" + ldkv + ")", v[r], span);
            if (overlaps(o, k[r]) || overlaps(o, v[r])) throw new IllegalArgumentException(op + ": o overlaps the cache of row " + r);
        }
        MemorySegment[] holder = DECODE_SCRATCH.get();
        long need = ATTENTION_DECODE_DESC.byteSize() + rows * 20;
        if (holder[0] == null || holder[0].byteSize() < need) holder[0] = Arena.ofAuto().allocate(Math.max(need, 4096), 8);
        MemorySegment s = holder[0], d = s.asSlice(0, ATTENTION_DECODE_DESC.byteSize());
        long kp = ATTENTION_DECODE_DESC.byteSize(), vp = kp + rows * 8, lp = vp + rows * 8;
        AttentionDecodeDesc.setRows(d, rows); AttentionDecodeDesc.setNh(d, nh); AttentionDecodeDesc.setHs(d, hs);
        AttentionDecodeDesc.setLdq(d, ldq); AttentionDecodeDesc.setLdkv(d, ldkv); AttentionDecodeDesc.setLdo(d, ldo);
        AttentionDecodeDesc.setScale(d, scale); AttentionDecodeDesc.setPad_(d, 0);
        for (int r = 0; r < rows; r++) {
            s.set(JAVA_LONG, kp + 8L * r, k[r].address());
            s.set(JAVA_LONG, vp + 8L * r, v[r].address());
            s.set(JAVA_INT, lp + 4L * r, len[r]);
        }
        lt_attention_decode_fwd(d, q, s.asSlice(kp, rows * 8), s.asSlice(vp, rows * 8), s.asSlice(lp, rows * 4), o);
    }

    /** Raw lt_adamw: desc is a filled {@link #ADAMW_DESC}. */
    public void adamw(MemorySegment desc, long n, MemorySegment p, MemorySegment g, MemorySegment m, MemorySegment v) {
        { String op = "lt_adamw"; desc(op, desc, ADAMW_DESC); long e = elems(op, n); floats(op, "param", p, e); floats(op, "grad", g, e); floats(op, "m", m, e); floats(op, "v", v, e); }
        lt_adamw(desc, n, p, g, m, v);
    }

    /** The sum of squares of x[0 .. n) in double; {@code out} is the 8-byte scratch it is written to. */
    public double sumsq(long n, MemorySegment x, MemorySegment out) {
        { String op = "lt_sumsq"; floats(op, "x", x, elems(op, n)); fits(op, "out", out, 1, 8); if (out.address() == 0) throw new IllegalArgumentException(op + ": out is NULL"); }
        lt_sumsq(n, x, out);
        return out.get(JAVA_DOUBLE, 0);
    }

    /**
     * lt_sumsq_segments: the sum over {@code k < nseg} of lt_sumsq(len[k], x + offset[k]), added in order, in one parallel pass.
     * {@code offset} and {@code len} hold nseg int64s each; every segment must lie inside {@code x} (checked here).
     */
    public double sumsqSegments(long nseg, MemorySegment offset, MemorySegment len, MemorySegment x, MemorySegment out) {
        String op = "lt_sumsq_segments";
        fits(op, "offset", offset, elems(op, nseg), 8);
        fits(op, "len", len, elems(op, nseg), 8);
        fits(op, "out", out, 1, 8);
        if (out.address() == 0) throw new IllegalArgumentException(op + ": out is NULL");
        for (long k = 0; k < nseg; k++) {
            long o = offset.getAtIndex(JAVA_LONG, k), n = len.getAtIndex(JAVA_LONG, k);
            if (o < 0 || n < 0 || (n > 0 && o + n > x.byteSize() / 4))
                throw new IllegalArgumentException(op + ": segment " + k + " [" + o + ", " + o + " + " + n + ") is outside x, which holds "
                        + x.byteSize() / 4 + " floats");
        }
        lt_sumsq_segments(nseg, offset, len, x, out);
        return out.get(JAVA_DOUBLE, 0);
    }

    /** Raw lt_add_rows: rows holds min(period, n) rows of c. */
    public void addRows(long n, long c, long period, MemorySegment x, MemorySegment rows, MemorySegment y) {
        { String op = "lt_add_rows"; long nc = elems(op, n, c); floats(op, "x", x, nc); floats(op, "y", y, nc); if (nc > 0) floats(op, "rows", rows, elems(op, Math.min(Math.max(period, 0), n), c)); }
        lt_add_rows(n, c, period, x, rows, y);
    }

    /** Raw lt_sum_rows: out holds min(period, n) rows of c. */
    public void sumRows(long n, long c, long period, MemorySegment x, MemorySegment out) {
        { String op = "lt_sum_rows"; long nc = elems(op, n, c); floats(op, "x", x, nc); if (nc > 0) floats(op, "out", out, elems(op, Math.min(Math.max(period, 0), n), c)); }
        lt_sum_rows(n, c, period, x, out);
    }

    /** Raw lt_copy_strided: desc is a filled {@link #COPY_DESC}; src and dst spans are checked against it. */
    public void copyStrided(MemorySegment desc, MemorySegment src, MemorySegment dst) {
        checkCopy(desc, src, dst);
        lt_copy_strided(desc, src, dst);
    }

    /** Raw: desc is a filled {@link #CONV2D_DESC}; bias may be NULL. */
    public void conv2dFwd(MemorySegment desc, MemorySegment x, MemorySegment w, MemorySegment bias, MemorySegment y) {
        checkConv("lt_conv2d_fwd", desc, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        lt_conv2d_fwd(desc, x, w, bias, y);
    }

    /** Raw lt_conv2d_bwd_data (bias per input channel, may be NULL). */
    public void conv2dBwdData(MemorySegment desc, MemorySegment dy, MemorySegment w, MemorySegment bias, MemorySegment dx) {
        checkConv("lt_conv2d_bwd_data", desc, new String[] {"dx", "w", "bias", "dy"}, dx, w, bias, dy);
        lt_conv2d_bwd_data(desc, dy, w, bias, dx);
    }

    /** Raw lt_conv2d_bwd_weight: dw and db (may be NULL), overwritten or accumulated. */
    public void conv2dBwdWeight(MemorySegment desc, MemorySegment x, MemorySegment dy, MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv("lt_conv2d_bwd_weight", desc, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        lt_conv2d_bwd_weight(desc, x, dy, dw, db, accumulate ? 1 : 0);
    }

    /** lt_conv2d_fwd_bf16: x (as unfolded patches) and w rounded to bf16, fp32 accumulation; NativeException
     * (LT_ERR_UNSUPPORTED) without AVX512_BF16 at ISA avx512. */
    public void conv2dFwdBf16(MemorySegment desc, MemorySegment x, MemorySegment w, MemorySegment bias, MemorySegment y) {
        checkConv("lt_conv2d_fwd_bf16", desc, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        lt_conv2d_fwd_bf16(desc, x, w, bias, y);
    }

    /** lt_conv2d_bwd_data_bf16: dy and w rounded to bf16, fp32 accumulation. */
    public void conv2dBwdDataBf16(MemorySegment desc, MemorySegment dy, MemorySegment w, MemorySegment bias, MemorySegment dx) {
        checkConv("lt_conv2d_bwd_data_bf16", desc, new String[] {"dx", "w", "bias", "dy"}, dx, w, bias, dy);
        lt_conv2d_bwd_data_bf16(desc, dy, w, bias, dx);
    }

    /** lt_conv2d_bwd_weight_bf16: x (as unfolded patches) and dy rounded to bf16, fp32 accumulation; db fp32. */
    public void conv2dBwdWeightBf16(MemorySegment desc, MemorySegment x, MemorySegment dy, MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv("lt_conv2d_bwd_weight_bf16", desc, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        lt_conv2d_bwd_weight_bf16(desc, x, dy, dw, db, accumulate ? 1 : 0);
    }

    // ---- issue 21: dilated causal 1-D convolution (kernels/conv1d); x (n, cin, t), w (cout, cin, k), y (n, cout, t) ----

    /** Raw lt_conv1d_fwd: y = causal dilated conv(x, w) + bias (bias may be NULL). */
    public void conv1dFwd(long n, long cin, long t, long cout, long k, long dilation, MemorySegment x, MemorySegment w,
                          MemorySegment bias, MemorySegment y) {
        checkConv1d("lt_conv1d_fwd", n, cin, t, cout, k, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        lt_conv1d_fwd(n, cin, t, cout, k, dilation, x, w, bias, y);
    }

    /** Raw lt_conv1d_bwd_data: dx (n, cin, t) from dy (n, cout, t) and w. */
    public void conv1dBwdData(long n, long cin, long t, long cout, long k, long dilation, MemorySegment dy, MemorySegment w,
                              MemorySegment dx) {
        checkConv1d("lt_conv1d_bwd_data", n, cin, t, cout, k, new String[] {"dx", "w", null, "dy"}, dx, w, MemorySegment.NULL, dy);
        lt_conv1d_bwd_data(n, cin, t, cout, k, dilation, dy, w, dx);
    }

    /** Raw lt_conv1d_bwd_weight: dw (cout, cin, k) and db (cout, may be NULL), overwritten or accumulated. */
    public void conv1dBwdWeight(long n, long cin, long t, long cout, long k, long dilation, MemorySegment x, MemorySegment dy,
                                MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv1d("lt_conv1d_bwd_weight", n, cin, t, cout, k, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        lt_conv1d_bwd_weight(n, cin, t, cout, k, dilation, x, dy, dw, db, accumulate ? 1 : 0);
    }
}
