package dev.latent.nativ;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The one class that binds liblatent's {@code lt_*} symbols (native/include/latent.h). Shape and meaning checks
 * live in the ops that call it; here a non-zero status becomes a {@link NativeException}, and every entry point
 * that takes raw {@link MemorySegment}s first checks that each segment holds what the kernel will touch (element
 * counts from the arguments, extents from the descriptor, descriptors against their {@link StructLayout}): a
 * too-small segment is an {@link IllegalArgumentException} naming the op, the argument and both sizes, never a
 * read or write past its end. NULL segments pass through (the library refuses or skips them itself).
 */
public final class LatentNative {
    /** Must equal LT_ABI_VERSION in latent.h; checked when the library is opened. */
    public static final int ABI_VERSION = 1;
    public static final int ISA_REF = 0, ISA_AVX2 = 1, ISA_AVX512 = 2;

    /** Mirror of lt_gemm_desc; GemmDescLayoutTest compares it with lt_struct_info(0). */
    public static final StructLayout GEMM_DESC = MemoryLayout.structLayout(
            JAVA_INT.withName("trans_a"), JAVA_INT.withName("trans_b"),
            JAVA_LONG.withName("m"), JAVA_LONG.withName("n"), JAVA_LONG.withName("k"),
            JAVA_FLOAT.withName("alpha"), JAVA_FLOAT.withName("beta"),
            JAVA_LONG.withName("lda"), JAVA_LONG.withName("ldb"), JAVA_LONG.withName("ldc"),
            JAVA_LONG.withName("batch"),
            JAVA_LONG.withName("stride_a"), JAVA_LONG.withName("stride_b"), JAVA_LONG.withName("stride_c"))
            .withName("lt_gemm_desc");

    /** Mirror of lt_attention_desc. */
    public static final StructLayout ATTENTION_DESC = MemoryLayout.structLayout(
            JAVA_LONG.withName("b"), JAVA_LONG.withName("nh"), JAVA_LONG.withName("t"), JAVA_LONG.withName("hs"),
            JAVA_INT.withName("causal"), JAVA_FLOAT.withName("scale")).withName("lt_attention_desc");

    /** Mirror of lt_attention_decode_desc. */
    public static final StructLayout ATTENTION_DECODE_DESC = MemoryLayout.structLayout(
            JAVA_LONG.withName("rows"), JAVA_LONG.withName("nh"), JAVA_LONG.withName("hs"), JAVA_LONG.withName("ldq"),
            JAVA_LONG.withName("ldkv"), JAVA_LONG.withName("ldo"), JAVA_FLOAT.withName("scale"), JAVA_INT.withName("pad_"))
            .withName("lt_attention_decode_desc");

    /** Mirror of lt_adamw_desc. */
    public static final StructLayout ADAMW_DESC = MemoryLayout.structLayout(
            JAVA_FLOAT.withName("lr"), JAVA_FLOAT.withName("beta1"), JAVA_FLOAT.withName("beta2"), JAVA_FLOAT.withName("eps"),
            JAVA_FLOAT.withName("weight_decay"), JAVA_FLOAT.withName("grad_scale"), JAVA_LONG.withName("step"))
            .withName("lt_adamw_desc");

    public static final int MAX_RANK = 6;
    /** Mirror of lt_copy_desc. */
    public static final StructLayout COPY_DESC = MemoryLayout.structLayout(
            JAVA_INT.withName("rank"), JAVA_INT.withName("pad_"),
            MemoryLayout.sequenceLayout(MAX_RANK, JAVA_LONG).withName("shape"),
            MemoryLayout.sequenceLayout(MAX_RANK, JAVA_LONG).withName("src_stride"),
            MemoryLayout.sequenceLayout(MAX_RANK, JAVA_LONG).withName("dst_stride")).withName("lt_copy_desc");

    /** Mirror of lt_conv2d_desc. */
    public static final StructLayout CONV2D_DESC = MemoryLayout.structLayout(
            JAVA_LONG.withName("n"), JAVA_LONG.withName("c"), JAVA_LONG.withName("h"), JAVA_LONG.withName("w"),
            JAVA_LONG.withName("k"), JAVA_LONG.withName("r"), JAVA_LONG.withName("s"),
            JAVA_LONG.withName("oh"), JAVA_LONG.withName("ow"),
            JAVA_INT.withName("stride_h"), JAVA_INT.withName("stride_w"), JAVA_INT.withName("pad_h"), JAVA_INT.withName("pad_w"))
            .withName("lt_conv2d_desc");

    /** LT_ACT_* kinds of lt_act_fwd / lt_act_bwd. */
    public static final int ACT_RELU = 0, ACT_LEAKY_RELU = 1, ACT_TANH = 2, ACT_SIGMOID = 3;

    private static volatile LatentNative instance;

    private final Path path;
    private final MethodHandle peakFmaIsa, peakBf16, gemmBf16; // issue 15: AVX-512 FMA and bf16 dot ceilings, bf16 GEMM
    private final MethodHandle attentionFwdBf16, attentionBwdBf16; // issue 15: bf16 attention
    private final MethodHandle conv2dFwdBf16, conv2dBwdDataBf16, conv2dBwdWeightBf16; // issue 15: bf16 conv2d
    private final MethodHandle lastError, isaSupported, isa, setIsa, isaReason, cpuBf16, setNumThreads, numThreads,
            structInfo, philox, randUniform, gemm, peakFma, peakTriad, abiVersionCritical;
    // Kernels bound lazily-checked: a library built without one fails at the call, naming the symbol.
    private final MethodHandle attentionDecodeFwd, gemmRows;
    // issue 19: the skinny GEMM of decoding on pre-packed weights (kernels/gemm/gemm_packed.c)
    private final MethodHandle gemmRowsPackedSize, gemmRowsPack, gemmRowsPacked;
    private final MethodHandle attentionFwd, attentionBwd, layernormFwd, layernormBwd, geluFwd, geluBwd, softmaxXent,
            adamw, sumsq, sumsqSegments, embeddingBwd, axpby, mul, addRows, sumRows, copyStrided, reparamFwd, reparamBwd,
            conv2dFwd, conv2dBwdData, conv2dBwdWeight, bnFwdTrain, bnFwdInfer, bnBwd, actFwd, actBwd, bceLogits, couplingFwd, couplingInv, couplingBwd;
    // issue 21: the dilated causal 1-D convolution (kernels/conv1d)
    private final MethodHandle conv1dFwd, conv1dBwdData, conv1dBwdWeight;

