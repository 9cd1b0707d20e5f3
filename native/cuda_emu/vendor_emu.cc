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
 * nearest even). Why ties away for TF32: cuBLAS does not document its fp32 -> TF32 conversion; our own TF32 kernels
 * use cvt.rna (ties away) and CUTLASS's default conversion (round_half_ulp_truncate) is the same rounding, so the
 * stand-in models the rounding a TF32 GEMM is most likely to apply. Ties to even or away both keep the per-input
 * error within u = 2^-11; a kernel that truncated (dropped the 13 low bits, as a tensor core fed raw fp32 registers
 * does) would reach 2^-10, which is why the Java tests allow 2 u per input when a real cuBLAS serves. Operand types:
 * A and B both CUDA_R_32F, or both CUDA_R_16BF (bf16, 2 bytes an element, read exactly: the caller rounded them) with
 * CUBLAS_COMPUTE_32F / _PEDANTIC (the combination cuBLAS supports for bf16 inputs and fp32 output); C CUDA_R_32F.
 * Real cuBLAS may pick another legal rounding or accumulation order inside a compute type; callers'
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
#include <algorithm>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "cudnn_algo_emu.h"
#include "driver_emu.h"

#define API extern "C" __attribute__((visibility("default")))

namespace {

enum : int {
    ST_SUCCESS = 0, ST_NOT_INITIALIZED = 1, ST_ALLOC_FAILED = 3, ST_INVALID_VALUE = 7, ST_EXECUTION_FAILED = 13,
    ST_NOT_SUPPORTED = 15,
};
enum : int { OP_N = 0, OP_T = 1, OP_C = 2 };
enum : int { R_32F = 0, R_16BF = 14 };
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

/* A stand-in's computation on its handle's stream (lt_driver_emu::submit: run now, or recorded while the stream
 * captures); a driver error (work on the legacy stream during a capture) becomes `status` with the driver's reason. */
int enqueued(const char *fn, const void *stream, lt_driver_emu::Work work, int status) {
    int rc = lt_driver_emu::submit(stream, std::move(work));
    if (rc == 0) return 0;
    return fail(status, std::string(fn) + ": the stream is being captured and this work cannot join the capture (CUresult " +
                            std::to_string(rc) + ")");
}

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

/* bf16 bits widened to float (exact). */
float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

/* The extent, in elements of `esize` bytes from the base pointer, that batch matrices of `rows` x `cols`
 * (column-major, ld) touch. */
bool extent_inside(const void *base, int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch, int64_t esize = 4) {
    if (rows == 0 || cols == 0 || batch == 0) return true;
    int64_t lo = 0, hi = (cols - 1) * ld + rows;   /* one past the last element of matrix 0 */
    if (stride >= 0) hi += (batch - 1) * stride;
    else lo += (batch - 1) * stride;
    uintptr_t p = (uintptr_t)base + (uintptr_t)(lo * esize);
    return lt_driver_emu::inside(p, (size_t)((hi - lo) * esize));
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
    const bool bf16_in = atype == R_16BF && btype == R_16BF;
    if (!((atype == R_32F && btype == R_32F) || bf16_in) || ctype != R_32F)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements A and B both CUDA_R_32F or both CUDA_R_16BF, "
                                                        "and C CUDA_R_32F");
    if (bf16_in && compute != COMPUTE_32F && compute != COMPUTE_32F_PEDANTIC)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": CUDA_R_16BF A and B with CUDA_R_32F C need CUBLAS_COMPUTE_32F(_PEDANTIC)");
    const int64_t es = bf16_in ? 2 : 4;
    if (compute == COMPUTE_32F_FAST_16F)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": CUBLAS_COMPUTE_32F_FAST_16F is not implemented by the stand-in");
    if (m == 0 || n == 0 || batch == 0) return ST_SUCCESS;
    /* on a GPU these would be faults, not status codes: report them, never touch the memory */
    if (!extent_inside(A, a_rows, a_cols, lda, stride_a, batch, es) && k > 0)
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": A's extent is not inside one device allocation");
    if (!extent_inside(B, b_rows, b_cols, ldb, stride_b, batch, es) && k > 0)
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": B's extent is not inside one device allocation");
    if (!extent_inside(C, m, n, ldc, stride_c, batch))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": C's extent is not inside one device allocation");
    if (h->workspace != 0 && !lt_driver_emu::inside((uintptr_t)h->workspace, h->workspace_bytes))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": the workspace set by cublasSetWorkspace was freed");
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    /* enqueued on the handle's stream: run now, or recorded while that stream captures (alpha and beta read now, as
     * cuBLAS reads host-pointer scalars at the call) */
    return enqueued(fn, h->stream, [=] {
    auto rnd = [compute](float x) {
        return compute == COMPUTE_32F_FAST_TF32 ? to_tf32(x) : compute == COMPUTE_32F_FAST_16BF ? to_bf16(x) : x;
    };
    /* element e of batch entry t of an operand, as a float (bf16 widened exactly) */
    auto at = [bf16_in](const void *base, int64_t t, int64_t stride, int64_t e) {
        return bf16_in ? from_bf16(static_cast<const uint16_t *>(base)[t * stride + e]) : static_cast<const float *>(base)[t * stride + e];
    };
    for (int64_t b = 0; b < batch; b++) {
        float *c = static_cast<float *>(C) + b * stride_c;
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++) {
                    const float x = at(A, b, stride_a, transa == OP_N ? i + p * lda : p + i * lda);
                    const float y = at(B, b, stride_b, transb == OP_N ? p + j * ldb : j + p * ldb);
                    s += (double)rnd(x) * (double)rnd(y);
                }
                float &out = c[i + j * ldc];
                out = (float)(be == 0.0f ? (double)al * s : (double)al * s + (double)be * (double)out);
            }
    }
    return 0;
    }, ST_EXECUTION_FAILED);
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

/* ==== cuDNN (cudnn_ops.h / cudnn_cnn.h, the legacy convolution API): the entry points dev.latent.cuda.CuDnn binds ====
 *
 * The stand-in is cuDNN 9's: status codes of cuDNN 9 (BAD_PARAM 2000, NOT_SUPPORTED 3000, EXECUTION_FAILED 5000),
 * cudnnGetVersion 90000. Descriptors are checked as cuDNN checks them: set before use, NCHW float only (else
 * NOT_SUPPORTED), y / dy dimensions equal to the output-dimension formula, x's and w's channels equal, a workspace of at
 * least the size the matching cudnnGet*WorkspaceSize reported (the stand-in asks for 4 KiB per call, so a caller that
 * passes none is caught). The arithmetic is the definition, in double, rounded once per element:
 *   y(n, k, p, q) = alpha sum_{c, r, s} x(n, c, p u - pad_h + r dil_h, q v - pad_w + s dil_w) w'(k, c, r, s) + beta y
 * with w' = w for CUDNN_CROSS_CORRELATION and w flipped in r and s for CUDNN_CONVOLUTION; backward-data and
 * backward-filter are its adjoints with respect to x and w. beta == 0 makes the output write-only. Math type: with
 * CUDNN_FMA_MATH (3) the float operands are used as they are; with CUDNN_DEFAULT_MATH, _TENSOR_OP_MATH or
 * _TENSOR_OP_MATH_ALLOW_CONVERSION (0, 1, 2) cuDNN may run float convolutions on TF32 tensor cores (sm_80+), and the
 * stand-in models that by rounding both operands of every product to TF32 (to nearest, ties away, as the cuBLAS
 * stand-in), so a caller that asks for exact fp32 but forgets FMA_MATH, or asks for TF32 and does not get it, is seen.
 *
 * Data types (h-cudaprec2): CUDNN_DATA_FLOAT (0) and CUDNN_DATA_BFLOAT16 (9, 2 bytes an element) on tensor and filter
 * descriptors, CUDNN_DATA_FLOAT or _BFLOAT16 as the convolution's compute type. The configurations served are cuDNN's
 * FLOAT_CONFIG (x, w, y float, compute float) and PSEUDO_BFLOAT16_CONFIG (x, w, y bf16, compute float): bf16 operands
 * are widened exactly, the sum is the same double sum, and a bf16 output is the fp32 result rounded once to bf16 (to
 * nearest even; with beta != 0 the old bf16 y is read back). As cuDNN, descriptors whose data types differ among x, w
 * and y are CUDNN_STATUS_BAD_PARAM, and a configuration outside those two (bf16 data with a bf16 compute type, float
 * data with a bf16 compute type) is CUDNN_STATUS_NOT_SUPPORTED; so a caller that declares float for bf16 data, or
 * mixes a bf16 input with a float output, is caught. Math types do not change bf16 operands (a bf16 value is exact in
 * TF32). cudnnAddTensor takes float descriptors only (NOT_SUPPORTED otherwise: the bias is added in fp32). */

namespace {

enum : int { DNN_SUCCESS = 0, DNN_NOT_INITIALIZED = 1001, DNN_BAD_PARAM = 2000, DNN_NOT_SUPPORTED = 3000,
             DNN_EXECUTION_FAILED = 5000 };
constexpr uint32_t DNN_HANDLE = 0x6c74646eu, DNN_TENSOR = 0x6c747464u, DNN_FILTER = 0x6c746664u, DNN_CONV = 0x6c746364u;
constexpr int DNN_FLOAT = 0, DNN_BF16 = 9;   /* cudnnDataType_t: CUDNN_DATA_FLOAT, CUDNN_DATA_BFLOAT16 */

struct DnnHandle { uint32_t magic; const void *stream; };
struct TensorDesc { uint32_t magic; int set, n, c, h, w, dtype; };
struct FilterDesc { uint32_t magic; int set, k, c, r, s, dtype; };
struct ConvDesc { uint32_t magic; int set, pad_h, pad_w, u, v, dil_h, dil_w, mode, math, ctype; };

/* Bytes an element of a descriptor's data type takes. */
int64_t esize(int dtype) { return dtype == DNN_BF16 ? 2 : 4; }

/* Element i of an operand of data type dtype, as a float (bf16 widened exactly). */
float load(const void *p, int dtype, int64_t i) {
    return dtype == DNN_BF16 ? from_bf16(static_cast<const uint16_t *>(p)[i]) : static_cast<const float *>(p)[i];
}

/* A float rounded to bf16 (to nearest even) as its 16 bits; NaN stays a (quiet) NaN, inf stays inf. */
uint16_t bf16_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    const float r = to_bf16(x);
    std::memcpy(&u, &r, 4);
    return (uint16_t)(u >> 16);
}

template <class T> T *as(void *p, uint32_t magic) {
    T *t = static_cast<T *>(p);
    return t && t->magic == magic ? t : nullptr;
}

template <class T> int create(void **out, uint32_t magic, const char *fn) {
    if (!out) return fail(DNN_BAD_PARAM, std::string(fn) + ": null output pointer");
    T *t = new (std::nothrow) T{};
    if (!t) return fail(DNN_NOT_INITIALIZED, std::string(fn) + ": out of host memory");
    t->magic = magic;
    *out = t;
    return DNN_SUCCESS;
}

template <class T> int destroy(void *p, uint32_t magic, const char *fn) {
    T *t = as<T>(p, magic);
    if (!t) return fail(DNN_BAD_PARAM, std::string(fn) + ": not a live descriptor");
    t->magic = 0;
    delete t;
    return DNN_SUCCESS;
}

int64_t out_dim(int in, int pad, int k, int dil, int stride) { return ((int64_t)in + 2 * pad - ((int64_t)dil * (k - 1) + 1)) / stride + 1; }

/* Checks a convolution's descriptors; on success the geometry of (x, w, y). */
int conv_check(const char *fn, void *handle, void *xd, void *wd, void *cd, void *yd, TensorDesc **x, FilterDesc **w, ConvDesc **c,
               TensorDesc **y) {
    if (!as<DnnHandle>(handle, DNN_HANDLE)) return fail(DNN_BAD_PARAM, std::string(fn) + ": handle is not a live cudnnHandle_t");
    *x = as<TensorDesc>(xd, DNN_TENSOR);
    *w = as<FilterDesc>(wd, DNN_FILTER);
    *c = as<ConvDesc>(cd, DNN_CONV);
    *y = as<TensorDesc>(yd, DNN_TENSOR);
    if (!*x || !*w || !*c || !*y || !(*x)->set || !(*w)->set || !(*c)->set || !(*y)->set)
        return fail(DNN_BAD_PARAM, std::string(fn) + ": a descriptor is null, destroyed or not set");
    if ((*x)->dtype != (*w)->dtype || (*y)->dtype != (*x)->dtype)
        return fail(DNN_BAD_PARAM, std::string(fn) + ": the tensor and filter descriptors' data types differ (x " + std::to_string((*x)->dtype) +
                    ", w " + std::to_string((*w)->dtype) + ", y " + std::to_string((*y)->dtype) + ")");
    if ((*c)->ctype != DNN_FLOAT)
        return fail(DNN_NOT_SUPPORTED, std::string(fn) + ": data type " + std::to_string((*x)->dtype) + " with compute type " +
                    std::to_string((*c)->ctype) + " is no supported configuration (FLOAT_CONFIG or PSEUDO_BFLOAT16_CONFIG: compute float)");
    if ((*x)->c != (*w)->c) return fail(DNN_BAD_PARAM, std::string(fn) + ": x's channels differ from the filter's");
    if ((*y)->n != (*x)->n || (*y)->c != (*w)->k ||
        (*y)->h != out_dim((*x)->h, (*c)->pad_h, (*w)->r, (*c)->dil_h, (*c)->u) ||
        (*y)->w != out_dim((*x)->w, (*c)->pad_w, (*w)->s, (*c)->dil_w, (*c)->v))
        return fail(DNN_BAD_PARAM, std::string(fn) + ": the output descriptor's dimensions are not the convolution's");
    return DNN_SUCCESS;
}

