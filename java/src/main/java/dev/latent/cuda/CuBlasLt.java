package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuBLASLt (libcublasLt.so.13 / .12) bound through FFM, for the GEMMs whose epilogue fuses: one cublasLtHandle_t, a
 * 32 MiB device workspace of ours (passed to every cublasLtMatmul, and offered to the heuristic through
 * CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES), and per distinct problem (transposes, sizes, leading dimensions, epilogue,
 * compute type) one plan made once and kept: a cublasLtMatmulDesc_t (COMPUTE_TYPE from the create call, scale type
 * CUDA_R_32F, TRANSA / TRANSB, EPILOGUE), four cublasLtMatrixLayout_t (CUDA_R_32F, column-major) and the algorithm
 * cublasLtMatmulAlgoGetHeuristic ranks first. The bias (and aux) pointers change per call: set on the plan's descriptor
 * just before cublasLtMatmul (host-side attribute writes; calls are serialised).
 *
 * Row-major to column-major as in {@link CuBlas}: C = op(A) op(B) row-major is C^T = op(B)^T op(A)^T column-major, so
 * cuBLASLt's A is our B. The bias epilogue adds bias[i] to row i of cuBLASLt's D, which is column i of our row-major
 * C: exactly nn.Linear's bias (one value per output feature) for C = x W^T.
 *
 * Epilogues bound: DEFAULT, BIAS, GELU_BIAS and GELU_AUX_BIAS. cuBLASLt's GELU is the tanh approximation, so only
 * BIAS serves the Linear layer of our models (see F.linear: the exact-erf GELU, and the pre-activation autograd keeps
 * for its backward, stay ours).
 */
final class CuBlasLt {
    static final int CUDA_R_32F = 0;
    static final int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8, DESC_EPILOGUE_AUX_POINTER = 11,
            DESC_EPILOGUE_AUX_LD = 12;
    static final int PREF_MAX_WORKSPACE_BYTES = 1;
    static final long WORKSPACE_BYTES = 32L << 20;
    static final int HEURISTIC_BYTES = 96, ALGO_BYTES = 64, HEURISTIC_WORKSPACE_OFFSET = 64, HEURISTIC_STATE_OFFSET = 72;
    private static final int MAX_PLANS = 256;

    /** cublasLtEpilogue_t values (cublasLt.h). */
    enum Epilogue {
        DEFAULT(1), BIAS(4), GELU_BIAS(36), GELU_AUX_BIAS(164);
        final int code;
        Epilogue(int code) { this.code = code; }
        boolean bias() { return this != DEFAULT; }
        boolean aux() { return this == GELU_AUX_BIAS; }
    }

    final String source;
    final long version;
    final boolean standIn;
    private final Cuda cu;
    private final MethodHandle descCreate, descDestroy, descSet, layoutCreate, layoutDestroy, prefCreate, prefDestroy, prefSet,
            heuristic, matmul;
    private final VendorLib lib;
    private final MemorySegment handle;
    private final long workspace;
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment scalars = arena.allocate(8, 8), ptr = arena.allocate(8, 8), value = arena.allocate(8, 8),
            count = arena.allocate(4, 4), out = arena.allocate(ADDRESS);
    private final Map<Key, Plan> plans = new LinkedHashMap<>();

