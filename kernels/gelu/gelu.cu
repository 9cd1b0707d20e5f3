/* Exact GELU on the GPU (the CUDA sibling of gelu_ref.c), in float:
 *   fwd: y = x Phi(x),  Phi(x) = erfc(-x / sqrt 2) / 2          bwd: dx = dy (Phi(x) + x phi(x)),  phi = exp(-x^2/2)/sqrt(2 pi)
 *   x, y, dy, dx: (n) contiguous; dx may alias dy. Limits as gelu_ref.c: y(-inf) = -0, y(+inf) = +inf, dx(+-inf) =
 *   dy * (1 or 0), NaN stays NaN (x is clamped to [-40, 40] where it multiplies an underflowed density).
 * erfcf keeps the relative accuracy of Phi for negative x (1 + erf cancels). CUDA's erfcf and expf are within a
 * few ulp; gelu_cuda_test.cc allows 8 ulp of each term (the CPU test's reference is exact to 1 ulp in double).
 * Launch: 256 threads, grid-stride. Memory-bound. */
#include "lt_cuda.cuh"

static __device__ __forceinline__ float gelu_cdf(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
static __device__ __forceinline__ float gelu_clamp40(float x) { return x < -40.0f ? -40.0f : x > 40.0f ? 40.0f : x; }

/* The forward's grid-stride loop; y16 not null (ltk_gelu_fwd_bf16): each y also stored as bf16 (to nearest even,
 * ltk_f32_to_bf16's rounding) for the bf16 GEMM that reads it (GPT's MLP projection). nullptr from ltk_gelu_fwd. */
static __device__ __forceinline__ void gelu_fwd(int64_t n, const float *x, float *y, __nv_bfloat16 *__restrict__ y16) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float xi = x[i], c = gelu_clamp40(xi);
        const float o = c == 40.0f ? xi : c * gelu_cdf(xi);
        y[i] = o;
        if (y16 != nullptr) y16[i] = __float2bfloat16_rn(o);
    }
}

/*@ launch=gelu grid=stride(n) block=256 */
LT_KERNEL void ltk_gelu_fwd(int64_t n, const float *x, float *y) { gelu_fwd(n, x, y, nullptr); }

/* ltk_gelu_fwd that also writes y16 = bf16(y) (n; 2 bytes each). y16 must not overlap x or y. */
/*@ launch=geluBf16 grid=stride(n) block=256 x[n] y[n] y16[n] */
LT_KERNEL void ltk_gelu_fwd_bf16(int64_t n, const float *x, float *y, __nv_bfloat16 *__restrict__ y16) {
    gelu_fwd(n, x, y, y16);
}

/*@ launch=geluBackward grid=stride(n) block=256 */
LT_KERNEL void ltk_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float xi = x[i], c = gelu_clamp40(xi);
        const float pdf = expf(-0.5f * c * c) * 0.39894228040143267794f;
        dx[i] = dy[i] * (gelu_cdf(xi) + c * pdf);
    }
}