bool dense_inside(const void *p, int64_t elems, int dtype = DNN_FLOAT) {
    return elems == 0 || lt_driver_emu::inside((uintptr_t)p, (size_t)(elems * esize(dtype)));
}

int workspace_check(const char *fn, const void *ws, size_t bytes, size_t needed) {
    if (bytes < needed)
        return fail(DNN_BAD_PARAM, std::string(fn) + ": workspace of " + std::to_string(bytes) + " bytes, smaller than the " +
                    std::to_string(needed) + " cudnnGet*WorkspaceSize reports for this algorithm");
    if (!ws || !lt_driver_emu::inside((uintptr_t)ws, bytes))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": workspace is not inside one device allocation");
    return DNN_SUCCESS;
}

/* Calls f(n, k, p, q, c, r, s, xi) for every term of the convolution sum, xi = x's flat index (-1: padding). */
template <class F> void conv_terms(const TensorDesc *x, const FilterDesc *w, const ConvDesc *c, const TensorDesc *y, F f) {
    for (int n = 0; n < y->n; n++)
        for (int k = 0; k < y->c; k++)
            for (int p = 0; p < y->h; p++)
                for (int q = 0; q < y->w; q++)
                    for (int ch = 0; ch < w->c; ch++)
                        for (int r = 0; r < w->r; r++)
                            for (int s = 0; s < w->s; s++) {
                                const int64_t ih = (int64_t)p * c->u - c->pad_h + (int64_t)r * c->dil_h;
                                const int64_t iw = (int64_t)q * c->v - c->pad_w + (int64_t)s * c->dil_w;
                                if (ih < 0 || ih >= x->h || iw < 0 || iw >= x->w) continue;
                                const int rr = c->mode == 0 ? w->r - 1 - r : r, ss = c->mode == 0 ? w->s - 1 - s : s;
                                f((((int64_t)n * y->c + k) * y->h + p) * y->w + q, (((int64_t)n * x->c + ch) * x->h + ih) * x->w + iw,
                                  (((int64_t)k * w->c + ch) * w->r + rr) * w->s + ss);
                            }
}

/* out = alpha acc + beta out, rounded once (beta == 0: write-only); a bf16 out gets that float rounded to bf16. */
void blend(void *out, int dtype, const double *acc, int64_t n, float alpha, float beta) {
    for (int64_t i = 0; i < n; i++) {
        const float v = (float)(beta == 0.0f ? (double)alpha * acc[i] : (double)alpha * acc[i] + (double)beta * load(out, dtype, i));
        if (dtype == DNN_BF16) static_cast<uint16_t *>(out)[i] = bf16_bits(v);
        else static_cast<float *>(out)[i] = v;
    }
}

/* An operand as the descriptor's math type reads it: exact under CUDNN_FMA_MATH, else TF32 (see the header). */
float mrnd(const ConvDesc *c, float v) { return c->math == 3 ? v : to_tf32(v); }

int64_t numel(const TensorDesc *t) { return (int64_t)t->n * t->c * t->h * t->w; }
int64_t numel(const FilterDesc *f) { return (int64_t)f->k * f->c * f->r * f->s; }

lt_cudnn_algo::Geom geom_of(const TensorDesc *x, const FilterDesc *w, const ConvDesc *c, const TensorDesc *y) {
    return lt_cudnn_algo::Geom{x->n, x->c, x->h, x->w, w->k, w->r, w->s, y->h, y->w, c->u, c->v, c->pad_h, c->pad_w, c->dil_h, c->dil_w,
                               c->math, x->dtype};
}

/* The algorithm check of a workspace query or a convolution call (cudnn_algo_emu.cc: which algorithm runs where, the
 * workspace it needs); on success *needed = that workspace. */
int algo_check(const char *fn, lt_cudnn_algo::Op op, int algo, const TensorDesc *x, const FilterDesc *w, const ConvDesc *c,
               const TensorDesc *y, size_t *needed) {
    const lt_cudnn_algo::Geom g = geom_of(x, w, c, y);
    std::string why;
    int rc = lt_cudnn_algo::support(op, algo, g, &why);
    if (rc) return fail(rc, std::string(fn) + ": " + why);
    *needed = lt_cudnn_algo::workspace(op, algo, g);
    return DNN_SUCCESS;
}

}  // namespace

namespace lt_cudnn_algo {
int conv_geom(const char *fn, void *handle, void *xd, void *wd, void *cd, void *yd, Geom *g) {
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check(fn, handle, xd, wd, cd, yd, &x, &w, &c, &y);
    if (rc) return rc;
    *g = geom_of(x, w, c, y);
    return DNN_SUCCESS;
}
int fail(int status, std::string msg) { return ::fail(status, std::move(msg)); }
}  // namespace lt_cudnn_algo

API size_t cudnnGetVersion(void) { return 90000; }

API const char *cudnnGetErrorString(int status) {
    switch (status) {
        case DNN_SUCCESS: return "CUDNN_STATUS_SUCCESS";
        case DNN_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
        case DNN_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
        case DNN_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
        case 4000: return "CUDNN_STATUS_INTERNAL_ERROR";
        case DNN_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
        default: return "CUDNN_UNKNOWN_STATUS_FOUND";
    }
}

API int cudnnCreate(void **handle) {
    if (!lt_driver_emu::initialized()) return fail(DNN_NOT_INITIALIZED, "cudnnCreate: the driver is not initialised (cuInit)");
    int rc = create<DnnHandle>(handle, DNN_HANDLE, "cudnnCreate");
    return rc;
}
API int cudnnDestroy(void *handle) { return destroy<DnnHandle>(handle, DNN_HANDLE, "cudnnDestroy"); }
API int cudnnSetStream(void *handle, void *stream) {
    DnnHandle *h = as<DnnHandle>(handle, DNN_HANDLE);
    if (!h) return fail(DNN_BAD_PARAM, "cudnnSetStream: not a live handle");
    if (!lt_driver_emu::is_stream(stream)) return fail(DNN_BAD_PARAM, "cudnnSetStream: not a stream of this context");
    h->stream = stream;
    return DNN_SUCCESS;
}

API int cudnnCreateTensorDescriptor(void **d) { return create<TensorDesc>(d, DNN_TENSOR, "cudnnCreateTensorDescriptor"); }
API int cudnnDestroyTensorDescriptor(void *d) { return destroy<TensorDesc>(d, DNN_TENSOR, "cudnnDestroyTensorDescriptor"); }
API int cudnnSetTensor4dDescriptor(void *d, int format, int dtype, int n, int c, int h, int w) {
    TensorDesc *t = as<TensorDesc>(d, DNN_TENSOR);
    if (!t) return fail(DNN_BAD_PARAM, "cudnnSetTensor4dDescriptor: not a live descriptor");
    if (n < 1 || c < 1 || h < 1 || w < 1) return fail(DNN_BAD_PARAM, "cudnnSetTensor4dDescriptor: dimensions must be >= 1");
    if (format != 0 || (dtype != DNN_FLOAT && dtype != DNN_BF16))
        return fail(DNN_NOT_SUPPORTED, "cudnnSetTensor4dDescriptor: the stand-in implements NCHW float and bfloat16 only");
    *t = TensorDesc{DNN_TENSOR, 1, n, c, h, w, dtype};
    return DNN_SUCCESS;
}

API int cudnnCreateFilterDescriptor(void **d) { return create<FilterDesc>(d, DNN_FILTER, "cudnnCreateFilterDescriptor"); }
API int cudnnDestroyFilterDescriptor(void *d) { return destroy<FilterDesc>(d, DNN_FILTER, "cudnnDestroyFilterDescriptor"); }
API int cudnnSetFilter4dDescriptor(void *d, int dtype, int format, int k, int c, int h, int w) {
    FilterDesc *f = as<FilterDesc>(d, DNN_FILTER);
    if (!f) return fail(DNN_BAD_PARAM, "cudnnSetFilter4dDescriptor: not a live descriptor");
    if (k < 1 || c < 1 || h < 1 || w < 1) return fail(DNN_BAD_PARAM, "cudnnSetFilter4dDescriptor: dimensions must be >= 1");
    if (format != 0 || (dtype != DNN_FLOAT && dtype != DNN_BF16))
        return fail(DNN_NOT_SUPPORTED, "cudnnSetFilter4dDescriptor: the stand-in implements NCHW float and bfloat16 only");
    *f = FilterDesc{DNN_FILTER, 1, k, c, h, w, dtype};
    return DNN_SUCCESS;
}

API int cudnnCreateConvolutionDescriptor(void **d) { return create<ConvDesc>(d, DNN_CONV, "cudnnCreateConvolutionDescriptor"); }
API int cudnnDestroyConvolutionDescriptor(void *d) { return destroy<ConvDesc>(d, DNN_CONV, "cudnnDestroyConvolutionDescriptor"); }
API int cudnnSetConvolution2dDescriptor(void *d, int pad_h, int pad_w, int u, int v, int dil_h, int dil_w, int mode, int ctype) {
    ConvDesc *c = as<ConvDesc>(d, DNN_CONV);
    if (!c) return fail(DNN_BAD_PARAM, "cudnnSetConvolution2dDescriptor: not a live descriptor");
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 || (mode != 0 && mode != 1))
        return fail(DNN_BAD_PARAM, "cudnnSetConvolution2dDescriptor: negative padding, stride or dilation < 1, or unknown mode");
    if (ctype != DNN_FLOAT && ctype != DNN_BF16)
        return fail(DNN_NOT_SUPPORTED, "cudnnSetConvolution2dDescriptor: the stand-in knows compute types float and bfloat16 only");
    int math = c->math;
    *c = ConvDesc{DNN_CONV, 1, pad_h, pad_w, u, v, dil_h, dil_w, mode, math, ctype};
    return DNN_SUCCESS;
}
API int cudnnSetConvolutionMathType(void *d, int math) {
    ConvDesc *c = as<ConvDesc>(d, DNN_CONV);
    if (!c) return fail(DNN_BAD_PARAM, "cudnnSetConvolutionMathType: not a live descriptor");
    if (math < 0 || math > 3) return fail(DNN_BAD_PARAM, "cudnnSetConvolutionMathType: unknown cudnnMathType_t");
    c->math = math;
    return DNN_SUCCESS;
}

API int cudnnGetConvolutionForwardWorkspaceSize(void *h, void *xd, void *wd, void *cd, void *yd, int algo, size_t *bytes) {
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check("cudnnGetConvolutionForwardWorkspaceSize", h, xd, wd, cd, yd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!bytes) return fail(DNN_BAD_PARAM, "cudnnGetConvolutionForwardWorkspaceSize: null size");
    size_t need;
    if ((rc = algo_check("cudnnGetConvolutionForwardWorkspaceSize", lt_cudnn_algo::FWD, algo, x, w, c, y, &need))) return rc;
    *bytes = need;
    return DNN_SUCCESS;
}
API int cudnnGetConvolutionBackwardDataWorkspaceSize(void *h, void *wd, void *dyd, void *cd, void *dxd, int algo, size_t *bytes) {
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check("cudnnGetConvolutionBackwardDataWorkspaceSize", h, dxd, wd, cd, dyd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!bytes) return fail(DNN_BAD_PARAM, "cudnnGetConvolutionBackwardDataWorkspaceSize: null size");
    size_t need;
    if ((rc = algo_check("cudnnGetConvolutionBackwardDataWorkspaceSize", lt_cudnn_algo::BWD_DATA, algo, x, w, c, y, &need))) return rc;
    *bytes = need;
    return DNN_SUCCESS;
}
API int cudnnGetConvolutionBackwardFilterWorkspaceSize(void *h, void *xd, void *dyd, void *cd, void *dwd, int algo, size_t *bytes) {
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check("cudnnGetConvolutionBackwardFilterWorkspaceSize", h, xd, dwd, cd, dyd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!bytes) return fail(DNN_BAD_PARAM, "cudnnGetConvolutionBackwardFilterWorkspaceSize: null size");
    size_t need;
    if ((rc = algo_check("cudnnGetConvolutionBackwardFilterWorkspaceSize", lt_cudnn_algo::BWD_FILTER, algo, x, w, c, y, &need))) return rc;
    *bytes = need;
    return DNN_SUCCESS;
}

