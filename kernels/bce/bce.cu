/* Binary cross-entropy with logits on the GPU (the CUDA sibling of lt_bce_logits, kernels/activation; latent.h).
 *   l_i = max(x, 0) - x t + log1p(exp(-|x|)),   dlogits_i = (sigmoid(x) - t) dscale   (in double, rounded once)
 *   ltk_bce_part(n, x, t, t_const, dx, dscale, part)   grid ceil(n / 4096), BCE_THREADS (a power of two): block q
 *       handles chunk q ([4096 q, 4096 q + 4096)), as the CPU's chunks: each thread its 16 strided elements in
 *       order, then a fixed shared-memory tree, into part[q]. t may be NULL (t_const instead); dx may be NULL and
 *       may equal x (each element is read before the same thread writes it).
 *   ltk_bce_total(chunks, part, loss)   one thread: *loss = part[0] + part[1] + ..., in order (as the CPU).
 * Deterministic. The order inside a chunk differs from the CPU's sequential one and CUDA's double exp / log1p are
 * not glibc's (both within 2 ulp), so the loss agrees to ~2^-52 times the sum of |l_i| and dlogits to one float
 * rounding. */
#include "lt_cuda.cuh"

#define BCE_CHUNK 4096
#define BCE_THREADS 256

static __device__ __forceinline__ double bce_sigm(double v) {
    return v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

LT_KERNEL void __launch_bounds__(BCE_THREADS) ltk_bce_part(int64_t n, const float *x, const float *__restrict__ t,
                                                           float t_const, float *dx, float dscale,
                                                           double *__restrict__ part) {
    __shared__ double red[BCE_THREADS];
    const int64_t c0 = (int64_t)blockIdx.x * BCE_CHUNK, c1 = c0 + BCE_CHUNK < n ? c0 + BCE_CHUNK : n;
    double s = 0.0;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += BCE_THREADS) {
        const double v = x[i], tt = t ? (double)t[i] : (double)t_const;
        s += (v > 0.0 ? v : 0.0) - v * tt + log1p(exp(-fabs(v)));
        if (dx) dx[i] = (float)((bce_sigm(v) - tt) * (double)dscale);
    }
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = BCE_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) red[threadIdx.x] = __dadd_rn(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = red[0];
}

LT_KERNEL void ltk_bce_total(int64_t chunks, const double *__restrict__ part, double *__restrict__ loss) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (int64_t q = 0; q < chunks; q++) s = __dadd_rn(s, part[q]);
    *loss = s;
}
