/* AdamW on the GPU, one thread per parameter (grid-stride), the arithmetic of adamw_ref.c line for line:
 *   g = grad * grad_scale;  p = param * decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   param = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
 * param, grad, m, v: (n) contiguous, must not overlap. The scalars (ltk_adamw_consts, the same fields and order as
 * adamw_consts in adamw.h) are computed once per step on the host in double and rounded to float, exactly as
 * adamw.c does (the Java backend mirrors that code), so GPU and CPU see the same constants.
 * nvcc contracts the two moment updates into fmas (one rounding fewer): adamw_cuda_test.cc allows the CPU test's
 * per-element bound. Memory-bound: 4 loads + 3 stores per parameter. Launch: 256 threads, grid-stride.
 * ltk_adamw_dscale: the same with the gradient scale read from device memory (*scale, written by ltk_sumsq_seg_clip:
 * global-norm clipping without the norm on the host); k.grad_scale is not used. */
#include "lt_cuda.cuh"

struct ltk_adamw_consts {
    float grad_scale, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps;
};

static __device__ __forceinline__ void adamw_body(const ltk_adamw_consts &k, float grad_scale, int64_t n, float *__restrict__ param,
                                                  const float *__restrict__ grad, float *__restrict__ m, float *__restrict__ v) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = grad[i] * grad_scale;
        const float p = param[i] * k.decay;
        const float mi = k.beta1 * m[i] + k.one_minus_beta1 * g;
        const float vi = k.beta2 * v[i] + k.one_minus_beta2 * g * g;
        const float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
        param[i] = p - k.step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

LT_KERNEL void ltk_adamw(ltk_adamw_consts k, int64_t n, float *__restrict__ param, const float *__restrict__ grad,
                         float *__restrict__ m, float *__restrict__ v) {
    adamw_body(k, k.grad_scale, n, param, grad, m, v);
}

/* ltk_adamw with the constants read from device memory (*k, written before the step by an asynchronous upload) and the
 * gradient scale from *scale, or k->grad_scale when scale is null: a step whose learning rate and bias corrections change
 * from step to step then passes no per-step value by value, so a CUDA graph captured over it replays correctly. */
LT_KERNEL void ltk_adamw_dconsts(const ltk_adamw_consts *__restrict__ k, const float *__restrict__ scale, int64_t n,
                                 float *__restrict__ param, const float *__restrict__ grad, float *__restrict__ m,
                                 float *__restrict__ v) {
    const ltk_adamw_consts kk = *k;
    adamw_body(kk, scale ? *scale : kk.grad_scale, n, param, grad, m, v);
}

LT_KERNEL void ltk_adamw_dscale(ltk_adamw_consts k, const float *__restrict__ scale, int64_t n, float *__restrict__ param,
                                const float *__restrict__ grad, float *__restrict__ m, float *__restrict__ v) {
    adamw_body(k, *scale, n, param, grad, m, v);
}