API int cudnnConvolutionForward(void *h, const void *alpha, void *xd, const void *xp, void *wd, const void *wp, void *cd, int algo,
                                void *ws, size_t ws_bytes, const void *beta, void *yd, void *yp) {
    const char *fn = "cudnnConvolutionForward";
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check(fn, h, xd, wd, cd, yd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!alpha || !beta) return fail(DNN_BAD_PARAM, std::string(fn) + ": null alpha / beta");
    size_t need;
    if ((rc = algo_check(fn, lt_cudnn_algo::FWD, algo, x, w, c, y, &need))) return rc;
    if ((rc = workspace_check(fn, ws, ws_bytes, need))) return rc;
    const int dt = x->dtype;
    if (!dense_inside(xp, numel(x), dt) || !dense_inside(wp, numel(w), dt) || !dense_inside(yp, numel(y), dt))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": an operand is not inside one device allocation");
    const TensorDesc xd_ = *x, yd_ = *y; const FilterDesc wd_ = *w; const ConvDesc cd_ = *c;
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    lt_driver_emu::count(lt_driver_emu::CNT_CUDNN_CONV_FWD);
    lt_cudnn_algo::ran(lt_cudnn_algo::FWD, algo);
    return enqueued(fn, static_cast<DnnHandle *>(h)->stream, [=] {
        std::vector<double> acc((size_t)numel(&yd_), 0.0);
        conv_terms(&xd_, &wd_, &cd_, &yd_, [&](int64_t yi, int64_t xi, int64_t wi) {
            acc[yi] += (double)mrnd(&cd_, load(xp, dt, xi)) * mrnd(&cd_, load(wp, dt, wi));
        });
        blend(yp, dt, acc.data(), numel(&yd_), al, be);
        return 0;
    }, DNN_EXECUTION_FAILED);
}

API int cudnnConvolutionBackwardData(void *h, const void *alpha, void *wd, const void *wp, void *dyd, const void *dyp, void *cd, int algo,
                                     void *ws, size_t ws_bytes, const void *beta, void *dxd, void *dxp) {
    const char *fn = "cudnnConvolutionBackwardData";
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check(fn, h, dxd, wd, cd, dyd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!alpha || !beta) return fail(DNN_BAD_PARAM, std::string(fn) + ": null alpha / beta");
    size_t need;
    if ((rc = algo_check(fn, lt_cudnn_algo::BWD_DATA, algo, x, w, c, y, &need))) return rc;
    if ((rc = workspace_check(fn, ws, ws_bytes, need))) return rc;
    const int dt = x->dtype;
    if (!dense_inside(dxp, numel(x), dt) || !dense_inside(wp, numel(w), dt) || !dense_inside(dyp, numel(y), dt))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": an operand is not inside one device allocation");
    const TensorDesc xd_ = *x, yd_ = *y; const FilterDesc wd_ = *w; const ConvDesc cd_ = *c;
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    lt_driver_emu::count(lt_driver_emu::CNT_CUDNN_CONV_BWD_DATA);
    lt_cudnn_algo::ran(lt_cudnn_algo::BWD_DATA, algo);
    return enqueued(fn, static_cast<DnnHandle *>(h)->stream, [=] {
        std::vector<double> acc((size_t)numel(&xd_), 0.0);
        conv_terms(&xd_, &wd_, &cd_, &yd_, [&](int64_t yi, int64_t xi, int64_t wi) {
            acc[xi] += (double)mrnd(&cd_, load(dyp, dt, yi)) * mrnd(&cd_, load(wp, dt, wi));
        });
        blend(dxp, dt, acc.data(), numel(&xd_), al, be);
        return 0;
    }, DNN_EXECUTION_FAILED);
}

API int cudnnConvolutionBackwardFilter(void *h, const void *alpha, void *xd, const void *xp, void *dyd, const void *dyp, void *cd, int algo,
                                       void *ws, size_t ws_bytes, const void *beta, void *dwd, void *dwp) {
    const char *fn = "cudnnConvolutionBackwardFilter";
    TensorDesc *x, *y; FilterDesc *w; ConvDesc *c;
    int rc = conv_check(fn, h, xd, dwd, cd, dyd, &x, &w, &c, &y);
    if (rc) return rc;
    if (!alpha || !beta) return fail(DNN_BAD_PARAM, std::string(fn) + ": null alpha / beta");
    size_t need;
    if ((rc = algo_check(fn, lt_cudnn_algo::BWD_FILTER, algo, x, w, c, y, &need))) return rc;
    if ((rc = workspace_check(fn, ws, ws_bytes, need))) return rc;
    const int dt = x->dtype;
    if (!dense_inside(xp, numel(x), dt) || !dense_inside(dwp, numel(w), dt) || !dense_inside(dyp, numel(y), dt))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": an operand is not inside one device allocation");
    const TensorDesc xd_ = *x, yd_ = *y; const FilterDesc wd_ = *w; const ConvDesc cd_ = *c;
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    lt_driver_emu::count(lt_driver_emu::CNT_CUDNN_CONV_BWD_FILTER);
    lt_cudnn_algo::ran(lt_cudnn_algo::BWD_FILTER, algo);
    return enqueued(fn, static_cast<DnnHandle *>(h)->stream, [=] {
        std::vector<double> acc((size_t)numel(&wd_), 0.0);
        conv_terms(&xd_, &wd_, &cd_, &yd_, [&](int64_t yi, int64_t xi, int64_t wi) {
            acc[wi] += (double)mrnd(&cd_, load(xp, dt, xi)) * mrnd(&cd_, load(dyp, dt, yi));
        });
        blend(dwp, dt, acc.data(), numel(&wd_), al, be);
        return 0;
    }, DNN_EXECUTION_FAILED);
}

/* C = alpha A + beta C, A broadcast over C where A's dimension is 1 (the bias add: A (1, K, 1, 1), C (N, K, H, W)). */
API int cudnnAddTensor(void *h, const void *alpha, void *ad, const void *ap, const void *beta, void *cdesc, void *cp) {
    const char *fn = "cudnnAddTensor";
    if (!as<DnnHandle>(h, DNN_HANDLE)) return fail(DNN_BAD_PARAM, std::string(fn) + ": handle is not a live cudnnHandle_t");
    TensorDesc *a = as<TensorDesc>(ad, DNN_TENSOR), *c = as<TensorDesc>(cdesc, DNN_TENSOR);
    if (!a || !c || !a->set || !c->set || !alpha || !beta) return fail(DNN_BAD_PARAM, std::string(fn) + ": bad descriptor or null alpha / beta");
    if (a->dtype != DNN_FLOAT || c->dtype != DNN_FLOAT) return fail(DNN_NOT_SUPPORTED, std::string(fn) + ": the stand-in adds float tensors only");
    const int ad4[4] = {a->n, a->c, a->h, a->w}, cd4[4] = {c->n, c->c, c->h, c->w};
    for (int i = 0; i < 4; i++)
        if (ad4[i] != 1 && ad4[i] != cd4[i]) return fail(DNN_BAD_PARAM, std::string(fn) + ": A's dimensions neither 1 nor C's");
    if (!dense_inside(ap, numel(a)) || !dense_inside(cp, numel(c)))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": an operand is not inside one device allocation");
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    const TensorDesc a_ = *a, c_ = *c;
    return enqueued(fn, static_cast<DnnHandle *>(h)->stream, [=] {
    const TensorDesc *a = &a_, *c = &c_;
    const float *A = static_cast<const float *>(ap);
    float *C = static_cast<float *>(cp);
    for (int n = 0; n < c->n; n++)
        for (int k = 0; k < c->c; k++)
            for (int p = 0; p < c->h; p++)
                for (int q = 0; q < c->w; q++) {
                    const int64_t ci = (((int64_t)n * c->c + k) * c->h + p) * c->w + q;
                    const int64_t ai = ((((int64_t)(a->n == 1 ? 0 : n) * a->c + (a->c == 1 ? 0 : k)) * a->h + (a->h == 1 ? 0 : p)) * a->w) +
                                       (a->w == 1 ? 0 : q);
                    C[ci] = (float)(be == 0.0f ? (double)al * A[ai] : (double)al * A[ai] + (double)be * C[ci]);
                }
    return 0;
    }, DNN_EXECUTION_FAILED);
}

/* ==== cuBLASLt (cublasLt.h): the entry points dev.latent.cuda.CuBlasLt binds ====
 *
 * Same symbols, signatures and enum values as libcublasLt.so: descriptors are created by the library and handed out
 * as pointers (cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t: pointers to the opaque
 * structs, whose real sizes, 8 x 64-bit words for a layout / preference / algo and 32 for a matmul descriptor, bound
 * ours), attributes set by enum with the size of their value checked (a wrong size is INVALID_VALUE, as cuBLASLt
 * does), and cublasLtMatmulAlgoGetHeuristic filling cublasLtMatmulHeuristicResult_t (96 bytes: the 64-byte algo,
 * size_t workspaceSize, int state, float wavesCount, int reserved[4]). The stand-in's one algorithm asks for 4 KiB of
 * workspace, so a caller that passes none to cublasLtMatmul is caught.
 *
 * cublasLtMatmul: D = epilogue(alpha op(A) op(B) + beta C [+ bias]), column-major, m x n = D's layout, k from A's
 * layout and op; every layout must agree with the op's shape (else INVALID_VALUE). Epilogues: DEFAULT, BIAS (bias[i]
 * added to row i of D: the vector has D's rows), GELU, GELU_BIAS, GELU_AUX, GELU_AUX_BIAS (AUX: the pre-activation,
 * after the bias, stored to EPILOGUE_AUX_POINTER with EPILOGUE_AUX_LD). cuBLASLt's GELU is the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated here in double. Data types: CUDA_R_32F everywhere
 * (scale type too), compute types of the CUBLAS_COMPUTE_32F family, operands rounded as in gemm() above. Others:
 * NOT_SUPPORTED. */

