/*
 * vendor_emu.cc — CPU stand-ins, inside libcuda_emu.so, for exactly the cuBLAS entry points the Java backend binds
 * (dev.latent.cuda.CuBlas): the same symbol names, signatures and conventions as libcublas.so (column-major operands,
 * transa / transb, lda / ldb / ldc checked against the operation's shape, strided batches, host-pointer alpha and
 * beta, compute types, a user workspace), computed here by a plain reference on emulated device memory. The Java side
 * loads them when -Dlatent.cublas.path names libcuda_emu.so, so the marshalling from our row-major descriptors to
 * cuBLAS's column-major call (the operand swap, the transpose flags, the leading dimensions and batch strides) is
 * checked against an independent definition in every build, without a GPU.
 *
 * The reference is the BLAS definition written out: C(i, j) = alpha sum_p op(A)(i, p) op(B)(p, j) + beta C(i, j),
 * element (r, c) of a column-major matrix X at X[r + c ldx], op(X) = X or X^T; products summed in double and rounded
 * to float once; beta == 0 makes C write-only (a NaN in C does not propagate), as cuBLAS documents. Compute types:
 * CUBLAS_COMPUTE_32F / _PEDANTIC use the float inputs as they are; _FAST_TF32 rounds each input to TF32 (10-bit
 * mantissa, to nearest with ties away from zero, as cvt.rna.tf32.f32 and lt_to_tf32), _FAST_16BF to bfloat16 (to
 * nearest even). Real cuBLAS may pick another legal rounding or accumulation order inside a compute type; callers'
 * tolerances are derived for that, not for this reference's extra accuracy.
 *
 * Status codes as cuBLAS returns them: NOT_INITIALIZED for a null or destroyed handle, INVALID_VALUE for negative
 * sizes, a leading dimension below the stored rows, an unknown transpose or algorithm, null alpha / beta, a workspace
 * not 256-byte aligned or not device memory; NOT_SUPPORTED for data / compute type combinations outside fp32;
 * EXECUTION_FAILED where a GPU would fault (an operand that is not inside one device allocation; detail in
 * latent_emu_last_vendor_error). Never prints, never aborts.
 */
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "driver_emu.h"

#define API extern "C" __attribute__((visibility("default")))

namespace {

enum : int {
    ST_SUCCESS = 0, ST_NOT_INITIALIZED = 1, ST_ALLOC_FAILED = 3, ST_INVALID_VALUE = 7, ST_EXECUTION_FAILED = 13,
    ST_NOT_SUPPORTED = 15,
};
enum : int { OP_N = 0, OP_T = 1, OP_C = 2 };
enum : int { R_32F = 0 };
enum : int { COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69, COMPUTE_32F_FAST_16F = 74, COMPUTE_32F_FAST_16BF = 75,
             COMPUTE_32F_FAST_TF32 = 77 };

constexpr uint32_t HANDLE_MAGIC = 0x6c74626cu; /* "ltbl" */

struct Handle {
    uint32_t magic;
    const void *stream;
    uint64_t workspace;
    size_t workspace_bytes;
    int math_mode;
};

thread_local std::string last_error;

int fail(int status, std::string msg) {
    last_error = std::move(msg);
    return status;
}

bool valid(const Handle *h) { return h != nullptr && h->magic == HANDLE_MAGIC; }

/* TF32: keep 10 mantissa bits, round to nearest, ties away from zero (cvt.rna.tf32.f32); inf / NaN unchanged. */
float to_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&x, &u, 4);
    return x;
}

/* bfloat16: keep 7 mantissa bits, round to nearest even; NaN stays NaN. */
float to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&x, &u, 4);
    return x;
}

/* The extent, in floats from the base pointer, that batch matrices of `rows` x `cols` (column-major, ld) touch. */
bool extent_inside(const void *base, int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
    if (rows == 0 || cols == 0 || batch == 0) return true;
    int64_t lo = 0, hi = (cols - 1) * ld + rows;   /* one past the last element of matrix 0 */
    if (stride >= 0) hi += (batch - 1) * stride;
    else lo += (batch - 1) * stride;
    uintptr_t p = (uintptr_t)base + (uintptr_t)(lo * 4);
    return lt_driver_emu::inside(p, (size_t)((hi - lo) * 4));
}

