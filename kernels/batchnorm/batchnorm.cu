/* BatchNorm2d on the GPU (the CUDA siblings of batchnorm_ref.c; latent.h: lt_batchnorm2d_*). x, y, dy, dx: (N, C, HW)
 * contiguous; gamma, beta (may be NULL: 1 and 0), mean, rstd, var, running_mean / running_var (may be NULL): (C).
 *
 *   ltk_bn_fwd_train(n, c, hw, eps, momentum, x, gamma, beta, y, mean, rstd, rmean, rvar)   grid c, BN_THREADS:
 *       block ch owns channel ch. Two passes in double, as the CPU (mean, then the biased variance of the centred
 *       values: no E[x^2] - E[x]^2 cancellation), each thread summing its strided elements in order and a fixed
 *       shared-memory tree combining them; then y = (x - mean) rstd gamma + beta in double, rounded once. Thread 0
 *       writes mean, rstd and updates the running statistics (unbiased variance) in double, as the CPU.
 *   ltk_bn_fwd_infer(n, c, hw, eps, x, gamma, beta, mean, var, y)   grid (c, min(n, 65535)), any block size
 *   ltk_bn_bwd(n, c, hw, x, gamma, mean, rstd, dy, dx, dgamma, dbeta)   grid c, BN_THREADS: sums of dy and
 *       dy xhat in double (same order scheme as the forward), dx overwritten (may equal dy), dgamma / dbeta += .
 * Deterministic (no atomics: the order depends on BN_THREADS alone). The CPU sums in a different fixed order, so
 * the statistics agree to the double additions' rounding and every float output to one rounding (<= 1 ulp).
 * One block per channel: few channels with large N HW use few SMs (not tuned; no GPU was available). */
#include "lt_cuda.cuh"

#define BN_THREADS 256 /* required: a power of two (the tree) */

/* Sum of v over the block in a fixed tree order; every thread gets the result. red: BN_THREADS doubles. */
static __device__ __forceinline__ double bn_block_sum(double v, double *red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int w = BN_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) red[threadIdx.x] = __dadd_rn(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    const double s = red[0];
    __syncthreads(); /* red is reused by the next sum */
    return s;
}

/* The elements of channel ch, e = i * hw + j for e = tid, tid + BN_THREADS, ...: (i, j) advanced without division. */
#define BN_FOR_EACH(n, hw, ...)                                                                                      \
    do {                                                                                                             \
        const int64_t si_ = BN_THREADS / (hw), sj_ = BN_THREADS % (hw);                                               \
        int64_t i = (int64_t)threadIdx.x / (hw), j = (int64_t)threadIdx.x % (hw);                                    \
        for (; i < (n); i += si_, j += sj_) {                                                                        \
            if (j >= (hw)) { j -= (hw); i++; if (i >= (n)) break; }                                                  \
            __VA_ARGS__                                                                                              \
        }                                                                                                            \
    } while (0)

LT_KERNEL void __launch_bounds__(BN_THREADS) ltk_bn_fwd_train(int64_t n, int64_t c, int64_t hw, float eps, float momentum,
                                                              const float *__restrict__ x, const float *__restrict__ gamma,
                                                              const float *__restrict__ beta, float *__restrict__ y,
                                                              float *__restrict__ mean, float *__restrict__ rstd,
                                                              float *__restrict__ rmean, float *__restrict__ rvar) {
    __shared__ double red[BN_THREADS];
    const int64_t ch = blockIdx.x;
    const float *xc = x + ch * hw;
    float *yc = y + ch * hw;
    const int64_t cs = c * hw; /* stride between images */
    const double cnt = (double)n * (double)hw;
    double s = 0.0;
    BN_FOR_EACH(n, hw, { s += (double)xc[i * cs + j]; });
    const double m = bn_block_sum(s, red) / cnt;
    double q = 0.0;
    BN_FOR_EACH(n, hw, {
        const double d = (double)xc[i * cs + j] - m;
        q += d * d;
    });
    q = bn_block_sum(q, red);
    const double var = q / cnt, r = 1.0 / sqrt(var + (double)eps);
    const double g = gamma ? (double)gamma[ch] : 1.0, b = beta ? (double)beta[ch] : 0.0;
    BN_FOR_EACH(n, hw, { yc[i * cs + j] = (float)(((double)xc[i * cs + j] - m) * r * g + b); });
    if (threadIdx.x == 0) {
        mean[ch] = (float)m;
        rstd[ch] = (float)r;
        const double mo = (double)momentum;
        if (rmean) rmean[ch] = (float)((1.0 - mo) * (double)rmean[ch] + mo * m);
        if (rvar) rvar[ch] = (float)((1.0 - mo) * (double)rvar[ch] + mo * (cnt > 1.0 ? q / (cnt - 1.0) : var));
    }
}

LT_KERNEL void ltk_bn_fwd_infer(int64_t n, int64_t c, int64_t hw, float eps, const float *__restrict__ x,
                                const float *__restrict__ gamma, const float *__restrict__ beta,
                                const float *__restrict__ mean, const float *__restrict__ var, float *__restrict__ y) {
    const int64_t ch = blockIdx.x;
    const double r = 1.0 / sqrt((double)var[ch] + (double)eps), m = mean[ch];
    const double g = gamma ? (double)gamma[ch] : 1.0, b = beta ? (double)beta[ch] : 0.0;
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        const float *xr = x + (i * c + ch) * hw;
        float *yr = y + (i * c + ch) * hw;
        for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) yr[j] = (float)(((double)xr[j] - m) * r * g + b);
    }
}

LT_KERNEL void __launch_bounds__(BN_THREADS) ltk_bn_bwd(int64_t n, int64_t c, int64_t hw, const float *__restrict__ x,
                                                        const float *__restrict__ gamma, const float *__restrict__ mean,
                                                        const float *__restrict__ rstd, const float *dy, float *dx,
                                                        float *__restrict__ dgamma, float *__restrict__ dbeta) {
    __shared__ double red[BN_THREADS];
    const int64_t ch = blockIdx.x, cs = c * hw;
    const float *xc = x + ch * hw, *dyc = dy + ch * hw;
    float *dxc = dx + ch * hw;
    const double cnt = (double)n * (double)hw, m = mean[ch], r = rstd[ch], g = gamma ? (double)gamma[ch] : 1.0;
    double sdy = 0.0, sdyx = 0.0;
    BN_FOR_EACH(n, hw, {
        const double d = dyc[i * cs + j], xh = ((double)xc[i * cs + j] - m) * r;
        sdy += d;
        sdyx += d * xh;
    });
    sdy = bn_block_sum(sdy, red);
    sdyx = bn_block_sum(sdyx, red);
    const double k1 = g * sdy / cnt, k2 = g * sdyx / cnt;
    BN_FOR_EACH(n, hw, {
        const double xh = ((double)xc[i * cs + j] - m) * r;
        dxc[i * cs + j] = (float)(r * (g * (double)dyc[i * cs + j] - k1 - xh * k2));
    });
    if (threadIdx.x == 0) {
        if (dgamma) dgamma[ch] += (float)sdyx;
        if (dbeta) dbeta[ch] += (float)sdy;
    }
}