namespace {

enum : int { LT_DESC_COMPUTE_TYPE = 0, LT_DESC_SCALE_TYPE = 1, LT_DESC_POINTER_MODE = 2, LT_DESC_TRANSA = 3, LT_DESC_TRANSB = 4,
             LT_DESC_EPILOGUE = 7, LT_DESC_BIAS_POINTER = 8, LT_DESC_EPILOGUE_AUX_POINTER = 11, LT_DESC_EPILOGUE_AUX_LD = 12 };
enum : int { LT_EPI_DEFAULT = 1, LT_EPI_BIAS = 4, LT_EPI_GELU = 32, LT_EPI_GELU_BIAS = 36, LT_EPI_GELU_AUX = 160,
             LT_EPI_GELU_AUX_BIAS = 164 };
enum : int { LT_LAYOUT_TYPE = 0, LT_LAYOUT_ORDER = 1, LT_LAYOUT_ROWS = 2, LT_LAYOUT_COLS = 3, LT_LAYOUT_LD = 4,
             LT_LAYOUT_BATCH_COUNT = 5 };
enum : int { LT_PREF_SEARCH_MODE = 0, LT_PREF_MAX_WORKSPACE_BYTES = 1 };
constexpr uint32_t LT_HANDLE = 0x6c746c68u, LT_DESC = 0x6c746c64u, LT_LAYOUT = 0x6c746c6cu, LT_PREF = 0x6c746c70u,
                   LT_ALGO = 0x6c746c61u;
constexpr size_t LT_WORKSPACE = 4096;

struct LtHandle { uint32_t magic; };
struct LtDesc { uint32_t magic; int compute, scale_type, pointer_mode, transa, transb, epilogue; const void *bias, *aux; int64_t aux_ld; };
struct LtLayout { uint32_t magic; int type, order; uint64_t rows, cols; int64_t ld; int batch; };
struct LtPref { uint32_t magic; uint64_t max_ws; };
struct LtAlgo { uint32_t magic; uint32_t id; uint64_t workspace; };
struct LtHeuristic { uint64_t algo[8]; size_t workspace; int state; float waves; int reserved[4]; };
static_assert(sizeof(LtDesc) <= 32 * 8 && sizeof(LtLayout) <= 8 * 8 && sizeof(LtPref) <= 8 * 8 && sizeof(LtAlgo) <= 8 * 8, "opaque sizes");
static_assert(sizeof(LtHeuristic) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

template <class T> int lt_create(void **out, uint32_t magic, const char *fn) {
    if (!out) return fail(ST_INVALID_VALUE, std::string(fn) + ": null output pointer");
    T *t = new (std::nothrow) T{};
    if (!t) return fail(ST_ALLOC_FAILED, std::string(fn) + ": out of host memory");
    t->magic = magic;
    *out = t;
    return ST_SUCCESS;
}

template <class T> int lt_destroy(void *p, uint32_t magic, const char *fn) {
    T *t = as<T>(p, magic);
    if (!t) return fail(ST_INVALID_VALUE, std::string(fn) + ": not a live descriptor");
    t->magic = 0;
    delete t;
    return ST_SUCCESS;
}

/* Attribute values are passed by pointer with their size; a mismatch is INVALID_VALUE. */
template <class V> int get_attr(const char *fn, const void *buf, size_t size, V *out) {
    if (!buf || size != sizeof(V)) return fail(ST_INVALID_VALUE, std::string(fn) + ": attribute value null or of the wrong size");
    std::memcpy(out, buf, sizeof(V));
    return ST_SUCCESS;
}

struct LtShape { int64_t m, n, k; };

/* The shapes of a matmul from its descriptors, checked as cuBLASLt checks them. */
int lt_check(const char *fn, void *handle, void *desc, void *ad, void *bd, void *cd, void *dd, LtDesc **op, LtLayout **a,
             LtLayout **b, LtLayout **c, LtLayout **d, LtShape *s) {
    if (!as<LtHandle>(handle, LT_HANDLE)) return fail(ST_NOT_INITIALIZED, std::string(fn) + ": not a live cublasLtHandle_t");
    *op = as<LtDesc>(desc, LT_DESC);
    *a = as<LtLayout>(ad, LT_LAYOUT);
    *b = as<LtLayout>(bd, LT_LAYOUT);
    *c = as<LtLayout>(cd, LT_LAYOUT);
    *d = as<LtLayout>(dd, LT_LAYOUT);
    if (!*op || !*a || !*b || !*c || !*d) return fail(ST_INVALID_VALUE, std::string(fn) + ": a descriptor is null or destroyed");
    for (LtLayout *l : {*a, *b, *c, *d}) {
        if (l->type != R_32F || (*op)->scale_type != R_32F)
            return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements CUDA_R_32F layouts and scale type only");
        if (l->order != 0 || l->batch != 1)
            return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements column-major, unbatched layouts only");
        if (l->ld < (int64_t)(l->rows > 1 ? l->rows : 1)) return fail(ST_INVALID_VALUE, std::string(fn) + ": a layout's ld < its rows");
    }
    const int cmp = (*op)->compute;
    if (cmp != COMPUTE_32F && cmp != COMPUTE_32F_PEDANTIC && cmp != COMPUTE_32F_FAST_TF32 && cmp != COMPUTE_32F_FAST_16BF)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements CUBLAS_COMPUTE_32F(_PEDANTIC / _FAST_TF32 / _FAST_16BF)");
    s->m = (int64_t)(*d)->rows;
    s->n = (int64_t)(*d)->cols;
    s->k = (int64_t)((*op)->transa == OP_N ? (*a)->cols : (*a)->rows);
    const int64_t am = (int64_t)((*op)->transa == OP_N ? (*a)->rows : (*a)->cols);
    const int64_t bk = (int64_t)((*op)->transb == OP_N ? (*b)->rows : (*b)->cols), bn = (int64_t)((*op)->transb == OP_N ? (*b)->cols : (*b)->rows);
    if (am != s->m || bk != s->k || bn != s->n)
        return fail(ST_INVALID_VALUE, std::string(fn) + ": op(A) (" + std::to_string(am) + " x " + std::to_string(s->k) + "), op(B) (" +
                    std::to_string(bk) + " x " + std::to_string(bn) + ") and D (" + std::to_string(s->m) + " x " + std::to_string(s->n) +
                    ") do not make a matrix product");
    if ((*c)->rows != (*d)->rows || (*c)->cols != (*d)->cols) return fail(ST_INVALID_VALUE, std::string(fn) + ": C's shape is not D's");
    const int e = (*op)->epilogue;
    if (e != LT_EPI_DEFAULT && e != LT_EPI_BIAS && e != LT_EPI_GELU && e != LT_EPI_GELU_BIAS && e != LT_EPI_GELU_AUX && e != LT_EPI_GELU_AUX_BIAS)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements the DEFAULT, BIAS and GELU(_AUX)(_BIAS) epilogues only");
    if ((e & 128) && (*op)->aux_ld < s->m) return fail(ST_INVALID_VALUE, std::string(fn) + ": EPILOGUE_AUX_LD < D's rows");
    return ST_SUCCESS;
}

double gelu_tanh(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

}  // namespace

API size_t cublasLtGetVersion(void) { return 130000; }

API int cublasLtCreate(void **handle) {
    if (!lt_driver_emu::initialized()) return fail(ST_NOT_INITIALIZED, "cublasLtCreate: the driver is not initialised (cuInit)");
    return lt_create<LtHandle>(handle, LT_HANDLE, "cublasLtCreate");
}
API int cublasLtDestroy(void *handle) { return lt_destroy<LtHandle>(handle, LT_HANDLE, "cublasLtDestroy"); }

API int cublasLtMatmulDescCreate(void **desc, int compute, int scale_type) {
    int rc = lt_create<LtDesc>(desc, LT_DESC, "cublasLtMatmulDescCreate");
    if (rc) return rc;
    LtDesc *d = static_cast<LtDesc *>(*desc);
    d->compute = compute;
    d->scale_type = scale_type;
    d->transa = d->transb = OP_N;
    d->epilogue = LT_EPI_DEFAULT;
    return ST_SUCCESS;
}
API int cublasLtMatmulDescDestroy(void *desc) { return lt_destroy<LtDesc>(desc, LT_DESC, "cublasLtMatmulDescDestroy"); }

API int cublasLtMatmulDescSetAttribute(void *desc, int attr, const void *buf, size_t size) {
    const char *fn = "cublasLtMatmulDescSetAttribute";
    LtDesc *d = as<LtDesc>(desc, LT_DESC);
    if (!d) return fail(ST_INVALID_VALUE, std::string(fn) + ": not a live cublasLtMatmulDesc_t");
    int32_t v = 0;
    switch (attr) {
        case LT_DESC_COMPUTE_TYPE: return get_attr(fn, buf, size, &d->compute);
        case LT_DESC_SCALE_TYPE: return get_attr(fn, buf, size, &d->scale_type);
        case LT_DESC_POINTER_MODE:
            if (int rc = get_attr(fn, buf, size, &v)) return rc;
            if (v != 0) return fail(ST_NOT_SUPPORTED, std::string(fn) + ": the stand-in implements CUBLASLT_POINTER_MODE_HOST only");
            d->pointer_mode = v;
            return ST_SUCCESS;
        case LT_DESC_TRANSA:
        case LT_DESC_TRANSB:
            if (int rc = get_attr(fn, buf, size, &v)) return rc;
            if (v != OP_N && v != OP_T) return fail(ST_INVALID_VALUE, std::string(fn) + ": TRANSA / TRANSB must be CUBLAS_OP_N or _T for real types");
            (attr == LT_DESC_TRANSA ? d->transa : d->transb) = v;
            return ST_SUCCESS;
        case LT_DESC_EPILOGUE: return get_attr(fn, buf, size, &d->epilogue);
        case LT_DESC_BIAS_POINTER: return get_attr(fn, buf, size, &d->bias);
        case LT_DESC_EPILOGUE_AUX_POINTER: return get_attr(fn, buf, size, &d->aux);
        case LT_DESC_EPILOGUE_AUX_LD: return get_attr(fn, buf, size, &d->aux_ld);
        default: return fail(ST_NOT_SUPPORTED, std::string(fn) + ": attribute " + std::to_string(attr) + " is not implemented by the stand-in");
    }
}

API int cublasLtMatrixLayoutCreate(void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld) {
    int rc = lt_create<LtLayout>(layout, LT_LAYOUT, "cublasLtMatrixLayoutCreate");
    if (rc) return rc;
    LtLayout *l = static_cast<LtLayout *>(*layout);
    l->type = type;
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    l->batch = 1;
    return ST_SUCCESS;
}
API int cublasLtMatrixLayoutDestroy(void *layout) { return lt_destroy<LtLayout>(layout, LT_LAYOUT, "cublasLtMatrixLayoutDestroy"); }

API int cublasLtMatmulPreferenceCreate(void **pref) {
    int rc = lt_create<LtPref>(pref, LT_PREF, "cublasLtMatmulPreferenceCreate");
    if (rc == ST_SUCCESS) static_cast<LtPref *>(*pref)->max_ws = 0;   /* cuBLASLt's default: no workspace */
    return rc;
}
API int cublasLtMatmulPreferenceDestroy(void *pref) { return lt_destroy<LtPref>(pref, LT_PREF, "cublasLtMatmulPreferenceDestroy"); }
API int cublasLtMatmulPreferenceSetAttribute(void *pref, int attr, const void *buf, size_t size) {
    const char *fn = "cublasLtMatmulPreferenceSetAttribute";
    LtPref *p = as<LtPref>(pref, LT_PREF);
    if (!p) return fail(ST_INVALID_VALUE, std::string(fn) + ": not a live cublasLtMatmulPreference_t");
    if (attr == LT_PREF_MAX_WORKSPACE_BYTES) return get_attr(fn, buf, size, &p->max_ws);
    if (attr == LT_PREF_SEARCH_MODE) { uint32_t v; return get_attr(fn, buf, size, &v); }
    return fail(ST_NOT_SUPPORTED, std::string(fn) + ": attribute " + std::to_string(attr) + " is not implemented by the stand-in");
}

API int cublasLtMatmulAlgoGetHeuristic(void *handle, void *desc, void *ad, void *bd, void *cd, void *dd, void *pref, int requested,
                                       void *results, int *returned) {
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    LtDesc *op; LtLayout *a, *b, *c, *d; LtShape s;
    if (int rc = lt_check(fn, handle, desc, ad, bd, cd, dd, &op, &a, &b, &c, &d, &s)) return rc;
    LtPref *p = as<LtPref>(pref, LT_PREF);
    if (!p || !results || !returned || requested < 1)
        return fail(ST_INVALID_VALUE, std::string(fn) + ": null preference / results / count, or requestedAlgoCount < 1");
    *returned = 0;
    if (p->max_ws < LT_WORKSPACE)
        return fail(ST_NOT_SUPPORTED, std::string(fn) + ": no algorithm fits the preference's MAX_WORKSPACE_BYTES (the stand-in's needs 4096)");
    LtHeuristic r{};
    LtAlgo algo{LT_ALGO, 1, LT_WORKSPACE};
    std::memcpy(r.algo, &algo, sizeof algo);
    r.workspace = LT_WORKSPACE;
    r.state = ST_SUCCESS;
    r.waves = 1.0f;
    std::memcpy(results, &r, sizeof r);
    *returned = 1;
    return ST_SUCCESS;
}

API int cublasLtMatmul(void *handle, void *desc, const void *alpha, const void *A, void *ad, const void *B, void *bd, const void *beta,
                       const void *C, void *cd, void *D, void *dd, const void *algo, void *workspace, size_t ws_bytes, void *stream) {
    const char *fn = "cublasLtMatmul";
    LtDesc *op; LtLayout *a, *b, *c, *d; LtShape s;
    if (int rc = lt_check(fn, handle, desc, ad, bd, cd, dd, &op, &a, &b, &c, &d, &s)) return rc;
    if (!alpha || !beta) return fail(ST_INVALID_VALUE, std::string(fn) + ": alpha and beta must not be null");
    if (!lt_driver_emu::is_stream(stream)) return fail(ST_INVALID_VALUE, std::string(fn) + ": not a stream of this context");
    size_t need = 0;
    if (algo) {
        LtAlgo al;
        std::memcpy(&al, algo, sizeof al);
        if (al.magic != LT_ALGO) return fail(ST_INVALID_VALUE, std::string(fn) + ": algo is not one cublasLtMatmulAlgoGetHeuristic returned");
        need = al.workspace;
    }
    if (ws_bytes < need) return fail(ST_INVALID_VALUE, std::string(fn) + ": workspace smaller than the algo's workspaceSize");
    if (ws_bytes > 0 && (!workspace || !lt_driver_emu::inside((uintptr_t)workspace, ws_bytes)))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": the workspace is not inside one device allocation");
    const int e = op->epilogue;
    const bool has_bias = e == LT_EPI_BIAS || e == LT_EPI_GELU_BIAS || e == LT_EPI_GELU_AUX_BIAS, gelu = (e & 32) != 0, aux = (e & 128) != 0;
    if (s.m == 0 || s.n == 0) return ST_SUCCESS;
    const int64_t a_rows = (int64_t)a->rows, a_cols = (int64_t)a->cols, b_rows = (int64_t)b->rows, b_cols = (int64_t)b->cols;
    if (s.k > 0 && (!extent_inside(A, a_rows, a_cols, a->ld, 0, 1) || !extent_inside(B, b_rows, b_cols, b->ld, 0, 1)))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": A's or B's extent is not inside one device allocation");
    if (!extent_inside(D, s.m, s.n, d->ld, 0, 1) || (*static_cast<const float *>(beta) != 0.0f && !extent_inside(C, s.m, s.n, c->ld, 0, 1)))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": C's or D's extent is not inside one device allocation");
    if (has_bias && (!op->bias || !lt_driver_emu::inside((uintptr_t)op->bias, (size_t)s.m * 4)))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": the BIAS_POINTER (D's rows floats) is not inside one device allocation");
    if (aux && (!op->aux || !extent_inside(op->aux, s.m, s.n, op->aux_ld, 0, 1)))
        return fail(ST_EXECUTION_FAILED, std::string(fn) + ": the EPILOGUE_AUX_POINTER's extent is not inside one device allocation");
    const int compute = op->compute;
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    /* the descriptor's and layouts' values are read now (a replayed capture sees them as they were at the call, as
     * cuBLASLt's do); the computation is enqueued on `stream`: run now, or recorded while that stream captures */
    const int transa = op->transa, transb = op->transb;
    const int64_t lda = (int64_t)a->ld, ldb = (int64_t)b->ld, ldc = (int64_t)c->ld, ldd = (int64_t)d->ld, aux_ld = (int64_t)op->aux_ld;
    const void *bias_p = op->bias, *aux_p = op->aux;
    const LtShape sh = s;
    lt_driver_emu::count(lt_driver_emu::CNT_CUBLASLT_MATMUL);
    return enqueued(fn, stream, [=] {
    auto rnd = [compute](float x) {
        return compute == COMPUTE_32F_FAST_TF32 ? to_tf32(x) : compute == COMPUTE_32F_FAST_16BF ? to_bf16(x) : x;
    };
    const float *pa = static_cast<const float *>(A), *pb = static_cast<const float *>(B), *pc = static_cast<const float *>(C);
    const float *bias = static_cast<const float *>(bias_p);
    std::vector<float> out((size_t)(sh.m * sh.n));   /* C may alias D: read every C before writing any D */
    std::vector<float> pre(aux ? out.size() : 0);
    for (int64_t j = 0; j < sh.n; j++)
        for (int64_t i = 0; i < sh.m; i++) {
            double acc = 0;
            for (int64_t p = 0; p < sh.k; p++) {
                const float x = transa == OP_N ? pa[i + p * lda] : pa[p + i * lda];
                const float y = transb == OP_N ? pb[p + j * ldb] : pb[j + p * ldb];
                acc += (double)rnd(x) * (double)rnd(y);
            }
            double v = (double)al * acc + (be == 0.0f ? 0.0 : (double)be * pc[i + j * ldc]);
            if (has_bias) v += bias[i];
            if (aux) pre[(size_t)(i + j * sh.m)] = (float)v;
            out[(size_t)(i + j * sh.m)] = (float)(gelu ? gelu_tanh(v) : v);
        }
    float *pd = static_cast<float *>(D);
    for (int64_t j = 0; j < sh.n; j++)
        for (int64_t i = 0; i < sh.m; i++) {
            pd[i + j * ldd] = out[(size_t)(i + j * sh.m)];
            if (aux) static_cast<float *>(const_cast<void *>(aux_p))[i + j * aux_ld] = pre[(size_t)(i + j * sh.m)];
        }
    return 0;
    }, ST_EXECUTION_FAILED);
}