int gemm(const char *fn, Handle *h, int transa, int transb, int64_t m, int64_t n, int64_t k, const void *alpha,
         const void *A, int atype, int64_t lda, int64_t stride_a, const void *B, int btype, int64_t ldb, int64_t stride_b,
         const void *beta, void *C, int ctype, int64_t ldc, int64_t stride_c, int64_t batch, int compute, int algo) {
    if (!valid(h)) return fail(ST_NOT_INITIALIZED, std::string(fn) + ": handle is not an initialised cublasHandle_t");
    if (transa < OP_N || transa > OP_C || transb < OP_N || transb > OP_C)
        return fail(ST_INVALID_VALUE, std::string(fn) + ": transa / transb must be CUBLAS_OP_N, _T or _C");
    if (m < 0 || n < 0 || k < 0 || batch < 0) return fail(ST_INVALID_VALUE, std::string(fn) + ": negative m, n, k or batchCount");
    const int64_t a_rows = transa == OP_N ? m : k, a_cols = transa == OP_N ? k : m;
    const int64_t b_rows = transb == OP_N ? k : n, b_cols = transb == OP_N ? n : k;
    if (lda < (a_rows > 1 ? a_rows : 1)) return fail(ST_INVALID_VALUE, std::string(fn) + ": lda < max(1, rows of A as stored)");
    if (ldb < (b_rows > 1 ? b_rows : 1)) return fail(ST_INVALID_VALUE, std::string(fn) + ": ldb < max(1, rows of B as stored)");
    if (ldc < (m > 1 ? m : 1)) return fail(ST_INVALID_VALUE, std::string(fn) + ": ldc < max(1, m)");
    if (algo != -1 && algo != 99) return fail(ST_INVALID_VALUE, std::string(fn) + ": algo must be CUBLAS_GEMM_DEFAULT(_TENSOR_OP)");
    if (!alpha || !beta) return fail(ST_INVALID_VALUE, std::string(fn) + ": alpha and beta must not be null");
    if (compute != COMPUTE_32F && compute != COMPUTE_32F_PEDANTIC && compute != COMPUTE_32F_FAST_TF32 &&
        compute != COMPUTE_32F_FAST_16BF && compute != COMPUTE_32F_FAST_16F)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements the CUBLAS_COMPUTE_32F family only");
    if (atype != R_32F || btype != R_32F || ctype != R_32F)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements CUDA_R_32F A, B and C only");
    if (compute == COMPUTE_32F_FAST_16F)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": CUBLAS_COMPUTE_32F_FAST_16F is not implemented by the stand-in");
    if (m == 0 || n == 0 || batch == 0) return ST_SUCCESS;
    /* on a GPU these would be faults, not status codes: report them, never touch the memory */
    if (!extent_inside(A, a_rows, a_cols, lda, stride_a, batch) && k > 0)
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": A's extent is not inside one device allocation");
    if (!extent_inside(B, b_rows, b_cols, ldb, stride_b, batch) && k > 0)
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": B's extent is not inside one device allocation");
    if (!extent_inside(C, m, n, ldc, stride_c, batch))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": C's extent is not inside one device allocation");
    if (h->workspace != 0 && !lt_driver_emu::inside((uintptr_t)h->workspace, h->workspace_bytes))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": the workspace set by cublasSetWorkspace was freed");
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    auto rnd = [compute](float x) {
        return compute == COMPUTE_32F_FAST_TF32 ? to_tf32(x) : compute == COMPUTE_32F_FAST_16BF ? to_bf16(x) : x;
    };
    for (int64_t b = 0; b < batch; b++) {
        const float *a = static_cast<const float *>(A) + b * stride_a;
        const float *bb = static_cast<const float *>(B) + b * stride_b;
        float *c = static_cast<float *>(C) + b * stride_c;
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++) {
                    const float x = transa == OP_N ? a[i + p * lda] : a[p + i * lda];
                    const float y = transb == OP_N ? bb[p + j * ldb] : bb[j + p * ldb];
                    s += (double)rnd(x) * (double)rnd(y);
                }
                float &out = c[i + j * ldc];
                out = (float)(be == 0.0f ? (double)al * s : (double)al * s + (double)be * (double)out);
            }
    }
    return ST_SUCCESS;
}

Handle *as_handle(void *h) { return static_cast<Handle *>(h); }

}  // namespace

/* ---- cuBLAS (cublas_api.h): the entry points dev.latent.cuda.CuBlas binds ---- */

API int cublasCreate_v2(void **handle) {
    if (!handle) return fail(ST_INVALID_VALUE, "cublasCreate_v2: handle is null");
    if (!lt_driver_emu::initialized()) return fail(ST_NOT_INITIALIZED, "cublasCreate_v2: the driver is not initialised (cuInit)");
    Handle *h = new (std::nothrow) Handle{HANDLE_MAGIC, nullptr, 0, 0, 0};
    if (!h) return fail(ST_ALLOC_FAILED, "cublasCreate_v2: out of host memory");
    *handle = h;
    return ST_SUCCESS;
}

API int cublasDestroy_v2(void *handle) {
    Handle *h = as_handle(handle);
    if (!valid(h)) return fail(ST_NOT_INITIALIZED, "cublasDestroy_v2: not a live handle");
    h->magic = 0;
    delete h;
    return ST_SUCCESS;
}

