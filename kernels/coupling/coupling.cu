/* RealNVP / Glow affine coupling, elementwise part, on the GPU (the CUDA siblings of coupling_ref.c; latent.h:
 * lt_coupling_*). mask b (hw), y / y' / out / dy / dout (n, hw), h / dh (n, 2, hw): h[i, 0] the log-scale input,
 * h[i, 1] the shift. All arithmetic in double as the reference, each output rounded once.
 *   ltk_coupling_fwd(n, hw, mask, y, h, scale, out, logdet)       grid n, CP_THREADS: block i owns image i;
 *       logdet[i] = sum_j s (may be NULL) in double: each thread its strided elements in order, then a fixed tree.
 *   ltk_coupling_inv(n, hw, mask, yp, h, scale, y)                 grid n, any block size
 *   ltk_coupling_bwd(n, hw, mask, y, h, scale, dout, dlogdet, dy, dh, part)   grid n, CP_THREADS: dy, dh overwritten
 *       (dlogdet may be NULL: 0); part[i] = image i's sum of ds tanh(h0) (same order scheme as logdet)
 *   ltk_coupling_dscale(n, part, dscale)   one thread: *dscale += part[0] + part[1] + ..., in image order (as the CPU)
 *   ltk_coupling_fwd_ds / ltk_coupling_bwd_ds: fwd / bwd with the learned scale read from device memory (*scale: the
 *       parameter itself, so a training step does not copy it back); the same bits as passing its value.
 * Deterministic, no atomics. The CPU sums an image sequentially and CUDA's double tanh / exp are not glibc's (both
 * within 2 ulp), so logdet / dscale agree to the double additions' rounding and every float output to one rounding.
 * Outputs must not overlap inputs (the CPU's rule). */
#include "lt_cuda.cuh"

#define CP_THREADS 256 /* required: a power of two (the tree) */

static __device__ __forceinline__ double cp_block_sum(double v, double *red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int w = CP_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) red[threadIdx.x] = __dadd_rn(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    return red[0];
}

static __device__ __forceinline__ void cp_fwd(int64_t hw, const float *__restrict__ mask, const float *__restrict__ y,
                                              const float *__restrict__ h, float scale, float *__restrict__ out,
                                              double *__restrict__ logdet, double *red) {
    const int64_t i = blockIdx.x;
    const float *yi = y + i * hw, *h0 = h + 2 * i * hw, *h1 = h0 + hw;
    float *oi = out + i * hw;
    double ld = 0.0;
    for (int64_t j = threadIdx.x; j < hw; j += CP_THREADS) {
        const double m = 1.0 - (double)mask[j], s = tanh((double)h0[j]) * (double)scale * m, t = (double)h1[j] * m;
        oi[j] = (float)((double)mask[j] * (double)yi[j] + m * ((double)yi[j] * exp(s) + t));
        ld += s;
    }
    ld = cp_block_sum(ld, red);
    if (threadIdx.x == 0 && logdet) logdet[i] = ld;
}

LT_KERNEL void __launch_bounds__(CP_THREADS) ltk_coupling_fwd(int64_t n, int64_t hw, const float *__restrict__ mask,
                                                              const float *__restrict__ y, const float *__restrict__ h,
                                                              float scale, float *__restrict__ out, double *__restrict__ logdet) {
    __shared__ double red[CP_THREADS];
    cp_fwd(hw, mask, y, h, scale, out, logdet, red);
}

LT_KERNEL void __launch_bounds__(CP_THREADS) ltk_coupling_fwd_ds(int64_t n, int64_t hw, const float *__restrict__ mask,
                                                                 const float *__restrict__ y, const float *__restrict__ h,
                                                                 const float *__restrict__ scale, float *__restrict__ out,
                                                                 double *__restrict__ logdet) {
    __shared__ double red[CP_THREADS];
    cp_fwd(hw, mask, y, h, *scale, out, logdet, red);
}

LT_KERNEL void ltk_coupling_inv(int64_t n, int64_t hw, const float *__restrict__ mask, const float *__restrict__ yp,
                                const float *__restrict__ h, float scale, float *__restrict__ y) {
    const int64_t i = blockIdx.x;
    const float *yi = yp + i * hw, *h0 = h + 2 * i * hw, *h1 = h0 + hw;
    float *oi = y + i * hw;
    for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) {
        const double m = 1.0 - (double)mask[j], s = tanh((double)h0[j]) * (double)scale * m, t = (double)h1[j] * m;
        oi[j] = (float)((double)mask[j] * (double)yi[j] + m * (((double)yi[j] - t) * exp(-s)));
    }
}

static __device__ __forceinline__ void cp_bwd(int64_t hw, const float *__restrict__ mask, const float *__restrict__ y,
                                              const float *__restrict__ h, float scale, const float *__restrict__ dout,
                                              const double *__restrict__ dlogdet, float *__restrict__ dy, float *__restrict__ dh,
                                              double *__restrict__ part, double *red) {
    const int64_t i = blockIdx.x;
    const float *yi = y + i * hw, *h0 = h + 2 * i * hw, *gi = dout + i * hw;
    float *dyi = dy + i * hw, *dh0 = dh + 2 * i * hw, *dh1 = dh0 + hw;
    const double dld = dlogdet ? dlogdet[i] : 0.0, sc = scale;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < hw; j += CP_THREADS) {
        const double b = mask[j], m = 1.0 - b, th = tanh((double)h0[j]), s = th * sc * m, e = exp(s), g = gi[j];
        dyi[j] = (float)(g * (b + m * e));
        const double ds = (g * (double)yi[j] * e + dld) * m;
        dh0[j] = (float)(ds * sc * (1.0 - th * th));
        dh1[j] = (float)(g * m);
        acc += ds * th;
    }
    acc = cp_block_sum(acc, red);
    if (threadIdx.x == 0) part[i] = acc;
}

LT_KERNEL void __launch_bounds__(CP_THREADS) ltk_coupling_bwd(int64_t n, int64_t hw, const float *__restrict__ mask,
                                                              const float *__restrict__ y, const float *__restrict__ h,
                                                              float scale, const float *__restrict__ dout,
                                                              const double *__restrict__ dlogdet, float *__restrict__ dy,
                                                              float *__restrict__ dh, double *__restrict__ part) {
    __shared__ double red[CP_THREADS];
    cp_bwd(hw, mask, y, h, scale, dout, dlogdet, dy, dh, part, red);
}

LT_KERNEL void __launch_bounds__(CP_THREADS) ltk_coupling_bwd_ds(int64_t n, int64_t hw, const float *__restrict__ mask,
                                                                 const float *__restrict__ y, const float *__restrict__ h,
                                                                 const float *__restrict__ scale, const float *__restrict__ dout,
                                                                 const double *__restrict__ dlogdet, float *__restrict__ dy,
                                                                 float *__restrict__ dh, double *__restrict__ part) {
    __shared__ double red[CP_THREADS];
    cp_bwd(hw, mask, y, h, *scale, dout, dlogdet, dy, dh, part, red);
}

LT_KERNEL void ltk_coupling_dscale(int64_t n, const double *__restrict__ part, double *__restrict__ dscale) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s = __dadd_rn(s, part[i]);
    *dscale += s;
}