/* ==== cuDNN 9 backend (graph) API (cudnn_graph.h): the entry points dev.latent.cuda.CuDnnAttention binds ====
 *
 * cudnnBackendCreateDescriptor / SetAttribute / GetAttribute / Finalize / DestroyDescriptor / Execute with cuDNN's
 * enum values (descriptor types, attribute names, attribute types, pointwise modes, reduction operators, data types).
 * Every descriptor records its attributes as set (type and element count checked against the attribute: a mismatch
 * is CUDNN_STATUS_BAD_PARAM); Finalize checks the attributes each type requires (tensors: data type, dimensions,
 * strides, unique id, byte alignment; operations: finalized descriptors of the right types).
 *
 * The one graph the stand-in runs is the causal SDPA forward as cuDNN 9's fused flash-attention engine takes it
 * (the pattern cudnn-frontend's sdpa node builds): S = matmul(Q, K^T); S1 = S * attn_scale (a by-value scalar);
 * row = GEN_INDEX(S1, axis 2), col = GEN_INDEX(S1, axis 3), mask = CMP_GE(row, col);
 * S2 = BINARY_SELECT(S1, neg_inf (by-value), mask); M = reduction MAX(S2) over the last axis; E = EXP(S2 - M);
 * L = reduction ADD(E); Stats = M + LOG(L) (saved for the backward); O = matmul(E / L, V). Q, K, V, O bf16 with any
 * strides (K^T is K's memory with swapped strides), Stats fp32 (B, H, T, 1). OPERATIONGRAPH Finalize traces the ops
 * through their tensors' unique ids and answers CUDNN_STATUS_BAD_PARAM, naming the first difference, for any other
 * graph (a real cuDNN accepts any well-formed graph there and refuses unsupported patterns at engine selection with
 * NOT_SUPPORTED_GRAPH_PATTERN: the stand-in is stricter, and earlier, on purpose). Execute computes the reference
 * (kernels/attention/attention_ref.c's definition) in double from the bf16 inputs converted exactly, rounds O to bf16
 * (to nearest even) and writes Stats as float; it asks for a 4 KiB workspace (EXECUTION_PLAN_WORKSPACE_SIZE) so a
 * caller that passes none is caught. The causal SDPA backward graph is traced and computed the same way (below). */

