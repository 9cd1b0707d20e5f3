/* Pointwise activations on the GPU (latent.h: lt_act_fwd / lt_act_bwd; kind LT_ACT_RELU 0, LEAKY_RELU 1, TANH 2,
 * SIGMOID 3). x, y, in, dy, dx: (n) contiguous; y may alias x, dx may alias dy.
 *   fwd: relu max(x, 0); leaky x > 0 ? x : alpha x; tanh; sigmoid 1 / (1 + exp(-x))
 *   bwd: dx = dy * f'(in): relu, leaky take in = x (f' = x > 0 ? 1 : 0 or alpha); tanh, sigmoid take in = y
 *        (1 - y^2 and y (1 - y)), so the forward input need not be kept.
 * The CPU kernels (kernels/activation, issue 4) are written elsewhere; activation_cuda_test.cc checks this against
 * a double reference in the test. Launch: 256 threads, grid-stride; `kind` is uniform, so no divergence. */
#include "lt_cuda.cuh"

static __device__ __forceinline__ float act_f(int kind, float x, float alpha) {
    switch (kind) {
    case 0: return x > 0.0f ? x : (x == x ? 0.0f : x); /* NaN stays NaN */
    case 1: return x > 0.0f ? x : alpha * x;
    case 2: return tanhf(x);
    default: return 1.0f / (1.0f + expf(-x));
    }
}

static __device__ __forceinline__ float act_df(int kind, float in, float alpha) {
    switch (kind) {
    case 0: return in > 0.0f ? 1.0f : 0.0f;
    case 1: return in > 0.0f ? 1.0f : alpha;
    case 2: return 1.0f - in * in;
    default: return in * (1.0f - in);
    }
}

/*@ launch=activation grid=stride(n) block=256 check=kind>=0,kind<=3 */
LT_KERNEL void ltk_act_fwd(int32_t kind, int64_t n, float alpha, const float *x, float *y) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = act_f(kind, x[i], alpha);
}

/*@ launch=activationBackward grid=stride(n) block=256 check=kind>=0,kind<=3 */
LT_KERNEL void ltk_act_bwd(int32_t kind, int64_t n, float alpha, const float *in, const float *dy, float *dx) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = dy[i] * act_df(kind, in[i], alpha);
}