    CuBlasLt(Cuda cu, SymbolLookup lookup, String source) {
        this.cu = cu;
        this.source = source;
        lib = new VendorLib(lookup, "", "cuBLASLt 11.4 or newer needed", CuBlasLt::statusName, true);
        MethodHandle create = lib.status("cublasLtCreate", ADDRESS);
        MethodHandle getVersion = lib.function("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
        descCreate = lib.status("cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
        descDestroy = lib.status("cublasLtMatmulDescDestroy", ADDRESS);
        descSet = lib.status("cublasLtMatmulDescSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        layoutCreate = lib.status("cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        layoutDestroy = lib.status("cublasLtMatrixLayoutDestroy", ADDRESS);
        prefCreate = lib.status("cublasLtMatmulPreferenceCreate", ADDRESS);
        prefDestroy = lib.status("cublasLtMatmulPreferenceDestroy", ADDRESS);
        prefSet = lib.status("cublasLtMatmulPreferenceSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        heuristic = lib.status("cublasLtMatmulAlgoGetHeuristic", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                ADDRESS, ADDRESS);
        matmul = lib.status("cublasLtMatmul", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG,
                ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
        standIn = lib.standIn;
        try {
            version = (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtGetVersion", t);
        }
        cu.makeCurrent();
        check("cublasLtCreate", create, out);
        handle = out.get(ADDRESS, 0);
        workspace = cu.driverAlloc(WORKSPACE_BYTES);   // outside the caching allocator, lives as long as the process
    }

    String describe() {
        String v = version / 10000 + "." + version % 10000 / 100 + "." + version % 100;
        return (standIn ? "the emulated driver's CPU stand-in for cuBLASLt " : "cuBLASLt ") + v + " (" + source + ")";
    }

    private record Key(int transa, int transb, long m, long n, long k, long lda, long ldb, long ldc, Epilogue epi, int compute, long auxLd) {}

    private record Plan(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment algo, long workspace) {}

    /**
     * D = epilogue(alpha op(A) op(B) + beta C [+ bias]) in cuBLASLt's own column-major terms (C and D the same matrix,
     * ldc), every pointer a device address: the binding as it is, for tests and for {@link #linear}.
     */
    synchronized void matmul(int transa, int transb, long m, long n, long k, float alpha, long a, long lda, long b, long ldb, float beta,
                             long c, long ldc, Epilogue epi, long bias, long aux, long auxLd, CuBlas.Compute mode) {
        cu.makeCurrent();
        Plan p = plan(new Key(transa, transb, m, n, k, lda, ldb, ldc, epi, mode.code, epi.aux() ? auxLd : 0));
        if (epi.bias()) setPointer(p.desc, DESC_BIAS_POINTER, bias);
        if (epi.aux()) setPointer(p.desc, DESC_EPILOGUE_AUX_POINTER, aux);
        scalars.set(JAVA_FLOAT, 0, alpha);
        scalars.set(JAVA_FLOAT, 4, beta);
        check("cublasLtMatmul", matmul, handle, p.desc, scalars.asSlice(0, 4), a, p.a, b, p.b, scalars.asSlice(4, 4), c, p.c, c, p.c,
                p.algo, workspace, WORKSPACE_BYTES, cu.stream());   // the backend's stream: a CUDA-graph capture records it
    }

    /**
     * Row-major C (m x n, ldc) = op(A) op(B) + bias (one value per column of C, n of them) as one cublasLtMatmul with the
     * BIAS epilogue: A (m x k as op(A), lda), B (k x n as op(B), ldb), flags as lt_gemm_desc's.
     */
    void linearBias(boolean ta, boolean tb, long m, long n, long k, long lda, long ldb, long ldc, DeviceBuffer a, DeviceBuffer b,
                    DeviceBuffer bias, DeviceBuffer c, CuBlas.Compute mode) {
        matmul(tb ? CuBlas.OP_T : CuBlas.OP_N, ta ? CuBlas.OP_T : CuBlas.OP_N, n, m, k, 1f, b.address(), ldb, a.address(), lda, 0f,
                c.address(), ldc, Epilogue.BIAS, bias.address(), 0, 0, mode);
    }

    private void setPointer(MemorySegment desc, int attr, long p) {
        value.set(JAVA_LONG, 0, p);
        check("cublasLtMatmulDescSetAttribute", descSet, desc, attr, value, 8L);
    }

    private void setInt(MemorySegment desc, int attr, int v) {
        value.set(JAVA_INT, 0, v);
        check("cublasLtMatmulDescSetAttribute", descSet, desc, attr, value, 4L);
    }

    private MemorySegment layout(long rows, long cols, long ld) {
        check("cublasLtMatrixLayoutCreate", layoutCreate, out, CUDA_R_32F, rows, cols, ld);
        return out.get(ADDRESS, 0);
    }

    private Plan plan(Key key) {
        Plan p = plans.get(key);
        if (p != null) return p;
        if (plans.size() >= MAX_PLANS) clearPlans();
        check("cublasLtMatmulDescCreate", descCreate, out, key.compute, CUDA_R_32F);
        MemorySegment desc = out.get(ADDRESS, 0);
        MemorySegment la = null, lb = null, lc = null, pref = null;
        try {
            setInt(desc, DESC_TRANSA, key.transa);
            setInt(desc, DESC_TRANSB, key.transb);
            setInt(desc, DESC_EPILOGUE, key.epi.code);
            if (key.epi.aux()) {
                value.set(JAVA_LONG, 0, key.auxLd);
                check("cublasLtMatmulDescSetAttribute", descSet, desc, DESC_EPILOGUE_AUX_LD, value, 8L);
            }
            la = key.transa == CuBlas.OP_N ? layout(key.m, key.k, key.lda) : layout(key.k, key.m, key.lda);
            lb = key.transb == CuBlas.OP_N ? layout(key.k, key.n, key.ldb) : layout(key.n, key.k, key.ldb);
            lc = layout(key.m, key.n, key.ldc);
            check("cublasLtMatmulPreferenceCreate", prefCreate, out);
            pref = out.get(ADDRESS, 0);
            value.set(JAVA_LONG, 0, WORKSPACE_BYTES);
            check("cublasLtMatmulPreferenceSetAttribute", prefSet, pref, PREF_MAX_WORKSPACE_BYTES, value, 8L);
            MemorySegment results = arena.allocate(HEURISTIC_BYTES, 8);
            check("cublasLtMatmulAlgoGetHeuristic", heuristic, handle, desc, la, lb, lc, lc, pref, 1, results, count);
            if (count.get(JAVA_INT, 0) < 1)
                throw new NativeException("cublasLtMatmulAlgoGetHeuristic", 15, "no algorithm for " + key);
            long ws = results.get(JAVA_LONG, HEURISTIC_WORKSPACE_OFFSET);
            if (ws > WORKSPACE_BYTES)
                throw new NativeException("cublasLtMatmulAlgoGetHeuristic", 15, "the algorithm wants " + ws + " bytes of workspace");
            p = new Plan(desc, la, lb, lc, results.asSlice(0, ALGO_BYTES), ws);
            plans.put(key, p);
            return p;
        } catch (RuntimeException e) {
            destroyQuietly(descDestroy, desc);
            for (MemorySegment l : new MemorySegment[] {la, lb, lc}) if (l != null) destroyQuietly(layoutDestroy, l);
            throw e;
        } finally {
            if (pref != null) destroyQuietly(prefDestroy, pref);
        }
    }

    private void clearPlans() {
        for (Plan p : plans.values()) {
            destroyQuietly(descDestroy, p.desc);
            destroyQuietly(layoutDestroy, p.a);
            destroyQuietly(layoutDestroy, p.b);
            destroyQuietly(layoutDestroy, p.c);
        }
        plans.clear();
    }

    /** Plans made so far (tests: a repeated shape must reuse its plan). */
    synchronized int planCount() { return plans.size(); }

    private static void destroyQuietly(MethodHandle h, MemorySegment d) {
        try {
            int ignored = (int) h.invoke(d);
        } catch (Throwable t) {
            // releasing a descriptor after another failure: the first failure is the one reported
        }
    }

    private void check(String name, MethodHandle h, Object... args) { lib.check(name, h, args); }

    /** The status's name (+ the stand-in's detail). */
    String describeStatus(int rc) { return lib.describeStatus(rc); }

    /** cuBLASLt shares cublasStatus_t with cuBLAS; the names are cuBLAS's (cublasLt has no status-name call). */
    private static String statusName(int rc) {
        return switch (rc) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            default -> "cublasStatus_t " + rc;
        };
    }
}
