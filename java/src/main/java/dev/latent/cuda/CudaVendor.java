package dev.latent.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Which library serves each CUDA op family: NVIDIA's (bound through FFM, found where users have them, never
 * downloaded, never required) or our own kernels. Probed once, on the first op that asks, and logged then through
 * {@link System.Logger} {@code dev.latent.cuda} at INFO, one line per family: the library and version that serves it,
 * or why none does.
 *
 * <ul>
 *   <li>GEMM and batched GEMM: cuBLAS ({@link CuBlas}: cublasGemmEx / cublasGemmStridedBatchedEx with fp32, TF32 or
 *       bf16 compute). Looked for in this order: {@code -Dlatent.cublas.path} (a file, or a folder holding it), the
 *       folders of {@code LD_LIBRARY_PATH}, the CUDA toolkit ({@code $CUDA_HOME}, {@code $CUDA_PATH},
 *       {@code /usr/local/cuda*}: {@code lib64}, {@code lib}, {@code targets/x86_64-linux/lib}), NVIDIA's Python wheels
 *       ({@code site-packages/nvidia/&#42;/lib} under {@code $VIRTUAL_ENV}, {@code $CONDA_PREFIX}, {@code PYTHONPATH},
 *       {@code ~/.local} and the system's Python folders), then the dynamic linker's own search by soname
 *       (libcublas.so.13, then .12).</li>
 *   <li>GEMM + bias, the Linear layer's forward: cuBLASLt ({@link CuBlasLt}: cublasLtMatmul with the BIAS epilogue),
 *       found the same way from {@code -Dlatent.cublaslt.path} (libcublasLt.so.13, then .12); without it, the GEMM
 *       above and our bias kernel.</li>
 *   <li>Convolution forward, backward-data and backward-weight: cuDNN ({@link CuDnn}: the legacy descriptor API, exact
 *       fp32, deterministic algorithms), found the same way from {@code -Dlatent.cudnn.path} (libcudnn.so.9, then .8).
 *       The bias gradient stays on our kernel.</li>
 *   <li>Causal attention forward and backward on bf16 operands: cuDNN 9's SDPA ({@link CuDnnAttention}: the backend
 *       graph API), through {@link #attentionBf16} / {@link #attentionBackwardBf16} (CudaBackend.attentionBf16 /
 *       attentionBackwardBf16: bf16 device buffers in and out; cuDNN's Stats is our kernels' lse, so either backward
 *       runs from either forward). fp32 attention: our kernels.</li>
 * </ul>
 * {@code LATENT_CUDA_VENDOR=0} in the environment (or {@code -Dlatent.cuda.vendor=0}) forces our kernels for every
 * family, for A/B timing and tests; nothing is then loaded.
 */
public final class CudaVendor {
    private CudaVendor() {}

    private static final System.Logger LOG = System.getLogger("dev.latent.cuda");
    static final List<String> CUBLAS_SONAMES = List.of("libcublas.so.13", "libcublas.so.12");
    static final List<String> CUDNN_SONAMES = List.of("libcudnn.so.9", "libcudnn.so.8");
    static final List<String> CUBLASLT_SONAMES = List.of("libcublasLt.so.13", "libcublasLt.so.12");

    private static volatile Object blas;          /* a CuBlas, or the String reason there is none; null: not probed */
    private static volatile Object dnn;           /* a CuDnn, or the String reason there is none */
    private static volatile Object lt;            /* a CuBlasLt, or the String reason there is none */
    private static volatile Object attn;          /* a CuDnnAttention (cuDNN >= 9), or the String reason there is none */
    private static volatile Boolean forced;       /* tests: true / false overrides the environment for routing */

    /** False when LATENT_CUDA_VENDOR=0 (or -Dlatent.cuda.vendor=0 / false): our kernels serve every family. */
    public static boolean enabled() {
        Boolean f = forced;
        if (f != null) return f;
        return !off(System.getenv("LATENT_CUDA_VENDOR")) && !off(System.getProperty("latent.cuda.vendor"));
    }

    private static boolean off(String v) {
        if (v == null) return false;
        String s = v.trim().toLowerCase(Locale.ROOT);
        return s.equals("0") || s.equals("false") || s.equals("off") || s.equals("no");
    }

    /** Tests and A/B runs: route every family to our kernels (false), to the vendor where loaded (true), or as the environment says (null). */
    public static void force(Boolean on) { forced = on; }

    /** The cuBLAS binding when it serves GEMMs now (loaded and {@link #enabled()}), else null. */
    static CuBlas blas(Cuda cu) {
        if (!enabled()) {
            logDisabledOnce();
            return null;
        }
        if (blas == null) probe(cu);
        return blas instanceof CuBlas c ? c : null;
    }

    private static volatile boolean loggedDisabled;

    private static void logDisabledOnce() {
        if (loggedDisabled) return;
        loggedDisabled = true;
        LOG.log(System.Logger.Level.INFO, "GEMM, batched GEMM, convolution and bf16 attention: our kernels (LATENT_CUDA_VENDOR=0: no vendor library loaded)");
    }

    /** Compute modes of a CUDA GEMM: exact fp32, TF32 tensor cores, bf16 tensor cores (fp32 accumulation). */
    public enum GemmCompute { FP32, TF32, BF16 }

    /**
     * Runs C = alpha op(A) op(B) + beta C (row-major, lt_gemm_desc's fields, operands already checked against their
     * buffers) on cuBLAS when cuBLAS serves GEMMs now; returns false, doing nothing, when our kernels must serve it (no
     * cuBLAS, LATENT_CUDA_VENDOR=0, or a size beyond cuBLAS's 32-bit arguments).
     */
    public static boolean gemm(Cuda cu, boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb,
                               long ldc, long batch, long sa, long sb, long sc, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c,
                               GemmCompute mode) {
        CuBlas blas = blas(cu);
        if (blas == null || !CuBlas.fits(m, n, k, lda, ldb, ldc, batch)) return false;
        blas.gemm(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, b, c, switch (mode) {
            case FP32 -> CuBlas.Compute.FP32;
            case TF32 -> CuBlas.Compute.TF32;
            case BF16 -> CuBlas.Compute.BF16;
        });
        return true;
    }

    /**
     * C (fp32) = alpha op(A) op(B) + beta C with A and B already bf16 (CUDA_R_16BF, element strides) on cuBLAS
     * (cublasGemmEx / cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F) when cuBLAS serves GEMMs now; false, doing nothing,
     * when our ltk_gemm_bf16 must serve it.
     */
    public static boolean gemmBf16(Cuda cu, boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb,
                                   long ldc, long batch, long sa, long sb, long sc, DeviceBuffer a16, DeviceBuffer b16, DeviceBuffer c) {
        CuBlas blas = blas(cu);
        if (blas == null || !CuBlas.fits(m, n, k, lda, ldb, ldc, batch)) return false;
        blas.gemmBf16(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a16, b16, c);
        return true;
    }

    /** The cuBLASLt binding when it serves fused GEMM epilogues now (loaded and {@link #enabled()}), else null. */
    static CuBlasLt blasLt(Cuda cu) {
        if (!enabled()) {
            logDisabledOnce();
            return null;
        }
        if (blas == null) probe(cu);
        return lt instanceof CuBlasLt c ? c : null;
    }

    /**
     * Row-major C (m x n) = op(A) op(B) + bias (n values, one per column of C: nn.Linear's bias) as one cublasLtMatmul
     * with the BIAS epilogue, when cuBLASLt serves now and the sizes fit its arguments; false, doing nothing, otherwise
     * (callers then run the GEMM and our bias kernel). Operands already checked by ops.Gemm.
     */
    public static boolean gemmBias(Cuda cu, boolean ta, boolean tb, long m, long n, long k, long lda, long ldb, long ldc,
                                   DeviceBuffer a, DeviceBuffer b, DeviceBuffer bias, DeviceBuffer c, GemmCompute mode) {
        CuBlasLt l = blasLt(cu);
        if (l == null || !CuBlas.fits(m, n, k, lda, ldb, ldc, 1) || bias.byteSize() < 4 * n) return false;
        l.linearBias(ta, tb, m, n, k, lda, ldb, ldc, a, b, bias, c, switch (mode) {
            case FP32 -> CuBlas.Compute.FP32;
            case TF32 -> CuBlas.Compute.TF32;
            case BF16 -> CuBlas.Compute.BF16;
        });
        return true;
    }

    /**
     * Null when the vendor libraries serve bf16 GEMMs on CUDA now (cuBLAS loaded), else why not; without them bf16 GEMMs
     * run on our ltk_gemm_bf16 (h-cudaprec), so this only gates the fused cuBLASLt path.
     */
    public static String bf16GemmUnavailable(Cuda cu) {
        if (blas(cu) != null) return null;
        return "bf16 GEMMs through the vendor libraries need cuBLAS, and "
                + (!enabled() ? "LATENT_CUDA_VENDOR=0 turns it off" : "none serves: " + blas);
    }

    /** The cuDNN binding when it serves convolutions now (loaded and {@link #enabled()}), else null. */
    static CuDnn dnn(Cuda cu) {
        if (!enabled()) {
            logDisabledOnce();
            return null;
        }
        if (blas == null) probe(cu);
        return dnn instanceof CuDnn d ? d : null;
    }

    /** y = conv(x, w) (+ bias (K)) on cuDNN (cross-correlation, lt_conv2d_desc's geometry); false: our kernels must run it. */
    public static boolean convForward(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y) {
        return convForward(cu, geometry, x, w, bias, y, false);
    }

    /** {@link #convForward} with cuDNN's math type chosen: tf32 = CUDNN_TENSOR_OP_MATH (TF32 tensor cores), else FMA (exact fp32). */
    public static boolean convForward(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y,
                                      boolean tf32) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, tf32);
        if (k == null) return false;
        d.forward(k, x, w, bias, y);
        return true;
    }

    /** dx = conv^T(dy, w) (+ bias (C)) on cuDNN; false: our kernels must run it. */
    public static boolean convBackwardData(Cuda cu, long[] geometry, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx) {
        return convBackwardData(cu, geometry, dy, w, bias, dx, false);
    }

    /** {@link #convBackwardData} with the math type chosen (tf32: CUDNN_TENSOR_OP_MATH). */
    public static boolean convBackwardData(Cuda cu, long[] geometry, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx,
                                           boolean tf32) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, tf32);
        if (k == null) return false;
        d.backwardData(k, dy, w, bias, dx);
        return true;
    }

    /** dw (=|+=) the filter gradient on cuDNN (the bias gradient is not: callers run our kernel for it); false: our kernels. */
    public static boolean convBackwardFilter(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, boolean accumulate) {
        return convBackwardFilter(cu, geometry, x, dy, dw, accumulate, false);
    }

    /** {@link #convBackwardFilter} with the math type chosen (tf32: CUDNN_TENSOR_OP_MATH). */
    public static boolean convBackwardFilter(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, boolean accumulate,
                                             boolean tf32) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, tf32);
        if (k == null) return false;
        d.backwardFilter(k, x, dy, dw, accumulate);
        return true;
    }

    // ---- bf16 convolutions through cuDNN's bf16 descriptors (PSEUDO_BFLOAT16_CONFIG; h-cudaprec2) ----

    /**
     * y = conv(x, w) (+ bias (K)) on cuDNN with bf16 operands (x and w converted on the device, to nearest even), fp32
     * accumulation, the bf16 result widened into y (fp32 buffers in and out, bias added in fp32). False: cuDNN does not
     * serve (absent, off, beyond int32, or it refused the bf16 configuration for this geometry, logged once): the caller
     * runs its fp32 route on rounded operands.
     */
    public static boolean convForwardBf16(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, false);
        return k != null && bf16Served(d, k, d.forwardBf16(k, x, w, bias, y));
    }

    /** dx = conv^T(dy, w) (+ bias (C)) on cuDNN in bf16 (as {@link #convForwardBf16}); false: not served. */
    public static boolean convBackwardDataBf16(Cuda cu, long[] geometry, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, false);
        return k != null && bf16Served(d, k, d.backwardDataBf16(k, dy, w, bias, dx));
    }

    /** dw (=|+= in fp32) the filter gradient on cuDNN in bf16 (no bias gradient); false: not served. */
    public static boolean convBackwardFilterBf16(Cuda cu, long[] geometry, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, boolean accumulate) {
        CuDnn d = dnn(cu);
        CuDnn.Key k = d == null ? null : key(geometry, CuDnn.CROSS_CORRELATION, false);
        return k != null && bf16Served(d, k, d.backwardFilterBf16(k, x, dy, dw, accumulate));
    }

    private static boolean bf16Served(CuDnn d, CuDnn.Key k, boolean served) {
        if (!served) {
            String why = d.bf16Refusal(k);
            if (why != null && loggedRefusals.add("conv bf16 " + why))
                LOG.log(System.Logger.Level.INFO, "convolution, bf16: operands rounded, fp32 route for " + k + " (cuDNN refused bf16: " + why + ")");
        }
        return served;
    }

    /** cuDNN's SDPA when it serves causal bf16 attention now (cuDNN >= 9 loaded and {@link #enabled()}), else null. */
    static CuDnnAttention attention(Cuda cu) {
        if (!enabled()) {
            logDisabledOnce();
            return null;
        }
        if (blas == null) probe(cu);
        return attn instanceof CuDnnAttention a ? a : null;
    }

    /**
     * Causal attention forward on bf16 device buffers through cuDNN's SDPA: q, k, v, o (B, H, T, D) bf16 contiguous,
     * lse (B, H, T) fp32 (cuDNN's Stats: the log-sum-exp our backward kernels take). False, doing nothing, when cuDNN's
     * SDPA does not serve (no cuDNN 9, LATENT_CUDA_VENDOR=0, a head size its kernels do not take); the caller then runs
     * our kernel. IllegalArgumentException when a buffer is smaller than its shape.
     */
    public static boolean attentionBf16(Cuda cu, long b, long h, long t, long d, float scale, DeviceBuffer q, DeviceBuffer k,
                                        DeviceBuffer v, DeviceBuffer o, DeviceBuffer lse) {
        CuDnnAttention a = attention(cu);
        if (a == null || !CuDnnAttention.fits(b, h, t, d)) return false;
        checkAttention("attention", b, h, t, d, lse, new String[] {"q", "k", "v", "o"}, q, k, v, o);
        if (headsTransposedForTest) { long x = h; h = t; t = x; }
        String why = a.refusal(b, h, t, d);
        if (why != null) {
            logRefusalOnce(why);
            return false;
        }
        a.forward(b, h, t, d, scale, q, k, v, o, lse);
        return true;
    }

    // ---- cuDNN SDPA in the model path (h-sdpawire): CudaBackend's bf16 attention asks here before converting ----

    /**
     * Whether cuDNN's SDPA takes this bf16 attention now, the forward or (backward true) the backward: cuDNN >= 9 loaded
     * and {@link #enabled()}, causal (the only graph bound), a head size its kernels take (8..256 in steps of 8), and a
     * graph this cuDNN plans (built now if needed). When not, the reason is logged once (LATENT_CUDA_VENDOR=0 and a
     * missing cuDNN 9 by the probe's lines) and the caller (CudaBackend's bf16 attention) runs our kernels on
     * bf16-rounded fp32 operands, having converted nothing.
     */
    public static boolean servesAttentionBf16(Cuda cu, long b, long h, long t, long d, boolean causal, boolean backward) {
        CuDnnAttention a = attention(cu);
        if (a == null) return false;
        if (!causal) {
            logRefusalOnce("non-causal attention: the SDPA graph bound is the causal one", false);
            return false;
        }
        if (!CuDnnAttention.fits(b, h, t, d)) {
            logRefusalOnce("head size " + d + ": cuDNN's SDPA takes 8..256 in steps of 8", false);
            return false;
        }
        if (headsTransposedForTest) { long x = h; h = t; t = x; }
        String why = backward ? a.backwardRefusal(b, h, t, d) : a.refusal(b, h, t, d);
        if (why != null) {
            logRefusalOnce(why);
            return false;
        }
        return true;
    }

    /**
     * Tests only (CudaSdpaWiringTest's must-fail check): hand cuDNN (B, T, H, D) for the (B, H, T, D) buffers, the layout
     * mistake a model-level comparison must catch. Never set outside tests.
     */
    static volatile boolean headsTransposedForTest;

    /**
     * h-sdpaconv: whether the bf16 model path's SDPA hook (CudaBackend.vendorAttention) converts a packed q, k, v in one
     * launch, widens a packed dq, dk, dv in one, and keeps the forward's bf16 q, k, v, o for the backward (true, always
     * outside tests), or converts each operand in each pass as h-sdpawire did. Tests only (CudaSdpaConversionTest
     * compares the two bit for bit and counts their launches) set it false.
     */
    static volatile boolean fewerSdpaConversionsForTest = true;

    /** See {@link #fewerSdpaConversionsForTest}: true unless a test turned the fewer conversions off. */
    public static boolean fewerSdpaConversions() { return fewerSdpaConversionsForTest; }

    /**
     * h-linconv: F.linear's and F.matmul's bf16 GEMMs on CUDA convert the incoming gradient once for both products of the
     * backward and keep the forward's converted operands for it (Gemm.matmul with a KeptOperands, Gemm.matmulBackward),
     * true outside tests; false restores one conversion per operand and product. Tests only (CudaLinearConversionTest
     * compares the two bit for bit and counts their launches) set it false.
     */
    static volatile boolean fewerGemmConversionsForTest = true;

    /** See {@link #fewerGemmConversionsForTest}: true unless a test turned the fewer conversions off. */
    public static boolean fewerGemmConversions() { return fewerGemmConversionsForTest; }

    /**
     * h-bf16act: at BF16 on CUDA the LayerNorms and the GELU whose output feeds a GEMM (GPT's) write its bf16 copy in the
     * same kernel, which the consuming linear / matmul reads as its converted A operand (dev.latent.ops.GemmInputs), true
     * outside tests; false: those ops write fp32 only and the GEMMs convert, as before. Tests only
     * (CudaBf16ActivationTest compares the two bit for bit and counts their launches) set it false.
     */
    static volatile boolean bf16GemmInputsForTest = true;

    /** See {@link #bf16GemmInputsForTest}: true unless a test turned the producers' bf16 writes off. */
    public static boolean bf16GemmInputs() { return bf16GemmInputsForTest; }

    /**
     * Causal attention backward on bf16 device buffers through cuDNN's SDPA backward: q, k, v, o, dout in and dq, dk, dv
     * out (B, H, T, D) bf16 contiguous, lse (B, H, T) fp32 as the forward wrote it (cuDNN's Stats or our kernels' lse:
     * the same quantity). False, doing nothing, when cuDNN's SDPA does not serve; the caller then runs our kernel.
     */
    public static boolean attentionBackwardBf16(Cuda cu, long b, long h, long t, long d, float scale, DeviceBuffer q, DeviceBuffer k,
                                                DeviceBuffer v, DeviceBuffer o, DeviceBuffer dout, DeviceBuffer lse, DeviceBuffer dq,
                                                DeviceBuffer dk, DeviceBuffer dv) {
        CuDnnAttention a = attention(cu);
        if (a == null || !CuDnnAttention.fits(b, h, t, d)) return false;
        checkAttention("attention backward", b, h, t, d, lse, new String[] {"q", "k", "v", "o", "dout", "dq", "dk", "dv"}, q, k, v, o, dout,
                dq, dk, dv);
        if (headsTransposedForTest) { long x = h; h = t; t = x; }
        String why = a.backwardRefusal(b, h, t, d);
        if (why != null) {
            logRefusalOnce(why);
            return false;
        }
        a.backward(b, h, t, d, scale, q, k, v, o, dout, lse, dq, dk, dv);
        return true;
    }

    private static void checkAttention(String op, long b, long h, long t, long d, DeviceBuffer lse, String[] names, DeviceBuffer... bufs) {
        long bytes = Math.multiplyExact(Math.multiplyExact(Math.multiplyExact(b, h), Math.multiplyExact(t, d)), 2L);
        for (int i = 0; i < bufs.length; i++)
            if (bufs[i].byteSize() < bytes)
                throw new IllegalArgumentException(op + " (cuDNN SDPA, bf16): " + names[i] + " holds " + bufs[i].byteSize() + " bytes, ("
                        + b + ", " + h + ", " + t + ", " + d + ") bf16 needs " + bytes);
        if (lse.byteSize() < 4 * b * h * t)
            throw new IllegalArgumentException(op + " (cuDNN SDPA): lse holds " + lse.byteSize() + " bytes, needs " + 4 * b * h * t);
    }

    private static final Set<String> loggedRefusals = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private static void logRefusalOnce(String why) { logRefusalOnce(why, true); }

    private static void logRefusalOnce(String why, boolean refusedGraph) {
        if (loggedRefusals.add(why))
            LOG.log(System.Logger.Level.INFO, refusedGraph ? "causal attention, bf16: our kernels for this shape (cuDNN's SDPA refused its graph: " + why + ")"
                    : "attention, bf16: our kernels on bf16-rounded operands (" + why + ")");
    }

    /** geometry: n, c, h, w, k, r, s, oh, ow, strideH, strideW, padH, padW (lt_conv2d_desc's order); null when beyond int32. */
    static CuDnn.Key key(long[] g, int mode) { return key(g, mode, false); }

    static CuDnn.Key key(long[] g, int mode, boolean tf32) {
        if (g.length != 13 || !CuDnn.fits(g)) return null;
        return new CuDnn.Key((int) g[0], (int) g[1], (int) g[2], (int) g[3], (int) g[4], (int) g[5], (int) g[6], (int) g[7], (int) g[8],
                (int) g[9], (int) g[10], (int) g[11], (int) g[12], mode, tf32 ? CuDnn.TENSOR_OP_MATH : CuDnn.FMA_MATH);
    }

    /** One line per op family: which library serves it (probing first if nothing asked yet). */
    public static List<String> describe() {
        Cuda cu = Cuda.available() ? Cuda.get() : null;
        if (cu != null && blas == null && enabled()) probe(cu);
        Object b = blas;
        String gemm = !enabled() ? "GEMM and batched GEMM: our kernels (LATENT_CUDA_VENDOR=0)"
                : b instanceof CuBlas c ? "GEMM and batched GEMM: " + c.describe() + ", fp32 / TF32 / bf16 compute"
                : "GEMM and batched GEMM: our kernels (" + (b == null ? "CUDA unavailable" : b) + ")";
        return List.of(gemm, epilogueLine(), convolutionLine(), attentionLine());
    }

    private static String epilogueLine() {
        Object l = lt;
        String what = "GEMM + bias (the Linear layer's forward, BIAS epilogue): ";
        if (!enabled()) return what + "our GEMM, then our bias kernel (LATENT_CUDA_VENDOR=0)";
        return l instanceof CuBlasLt c ? what + c.describe() + ", fp32 / TF32 / bf16 compute"
                : what + "the GEMM's library, then our bias kernel (" + (l == null ? "CUDA unavailable" : l) + ")";
    }

    private static String convolutionLine() {
        Object d = dnn;
        String what = "convolution forward / backward-data / backward-weight: ";
        if (!enabled()) return what + "our kernels (LATENT_CUDA_VENDOR=0)";
        return d instanceof CuDnn c ? what + c.describe() + ", fp32 (CUDNN_FMA_MATH), tf32 (TENSOR_OP_MATH) and bf16 (bf16 descriptors, "
                + "fp32 compute) at --precision tf32 / bf16, deterministic algorithms (" + CuDnnAlgos.describeMode() + "); bias gradient: our kernel"
                : what + "our kernels (" + (d == null ? "CUDA unavailable" : d) + ")";
    }

    private static String attentionLine() {
        Object a = attn;
        String what = "causal attention forward / backward, bf16: ";
        if (!enabled()) return what + "our kernels (LATENT_CUDA_VENDOR=0); fp32 attention: our kernels";
        return (a instanceof CuDnnAttention c ? what + "cuDNN's SDPA through the backend graph API (" + c.describe() + ")"
                : what + "our kernels (" + (a == null ? "CUDA unavailable" : a) + ")")
                + "; fp32 attention: our kernels";
    }

    /** Loads what is there, once (both families), and logs one line per op family. */
    private static synchronized void probe(Cuda cu) {
        if (blas != null) return;
        dnn = loadDnn(cu);
        if (attn == null) attn = "no cuDNN 9 (" + dnn + ")";
        lt = loadLt(cu);
        Object b = loadBlas(cu);
        blas = b;
        LOG.log(System.Logger.Level.INFO, b instanceof CuBlas c ? "GEMM and batched GEMM: " + c.describe()
                : "GEMM and batched GEMM: our kernels (" + b + ")");
        LOG.log(System.Logger.Level.INFO, epilogueLine());
        LOG.log(System.Logger.Level.INFO, convolutionLine());
        LOG.log(System.Logger.Level.INFO, attentionLine());
    }

    private static Object loadDnn(Cuda cu) {
        return VendorLib.first(candidates("latent.cudnn.path", CUDNN_SONAMES), "cuDNN", cand -> {
            CuDnn c = new CuDnn(cu, VendorLib.open(cand), cand);
            attn = loadAttention(cu, c);
            return c;
        });
    }

    private static Object loadAttention(Cuda cu, CuDnn c) {
        if (c.version < 90000) return c.describe() + " is older than 9: its SDPA needs cuDNN 9's backend graph API";
        try {
            return new CuDnnAttention(cu, c);
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return c.describe() + " lacks the backend graph API: " + e.getMessage();
        }
    }

    private static Object loadLt(Cuda cu) {
        return VendorLib.first(candidates("latent.cublaslt.path", CUBLASLT_SONAMES), "cuBLASLt",
                cand -> new CuBlasLt(cu, VendorLib.open(cand), cand));
    }

    private static Object loadBlas(Cuda cu) {
        return VendorLib.first(candidates("latent.cublas.path", CUBLAS_SONAMES), "cuBLAS", cand -> {
            Path p = Path.of(cand);
            if (p.isAbsolute()) preloadSibling(p, "libcublasLt.so");
            return new CuBlas(cu, VendorLib.open(cand), cand);
        });
    }

    /** libcublas needs libcublasLt of the same release: load the one beside it first, so the soname resolves to it. */
    private static void preloadSibling(Path lib, String stem) {
        Path dir = lib.getParent();
        if (dir == null) return;
        String name = lib.getFileName().toString();
        int dot = name.indexOf(".so");
        String suffix = dot < 0 ? "" : name.substring(dot + 3);
        Path sib = dir.resolve(stem + suffix);
        if (!Files.isRegularFile(sib)) return;
        try {
            SymbolLookup.libraryLookup(sib, Arena.global());
        } catch (IllegalArgumentException e) {
            // the main library's own load reports what is missing
        }
    }

    /**
     * Where to look, in order (each an absolute file that exists, or a bare soname for the dynamic linker's search
     * last): the system property (a file, or a folder holding one of the sonames), LD_LIBRARY_PATH, the CUDA toolkit,
     * NVIDIA's Python wheels, then the sonames themselves.
     */
    public static List<String> candidates(String property, List<String> sonames) {
        Set<String> out = new LinkedHashSet<>();
        String prop = System.getProperty(property);
        if (prop != null && !prop.isBlank()) {
            Path p = Path.of(prop.trim()).toAbsolutePath();
            if (Files.isDirectory(p)) addIn(out, List.of(p), sonames);
            else out.add(p.toString());   // a missing file is reported by the load attempt, naming it
        }
        List<Path> dirs = new ArrayList<>();
        String ld = System.getenv("LD_LIBRARY_PATH");
        if (ld != null) for (String d : ld.split(":")) if (!d.isBlank()) dirs.add(Path.of(d));
        addIn(out, dirs, sonames);
        addIn(out, toolkitDirs(), sonames);
        addIn(out, wheelDirs(), sonames);
        out.addAll(sonames);
        return new ArrayList<>(out);
    }

    private static void addIn(Set<String> out, List<Path> dirs, List<String> sonames) {
        for (String so : sonames)
            for (Path d : dirs) {
                Path f = d.resolve(so);
                if (Files.isRegularFile(f)) out.add(f.toAbsolutePath().normalize().toString());
            }
    }

    static List<Path> toolkitDirs() {
        List<Path> roots = new ArrayList<>();
        for (String env : new String[] {"CUDA_HOME", "CUDA_PATH"}) {
            String v = System.getenv(env);
            if (v != null && !v.isBlank()) roots.add(Path.of(v));
        }
        roots.add(Path.of("/usr/local/cuda"));
        roots.addAll(glob(Path.of("/usr/local"), "cuda-*"));
        List<Path> dirs = new ArrayList<>();
        for (Path r : roots) {
            dirs.add(r.resolve("lib64"));
            dirs.add(r.resolve("lib"));
            dirs.add(r.resolve("targets/x86_64-linux/lib"));
        }
        return dirs;
    }

    /** site-packages/nvidia/&#42;/lib of the Python installs we can see without running Python. */
    static List<Path> wheelDirs() {
        List<Path> sites = new ArrayList<>();
        for (String env : new String[] {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
            String v = System.getenv(env);
            if (v != null && !v.isBlank()) sitesUnder(sites, Path.of(v));
        }
        String pp = System.getenv("PYTHONPATH");
        if (pp != null) for (String d : pp.split(":")) if (!d.isBlank()) sites.add(Path.of(d));
        String home = System.getProperty("user.home");
        if (home != null) sitesUnder(sites, Path.of(home, ".local"));
        sitesUnder(sites, Path.of("/usr/local"));
        sitesUnder(sites, Path.of("/usr"));
        sites.add(Path.of("/usr/lib/python3/dist-packages"));
        List<Path> dirs = new ArrayList<>();
        for (Path s : sites)
            for (Path pkg : glob(s.resolve("nvidia"), "*")) dirs.add(pkg.resolve("lib"));
        return dirs;
    }

    private static void sitesUnder(List<Path> sites, Path prefix) {
        for (Path py : glob(prefix.resolve("lib"), "python3*")) {
            sites.add(py.resolve("site-packages"));
            sites.add(py.resolve("dist-packages"));
        }
    }

    private static List<Path> glob(Path dir, String pattern) {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, pattern)) {
            for (Path p : ds) if (Files.isDirectory(p)) out.add(p);
        } catch (IOException | SecurityException e) {
            // an unreadable folder is simply not a candidate
        }
        out.sort(null);
        return out;
    }
}