namespace {

enum : int { BK_POINTWISE = 0, BK_ENGINE = 2, BK_ENGINECFG = 3, BK_ENGINEHEUR = 4, BK_PLAN = 5, BK_OP_POINTWISE = 13,
             BK_OPGRAPH = 15, BK_VARPACK = 16, BK_TENSOR = 17, BK_MATMUL = 18, BK_OP_MATMUL = 19, BK_REDUCTION = 21,
             BK_OP_REDUCTION = 22, BK_OP_RESHAPE = 31, BK_TYPE_END = 36 };
enum : int { A_PW_MODE = 0, A_PW_MATH_PREC = 1, A_PW_AXIS = 9, A_HEUR_MODE = 200, A_HEUR_GRAPH = 201, A_HEUR_RESULTS = 202,
             A_CFG_ENGINE = 300, A_CFG_WORKSPACE = 303, A_PLAN_HANDLE = 400, A_PLAN_CFG = 401, A_PLAN_WORKSPACE = 402,
             A_OPPW_DESC = 750, A_OPPW_X = 751, A_OPPW_B = 752, A_OPPW_Y = 753, A_OPPW_T = 758, A_GRAPH_HANDLE = 800,
             A_GRAPH_OPS = 801, A_T_ALIGN = 900, A_T_DTYPE = 901, A_T_DIMS = 902, A_T_STRIDES = 903, A_T_UID = 906,
             A_T_VIRTUAL = 907, A_T_BY_VALUE = 908, A_VP_UIDS = 1000, A_VP_PTRS = 1001, A_VP_WORKSPACE = 1003,
             A_MM_COMP = 1500, A_OPMM_A = 1520, A_OPMM_B = 1521, A_OPMM_C = 1522, A_OPMM_DESC = 1523, A_RED_OP = 1600,
             A_RED_COMP = 1601, A_OPRED_X = 1610, A_OPRED_Y = 1611, A_OPRED_DESC = 1612, A_RESHAPE_X = 2200,
             A_RESHAPE_Y = 2201 };
enum : int { TY_HANDLE = 0, TY_DATA_TYPE = 1, TY_BOOLEAN = 2, TY_INT64 = 3, TY_FLOAT = 4, TY_VOID_PTR = 6, TY_HEUR_MODE = 8,
             TY_POINTWISE_MODE = 14, TY_DESCRIPTOR = 15, TY_REDUCTION_OP = 18 };
enum : int { DT_FLOAT = 0, DT_INT32 = 4, DT_BF16 = 9, DT_BOOLEAN = 11 };
enum : int { PW_ADD = 0, PW_MUL = 1, PW_DIV = 6, PW_SUB = 9, PW_EXP = 13, PW_LOG = 15, PW_IDENTITY = 21, PW_CMP_GE = 303, PW_GEN_INDEX = 501,
             PW_BINARY_SELECT = 601 };
enum : int { RED_ADD = 0, RED_MAX = 3 };
constexpr uint32_t BK_MAGIC = 0x6c74626bu; /* "ltbk" */
constexpr size_t SDPA_WORKSPACE = 4096;

struct Attr { int type; std::vector<uint8_t> bytes; int64_t count; };

struct TensorInfo { int64_t uid = -1; int dtype = -1; int rank = 0; int64_t dims[8] = {}, strides[8] = {}; bool is_virtual = false, by_value = false; };

struct SdpaGraph { int64_t b = 0, h = 0, t = 0, d = 0; TensorInfo q, kt, v, o, stats, scale, neg_inf; };
struct SdpaBwdGraph;

struct Bk {
    uint32_t magic;
    int type;
    bool finalized;
    std::vector<std::pair<int, Attr>> attrs;
    TensorInfo tensor;                        /* BK_TENSOR, once finalized */
    std::shared_ptr<SdpaGraph> graph;         /* OPGRAPH / ENGINEHEUR / ENGINECFG / PLAN: the forward, once finalized or filled */
    std::shared_ptr<SdpaBwdGraph> bwd;        /* ... or the backward */
};

size_t type_size(int ty) {
    switch (ty) {
        case TY_BOOLEAN: return 1;
        case TY_DATA_TYPE: case TY_FLOAT: case TY_HEUR_MODE: case TY_POINTWISE_MODE: case TY_REDUCTION_OP: return 4;
        case TY_HANDLE: case TY_INT64: case TY_VOID_PTR: case TY_DESCRIPTOR: return 8;
        default: return 0;
    }
}

/* The attribute type cuDNN documents for each attribute the stand-in knows; -1: unknown to the stand-in. */
int attr_type(int a) {
    switch (a) {
        case A_PW_MODE: return TY_POINTWISE_MODE;
        case A_PW_MATH_PREC: case A_T_DTYPE: case A_MM_COMP: case A_RED_COMP: return TY_DATA_TYPE;
        case A_PW_AXIS: case A_CFG_WORKSPACE: case A_PLAN_WORKSPACE: case A_T_ALIGN: case A_T_DIMS: case A_T_STRIDES: case A_T_UID:
        case A_VP_UIDS: return TY_INT64;
        case A_HEUR_MODE: return TY_HEUR_MODE;
        case A_HEUR_GRAPH: case A_HEUR_RESULTS: case A_CFG_ENGINE: case A_PLAN_CFG: case A_OPPW_DESC: case A_OPPW_X: case A_OPPW_B:
        case A_OPPW_Y: case A_OPPW_T: case A_GRAPH_OPS: case A_OPMM_A: case A_OPMM_B: case A_OPMM_C: case A_OPMM_DESC:
        case A_OPRED_X: case A_OPRED_Y: case A_OPRED_DESC: case A_RESHAPE_X: case A_RESHAPE_Y: return TY_DESCRIPTOR;
        case A_PLAN_HANDLE: case A_GRAPH_HANDLE: return TY_HANDLE;
        case A_T_VIRTUAL: case A_T_BY_VALUE: return TY_BOOLEAN;
        case A_VP_PTRS: case A_VP_WORKSPACE: return TY_VOID_PTR;
        case A_RED_OP: return TY_REDUCTION_OP;
        default: return -1;
    }
}

Bk *bk(void *p) {
    Bk *d = static_cast<Bk *>(p);
    return d && d->magic == BK_MAGIC ? d : nullptr;
}

const Attr *find_attr(const Bk *d, int name) {
    for (auto &a : d->attrs)
        if (a.first == name) return &a.second;
    return nullptr;
}

template <class V> bool attr_values(const Bk *d, int name, std::vector<V> *out) {
    const Attr *a = find_attr(d, name);
    if (!a) return false;
    out->resize((size_t)a->count);
    if (a->count) std::memcpy(out->data(), a->bytes.data(), (size_t)a->count * sizeof(V));
    return true;
}

template <class V> bool attr_value(const Bk *d, int name, V *out) {
    std::vector<V> v;
    if (!attr_values(d, name, &v) || v.size() != 1) return false;
    *out = v[0];
    return true;
}

/* A finalized descriptor of the given type held by attribute `name` of d (null if absent or not so). */
Bk *held(const Bk *d, int name, int type) {
    void *p = nullptr;
    if (!attr_value(d, name, &p)) return nullptr;
    Bk *h = bk(p);
    return h && h->type == type && h->finalized ? h : nullptr;
}

int finalize_tensor(Bk *d) {
    const char *fn = "cudnnBackendFinalize(TENSOR)";
    TensorInfo &t = d->tensor;
    std::vector<int64_t> dims, strides;
    int64_t align = 0;
    if (!attr_value(d, A_T_DTYPE, &t.dtype) || !attr_values(d, A_T_DIMS, &dims) || !attr_values(d, A_T_STRIDES, &strides) ||
        !attr_value(d, A_T_UID, &t.uid) || !attr_value(d, A_T_ALIGN, &align))
        return fail(DNN_BAD_PARAM, std::string(fn) + ": data type, dimensions, strides, unique id and byte alignment are required");
    if (dims.empty() || dims.size() > 8 || dims.size() != strides.size())
        return fail(DNN_BAD_PARAM, std::string(fn) + ": 1 to 8 dimensions, as many strides");
    t.rank = (int)dims.size();
    for (int i = 0; i < t.rank; i++) {
        if (dims[i] < 1 || strides[i] < 1) return fail(DNN_BAD_PARAM, std::string(fn) + ": dimensions and strides must be >= 1");
        t.dims[i] = dims[i];
        t.strides[i] = strides[i];
    }
    uint8_t v = 0;   /* CUDNN_TYPE_BOOLEAN: a C bool, one byte */
    if (attr_value(d, A_T_VIRTUAL, &v)) t.is_virtual = v != 0;
    if (attr_value(d, A_T_BY_VALUE, &v)) t.by_value = v != 0;
    return DNN_SUCCESS;
}

/* One operation of a graph, as the SDPA tracing reads it. */
struct OpInfo { int kind; int mode; int64_t axis; const TensorInfo *x, *b, *t, *y; };

struct Tracer {
    std::vector<OpInfo> ops;
    std::string why;
    const OpInfo *producer(const TensorInfo *t) const {
        for (auto &o : ops)
            if (o.y->uid == t->uid) return &o;
        return nullptr;
    }
    /* The op producing t, required to be of `kind` (and pointwise / reduction `mode`). */
    const OpInfo *need(const TensorInfo *t, int kind, int mode, const char *what) {
        const OpInfo *o = t ? producer(t) : nullptr;
        if (!o || o->kind != kind || (mode >= 0 && o->mode != mode)) {
            if (why.empty()) why = std::string("expected ") + what + " (producing tensor uid " + (t ? std::to_string(t->uid) : "?") + ")";
            return nullptr;
        }
        return o;
    }
};

bool dims_are(const TensorInfo *t, int64_t a, int64_t b, int64_t c, int64_t d) {
    return t && t->rank == 4 && t->dims[0] == a && t->dims[1] == b && t->dims[2] == c && t->dims[3] == d;
}

/* The backward graph's tracing and execution, defined below with the bf16 helpers. */
int trace_backward(const char *fn, Tracer &tr, std::shared_ptr<SdpaBwdGraph> *out);


int finalize_graph(Bk *g) {
    const char *fn = "cudnnBackendFinalize(OPERATIONGRAPH)";
    void *h = nullptr;
    if (!attr_value(g, A_GRAPH_HANDLE, &h) || !as<DnnHandle>(h, DNN_HANDLE))
        return fail(DNN_BAD_PARAM, std::string(fn) + ": CUDNN_ATTR_OPERATIONGRAPH_HANDLE is not a live cudnnHandle_t");
    std::vector<void *> ops;
    if (!attr_values(g, A_GRAPH_OPS, &ops) || ops.empty()) return fail(DNN_BAD_PARAM, std::string(fn) + ": no operations");
    Tracer tr;
    for (void *p : ops) {
        Bk *o = bk(p);
        if (!o || !o->finalized) return fail(DNN_BAD_PARAM, std::string(fn) + ": an operation is not a finalized descriptor");
        OpInfo info{o->type, -1, -1, nullptr, nullptr, nullptr, nullptr};
        auto tensor = [&](int attr) -> const TensorInfo * {
            Bk *t = held(o, attr, BK_TENSOR);
            return t ? &t->tensor : nullptr;
        };
        if (o->type == BK_OP_MATMUL) {
            info.x = tensor(A_OPMM_A);
            info.b = tensor(A_OPMM_B);
            info.y = tensor(A_OPMM_C);
        } else if (o->type == BK_OP_POINTWISE) {
            Bk *pw = held(o, A_OPPW_DESC, BK_POINTWISE);
            if (!pw) return fail(DNN_BAD_PARAM, std::string(fn) + ": a pointwise operation's PW_DESCRIPTOR was destroyed");
            attr_value(pw, A_PW_MODE, &info.mode);
            attr_value(pw, A_PW_AXIS, &info.axis);
            info.x = tensor(A_OPPW_X);
            info.b = tensor(A_OPPW_B);
            info.t = tensor(A_OPPW_T);
            info.y = tensor(A_OPPW_Y);
        } else if (o->type == BK_OP_REDUCTION) {
            Bk *rd = held(o, A_OPRED_DESC, BK_REDUCTION);
            if (!rd) return fail(DNN_BAD_PARAM, std::string(fn) + ": a reduction's DESC was destroyed");
            attr_value(rd, A_RED_OP, &info.mode);
            info.x = tensor(A_OPRED_X);
            info.y = tensor(A_OPRED_Y);
        } else if (o->type == BK_OP_RESHAPE) {
            info.x = tensor(A_RESHAPE_X);
            info.y = tensor(A_RESHAPE_Y);
        } else {
            return fail(DNN_BAD_PARAM, std::string(fn) + ": the stand-in runs matmul, pointwise, reduction and reshape operations only");
        }
        if (!info.x || !info.y) return fail(DNN_BAD_PARAM, std::string(fn) + ": an operation's tensor descriptor was destroyed");
        for (auto &prev : tr.ops)
            if (prev.y->uid == info.y->uid) return fail(DNN_BAD_PARAM, std::string(fn) + ": two operations write tensor uid " + std::to_string(info.y->uid));
        tr.ops.push_back(info);
    }
    for (auto &o : tr.ops)
        if (o.kind == BK_OP_POINTWISE && o.mode == PW_IDENTITY) return trace_backward(fn, tr, &g->bwd);
    /* trace the causal SDPA forward back from its two outputs: O (the matmul with a non-virtual output) and Stats */
    const OpInfo *bmm2 = nullptr;
    for (auto &o : tr.ops)
        if (o.kind == BK_OP_MATMUL && !o.y->is_virtual) bmm2 = &o;
    auto bad = [&](const std::string &w) { return fail(DNN_BAD_PARAM, std::string(fn) + ": not the causal SDPA forward graph: " + w); };
    if (!bmm2 || tr.ops.size() != 14) return bad("14 operations ending in a matmul into a non-virtual O are expected, got " + std::to_string(tr.ops.size()));
    const OpInfo *div = tr.need(bmm2->x, BK_OP_POINTWISE, PW_DIV, "P = DIV(E, L) as the O matmul's A");
    const OpInfo *exp_ = div ? tr.need(div->x, BK_OP_POINTWISE, PW_EXP, "E = EXP(S2 - M)") : nullptr;
    const OpInfo *sum = div ? tr.need(div->b, BK_OP_REDUCTION, RED_ADD, "L = reduction ADD(E)") : nullptr;
    if (sum && exp_ && sum->x->uid != exp_->y->uid) tr.why = "L must sum E";
    const OpInfo *sub = exp_ ? tr.need(exp_->x, BK_OP_POINTWISE, PW_SUB, "S2 - M") : nullptr;
    const OpInfo *max = sub ? tr.need(sub->b, BK_OP_REDUCTION, RED_MAX, "M = reduction MAX(S2)") : nullptr;
    const OpInfo *sel = sub ? tr.need(sub->x, BK_OP_POINTWISE, PW_BINARY_SELECT, "S2 = BINARY_SELECT(S1, -inf, mask)") : nullptr;
    if (max && sel && max->x->uid != sel->y->uid) tr.why = "M must be the maximum of S2";
    const OpInfo *cmp = sel ? tr.need(sel->t, BK_OP_POINTWISE, PW_CMP_GE, "mask = CMP_GE(row index, column index)") : nullptr;
    const OpInfo *row = cmp ? tr.need(cmp->x, BK_OP_POINTWISE, PW_GEN_INDEX, "row = GEN_INDEX(axis 2)") : nullptr;
    const OpInfo *col = cmp ? tr.need(cmp->b, BK_OP_POINTWISE, PW_GEN_INDEX, "col = GEN_INDEX(axis 3)") : nullptr;
    if (row && col && (row->axis != 2 || col->axis != 3)) tr.why = "the mask must compare GEN_INDEX axis 2 (rows) >= axis 3 (columns)";
    const OpInfo *mul = sel ? tr.need(sel->x, BK_OP_POINTWISE, PW_MUL, "S1 = MUL(S, attn_scale)") : nullptr;
    const OpInfo *bmm1 = mul ? tr.need(mul->x, BK_OP_MATMUL, -1, "S = matmul(Q, K^T)") : nullptr;
    const OpInfo *stats = nullptr;
    for (auto &o : tr.ops)
        if (o.kind == BK_OP_POINTWISE && o.mode == PW_ADD && !o.y->is_virtual) stats = &o;
    const OpInfo *log_ = stats ? tr.need(stats->b, BK_OP_POINTWISE, PW_LOG, "Stats = ADD(M, LOG(L))") : nullptr;
    if (!stats && tr.why.empty()) tr.why = "no non-virtual Stats = ADD(M, LOG(L))";
    if (stats && max && stats->x->uid != max->y->uid) tr.why = "Stats must add M";
    if (log_ && sum && log_->x->uid != sum->y->uid) tr.why = "Stats must take the LOG of L";
    if (row && mul && (row->x->uid != mul->y->uid || col->x->uid != mul->y->uid)) tr.why = "GEN_INDEX must index S1";
    if (!tr.why.empty()) return bad(tr.why);
    if (!sel->b || !sel->b->by_value || !mul->b || !mul->b->by_value) return bad("attn_scale and the mask's fill value must be by-value scalars");
    auto sg = std::make_shared<SdpaGraph>();
    sg->q = *bmm1->x; sg->kt = *bmm1->b; sg->v = *bmm2->b; sg->o = *bmm2->y; sg->stats = *stats->y; sg->scale = *mul->b; sg->neg_inf = *sel->b;
    const int64_t B = sg->q.dims[0], H = sg->q.dims[1], T = sg->q.dims[2], D = sg->q.dims[3];
    if (!dims_are(&sg->q, B, H, T, D) || !dims_are(&sg->kt, B, H, D, T) || !dims_are(&sg->v, B, H, T, D) || !dims_are(&sg->o, B, H, T, D) ||
        !dims_are(&sg->stats, B, H, T, 1) || !dims_are(bmm1->y, B, H, T, T) || !dims_are(max->y, B, H, T, 1) || !dims_are(sum->y, B, H, T, 1))
        return bad("Q, O, V (B, H, T, D), K^T (B, H, D, T), S (B, H, T, T) and Stats, M, L (B, H, T, 1) are expected");
    if (sg->q.dtype != DT_BF16 || sg->kt.dtype != DT_BF16 || sg->v.dtype != DT_BF16 || sg->o.dtype != DT_BF16 || sg->stats.dtype != DT_FLOAT ||
        sg->scale.dtype != DT_FLOAT || sg->neg_inf.dtype != DT_FLOAT)
        return bad("Q, K, V, O must be bf16, Stats, attn_scale and the fill value float");
    for (const TensorInfo *t : {&sg->q, &sg->kt, &sg->v, &sg->o, &sg->stats})
        if (t->is_virtual || t->by_value) return bad("Q, K, V, O and Stats must be non-virtual device tensors");
    sg->b = B; sg->h = H; sg->t = T; sg->d = D;
    g->graph = sg;
    return DNN_SUCCESS;
}

int finalize(Bk *d) {
    const char *fn = "cudnnBackendFinalize";
    switch (d->type) {
        case BK_TENSOR: return finalize_tensor(d);
        case BK_POINTWISE: {
            int mode;
            if (!attr_value(d, A_PW_MODE, &mode)) return fail(DNN_BAD_PARAM, std::string(fn) + "(POINTWISE): CUDNN_ATTR_POINTWISE_MODE is required");
            int64_t axis;
            if (mode == PW_GEN_INDEX && !attr_value(d, A_PW_AXIS, &axis))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(POINTWISE): GEN_INDEX needs CUDNN_ATTR_POINTWISE_AXIS");
            return DNN_SUCCESS;
        }
        case BK_MATMUL: {
            int c;
            return attr_value(d, A_MM_COMP, &c) ? DNN_SUCCESS : fail(DNN_BAD_PARAM, std::string(fn) + "(MATMUL): COMP_TYPE is required");
        }
        case BK_REDUCTION: {
            int op, c;
            if (!attr_value(d, A_RED_OP, &op) || !attr_value(d, A_RED_COMP, &c))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(REDUCTION): OPERATOR and COMP_TYPE are required");
            return DNN_SUCCESS;
        }
        case BK_OP_MATMUL:
            if (!held(d, A_OPMM_A, BK_TENSOR) || !held(d, A_OPMM_B, BK_TENSOR) || !held(d, A_OPMM_C, BK_TENSOR) || !held(d, A_OPMM_DESC, BK_MATMUL))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_MATMUL): A, B, C (finalized tensors) and DESC (a finalized MATMUL) are required");
            return DNN_SUCCESS;
        case BK_OP_POINTWISE: {
            Bk *pw = held(d, A_OPPW_DESC, BK_POINTWISE);
            if (!pw || !held(d, A_OPPW_X, BK_TENSOR) || !held(d, A_OPPW_Y, BK_TENSOR))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_POINTWISE): PW_DESCRIPTOR, XDESC and YDESC are required");
            int mode = -1;
            attr_value(pw, A_PW_MODE, &mode);
            const bool binary = mode == PW_ADD || mode == PW_MUL || mode == PW_DIV || mode == PW_SUB || mode == PW_CMP_GE || mode == PW_BINARY_SELECT;
            if (binary && !held(d, A_OPPW_B, BK_TENSOR)) return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_POINTWISE): a binary mode needs BDESC");
            if (mode == PW_BINARY_SELECT && !held(d, A_OPPW_T, BK_TENSOR))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_POINTWISE): BINARY_SELECT needs TDESC");
            return DNN_SUCCESS;
        }
        case BK_OP_REDUCTION:
            if (!held(d, A_OPRED_X, BK_TENSOR) || !held(d, A_OPRED_Y, BK_TENSOR) || !held(d, A_OPRED_DESC, BK_REDUCTION))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_REDUCTION): XDESC, YDESC and DESC are required");
            return DNN_SUCCESS;
        case BK_OP_RESHAPE:
            if (!held(d, A_RESHAPE_X, BK_TENSOR) || !held(d, A_RESHAPE_Y, BK_TENSOR))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(OPERATION_RESHAPE): XDESC and YDESC are required");
            return DNN_SUCCESS;
        case BK_OPGRAPH: return finalize_graph(d);
        case BK_ENGINEHEUR: {
            Bk *g = held(d, A_HEUR_GRAPH, BK_OPGRAPH);
            int mode;
            if (!g || !attr_value(d, A_HEUR_MODE, &mode))
                return fail(DNN_BAD_PARAM, std::string(fn) + "(ENGINEHEUR): a finalized OPERATION_GRAPH and MODE are required");
            d->graph = g->graph;
            d->bwd = g->bwd;
            return DNN_SUCCESS;
        }
        case BK_ENGINECFG:
            if (!d->graph && !d->bwd) return fail(DNN_BAD_PARAM, std::string(fn) + "(ENGINECFG): no engine (fill it from CUDNN_ATTR_ENGINEHEUR_RESULTS)");
            return DNN_SUCCESS;
        case BK_PLAN: {
            void *h = nullptr;
            Bk *cfg = held(d, A_PLAN_CFG, BK_ENGINECFG);
            if (!attr_value(d, A_PLAN_HANDLE, &h) || !as<DnnHandle>(h, DNN_HANDLE) || !cfg)
                return fail(DNN_BAD_PARAM, std::string(fn) + "(EXECUTION_PLAN): a live HANDLE and a finalized ENGINE_CONFIG are required");
            d->graph = cfg->graph;
            d->bwd = cfg->bwd;
            return DNN_SUCCESS;
        }
        case BK_VARPACK: {
            std::vector<int64_t> uids;
            std::vector<void *> ptrs;
            if (!attr_values(d, A_VP_UIDS, &uids) || !attr_values(d, A_VP_PTRS, &ptrs) || uids.size() != ptrs.size())
                return fail(DNN_BAD_PARAM, std::string(fn) + "(VARIANT_PACK): as many UNIQUE_IDS as DATA_POINTERS are required");
            return DNN_SUCCESS;
        }
        default: return fail(DNN_NOT_SUPPORTED, std::string(fn) + ": descriptor type " + std::to_string(d->type) + " is not implemented by the stand-in");
    }
}

