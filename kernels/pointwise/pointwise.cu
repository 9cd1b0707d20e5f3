/* Small pointwise ops of autograd's F on the device, computed in double and rounded once, as F's CPU loops compute
 * them (F.pointwise: y = (float) f((double) x), dx = (float) (dy * f'(x)) in double), so a training step that uses them
 * (Glow's exp of its per-channel log-scales, WGAN-GP's sqrt of the per-sample gradient norms) needs no host copy.
 *   ltk_pointwise_fwd(kind, n, x, y)        y = (float) f(x)
 *   ltk_pointwise_bwd(kind, n, x, dy, dx)   dx = (float) (dy * f'(x))   (x the forward's input; dx may alias dy)
 *   kind: POINTWISE_SQRT 0 sqrt, 1 rsqrt 1 / sqrt(x), 2 square x^2, 3 exp, 4 log
 *   ltk_diag_fwd(c, v, m)   m (c, c) = diag(v), zeros elsewhere  |  ltk_diag_bwd(c, g, d)   d[i] = g[i, i]
 * Double sqrt and division are correctly rounded on the GPU and in Java, so sqrt, rsqrt and square give the CPU's bits;
 * exp and log are within 1 ulp in double on both (CUDA's and Java's), so their float results agree except where the
 * double results fall on either side of a float rounding boundary (one float ulp at most).
 * Launch: 256 threads, grid-stride, any grid. Checked by pointwise_cuda_test.cc (emulation). */
#include "lt_cuda.cuh"

#define POINTWISE_SQRT 0
#define POINTWISE_RSQRT 1
#define POINTWISE_SQUARE 2
#define POINTWISE_EXP 3
#define POINTWISE_LOG 4

static __device__ __forceinline__ double pw_f(int kind, double v) {
    switch (kind) {
    case POINTWISE_SQRT: return sqrt(v);
    case POINTWISE_RSQRT: return 1.0 / sqrt(v);
    case POINTWISE_SQUARE: return v * v;
    case POINTWISE_EXP: return exp(v);
    default: return log(v);
    }
}

static __device__ __forceinline__ double pw_df(int kind, double v) {
    switch (kind) {
    case POINTWISE_SQRT: return 0.5 / sqrt(v);
    case POINTWISE_RSQRT: return -0.5 / (v * sqrt(v));
    case POINTWISE_SQUARE: return 2 * v;
    case POINTWISE_EXP: return exp(v);
    default: return 1 / v;
    }
}

LT_KERNEL void ltk_pointwise_fwd(int32_t kind, int64_t n, const float *__restrict__ x, float *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = (float)pw_f(kind, (double)x[i]);
}

LT_KERNEL void ltk_pointwise_bwd(int32_t kind, int64_t n, const float *__restrict__ x, const float *dy, float *dx) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dx[i] = (float)((double)dy[i] * pw_df(kind, (double)x[i]));
}

LT_KERNEL void ltk_diag_fwd(int64_t c, const float *__restrict__ v, float *__restrict__ m) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c * c; i += (int64_t)gridDim.x * blockDim.x)
        m[i] = i / c == i % c ? v[i / c] : 0.0f;
}

LT_KERNEL void ltk_diag_bwd(int64_t c, const float *__restrict__ g, float *__restrict__ d) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = g[i * c + i];
}