/* The version of the cuBLAS this stands in for: 13.0.0 (CUBLAS_VERSION = major 10000 + minor 100 + patch). */
API int cublasGetVersion_v2(void *handle, int *version) {
    if (!valid(as_handle(handle))) return fail(ST_NOT_INITIALIZED, "cublasGetVersion_v2: not a live handle");
    if (!version) return fail(ST_INVALID_VALUE, "cublasGetVersion_v2: version is null");
    *version = 130000;
    return ST_SUCCESS;
}

API int cublasSetStream_v2(void *handle, void *stream) {
    Handle *h = as_handle(handle);
    if (!valid(h)) return fail(ST_NOT_INITIALIZED, "cublasSetStream_v2: not a live handle");
    if (!lt_driver_emu::is_stream(stream)) return fail(ST_INVALID_VALUE, "cublasSetStream_v2: not a stream of this context");
    h->stream = stream;
    return ST_SUCCESS;
}

API int cublasSetMathMode(void *handle, int mode) {
    Handle *h = as_handle(handle);
    if (!valid(h)) return fail(ST_NOT_INITIALIZED, "cublasSetMathMode: not a live handle");
    const int base = mode & 0xf;   /* CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION is bit 4 */
    if ((base != 0 && base != 1 && base != 2 && base != 3) || (mode & ~0x1f) != 0)
        return fail(ST_INVALID_VALUE, "cublasSetMathMode: unknown cublasMath_t");
    h->math_mode = mode;
    return ST_SUCCESS;
}

API int cublasSetWorkspace_v2(void *handle, void *workspace, size_t bytes) {
    Handle *h = as_handle(handle);
    if (!valid(h)) return fail(ST_NOT_INITIALIZED, "cublasSetWorkspace_v2: not a live handle");
    if (bytes > 0 && !workspace) return fail(ST_INVALID_VALUE, "cublasSetWorkspace_v2: null workspace with a non-zero size");
    if ((uintptr_t)workspace % 256 != 0) return fail(ST_INVALID_VALUE, "cublasSetWorkspace_v2: workspace not 256-byte aligned");
    if (bytes > 0 && !lt_driver_emu::inside((uintptr_t)workspace, bytes))
        return fail(ST_INVALID_VALUE, "cublasSetWorkspace_v2: workspace is not inside one device allocation");
    h->workspace = (uint64_t)(uintptr_t)workspace;
    h->workspace_bytes = bytes;
    return ST_SUCCESS;
}

API int cublasGemmEx(void *handle, int transa, int transb, int m, int n, int k, const void *alpha, const void *A, int atype,
                     int lda, const void *B, int btype, int ldb, const void *beta, void *C, int ctype, int ldc, int compute,
                     int algo) {
    int rc = gemm("cublasGemmEx", as_handle(handle), transa, transb, m, n, k, alpha, A, atype, lda, 0, B, btype, ldb, 0, beta, C,
                  ctype, ldc, 0, 1, compute, algo);
    if (rc == ST_SUCCESS) lt_driver_emu::count(lt_driver_emu::CNT_CUBLAS_GEMM_EX);
    return rc;
}

API int cublasGemmStridedBatchedEx(void *handle, int transa, int transb, int m, int n, int k, const void *alpha, const void *A,
                                   int atype, int lda, long long stride_a, const void *B, int btype, int ldb, long long stride_b,
                                   const void *beta, void *C, int ctype, int ldc, long long stride_c, int batch, int compute,
                                   int algo) {
    int rc = gemm("cublasGemmStridedBatchedEx", as_handle(handle), transa, transb, m, n, k, alpha, A, atype, lda, stride_a, B, btype,
                  ldb, stride_b, beta, C, ctype, ldc, stride_c, batch, compute, algo);
    if (rc == ST_SUCCESS) lt_driver_emu::count(lt_driver_emu::CNT_CUBLAS_GEMM_STRIDED_BATCHED_EX);
    return rc;
}

API const char *cublasGetStatusName(int status) {
    switch (status) {
        case ST_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case ST_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case ST_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case ST_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case ST_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case ST_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

API const char *cublasGetStatusString(int status) {
    switch (status) {
        case ST_SUCCESS: return "success";
        case ST_NOT_INITIALIZED: return "the library was not initialized";
        case ST_ALLOC_FAILED: return "the resource allocation failed";
        case ST_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case ST_EXECUTION_FAILED: return "the GPU program failed to execute";
        case ST_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "unknown error";
    }
}

/* ---- not part of any vendor API: the stand-ins' own introspection ---- */

/* The message of this thread's last failed stand-in call ("" if none). */
API const char *latent_emu_last_vendor_error(void) { return last_error.c_str(); }

/* Present only in the emulated driver: the Java side logs "CPU stand-in" rather than a library version. */
API int latent_emu_vendor_stand_in(void) { return 1; }