uint16_t to_bf16_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return (uint16_t)((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u));
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* from_bf16: defined above (the bf16 GEMM stand-in's) */

/* Bytes from a tensor's base pointer to one past its last element (element size esz). */
size_t extent_bytes(const TensorInfo &t, size_t esz) {
    int64_t last = 0;
    for (int i = 0; i < t.rank; i++) last += (t.dims[i] - 1) * t.strides[i];
    return (size_t)(last + 1) * esz;
}

int64_t off4(const TensorInfo &t, int64_t a, int64_t b, int64_t c, int64_t d) {
    return a * t.strides[0] + b * t.strides[1] + c * t.strides[2] + d * t.strides[3];
}

/* ---- the causal SDPA backward graph (cudnn-frontend's sdpa backward pattern, composite form) ----
 *   softmax_sum = reduction ADD(dO * O) * one          (non-virtual fp32 (B, H, T, 1): D_i = dO_i . O_i)
 *   S = matmul(Q, K^T) * attn_scale - Stats;  S' = BINARY_SELECT(S, -inf, CMP_GE(GEN_INDEX(axis 2), GEN_INDEX(axis 3)))
 *   P = EXP(S');  dV = matmul(RESHAPE(P) = P^T, dO)
 *   dS = (matmul(dO, V^T) - softmax_sum) * P * attn_scale
 *   dK = matmul(RESHAPE(dS) = dS^T, Q);  dQ_accum = matmul(dS, RESHAPE(K^T) = K) (non-virtual fp32);  dQ = IDENTITY(dQ_accum)
 * 22 operations. The reference (attention_ref.c's backward) recomputes P from the given Stats, in double. */


struct SdpaBwdGraph { int64_t b = 0, h = 0, t = 0, d = 0; TensorInfo q, kt, vt, o, dout, stats, dq, dk, dv, ssum, dq_acc, scale, neg_inf, one; };

int trace_backward(const char *fn, Tracer &tr, std::shared_ptr<SdpaBwdGraph> *out) {
    auto bad = [&](const std::string &w) { return fail(DNN_BAD_PARAM, std::string(fn) + ": not the causal SDPA backward graph: " + w); };
    if (tr.ops.size() != 22) return bad("22 operations are expected, got " + std::to_string(tr.ops.size()));
    const OpInfo *ident = nullptr;
    for (auto &o : tr.ops)
        if (o.kind == BK_OP_POINTWISE && o.mode == PW_IDENTITY) ident = &o;
    if (!ident) return bad("no dQ = IDENTITY(dQ_accum)");
    const OpInfo *mm_q = tr.need(ident->x, BK_OP_MATMUL, -1, "dQ_accum = matmul(dS, K)");
    const OpInfo *ds2 = mm_q ? tr.need(mm_q->x, BK_OP_POINTWISE, PW_MUL, "dS = ... * attn_scale") : nullptr;
    const OpInfo *rk = mm_q ? tr.need(mm_q->b, BK_OP_RESHAPE, -1, "K = RESHAPE(K^T)") : nullptr;
    const OpInfo *ds = ds2 ? tr.need(ds2->x, BK_OP_POINTWISE, PW_MUL, "(dP - softmax_sum) * P") : nullptr;
    const OpInfo *sub = ds ? tr.need(ds->x, BK_OP_POINTWISE, PW_SUB, "dP - softmax_sum") : nullptr;
    const OpInfo *exp_ = ds ? tr.need(ds->b, BK_OP_POINTWISE, PW_EXP, "P = EXP(S')") : nullptr;
    const OpInfo *mm_dp = sub ? tr.need(sub->x, BK_OP_MATMUL, -1, "dP = matmul(dO, V^T)") : nullptr;
    const OpInfo *one = sub ? tr.need(sub->b, BK_OP_POINTWISE, PW_MUL, "softmax_sum = reduction * one") : nullptr;
    const OpInfo *red = one ? tr.need(one->x, BK_OP_REDUCTION, RED_ADD, "reduction ADD(dO * O)") : nullptr;
    const OpInfo *doo = red ? tr.need(red->x, BK_OP_POINTWISE, PW_MUL, "dO * O") : nullptr;
    const OpInfo *sel = exp_ ? tr.need(exp_->x, BK_OP_POINTWISE, PW_BINARY_SELECT, "S' = BINARY_SELECT(S, -inf, mask)") : nullptr;
    const OpInfo *cmp = sel ? tr.need(sel->t, BK_OP_POINTWISE, PW_CMP_GE, "mask = CMP_GE(row index, column index)") : nullptr;
    const OpInfo *row = cmp ? tr.need(cmp->x, BK_OP_POINTWISE, PW_GEN_INDEX, "row = GEN_INDEX(axis 2)") : nullptr;
    const OpInfo *col = cmp ? tr.need(cmp->b, BK_OP_POINTWISE, PW_GEN_INDEX, "col = GEN_INDEX(axis 3)") : nullptr;
    if (row && col && (row->axis != 2 || col->axis != 3)) tr.why = "the mask must compare GEN_INDEX axis 2 (rows) >= axis 3 (columns)";
    const OpInfo *sub_s = sel ? tr.need(sel->x, BK_OP_POINTWISE, PW_SUB, "S * attn_scale - Stats") : nullptr;
    const OpInfo *mul_s = sub_s ? tr.need(sub_s->x, BK_OP_POINTWISE, PW_MUL, "S * attn_scale") : nullptr;
    const OpInfo *mm_s = mul_s ? tr.need(mul_s->x, BK_OP_MATMUL, -1, "S = matmul(Q, K^T)") : nullptr;
    if (!tr.why.empty()) return bad(tr.why);
    if (row->x->uid != sub_s->y->uid || col->x->uid != sub_s->y->uid) return bad("GEN_INDEX must index the scores");
    const OpInfo *mm_v = nullptr, *mm_k = nullptr;
    for (auto &o : tr.ops) {
        if (o.kind != BK_OP_MATMUL) continue;
        const OpInfo *ra = tr.producer(o.x);
        if (!ra || ra->kind != BK_OP_RESHAPE) continue;
        if (ra->x->uid == exp_->y->uid && o.b->uid == doo->x->uid) mm_v = &o;
        if (ra->x->uid == ds2->y->uid && o.b->uid == mm_s->x->uid) mm_k = &o;
    }
    if (!mm_v) return bad("no dV = matmul(RESHAPE(P), dO)");
    if (!mm_k) return bad("no dK = matmul(RESHAPE(dS), Q)");
    if (mm_dp->x->uid != doo->x->uid) return bad("dP must multiply dO (the tensor dO * O reads)");
    if (rk->x->uid != mm_s->b->uid) return bad("dQ's K must be the RESHAPE of S's K^T");
    for (const OpInfo *o : {ds2, mul_s})
        if (!o->b || !o->b->by_value) return bad("attn_scale must be a by-value scalar");
    if (!sel->b || !sel->b->by_value || !one->b || !one->b->by_value) return bad("the mask's fill value and one must be by-value scalars");
    auto g = std::make_shared<SdpaBwdGraph>();
    g->q = *mm_s->x; g->kt = *mm_s->b; g->vt = *mm_dp->b; g->o = *doo->b; g->dout = *doo->x; g->stats = *sub_s->b;
    g->dq = *ident->y; g->dk = *mm_k->y; g->dv = *mm_v->y; g->ssum = *one->y; g->dq_acc = *mm_q->y;
    g->scale = *mul_s->b; g->neg_inf = *sel->b; g->one = *one->b;
    const int64_t B = g->q.dims[0], H = g->q.dims[1], T = g->q.dims[2], D = g->q.dims[3];
    for (const TensorInfo *t : {&g->q, &g->o, &g->dout, &g->dq, &g->dk, &g->dv, &g->dq_acc})
        if (!dims_are(t, B, H, T, D)) return bad("Q, O, dO, dQ, dK, dV and dQ_accum (B, H, T, D) are expected");
    if (!dims_are(&g->kt, B, H, D, T) || !dims_are(&g->vt, B, H, D, T)) return bad("K^T and V^T (B, H, D, T) are expected");
    if (!dims_are(&g->stats, B, H, T, 1) || !dims_are(&g->ssum, B, H, T, 1)) return bad("Stats and softmax_sum (B, H, T, 1) are expected");
    for (const TensorInfo *t : {&g->q, &g->kt, &g->vt, &g->o, &g->dout, &g->dq, &g->dk, &g->dv})
        if (t->dtype != DT_BF16) return bad("Q, K, V, O, dO, dQ, dK, dV must be bf16");
    for (const TensorInfo *t : {&g->stats, &g->ssum, &g->dq_acc, &g->scale, &g->neg_inf, &g->one})
        if (t->dtype != DT_FLOAT) return bad("Stats, softmax_sum, dQ_accum and the scalars must be float");
    for (const TensorInfo *t : {&g->q, &g->kt, &g->vt, &g->o, &g->dout, &g->dq, &g->dk, &g->dv, &g->stats, &g->ssum, &g->dq_acc})
        if (t->is_virtual || t->by_value) return bad("the inputs, outputs, softmax_sum and dQ_accum must be non-virtual device tensors");
    g->b = B; g->h = H; g->t = T; g->d = D;
    *out = g;
    return DNN_SUCCESS;
}

/* check_only: the pointer checks alone (at the call); the computation runs later, enqueued on the handle's stream */
int execute_backward(const char *fn, const SdpaBwdGraph &g, const std::vector<int64_t> &uids, const std::vector<void *> &ptrs, bool check_only) {
    auto ptr = [&](const TensorInfo &t) -> void * {
        for (size_t i = 0; i < uids.size(); i++)
            if (uids[i] == t.uid) return ptrs[i];
        return nullptr;
    };
    const TensorInfo *dev[] = {&g.q, &g.kt, &g.vt, &g.o, &g.dout, &g.dq, &g.dk, &g.dv, &g.stats, &g.ssum, &g.dq_acc};
    for (const TensorInfo *t : dev) {
        void *p = ptr(*t);
        const size_t esz = t->dtype == DT_BF16 ? 2 : 4;
        if (!p) return fail(DNN_BAD_PARAM, std::string(fn) + ": the variant pack lacks a pointer for tensor uid " + std::to_string(t->uid));
        if (!lt_driver_emu::inside((uintptr_t)p, extent_bytes(*t, esz)))
            return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": tensor uid " + std::to_string(t->uid) + " is not inside one device allocation");
    }
    if (!ptr(g.scale) || !ptr(g.neg_inf) || !ptr(g.one)) return fail(DNN_BAD_PARAM, std::string(fn) + ": the variant pack lacks a by-value scalar");
    if (check_only) return DNN_SUCCESS;
    const double scale = *static_cast<const float *>(ptr(g.scale));
    auto bf = [&](const TensorInfo &t, int64_t b, int64_t h, int64_t i, int64_t c) {
        return (double)from_bf16(static_cast<const uint16_t *>(ptr(t))[off4(t, b, h, i, c)]);
    };
    auto f32 = [&](const TensorInfo &t, int64_t b, int64_t h, int64_t i, int64_t c) -> float & {
        return static_cast<float *>(ptr(t))[off4(t, b, h, i, c)];
    };
    auto put = [&](const TensorInfo &t, int64_t b, int64_t h, int64_t i, int64_t c, double v) {
        static_cast<uint16_t *>(ptr(t))[off4(t, b, h, i, c)] = to_bf16_bits((float)v);
    };
    const int64_t T = g.t, D = g.d;
    std::vector<double> dq((size_t)(T * D)), dk((size_t)(T * D)), dv((size_t)(T * D)), dsum((size_t)T), p((size_t)T), dp((size_t)T);
    for (int64_t b = 0; b < g.b; b++)
        for (int64_t h = 0; h < g.h; h++) {
            std::fill(dq.begin(), dq.end(), 0.0);
            std::fill(dk.begin(), dk.end(), 0.0);
            std::fill(dv.begin(), dv.end(), 0.0);
            for (int64_t i = 0; i < T; i++) {
                double s = 0;
                for (int64_t c = 0; c < D; c++) s += bf(g.dout, b, h, i, c) * bf(g.o, b, h, i, c);
                dsum[(size_t)i] = s;
                f32(g.ssum, b, h, i, 0) = (float)s;
            }
            for (int64_t i = 0; i < T; i++) {
                const double lse = f32(g.stats, b, h, i, 0);
                for (int64_t j = 0; j <= i; j++) {   /* CMP_GE(row, col): the keys j <= i; the rest have P = exp(-inf) = 0 */
                    double dot = 0, dpij = 0;
                    for (int64_t c = 0; c < D; c++) {
                        dot += bf(g.q, b, h, i, c) * bf(g.kt, b, h, c, j);
                        dpij += bf(g.dout, b, h, i, c) * bf(g.vt, b, h, c, j);
                    }
                    p[(size_t)j] = std::exp(scale * dot - lse);
                    dp[(size_t)j] = p[(size_t)j] * (dpij - dsum[(size_t)i]) * scale;   /* dS, with attn_scale */
                }
                for (int64_t j = 0; j <= i; j++)
                    for (int64_t c = 0; c < D; c++) {
                        dv[(size_t)(j * D + c)] += p[(size_t)j] * bf(g.dout, b, h, i, c);
                        dq[(size_t)(i * D + c)] += dp[(size_t)j] * bf(g.kt, b, h, c, j);
                        dk[(size_t)(j * D + c)] += dp[(size_t)j] * bf(g.q, b, h, i, c);
                    }
            }
            for (int64_t i = 0; i < T; i++)
                for (int64_t c = 0; c < D; c++) {
                    f32(g.dq_acc, b, h, i, c) = (float)dq[(size_t)(i * D + c)];
                    put(g.dq, b, h, i, c, dq[(size_t)(i * D + c)]);
                    put(g.dk, b, h, i, c, dk[(size_t)(i * D + c)]);
                    put(g.dv, b, h, i, c, dv[(size_t)(i * D + c)]);
                }
        }
    return DNN_SUCCESS;
}


}  // namespace

