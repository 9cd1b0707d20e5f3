/* Sum of squares on the GPU (the CUDA sibling of lt_sumsq: the global gradient norm), in double, deterministic.
 *   ltk_sumsq_part(n, x, part)      grid ceil(n / 4096), 256 threads (required: a power of two): block q sums x[i]^2
 *       for i in chunk q ([4096 q, 4096 q + 4096)), each thread its strided 16 elements in order, then a fixed
 *       shared-memory tree, into part[q]. x^2 of a float is exact in double, so only the additions round.
 *   ltk_sumsq_total(chunks, part, out)   one thread: *out = part[0] + part[1] + ..., in order.
 * The chunking is lt_sumsq's (4096) but the order inside a chunk is not, so the result matches the CPU's to the
 * double additions' rounding (relative ~ 2^-53 (16 + 8 + chunks)), not bit for bit; each run gives the same bits.
 * The plain sum (autograd's F.sum on the device: the flows' log-likelihood terms) shares the layout:
 *   ltk_sum_part(n, x, part)        as ltk_sumsq_part with x[i] for x[i]^2 (each float exact in double).
 *   ltk_sum_total_f32(chunks, part, out)   one thread: *out = (float)(part[0] + part[1] + ...), in order: the result
 *       stays on the device (no copy back, no synchronisation). Against the CPU's in-order double sum: within
 *       2^-53 (4096 + 16 + 8 + chunks) sum |x_i| before the one rounding to float. */
#include "lt_cuda.cuh"

#define SQ_CHUNK 4096
#define SQ_THREADS 256

/* The block's fixed tree over its threads' double sums (shared by sumsq and sum): part[blockIdx.x] = the total. */
static __device__ __forceinline__ void sq_block_store(double s, double *red, double *__restrict__ part) {
    red[threadIdx.x] = s;
    __syncthreads();
    for (int w = SQ_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) red[threadIdx.x] = __dadd_rn(red[threadIdx.x], red[threadIdx.x + w]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = red[0];
}

/* The chunks' partial sums added in chunk order, by one thread. */
static __device__ __forceinline__ double sq_chunks_total(int64_t chunks, const double *__restrict__ part) {
    double s = 0.0;
    for (int64_t q = 0; q < chunks; q++) s = __dadd_rn(s, part[q]);
    return s;
}

LT_KERNEL void __launch_bounds__(SQ_THREADS) ltk_sumsq_part(int64_t n, const float *__restrict__ x, double *__restrict__ part) {
    __shared__ double red[SQ_THREADS];
    const int64_t c0 = (int64_t)blockIdx.x * SQ_CHUNK, c1 = c0 + SQ_CHUNK < n ? c0 + SQ_CHUNK : n;
    double s = 0.0;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += SQ_THREADS) {
        const double v = x[i];
        s += v * v; /* v * v is exact in double, so a contraction into fma changes nothing */
    }
    sq_block_store(s, red, part);
}

LT_KERNEL void ltk_sumsq_total(int64_t chunks, const double *__restrict__ part, double *__restrict__ out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *out = sq_chunks_total(chunks, part);
}

LT_KERNEL void __launch_bounds__(SQ_THREADS) ltk_sum_part(int64_t n, const float *__restrict__ x, double *__restrict__ part) {
    __shared__ double red[SQ_THREADS];
    const int64_t c0 = (int64_t)blockIdx.x * SQ_CHUNK, c1 = c0 + SQ_CHUNK < n ? c0 + SQ_CHUNK : n;
    double s = 0.0;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += SQ_THREADS) s = __dadd_rn(s, (double)x[i]);
    sq_block_store(s, red, part);
}

LT_KERNEL void ltk_sum_total_f32(int64_t chunks, const double *__restrict__ part, float *__restrict__ out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *out = (float)sq_chunks_total(chunks, part);
}