    /** The process-wide binding, loaded on first use (see {@link NativeLoader} for where it looks). */
    public static LatentNative get() {
        LatentNative n = instance;
        if (n == null) {
            synchronized (LatentNative.class) {
                n = instance;
                if (n == null) {
                    n = open(NativeLoader.locate(LatentNative.class.getClassLoader()), Arena.global());
                    System.getLogger("dev.latent").log(System.Logger.Level.INFO,
                            "latent: native library {0}, ISA {1}{2}, {3} threads", n.path, isaName(n.isa()),
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
        this.path = path;
        lastError = bind(l, linker, "lt_last_error", FunctionDescriptor.of(ADDRESS));
        isaSupported = bind(l, linker, "lt_isa_supported", FunctionDescriptor.of(JAVA_INT));
        isa = bind(l, linker, "lt_isa", FunctionDescriptor.of(JAVA_INT));
        setIsa = bind(l, linker, "lt_set_isa", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        isaReason = bind(l, linker, "lt_isa_reason", FunctionDescriptor.of(ADDRESS));
        cpuBf16 = bind(l, linker, "lt_cpu_bf16", FunctionDescriptor.of(JAVA_INT));
        setNumThreads = bind(l, linker, "lt_set_num_threads", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        numThreads = bind(l, linker, "lt_num_threads", FunctionDescriptor.of(JAVA_INT));
        structInfo = bind(l, linker, "lt_struct_info", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
        philox = bind(l, linker, "lt_philox4x32_10", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        randUniform = bind(l, linker, "lt_rand_uniform",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        gemm = bind(l, linker, "lt_gemm", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        peakFma = bind(l, linker, "lt_peak_fma", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS));
        peakFmaIsa = bind(l, linker, "lt_peak_fma_isa", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS));
        peakBf16 = bind(l, linker, "lt_peak_bf16", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS));
        gemmBf16 = bind(l, linker, "lt_gemm_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        peakTriad = bind(l, linker, "lt_peak_triad",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS));
        attentionFwd = opt(l, linker, "lt_attention_fwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        gemmRows = opt(l, linker, "lt_gemm_rows", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        gemmRowsPackedSize = opt(l, linker, "lt_gemm_rows_packed_size", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG));
        gemmRowsPack = opt(l, linker, "lt_gemm_rows_pack", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS));
        gemmRowsPacked = opt(l, linker, "lt_gemm_rows_packed", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS,
                JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
        attentionDecodeFwd = opt(l, linker, "lt_attention_decode_fwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS));
        attentionBwd = opt(l, linker, "lt_attention_bwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        attentionFwdBf16 = opt(l, linker, "lt_attention_fwd_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS));
        attentionBwdBf16 = opt(l, linker, "lt_attention_bwd_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        layernormFwd = opt(l, linker, "lt_layernorm_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_FLOAT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        layernormBwd = opt(l, linker, "lt_layernorm_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        geluFwd = opt(l, linker, "lt_gelu_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        geluBwd = opt(l, linker, "lt_gelu_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS));
        softmaxXent = opt(l, linker, "lt_softmax_xent", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_FLOAT));
        adamw = opt(l, linker, "lt_adamw", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        sumsq = opt(l, linker, "lt_sumsq", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        sumsqSegments = opt(l, linker, "lt_sumsq_segments", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        embeddingBwd = opt(l, linker, "lt_embedding_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                ADDRESS, ADDRESS, ADDRESS));
        axpby = opt(l, linker, "lt_axpby", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_FLOAT, ADDRESS));
        mul = opt(l, linker, "lt_mul", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS));
        addRows = opt(l, linker, "lt_add_rows", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS));
        sumRows = opt(l, linker, "lt_sum_rows", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS));
        copyStrided = opt(l, linker, "lt_copy_strided", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        reparamFwd = opt(l, linker, "lt_reparam_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                ADDRESS, ADDRESS));
        reparamBwd = opt(l, linker, "lt_reparam_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                ADDRESS, JAVA_FLOAT, ADDRESS, ADDRESS));
        conv2dFwd = opt(l, linker, "lt_conv2d_fwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        conv2dBwdData = opt(l, linker, "lt_conv2d_bwd_data", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        conv2dBwdWeight = opt(l, linker, "lt_conv2d_bwd_weight", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT));
        conv2dFwdBf16 = opt(l, linker, "lt_conv2d_fwd_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        conv2dBwdDataBf16 = opt(l, linker, "lt_conv2d_bwd_data_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        conv2dBwdWeightBf16 = opt(l, linker, "lt_conv2d_bwd_weight_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT));
        bnFwdTrain = opt(l, linker, "lt_batchnorm2d_fwd_train", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_FLOAT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        bnFwdInfer = opt(l, linker, "lt_batchnorm2d_fwd_infer", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        bnBwd = opt(l, linker, "lt_batchnorm2d_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        actFwd = opt(l, linker, "lt_act_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, ADDRESS));
        actBwd = opt(l, linker, "lt_act_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS));
        bceLogits = opt(l, linker, "lt_bce_logits", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_FLOAT,
                ADDRESS, ADDRESS, JAVA_FLOAT));
        couplingFwd = opt(l, linker, "lt_coupling_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS,
                JAVA_FLOAT, ADDRESS, ADDRESS));
        couplingInv = opt(l, linker, "lt_coupling_inv", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS,
                JAVA_FLOAT, ADDRESS));
        couplingBwd = opt(l, linker, "lt_coupling_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS,
                JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        // issue 21: conv1d (n, cin, t, cout, k, dilation, ...)
        conv1dFwd = opt(l, linker, "lt_conv1d_fwd", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        conv1dBwdData = opt(l, linker, "lt_conv1d_bwd_data", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS));
        conv1dBwdWeight = opt(l, linker, "lt_conv1d_bwd_weight", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT));
        // Linker.Option.critical skips the thread-state transition: only for tiny calls, and measured in
        // FfmBench against the plain handle. Kernels never use it (they would stall GC for their duration).
        abiVersionCritical = linker.downcallHandle(find(l, path, "lt_abi_version"), FunctionDescriptor.of(JAVA_INT),
                Linker.Option.critical(false));
    }

    private static MemorySegment find(SymbolLookup l, Path lib, String name) {
        return l.find(name).orElseThrow(() -> new UnsatisfiedLinkError("symbol " + name + " missing in " + lib));
    }

    private static MethodHandle bind(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
        return linker.downcallHandle(l.find(name).orElseThrow(() -> new UnsatisfiedLinkError("symbol " + name + " missing")), fd);
    }

    private static MethodHandle opt(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
        return l.find(name).map(a -> linker.downcallHandle(a, fd)).orElse(null);
    }

    private static MethodHandle need(MethodHandle h, String name) {
        if (h == null) throw new UnsatisfiedLinkError("symbol " + name + " missing from liblatent.so (stale native build?)");
        return h;
    }

    public Path path() { return path; }

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

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    // ---- segment bounds: what the kernel will touch must lie inside the segment ----

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

    static void checkGemm(MemorySegment d, MemorySegment a, MemorySegment b, MemorySegment c) {
        String op = "lt_gemm";
        desc(op, d, GEMM_DESC);
        boolean ta = d.get(JAVA_INT, 0) != 0, tb = d.get(JAVA_INT, 4) != 0;
        long m = d.get(JAVA_LONG, 8), n = d.get(JAVA_LONG, 16), k = d.get(JAVA_LONG, 24);
        long lda = d.get(JAVA_LONG, 40), ldb = d.get(JAVA_LONG, 48), ldc = d.get(JAVA_LONG, 56), batch = d.get(JAVA_LONG, 64);
        long sa = d.get(JAVA_LONG, 72), sb = d.get(JAVA_LONG, 80), sc = d.get(JAVA_LONG, 88);
        if (m < 0 || n < 0 || k < 0 || batch < 0)
            throw new IllegalArgumentException(op + ": m, n, k, batch must be >= 0, got m=" + m + " n=" + n + " k=" + k + " batch=" + batch);
        if (batch == 1) { sa = 0; sb = 0; sc = 0; }
        floats(op, "a (m=" + m + ", k=" + k + ", lda=" + lda + ")", a, matrixSpan(op, "a", ta ? k : m, ta ? m : k, lda, sa, batch));
        floats(op, "b (k=" + k + ", n=" + n + ", ldb=" + ldb + ")", b, matrixSpan(op, "b", tb ? n : k, tb ? k : n, ldb, sb, batch));
        floats(op, "c (m=" + m + ", n=" + n + ", ldc=" + ldc + ")", c, matrixSpan(op, "c", m, n, ldc, sc, batch));
    }

    static void checkAttention(String op, MemorySegment d, String[] names, MemorySegment[] bhts, MemorySegment lse) {
        desc(op, d, ATTENTION_DESC);
        long b = d.get(JAVA_LONG, 0), nh = d.get(JAVA_LONG, 8), t = d.get(JAVA_LONG, 16), hs = d.get(JAVA_LONG, 24);
        long e = elems(op, b, nh, t, hs);
        for (int i = 0; i < names.length; i++) floats(op, names[i] + " (b=" + b + ", nh=" + nh + ", t=" + t + ", hs=" + hs + ")", bhts[i], e);
        floats(op, "lse", lse, elems(op, b, nh, t));
    }

    /** in0: x or dx (N, C, H, W); w (K, C, R, S); bias (K; C for bwd_data); out: y or dy (N, K, OH, OW). */
    static void checkConv(String op, MemorySegment d, String[] names, MemorySegment in0, MemorySegment w, MemorySegment bias, MemorySegment out) {
        desc(op, d, CONV2D_DESC);
        long n = d.get(JAVA_LONG, 0), c = d.get(JAVA_LONG, 8), h = d.get(JAVA_LONG, 16), wd = d.get(JAVA_LONG, 24);
        long k = d.get(JAVA_LONG, 32), r = d.get(JAVA_LONG, 40), s = d.get(JAVA_LONG, 48), oh = d.get(JAVA_LONG, 56), ow = d.get(JAVA_LONG, 64);
        floats(op, names[0] + " (n=" + n + ", c=" + c + ", h=" + h + ", w=" + wd + ")", in0, elems(op, n, c, h, wd));
        floats(op, names[1] + " (k=" + k + ", c=" + c + ", r=" + r + ", s=" + s + ")", w, elems(op, k, c, r, s));
        boolean biasOverC = op.startsWith("lt_conv2d_bwd_data");   // the transposed conv's bias is per input channel
        floats(op, names[2] + (biasOverC ? " (c=" + c + ")" : " (k=" + k + ")"), bias, elems(op, biasOverC ? c : k));
        floats(op, names[3] + " (n=" + n + ", k=" + k + ", oh=" + oh + ", ow=" + ow + ")", out, elems(op, n, k, oh, ow));
    }

    static void checkCopy(MemorySegment d, MemorySegment src, MemorySegment dst) {
        String op = "lt_copy_strided";
        desc(op, d, COPY_DESC);
        int rank = d.get(JAVA_INT, 0);
        if (rank < 1 || rank > MAX_RANK) throw new IllegalArgumentException(op + ": rank " + rank + " outside [1, " + MAX_RANK + "]");
        long[] shape = new long[rank];
        long srcSpan = 1, dstSpan = 1;
        try {
            for (int i = 0; i < rank; i++) {
                long sh = d.get(JAVA_LONG, 8 + 8L * i), ss = d.get(JAVA_LONG, 56 + 8L * i), ds = d.get(JAVA_LONG, 104 + 8L * i);
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

    private void check(String op, int status) {
        if (status != 0) throw new NativeException(op, status, lastError());
    }

    public String lastError() {
        try {
            return ((MemorySegment) lastError.invokeExact()).reinterpret(4096).getString(0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public int isaSupported() {
        try { return (int) isaSupported.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    public int isa() {
        try { return (int) isa.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Sets the ISA level in use (clamped to the CPU's); returns the level set. Process-wide. */
    public int setIsa(int level) {
        try { return (int) setIsa.invokeExact(level); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Whether the CPU has AVX512_BF16 (and the avx512 level): bf16 kernels need it; nothing emulates bf16. */
    public boolean cpuBf16() {
        try { return (int) cpuBf16.invokeExact() != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    public String isaReason() {
        try {
            return ((MemorySegment) isaReason.invokeExact()).reinterpret(4096).getString(0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public void setNumThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads must be >= 1, got " + n);
        try { check("lt_set_num_threads", (int) setNumThreads.invokeExact(n)); } catch (Throwable t) { throw rethrow(t); }
    }

    public int numThreads() {
        try { return (int) numThreads.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    public int abiVersionCritical() {
        try { return (int) abiVersionCritical.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    public long[] structInfo(int which, int fields) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, fields + 1);
            check("lt_struct_info", (int) structInfo.invokeExact(which, out, fields + 1));
            return out.toArray(JAVA_LONG);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public int[] philox4x32_10(int[] ctr, int[] key) {
        if (ctr.length != 4 || key.length != 2)
            throw new IllegalArgumentException("philox needs ctr[4] and key[2], got " + ctr.length + ", " + key.length);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment c = a.allocateFrom(JAVA_INT, ctr), k = a.allocateFrom(JAVA_INT, key);
            MemorySegment o = a.allocate(JAVA_INT, 4);
            check("lt_philox4x32_10", (int) philox.invokeExact(c, k, o));
            return o.toArray(JAVA_INT);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw: out must hold n floats (callers check). */
    public void randUniform(MemorySegment out, long n, long seed, long stream) {
        floats("lt_rand_uniform", "out", out, elems("lt_rand_uniform", n));
        try { check("lt_rand_uniform", (int) randUniform.invokeExact(out, n, seed, stream)); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw: desc is a filled {@link #GEMM_DESC}; operands are checked by dev.latent.ops.Gemm. */
    public void gemm(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        checkGemm(desc, a, b, c);
        try { check("lt_gemm", (int) gemm.invokeExact(desc, a, b, c)); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw lt_gemm_rows (skinny C = A B^T without packing; trans_a 0, trans_b 1, batch 1): desc is a filled {@link #GEMM_DESC}, bounds checked here. */
    public void gemmRows(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        checkGemm(desc, a, b, c);
        try { check("lt_gemm_rows", (int) need(gemmRows, "lt_gemm_rows").invokeExact(desc, a, b, c)); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Floats that {@link #gemmRowsPack} writes for B (n, k): ceil(n / 16) * 16 * k. */
    public long gemmRowsPackedSize(long n, long k) {
        String op = "lt_gemm_rows_packed_size";
        elems(op, n, k);
        long size;
        try { size = (long) need(gemmRowsPackedSize, op).invokeExact(n, k); } catch (Throwable t) { throw rethrow(t); }
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
        try { check(op, (int) need(gemmRowsPack, op).invokeExact(n, k, b, ldb, packed)); } catch (Throwable t) { throw rethrow(t); }
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
        try { check(op, (int) need(gemmRowsPacked, op).invokeExact(m, n, k, a, lda, packed, bias, c, ldc)); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw lt_gemm_bf16 (same descriptor; operands rounded to bf16, fp32 accumulation); NativeException
     * (UNSUPPORTED) where the CPU or the ISA level in use lacks AVX512_BF16. */
    public void gemmBf16(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c) {
        try { check("lt_gemm_bf16", (int) gemmBf16.invokeExact(desc, a, b, c)); } catch (Throwable t) { throw rethrow(t); }
    }

    public double peakFma(int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            check("lt_peak_fma", (int) peakFma.invokeExact(threads, iters, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** FMA ceiling at {@code isa} ({@link #ISA_AVX2}: ymm, {@link #ISA_AVX512}: zmm), GFLOP/s; throws
     * LatentException (UNSUPPORTED) when the level in use lacks that ISA. */
    public double peakFmaIsa(int isa, int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            check("lt_peak_fma_isa", (int) peakFmaIsa.invokeExact(isa, threads, iters, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** AVX512_BF16 dot-product ceiling (64 flops per vdpbf16ps), GFLOP/s; throws (UNSUPPORTED) without it. */
    public double peakBf16(int threads, long iters) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            check("lt_peak_bf16", (int) peakBf16.invokeExact(threads, iters, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public double peakTriad(int threads, long n, int reps) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            check("lt_peak_triad", (int) peakTriad.invokeExact(threads, n, reps, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }


    // ---- kernels: raw entry points; shapes are checked by the callers in dev.latent.ops, segment bounds here ----

    public void attentionFwd(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o, MemorySegment lse) {
        checkAttention("lt_attention_fwd", desc, new String[] {"q", "k", "v", "o"}, new MemorySegment[] {q, k, v, o}, lse);
        try { check("lt_attention_fwd", (int) need(attentionFwd, "lt_attention_fwd").invokeExact(desc, q, k, v, o, lse)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void attentionBwd(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o,
                             MemorySegment lse, MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv) {
        checkAttention("lt_attention_bwd", desc, new String[] {"q", "k", "v", "o", "dout", "dq", "dk", "dv"}, new MemorySegment[] {q, k, v, o, dout, dq, dk, dv}, lse);
        try { check("lt_attention_bwd", (int) need(attentionBwd, "lt_attention_bwd").invokeExact(desc, q, k, v, o, lse, dout, dq, dk, dv)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** lt_attention_fwd_bf16: operands of Q K^T and P V rounded to bf16, fp32 accumulation; NativeException
     * (LT_ERR_UNSUPPORTED) without AVX512_BF16 at ISA avx512. */
    public void attentionFwdBf16(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o, MemorySegment lse) {
        checkAttention("lt_attention_fwd_bf16", desc, new String[] {"q", "k", "v", "o"}, new MemorySegment[] {q, k, v, o}, lse);
        try { check("lt_attention_fwd_bf16", (int) need(attentionFwdBf16, "lt_attention_fwd_bf16").invokeExact(desc, q, k, v, o, lse)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** lt_attention_bwd_bf16: the backward's five matmuls with bf16 operands, fp32 accumulation. */
    public void attentionBwdBf16(MemorySegment desc, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment o,
                                 MemorySegment lse, MemorySegment dout, MemorySegment dq, MemorySegment dk, MemorySegment dv) {
        checkAttention("lt_attention_bwd_bf16", desc, new String[] {"q", "k", "v", "o", "dout", "dq", "dk", "dv"}, new MemorySegment[] {q, k, v, o, dout, dq, dk, dv}, lse);
        try { check("lt_attention_bwd_bf16", (int) need(attentionBwdBf16, "lt_attention_bwd_bf16").invokeExact(desc, q, k, v, o, lse, dout, dq, dk, dv)); }
        catch (Throwable t) { throw rethrow(t); }
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
        d.set(JAVA_LONG, 0, rows); d.set(JAVA_LONG, 8, nh); d.set(JAVA_LONG, 16, hs);
        d.set(JAVA_LONG, 24, ldq); d.set(JAVA_LONG, 32, ldkv); d.set(JAVA_LONG, 40, ldo);
        d.set(JAVA_FLOAT, 48, scale); d.set(JAVA_INT, 52, 0);
        for (int r = 0; r < rows; r++) {
            s.set(JAVA_LONG, kp + 8L * r, k[r].address());
            s.set(JAVA_LONG, vp + 8L * r, v[r].address());
            s.set(JAVA_INT, lp + 4L * r, len[r]);
        }
        try {
            check(op, (int) need(attentionDecodeFwd, op).invokeExact(d, q, s.asSlice(kp, rows * 8), s.asSlice(vp, rows * 8),
                    s.asSlice(lp, rows * 4), o));
        } catch (Throwable t) { throw rethrow(t); }
    }

    private static boolean overlaps(MemorySegment a, MemorySegment b) {
        return a.byteSize() > 0 && b.byteSize() > 0 && a.address() < b.address() + b.byteSize() && b.address() < a.address() + a.byteSize();
    }

    public void layernormFwd(long n, long c, float eps, MemorySegment x, MemorySegment w, MemorySegment b,
                             MemorySegment y, MemorySegment mean, MemorySegment rstd) {
        { String op = "lt_layernorm_fwd"; long nc = elems(op, n, c); floats(op, "x", x, nc); floats(op, "y", y, nc); floats(op, "w", w, c); floats(op, "b", b, c); floats(op, "mean", mean, n); floats(op, "rstd", rstd, n); }
        try { check("lt_layernorm_fwd", (int) need(layernormFwd, "lt_layernorm_fwd").invokeExact(n, c, eps, x, w, b, y, mean, rstd)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void layernormBwd(long n, long c, MemorySegment x, MemorySegment w, MemorySegment mean, MemorySegment rstd,
                             MemorySegment dy, MemorySegment dx, MemorySegment dw, MemorySegment db) {
        { String op = "lt_layernorm_bwd"; long nc = elems(op, n, c); floats(op, "x", x, nc); floats(op, "dy", dy, nc); floats(op, "dx", dx, nc); floats(op, "w", w, c); floats(op, "dw", dw, c); floats(op, "db", db, c); floats(op, "mean", mean, n); floats(op, "rstd", rstd, n); }
        try { check("lt_layernorm_bwd", (int) need(layernormBwd, "lt_layernorm_bwd").invokeExact(n, c, x, w, mean, rstd, dy, dx, dw, db)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void geluFwd(long n, MemorySegment x, MemorySegment y) {
        { String op = "lt_gelu_fwd"; long e = elems(op, n); floats(op, "x", x, e); floats(op, "y", y, e); }
        try { check("lt_gelu_fwd", (int) need(geluFwd, "lt_gelu_fwd").invokeExact(n, x, y)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void geluBwd(long n, MemorySegment x, MemorySegment dy, MemorySegment dx) {
        { String op = "lt_gelu_bwd"; long e = elems(op, n); floats(op, "x", x, e); floats(op, "dy", dy, e); floats(op, "dx", dx, e); }
        try { check("lt_gelu_bwd", (int) need(geluBwd, "lt_gelu_bwd").invokeExact(n, x, dy, dx)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void softmaxXent(long n, long v, MemorySegment logits, MemorySegment targets, MemorySegment losses,
                            MemorySegment dlogits, float dscale) {
        { String op = "lt_softmax_xent"; long nv = elems(op, n, v); floats(op, "logits", logits, nv); fits(op, "targets", targets, n, 4); floats(op, "losses", losses, n); floats(op, "dlogits", dlogits, nv); }
        try { check("lt_softmax_xent", (int) need(softmaxXent, "lt_softmax_xent").invokeExact(n, v, logits, targets, losses, dlogits, dscale)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void adamw(MemorySegment desc, long n, MemorySegment p, MemorySegment g, MemorySegment m, MemorySegment v) {
        { String op = "lt_adamw"; desc(op, desc, ADAMW_DESC); long e = elems(op, n); floats(op, "param", p, e); floats(op, "grad", g, e); floats(op, "m", m, e); floats(op, "v", v, e); }
        try { check("lt_adamw", (int) need(adamw, "lt_adamw").invokeExact(desc, n, p, g, m, v)); } catch (Throwable t) { throw rethrow(t); }
    }

    public double sumsq(long n, MemorySegment x, MemorySegment out) {
        { String op = "lt_sumsq"; floats(op, "x", x, elems(op, n)); fits(op, "out", out, 1, 8); if (out.address() == 0) throw new IllegalArgumentException(op + ": out is NULL"); }
        try {
            check("lt_sumsq", (int) need(sumsq, "lt_sumsq").invokeExact(n, x, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
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
        try {
            check(op, (int) need(sumsqSegments, op).invokeExact(nseg, offset, len, x, out));
            return out.get(JAVA_DOUBLE, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public void embeddingBwd(long n, long c, long vocab, MemorySegment ids, MemorySegment dout, MemorySegment dtable) {
        { String op = "lt_embedding_bwd"; fits(op, "ids", ids, elems(op, n), 4); floats(op, "dout", dout, elems(op, n, c)); floats(op, "dtable", dtable, elems(op, vocab, c)); }
        try { check("lt_embedding_bwd", (int) need(embeddingBwd, "lt_embedding_bwd").invokeExact(n, c, vocab, ids, dout, dtable)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void axpby(long n, float a, MemorySegment x, float b, MemorySegment y) {
        { String op = "lt_axpby"; long e = elems(op, n); floats(op, "x", x, e); floats(op, "y", y, e); }
        try { check("lt_axpby", (int) need(axpby, "lt_axpby").invokeExact(n, a, x, b, y)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void mul(long n, MemorySegment x, MemorySegment z, MemorySegment y) {
        { String op = "lt_mul"; long e = elems(op, n); floats(op, "x", x, e); floats(op, "z", z, e); floats(op, "y", y, e); }
        try { check("lt_mul", (int) need(mul, "lt_mul").invokeExact(n, x, z, y)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void addRows(long n, long c, long period, MemorySegment x, MemorySegment rows, MemorySegment y) {
        { String op = "lt_add_rows"; long nc = elems(op, n, c); floats(op, "x", x, nc); floats(op, "y", y, nc); if (nc > 0) floats(op, "rows", rows, elems(op, Math.min(Math.max(period, 0), n), c)); }
        try { check("lt_add_rows", (int) need(addRows, "lt_add_rows").invokeExact(n, c, period, x, rows, y)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void sumRows(long n, long c, long period, MemorySegment x, MemorySegment out) {
        { String op = "lt_sum_rows"; long nc = elems(op, n, c); floats(op, "x", x, nc); if (nc > 0) floats(op, "out", out, elems(op, Math.min(Math.max(period, 0), n), c)); }
        try { check("lt_sum_rows", (int) need(sumRows, "lt_sum_rows").invokeExact(n, c, period, x, out)); } catch (Throwable t) { throw rethrow(t); }
    }

    public void copyStrided(MemorySegment desc, MemorySegment src, MemorySegment dst) {
        checkCopy(desc, src, dst);
        try { check("lt_copy_strided", (int) need(copyStrided, "lt_copy_strided").invokeExact(desc, src, dst)); } catch (Throwable t) { throw rethrow(t); }
    }

    /** kl: an 8-byte segment for the KL sum, or NULL. */
    public void reparamFwd(long n, MemorySegment mu, MemorySegment logvar, long seed, long stream, MemorySegment z, MemorySegment kl) {
        { String op = "lt_reparam_fwd"; long e = elems(op, n); floats(op, "mu", mu, e); floats(op, "logvar", logvar, e); floats(op, "z", z, e); fits(op, "kl", kl, 1, 8); }
        try { check("lt_reparam_fwd", (int) need(reparamFwd, "lt_reparam_fwd").invokeExact(n, mu, logvar, seed, stream, z, kl)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void reparamBwd(long n, MemorySegment mu, MemorySegment logvar, long seed, long stream, MemorySegment dz, float klScale,
                           MemorySegment dmu, MemorySegment dlogvar) {
        { String op = "lt_reparam_bwd"; long e = elems(op, n); floats(op, "mu", mu, e); floats(op, "logvar", logvar, e); floats(op, "dz", dz, e); floats(op, "dmu", dmu, e); floats(op, "dlogvar", dlogvar, e); }
        try { check("lt_reparam_bwd", (int) need(reparamBwd, "lt_reparam_bwd").invokeExact(n, mu, logvar, seed, stream, dz, klScale, dmu, dlogvar)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw: desc is a filled {@link #CONV2D_DESC}; bias may be NULL. */
    public void conv2dFwd(MemorySegment desc, MemorySegment x, MemorySegment w, MemorySegment bias, MemorySegment y) {
        checkConv("lt_conv2d_fwd", desc, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        try { check("lt_conv2d_fwd", (int) need(conv2dFwd, "lt_conv2d_fwd").invokeExact(desc, x, w, bias, y)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void conv2dBwdData(MemorySegment desc, MemorySegment dy, MemorySegment w, MemorySegment bias, MemorySegment dx) {
        checkConv("lt_conv2d_bwd_data", desc, new String[] {"dx", "w", "bias", "dy"}, dx, w, bias, dy);
        try { check("lt_conv2d_bwd_data", (int) need(conv2dBwdData, "lt_conv2d_bwd_data").invokeExact(desc, dy, w, bias, dx)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void conv2dBwdWeight(MemorySegment desc, MemorySegment x, MemorySegment dy, MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv("lt_conv2d_bwd_weight", desc, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        try { check("lt_conv2d_bwd_weight", (int) need(conv2dBwdWeight, "lt_conv2d_bwd_weight").invokeExact(desc, x, dy, dw, db, accumulate ? 1 : 0)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** lt_conv2d_fwd_bf16: x (as unfolded patches) and w rounded to bf16, fp32 accumulation; NativeException
     * (LT_ERR_UNSUPPORTED) without AVX512_BF16 at ISA avx512. */
    public void conv2dFwdBf16(MemorySegment desc, MemorySegment x, MemorySegment w, MemorySegment bias, MemorySegment y) {
        checkConv("lt_conv2d_fwd_bf16", desc, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        try { check("lt_conv2d_fwd_bf16", (int) need(conv2dFwdBf16, "lt_conv2d_fwd_bf16").invokeExact(desc, x, w, bias, y)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** lt_conv2d_bwd_data_bf16: dy and w rounded to bf16, fp32 accumulation. */
    public void conv2dBwdDataBf16(MemorySegment desc, MemorySegment dy, MemorySegment w, MemorySegment bias, MemorySegment dx) {
        checkConv("lt_conv2d_bwd_data_bf16", desc, new String[] {"dx", "w", "bias", "dy"}, dx, w, bias, dy);
        try { check("lt_conv2d_bwd_data_bf16", (int) need(conv2dBwdDataBf16, "lt_conv2d_bwd_data_bf16").invokeExact(desc, dy, w, bias, dx)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** lt_conv2d_bwd_weight_bf16: x (as unfolded patches) and dy rounded to bf16, fp32 accumulation; db fp32. */
    public void conv2dBwdWeightBf16(MemorySegment desc, MemorySegment x, MemorySegment dy, MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv("lt_conv2d_bwd_weight_bf16", desc, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        try { check("lt_conv2d_bwd_weight_bf16", (int) need(conv2dBwdWeightBf16, "lt_conv2d_bwd_weight_bf16").invokeExact(desc, x, dy, dw, db, accumulate ? 1 : 0)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void batchnorm2dFwdTrain(long n, long c, long hw, float eps, float momentum, MemorySegment x, MemorySegment gamma,
                                    MemorySegment beta, MemorySegment y, MemorySegment mean, MemorySegment rstd,
                                    MemorySegment runningMean, MemorySegment runningVar) {
        { String op = "lt_batchnorm2d_fwd_train"; long e = elems(op, n, c, hw); floats(op, "x", x, e); floats(op, "y", y, e); floats(op, "gamma", gamma, c); floats(op, "beta", beta, c); floats(op, "mean", mean, c); floats(op, "rstd", rstd, c); floats(op, "running_mean", runningMean, c); floats(op, "running_var", runningVar, c); }
        try { check("lt_batchnorm2d_fwd_train", (int) need(bnFwdTrain, "lt_batchnorm2d_fwd_train").invokeExact(n, c, hw, eps, momentum,
                x, gamma, beta, y, mean, rstd, runningMean, runningVar)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void batchnorm2dFwdInfer(long n, long c, long hw, float eps, MemorySegment x, MemorySegment gamma, MemorySegment beta,
                                    MemorySegment mean, MemorySegment var, MemorySegment y) {
        { String op = "lt_batchnorm2d_fwd_infer"; long e = elems(op, n, c, hw); floats(op, "x", x, e); floats(op, "y", y, e); floats(op, "gamma", gamma, c); floats(op, "beta", beta, c); floats(op, "mean", mean, c); floats(op, "var", var, c); }
        try { check("lt_batchnorm2d_fwd_infer", (int) need(bnFwdInfer, "lt_batchnorm2d_fwd_infer").invokeExact(n, c, hw, eps,
                x, gamma, beta, mean, var, y)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void batchnorm2dBwd(long n, long c, long hw, MemorySegment x, MemorySegment gamma, MemorySegment mean, MemorySegment rstd,
                               MemorySegment dy, MemorySegment dx, MemorySegment dgamma, MemorySegment dbeta) {
        { String op = "lt_batchnorm2d_bwd"; long e = elems(op, n, c, hw); floats(op, "x", x, e); floats(op, "dy", dy, e); floats(op, "dx", dx, e); floats(op, "gamma", gamma, c); floats(op, "mean", mean, c); floats(op, "rstd", rstd, c); floats(op, "dgamma", dgamma, c); floats(op, "dbeta", dbeta, c); }
        try { check("lt_batchnorm2d_bwd", (int) need(bnBwd, "lt_batchnorm2d_bwd").invokeExact(n, c, hw, x, gamma, mean, rstd,
                dy, dx, dgamma, dbeta)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void actFwd(int kind, long n, float alpha, MemorySegment x, MemorySegment y) {
        { String op = "lt_act_fwd"; long e = elems(op, n); floats(op, "x", x, e); floats(op, "y", y, e); }
        try { check("lt_act_fwd", (int) need(actFwd, "lt_act_fwd").invokeExact(kind, n, alpha, x, y)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void actBwd(int kind, long n, float alpha, MemorySegment in, MemorySegment dy, MemorySegment dx) {
        { String op = "lt_act_bwd"; long e = elems(op, n); floats(op, "in", in, e); floats(op, "dy", dy, e); floats(op, "dx", dx, e); }
        try { check("lt_act_bwd", (int) need(actBwd, "lt_act_bwd").invokeExact(kind, n, alpha, in, dy, dx)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** loss: an 8-byte segment or NULL; targets / dlogits may be NULL. */
    public void bceLogits(long n, MemorySegment logits, MemorySegment targets, float tConst, MemorySegment loss,
                          MemorySegment dlogits, float dscale) {
        { String op = "lt_bce_logits"; long e = elems(op, n); floats(op, "logits", logits, e); floats(op, "targets", targets, e); fits(op, "loss", loss, 1, 8); floats(op, "dlogits", dlogits, e); }
        try { check("lt_bce_logits", (int) need(bceLogits, "lt_bce_logits").invokeExact(n, logits, targets, tConst, loss, dlogits, dscale)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void couplingFwd(long n, long hw, MemorySegment mask, MemorySegment y, MemorySegment h, float scale, MemorySegment out, MemorySegment logdet) {
        { String op = "lt_coupling_fwd"; long e = elems(op, n, hw); floats(op, "mask", mask, elems(op, hw)); floats(op, "y", y, e); floats(op, "h", h, elems(op, n, 2, hw)); floats(op, "out", out, e); fits(op, "logdet", logdet, elems(op, n), 8); }
        try { check("lt_coupling_fwd", (int) need(couplingFwd, "lt_coupling_fwd").invokeExact(n, hw, mask, y, h, scale, out, logdet)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void couplingInv(long n, long hw, MemorySegment mask, MemorySegment yp, MemorySegment h, float scale, MemorySegment y) {
        { String op = "lt_coupling_inv"; long e = elems(op, n, hw); floats(op, "mask", mask, elems(op, hw)); floats(op, "yp", yp, e); floats(op, "h", h, elems(op, n, 2, hw)); floats(op, "y", y, e); }
        try { check("lt_coupling_inv", (int) need(couplingInv, "lt_coupling_inv").invokeExact(n, hw, mask, yp, h, scale, y)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void couplingBwd(long n, long hw, MemorySegment mask, MemorySegment y, MemorySegment h, float scale, MemorySegment dout,
                            MemorySegment dlogdet, MemorySegment dy, MemorySegment dh, MemorySegment dscale) {
        { String op = "lt_coupling_bwd"; long e = elems(op, n, hw); floats(op, "mask", mask, elems(op, hw)); floats(op, "y", y, e); floats(op, "h", h, elems(op, n, 2, hw)); floats(op, "dout", dout, e); fits(op, "dlogdet", dlogdet, elems(op, n), 8); floats(op, "dy", dy, e); floats(op, "dh", dh, elems(op, n, 2, hw)); fits(op, "dscale", dscale, 1, 8); }
        try { check("lt_coupling_bwd", (int) need(couplingBwd, "lt_coupling_bwd").invokeExact(n, hw, mask, y, h, scale, dout, dlogdet, dy, dh, dscale)); }
        catch (Throwable t) { throw rethrow(t); }
    }

    // ---- issue 21: dilated causal 1-D convolution (kernels/conv1d); x (n, cin, t), w (cout, cin, k), y (n, cout, t) ----

    static void checkConv1d(String op, long n, long cin, long t, long cout, long k, String[] names, MemorySegment x,
                            MemorySegment w, MemorySegment bias, MemorySegment y) {
        floats(op, names[0] + " (n=" + n + ", cin=" + cin + ", t=" + t + ")", x, elems(op, n, cin, t));
        floats(op, names[1] + " (cout=" + cout + ", cin=" + cin + ", k=" + k + ")", w, elems(op, cout, cin, k));
        if (names[2] != null) floats(op, names[2] + " (cout=" + cout + ")", bias, elems(op, cout));
        floats(op, names[3] + " (n=" + n + ", cout=" + cout + ", t=" + t + ")", y, elems(op, n, cout, t));
    }

    /** Raw lt_conv1d_fwd: y = causal dilated conv(x, w) + bias (bias may be NULL). */
    public void conv1dFwd(long n, long cin, long t, long cout, long k, long dilation, MemorySegment x, MemorySegment w,
                          MemorySegment bias, MemorySegment y) {
        checkConv1d("lt_conv1d_fwd", n, cin, t, cout, k, new String[] {"x", "w", "bias", "y"}, x, w, bias, y);
        try { check("lt_conv1d_fwd", (int) need(conv1dFwd, "lt_conv1d_fwd").invokeExact(n, cin, t, cout, k, dilation, x, w, bias, y)); }
        catch (Throwable e) { throw rethrow(e); }
    }

    /** Raw lt_conv1d_bwd_data: dx (n, cin, t) from dy (n, cout, t) and w. */
    public void conv1dBwdData(long n, long cin, long t, long cout, long k, long dilation, MemorySegment dy, MemorySegment w,
                              MemorySegment dx) {
        checkConv1d("lt_conv1d_bwd_data", n, cin, t, cout, k, new String[] {"dx", "w", null, "dy"}, dx, w, MemorySegment.NULL, dy);
        try { check("lt_conv1d_bwd_data", (int) need(conv1dBwdData, "lt_conv1d_bwd_data").invokeExact(n, cin, t, cout, k, dilation, dy, w, dx)); }
        catch (Throwable e) { throw rethrow(e); }
    }

    /** Raw lt_conv1d_bwd_weight: dw (cout, cin, k) and db (cout, may be NULL), overwritten or accumulated. */
    public void conv1dBwdWeight(long n, long cin, long t, long cout, long k, long dilation, MemorySegment x, MemorySegment dy,
                                MemorySegment dw, MemorySegment db, boolean accumulate) {
        checkConv1d("lt_conv1d_bwd_weight", n, cin, t, cout, k, new String[] {"x", "dw", "db", "dy"}, x, dw, db, dy);
        try { check("lt_conv1d_bwd_weight", (int) need(conv1dBwdWeight, "lt_conv1d_bwd_weight").invokeExact(n, cin, t, cout, k, dilation,
                x, dy, dw, db, accumulate ? 1 : 0)); }
        catch (Throwable e) { throw rethrow(e); }
    }
}
