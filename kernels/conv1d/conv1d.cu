/* Dilated causal 1-D convolution on the GPU (the CUDA siblings of conv1d_ref.c; the formulas are in its header).
 *
 *   ltk_conv1d_fwd(n, ci, t, co, k, d, x, w, bias, y)      grid-stride, one thread per output (n, o, t): the sum over
 *       i then j in order (bias, may be NULL, added last, as conv1d_ref.c does)
 *   ltk_conv1d_bwd_data(n, ci, t, co, k, d, dy, w, dx)     one thread per dx (n, i, t): the sum over o then j
 *   ltk_conv1d_bwd_weight(n, ci, t, co, k, d, x, dy, dw, acc)  one 256-thread block per dw element (o, i, j): thread
 *       l sums the (n, t) pairs l, l + 256, ... in order, then the block adds the 256 partials in lt_block_sum's
 *       fixed tree; acc = 1 adds to dw, 0 overwrites
 *   ltk_conv1d_bwd_bias(n, t, co, dy, db, acc)             one block per output channel, the same reduction
 * Every output has one owner and a fixed summation order: the same bits on every run, no atomics.
 * Shapes: x, dx (N, Cin, T); w, dw (Cout, Cin, K); y, dy (N, Cout, T); bias, db (Cout). 64-bit indices throughout
 * (the Java side, CudaKernels.conv1d*, checks the buffers' sizes). */
#include "lt_cuda.cuh"

#define C1_THREADS 256 /* block size of every conv1d kernel (CudaKernels launches with it) */

LT_KERNEL void ltk_conv1d_fwd(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d,
                              const float *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                              float *__restrict__ y) {
    const int64_t total = n * co * t, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t tt = e % t, o = e / t % co, b = e / (t * co);
        const float *xb = x + b * ci * t, *wo = w + o * ci * k;
        float sum = 0.0f;
        for (int64_t i = 0; i < ci; i++)
            for (int64_t j = 0; j < k; j++) {
                const int64_t s = (k - 1 - j) * d;
                if (s > tt) continue;
                sum += wo[i * k + j] * xb[i * t + tt - s];
            }
        y[e] = bias ? sum + bias[o] : sum;
    }
}

LT_KERNEL void ltk_conv1d_bwd_data(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d,
                                   const float *__restrict__ dy, const float *__restrict__ w, float *__restrict__ dx) {
    const int64_t total = n * ci * t, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t tt = e % t, i = e / t % ci, b = e / (t * ci);
        const float *dyb = dy + b * co * t;
        float sum = 0.0f;
        for (int64_t o = 0; o < co; o++)
            for (int64_t j = 0; j < k; j++) {
                const int64_t s = (k - 1 - j) * d;
                if (s >= t - tt) continue;
                sum += w[(o * ci + i) * k + j] * dyb[o * t + tt + s];
            }
        dx[e] = sum;
    }
}

LT_KERNEL void ltk_conv1d_bwd_weight(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d,
                                     const float *__restrict__ x, const float *__restrict__ dy, float *__restrict__ dw,
                                     int acc) {
    __shared__ float red[32];
    const int64_t q = blockIdx.x, j = q % k, i = q / k % ci, o = q / (k * ci), s = (k - 1 - j) * d;
    float sum = 0.0f;
    if (s < t) { /* otherwise the tap never reaches a sample: its gradient is 0 */
        const int64_t len = t - s, depth = n * len; /* pairs (b, tt) with tt in [s, t) */
        for (int64_t p = threadIdx.x; p < depth; p += blockDim.x) {
            const int64_t b = p / len, tt = s + p % len;
            sum += dy[(b * co + o) * t + tt] * x[(b * ci + i) * t + tt - s];
        }
    }
    sum = lt_block_sum(sum, red);
    if (threadIdx.x == 0) dw[q] = acc ? dw[q] + sum : sum;
}

LT_KERNEL void ltk_conv1d_bwd_bias(int64_t n, int64_t t, int64_t co, const float *__restrict__ dy,
                                   float *__restrict__ db, int acc) {
    __shared__ float red[32];
    const int64_t o = blockIdx.x, depth = n * t;
    float sum = 0.0f;
    for (int64_t p = threadIdx.x; p < depth; p += blockDim.x) sum += dy[(p / t * co + o) * t + p % t];
    sum = lt_block_sum(sum, red);
    if (threadIdx.x == 0) db[o] = acc ? db[o] + sum : sum;
}