API int cudnnBackendCreateDescriptor(int type, void **out) {
    if (!out) return fail(DNN_BAD_PARAM, "cudnnBackendCreateDescriptor: null output pointer");
    if (type < 0 || type >= BK_TYPE_END) return fail(DNN_BAD_PARAM, "cudnnBackendCreateDescriptor: unknown cudnnBackendDescriptorType_t");
    Bk *d = new (std::nothrow) Bk{BK_MAGIC, type, false, {}, {}, nullptr, nullptr};
    if (!d) return fail(DNN_NOT_INITIALIZED, "cudnnBackendCreateDescriptor: out of host memory");
    *out = d;
    return DNN_SUCCESS;
}

API int cudnnBackendDestroyDescriptor(void *p) {
    Bk *d = bk(p);
    if (!d) return fail(DNN_BAD_PARAM, "cudnnBackendDestroyDescriptor: not a live backend descriptor");
    d->magic = 0;
    delete d;
    return DNN_SUCCESS;
}

API int cudnnBackendSetAttribute(void *p, int name, int type, int64_t count, const void *elements) {
    const char *fn = "cudnnBackendSetAttribute";
    Bk *d = bk(p);
    if (!d) return fail(DNN_BAD_PARAM, std::string(fn) + ": not a live backend descriptor");
    if (d->finalized) return fail(DNN_BAD_PARAM, std::string(fn) + ": the descriptor is already finalized");
    const int want = attr_type(name);
    if (want < 0) return fail(DNN_NOT_SUPPORTED, std::string(fn) + ": attribute " + std::to_string(name) + " is not implemented by the stand-in");
    if (type != want) return fail(DNN_BAD_PARAM, std::string(fn) + ": attribute " + std::to_string(name) + " takes attribute type " +
                                  std::to_string(want) + ", got " + std::to_string(type));
    if (count < 0 || (count > 0 && !elements)) return fail(DNN_BAD_PARAM, std::string(fn) + ": negative count or null elements");
    Attr a{type, std::vector<uint8_t>((size_t)count * type_size(type)), count};
    if (count) std::memcpy(a.bytes.data(), elements, a.bytes.size());
    for (auto &e : d->attrs)
        if (e.first == name) {
            e.second = std::move(a);
            return DNN_SUCCESS;
        }
    d->attrs.emplace_back(name, std::move(a));
    return DNN_SUCCESS;
}

API int cudnnBackendFinalize(void *p) {
    Bk *d = bk(p);
    if (!d) return fail(DNN_BAD_PARAM, "cudnnBackendFinalize: not a live backend descriptor");
    if (d->finalized) return fail(DNN_BAD_PARAM, "cudnnBackendFinalize: already finalized");
    int rc = finalize(d);
    if (rc == DNN_SUCCESS) d->finalized = true;
    return rc;
}

API int cudnnBackendGetAttribute(void *p, int name, int type, int64_t requested, int64_t *count, void *elements) {
    const char *fn = "cudnnBackendGetAttribute";
    Bk *d = bk(p);
    if (!d || !d->finalized) return fail(DNN_BAD_PARAM, std::string(fn) + ": not a live, finalized backend descriptor");
    if (d->type == BK_ENGINEHEUR && name == A_HEUR_RESULTS) {
        if (type != TY_DESCRIPTOR || !count) return fail(DNN_BAD_PARAM, std::string(fn) + ": ENGINEHEUR_RESULTS are BACKEND_DESCRIPTORs");
        *count = 1;   /* one engine: the stand-in's */
        if (requested >= 1 && elements) {
            Bk *cfg = bk(static_cast<void **>(elements)[0]);
            if (!cfg || cfg->type != BK_ENGINECFG || cfg->finalized)
                return fail(DNN_BAD_PARAM, std::string(fn) + ": ENGINEHEUR_RESULTS fill created, unfinalized ENGINECFG descriptors");
            cfg->graph = d->graph;
            cfg->bwd = d->bwd;
            cfg->finalized = true;
        }
        return DNN_SUCCESS;
    }
    if ((d->type == BK_PLAN && name == A_PLAN_WORKSPACE) || (d->type == BK_ENGINECFG && name == A_CFG_WORKSPACE)) {
        if (type != TY_INT64 || requested < 1 || !elements) return fail(DNN_BAD_PARAM, std::string(fn) + ": the workspace size is one INT64");
        *static_cast<int64_t *>(elements) = (int64_t)SDPA_WORKSPACE;
        if (count) *count = 1;
        return DNN_SUCCESS;
    }
    const Attr *a = find_attr(d, name);
    if (!a) return fail(DNN_NOT_SUPPORTED, std::string(fn) + ": attribute " + std::to_string(name) + " is not set or not readable from the stand-in");
    if (type != a->type) return fail(DNN_BAD_PARAM, std::string(fn) + ": wrong attribute type");
    if (count) *count = a->count;
    if (elements && requested > 0) std::memcpy(elements, a->bytes.data(), (size_t)std::min(requested, a->count) * type_size(type));
    return DNN_SUCCESS;
}

API int cudnnBackendExecute(void *handle, void *plan, void *pack) {
    const char *fn = "cudnnBackendExecute";
    if (!as<DnnHandle>(handle, DNN_HANDLE)) return fail(DNN_BAD_PARAM, std::string(fn) + ": handle is not a live cudnnHandle_t");
    Bk *pl = bk(plan), *vp = bk(pack);
    if (!pl || pl->type != BK_PLAN || !pl->finalized || (!pl->graph && !pl->bwd) || !vp || vp->type != BK_VARPACK || !vp->finalized)
        return fail(DNN_BAD_PARAM, std::string(fn) + ": a finalized EXECUTION_PLAN and VARIANT_PACK are required");
    std::vector<int64_t> uids;
    std::vector<void *> ptrs;
    attr_values(vp, A_VP_UIDS, &uids);
    attr_values(vp, A_VP_PTRS, &ptrs);
    void *ws = nullptr;
    attr_value(vp, A_VP_WORKSPACE, &ws);
    if (!ws || !lt_driver_emu::inside((uintptr_t)ws, SDPA_WORKSPACE))
        return fail(DNN_BAD_PARAM, std::string(fn) + ": the variant pack's WORKSPACE is not EXECUTION_PLAN_WORKSPACE_SIZE bytes of device memory");
    const void *stream = static_cast<DnnHandle *>(handle)->stream;
    if (pl->bwd) {
        if (int rc = execute_backward(fn, *pl->bwd, uids, ptrs, true)) return rc;
        /* enqueued on the handle's stream: run now, or recorded while it captures (the by-value scalars are read at
         * the run: a capture must keep them alive, as the plan's variant pack does) */
        const SdpaBwdGraph bw = *pl->bwd;
        lt_driver_emu::count(lt_driver_emu::CNT_CUDNN_SDPA_BWD);
        return enqueued(fn, stream, [=] { return execute_backward(fn, bw, uids, ptrs, false); }, DNN_EXECUTION_FAILED);
    }
    const SdpaGraph &g = *pl->graph;
    auto ptr = [&](const TensorInfo &t) -> void * {
        for (size_t i = 0; i < uids.size(); i++)
            if (uids[i] == t.uid) return ptrs[i];
        return nullptr;
    };
    void *pq = ptr(g.q), *pk = ptr(g.kt), *pv = ptr(g.v), *po = ptr(g.o), *ps = ptr(g.stats), *pscale = ptr(g.scale), *pinf = ptr(g.neg_inf);
    if (!pq || !pk || !pv || !po || !ps || !pscale || !pinf)
        return fail(DNN_BAD_PARAM, std::string(fn) + ": the variant pack lacks a pointer for a non-virtual tensor's unique id");
    if (!lt_driver_emu::inside((uintptr_t)pq, extent_bytes(g.q, 2)) || !lt_driver_emu::inside((uintptr_t)pk, extent_bytes(g.kt, 2)) ||
        !lt_driver_emu::inside((uintptr_t)pv, extent_bytes(g.v, 2)) || !lt_driver_emu::inside((uintptr_t)po, extent_bytes(g.o, 2)) ||
        !lt_driver_emu::inside((uintptr_t)ps, extent_bytes(g.stats, 4)))
        return fail(DNN_EXECUTION_FAILED, std::string(fn) + ": a tensor's extent is not inside one device allocation");
    const float scale = *static_cast<const float *>(pscale), fill = *static_cast<const float *>(pinf);
    const SdpaGraph gc = g;
    lt_driver_emu::count(lt_driver_emu::CNT_CUDNN_SDPA_FWD);
    /* enqueued on the handle's stream: run now, or recorded while it captures (the scalars read now) */
    return enqueued(fn, stream, [=] {
    const SdpaGraph &g = gc;
    const uint16_t *Q = static_cast<const uint16_t *>(pq), *K = static_cast<const uint16_t *>(pk), *V = static_cast<const uint16_t *>(pv);
    uint16_t *O = static_cast<uint16_t *>(po);
    float *S = static_cast<float *>(ps);
    std::vector<double> s((size_t)g.t), acc((size_t)g.d);
    for (int64_t b = 0; b < g.b; b++)
        for (int64_t h = 0; h < g.h; h++)
            for (int64_t i = 0; i < g.t; i++) {
                double m = -INFINITY;
                for (int64_t j = 0; j < g.t; j++) {
                    double dot = 0;
                    for (int64_t c = 0; c < g.d; c++)
                        dot += (double)from_bf16(Q[off4(g.q, b, h, i, c)]) * (double)from_bf16(K[off4(g.kt, b, h, c, j)]);
                    s[(size_t)j] = i >= j ? (double)scale * dot : (double)fill;   /* CMP_GE(row, col) selects the score */
                    m = std::max(m, s[(size_t)j]);
                }
                double l = 0;
                for (int64_t j = 0; j < g.t; j++) l += (s[(size_t)j] = std::exp(s[(size_t)j] - m));
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int64_t j = 0; j < g.t; j++)
                    for (int64_t c = 0; c < g.d; c++) acc[(size_t)c] += s[(size_t)j] / l * (double)from_bf16(V[off4(g.v, b, h, j, c)]);
                for (int64_t c = 0; c < g.d; c++) O[off4(g.o, b, h, i, c)] = to_bf16_bits((float)acc[(size_t)c]);
                S[off4(g.stats, b, h, i, 0)] = (float)(m + std::log(l));
            }
    return 0;
    }, DNN_EXECUTION_FAILED);
}
