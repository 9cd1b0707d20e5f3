package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLAS (libcublas.so.13 / .12) bound through FFM: one handle on the legacy default stream (where every launch of
 * ours goes, so cuBLAS's work is ordered with our kernels without events), a 32 MiB device workspace of ours
 * (cublasSetWorkspace: no allocation inside a call, the layout CUDA-graph capture needs), and
 * cublasGemmEx / cublasGemmStridedBatchedEx with fp32 A, B, C and a compute type per call: CUBLAS_COMPUTE_32F (exact
 * fp32), _FAST_TF32 (tensor cores, TF32 operands) or _FAST_16BF (tensor cores, bf16 operands, fp32 accumulation); and
 * with bf16 A and B (CUDA_R_16BF, converted by us, to nearest even), fp32 C and CUBLAS_COMPUTE_32F for --precision bf16.
 *
 * Our GEMMs are row-major (lt_gemm_desc); cuBLAS is column-major. A row-major M x N matrix with row stride ld is the
 * column-major N x M matrix with the same ld, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: cuBLAS's first
 * operand is our B (transpose flag trans_b, ld ldb, stride stride_b), its second our A, with m and n swapped. The
 * emulated driver (native/cuda_emu/vendor_emu.cc) implements these entry points from the column-major definition, so
 * the swap is checked against an independent reference in every build (CuBlasTest).
 *
 * Thread-safe: calls are serialised (the handle's workspace is shared).
 */
final class CuBlas {
    static final int OP_N = 0, OP_T = 1, CUDA_R_32F = 0, CUDA_R_16BF = 14, GEMM_DEFAULT = -1;
    static final long WORKSPACE_BYTES = 32L << 20;

    /** The compute types we use (cublasComputeType_t values). */
    enum Compute {
        FP32(68), TF32(77), BF16(75);
        final int code;
        Compute(int code) { this.code = code; }
    }

    final String source;       /* the file or soname it was loaded from */
    final int version;         /* CUBLAS_VERSION: major 10000 + minor 100 + patch */
    final boolean standIn;     /* the emulated driver's CPU stand-in, not NVIDIA's library */
    private final Cuda cu;
    private final VendorLib lib;
    private final MethodHandle gemmEx, gemmStridedBatchedEx, getStatusName, getStatusString;
    private final MemorySegment handle;
    private final MethodHandle setStream;
    private MemorySegment boundStream = MemorySegment.NULL;   /* the stream the handle is bound to: the backend's (Cuda.stream) */
    private final long workspace;   /* device memory straight from cuMemAlloc: lives as long as the handle (the process) */
    private final MemorySegment scalars = Arena.ofAuto().allocate(8, 8);   /* alpha, beta: host pointers (the default mode) */

    /** Binds and initialises the library at {@code lib}; NativeException / IllegalArgumentException when it cannot. */
    CuBlas(Cuda cu, SymbolLookup lookup, String source) {
        this.cu = cu;
        this.source = source;
        lib = new VendorLib(lookup, "", "cuBLAS 11.4 or newer needed", this::statusName, true);
        MethodHandle create = lib.status("cublasCreate_v2", ADDRESS);
        MethodHandle getVersion = lib.status("cublasGetVersion_v2", ADDRESS, ADDRESS);
        setStream = lib.status("cublasSetStream_v2", ADDRESS, ADDRESS);
        MethodHandle setWorkspace = lib.status("cublasSetWorkspace_v2", ADDRESS, JAVA_LONG, JAVA_LONG);
        MethodHandle setMathMode = lib.status("cublasSetMathMode", ADDRESS, JAVA_INT);
        gemmEx = lib.status("cublasGemmEx", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT,
                JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        gemmStridedBatchedEx = lib.status("cublasGemmStridedBatchedEx", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG,
                JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT);
        getStatusName = lib.optional("cublasGetStatusName", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        getStatusString = lib.optional("cublasGetStatusString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        standIn = lib.standIn;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            cu.makeCurrent();
            check("cublasCreate_v2", create, p);
            handle = p.get(ADDRESS, 0);
            MemorySegment v = a.allocate(JAVA_INT);
            check("cublasGetVersion_v2", getVersion, handle, v);
            version = v.get(JAVA_INT, 0);
            check("cublasSetStream_v2", setStream, handle, MemorySegment.NULL);      // the legacy default stream: ours
            check("cublasSetMathMode", setMathMode, handle, 0);                       // CUBLAS_DEFAULT_MATH: compute type decides
            workspace = cu.driverAlloc(WORKSPACE_BYTES);   // outside the caching allocator: not a tensor's memory
            check("cublasSetWorkspace_v2", setWorkspace, handle, workspace, WORKSPACE_BYTES);
        }
    }

    /** Binds the handle to the backend's stream when it changed (Cuda.useCaptureStream: CUDA graphs capture our calls). */
    private void followStream() {
        MemorySegment s = cu.stream();
        if (s.equals(boundStream)) return;
        check("cublasSetStream_v2", setStream, handle, s);
        boundStream = s;
    }

    /** "cuBLAS 13.0.2", or the stand-in's name. */
    String describe() {
        String v = version / 10000 + "." + version % 10000 / 100 + "." + version % 100;
        return standIn ? "the emulated driver's CPU stand-in for cuBLAS " + v + " (" + source + ")" : "cuBLAS " + v + " (" + source + ")";
    }

    /** True when the shapes fit cuBLAS's 32-bit m, n, k, ld and batch count (else our kernels serve the call). */
    static boolean fits(long m, long n, long k, long lda, long ldb, long ldc, long batch) {
        long max = Integer.MAX_VALUE;
        return m <= max && n <= max && k <= max && lda <= max && ldb <= max && ldc <= max && batch <= max;
    }

    /**
     * C = alpha op(A) op(B) + beta C in our row-major convention (lt_gemm_desc's fields; operands already checked by
     * ops.Gemm against their buffers), as one column-major cuBLAS call with the operands swapped.
     */
    void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
              long batch, long sa, long sb, long sc, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, Compute mode) {
        gemm(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, b, c, CUDA_R_32F, mode);
    }

    /**
     * {@link #gemm} with A and B bf16 (CUDA_R_16BF, 2 bytes an element, ld and strides in elements), C fp32
     * (CUDA_R_32F) and CUBLAS_COMPUTE_32F: bf16 products summed in fp32, the combination cuBLAS documents for
     * cublasGemmEx (tensor cores on sm_80+). The caller converted the operands (ltk_f32_to_bf16, to nearest even).
     */
    void gemmBf16(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                  long batch, long sa, long sb, long sc, DeviceBuffer a16, DeviceBuffer b16, DeviceBuffer c) {
        gemm(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a16, b16, c, CUDA_R_16BF, Compute.FP32);
    }

    private synchronized void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                                   long batch, long sa, long sb, long sc, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, int abType,
                                   Compute mode) {
        if (!fits(m, n, k, lda, ldb, ldc, batch))
            throw new IllegalArgumentException("cuBLAS GEMM: sizes beyond 2^31 - 1 (m=" + m + ", n=" + n + ", k=" + k + ")");
        scalars.set(JAVA_FLOAT, 0, alpha);
        scalars.set(JAVA_FLOAT, 4, beta);
        MemorySegment pa = scalars.asSlice(0, 4), pb = scalars.asSlice(4, 4);
        cu.makeCurrent();
        followStream();
        if (batch == 1)
            check("cublasGemmEx", gemmEx, handle, tb ? OP_T : OP_N, ta ? OP_T : OP_N, (int) n, (int) m, (int) k, pa,
                    b.address(), abType, (int) ldb, a.address(), abType, (int) lda, pb, c.address(), CUDA_R_32F, (int) ldc,
                    mode.code, GEMM_DEFAULT);
        else
            check("cublasGemmStridedBatchedEx", gemmStridedBatchedEx, handle, tb ? OP_T : OP_N, ta ? OP_T : OP_N, (int) n, (int) m,
                    (int) k, pa, b.address(), abType, (int) ldb, sb, a.address(), abType, (int) lda, sa, pb, c.address(),
                    CUDA_R_32F, (int) ldc, sc, (int) batch, mode.code, GEMM_DEFAULT);
    }

    /**
     * The raw column-major call, for tests of the stand-in's conventions (and of a real cuBLAS): every argument as
     * cuBLAS takes it. Returns the status without throwing.
     */
    int gemmRaw(int transa, int transb, int m, int n, int k, float alpha, long a, int lda, long strideA, long b, int ldb,
                long strideB, float beta, long c, int ldc, long strideC, int batch, Compute mode) {
        return gemmRaw(transa, transb, m, n, k, alpha, a, CUDA_R_32F, lda, strideA, b, CUDA_R_32F, ldb, strideB, beta, c, ldc, strideC,
                batch, mode.code);
    }

    /** {@link #gemmRaw} with the operand types and the compute type as cuBLAS codes (tests of the stand-in's checks). */
    synchronized int gemmRaw(int transa, int transb, int m, int n, int k, float alpha, long a, int atype, int lda, long strideA, long b,
                             int btype, int ldb, long strideB, float beta, long c, int ldc, long strideC, int batch, int compute) {
        scalars.set(JAVA_FLOAT, 0, alpha);
        scalars.set(JAVA_FLOAT, 4, beta);
        cu.makeCurrent();
        try {
            return (int) gemmStridedBatchedEx.invokeWithArguments(handle, transa, transb, m, n, k, scalars.asSlice(0, 4), a, atype,
                    lda, strideA, b, btype, ldb, strideB, scalars.asSlice(4, 4), c, CUDA_R_32F, ldc, strideC, batch, compute,
                    GEMM_DEFAULT);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasGemmStridedBatchedEx", t);
        }
    }

    private void check(String name, MethodHandle h, Object... args) { lib.check(name, h, args); }

    /** "CUBLAS_STATUS_INVALID_VALUE: an invalid numeric value was used as an argument" (+ the stand-in's detail). */
    String describeStatus(int rc) { return lib.describeStatus(rc); }

    /** cublasGetStatusName and cublasGetStatusString's texts, or "cublasStatus_t N" without them. */
    private String statusName(int rc) {
        String n = VendorLib.text(getStatusName, rc), s = VendorLib.text(getStatusString, rc);
        return (n.isEmpty() ? "cublasStatus_t " + rc : n) + (s.isEmpty() ? "" : ": " + s);
    }
}
