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
 *       2^-53 (4096 + 16 + 8 + chunks) sum |x_i| before the one rounding to float.
 * The global gradient norm and AdamW's clip factor without a copy back (a flat gradient buffer, one segment per
 * parameter holding a gradient; issue 18: no host synchronisation in a step):
 *   ltk_sumsq_seg_part(nseg, tab, x, part)   grid = the segments' chunks in all, 256 threads: tab holds nseg rows of
 *       int64 (offset, len, first_chunk) in floats, len > 0, first_chunk the running sum of ceil(len / 4096) (rows in
 *       increasing first_chunk); block q finds its row (the last with first_chunk <= q) and sums chunk q - first_chunk
 *       of x[offset .. offset + len) exactly as ltk_sumsq_part sums that chunk of the segment, so part[] holds the
 *       same bits as one ltk_sumsq_part launch per segment, in one launch over the whole buffer.
 *   ltk_sumsq_seg_clip(nseg, tab, part, clip, sumsq, scale)   one thread: each segment's chunks added in order (the
 *       bits of ltk_sumsq_total per segment), the segments' totals added in row order from 0 (the host loop of the
 *       per-segment path), *sumsq = that total; then with norm = sqrt(total) (IEEE, correctly rounded, like Java's
 *       Math.sqrt) *scale = clip > 0 && norm > clip ? (float)(clip / (norm + 1e-6)) : 1 (AdamW.update's expression,
 *       each operation one IEEE rounding, so the same float as the host computes from the same total). */
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

/* The row of chunk q: the last row whose first_chunk <= q (rows sorted by first_chunk, nseg >= 1, row 0 starts at 0). */
static __device__ __forceinline__ int64_t sq_seg_row(int64_t nseg, const int64_t *__restrict__ tab, int64_t q) {
    int64_t lo = 0, hi = nseg - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (tab[3 * mid + 2] <= q) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

LT_KERNEL void __launch_bounds__(SQ_THREADS) ltk_sumsq_seg_part(int64_t nseg, const int64_t *__restrict__ tab, const float *__restrict__ x,
                                                               double *__restrict__ part) {
    __shared__ double red[SQ_THREADS];
    const int64_t q = blockIdx.x, k = sq_seg_row(nseg, tab, q);
    const int64_t len = tab[3 * k + 1];
    const float *__restrict__ xs = x + tab[3 * k];
    const int64_t c0 = (q - tab[3 * k + 2]) * SQ_CHUNK, c1 = c0 + SQ_CHUNK < len ? c0 + SQ_CHUNK : len;
    double s = 0.0;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += SQ_THREADS) {
        const double v = xs[i];
        s += v * v; /* exact in double, as in ltk_sumsq_part */
    }
    sq_block_store(s, red, part);
}

LT_KERNEL void ltk_sumsq_seg_clip(int64_t nseg, const int64_t *__restrict__ tab, const double *__restrict__ part, double clip,
                                  double *__restrict__ sumsq, float *__restrict__ scale) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0;
    for (int64_t k = 0; k < nseg; k++) {
        const int64_t first = tab[3 * k + 2], chunks = (tab[3 * k + 1] + SQ_CHUNK - 1) / SQ_CHUNK;
        total = __dadd_rn(total, sq_chunks_total(chunks, part + first));
    }
    *sumsq = total;
    const double norm = sqrt(total);
    *scale = clip > 0.0 && norm > clip ? (float)(clip / __dadd_rn(norm, 1e-6)) : 1.0f;
}

/* A scalar loss from a sum of squares, on the device (the Gaussian -log p(x|z) of ProbF.gaussianNllSum: no copy back):
 *   ltk_sumsq_affine_f32(chunks, part, a, c, scale, out)   one thread: total as ltk_sumsq_total, then
 *       *out = (float)((a * total + c) * scale), each operation one IEEE rounding (the host's double expression on the
 *       total ltk_sumsq_total would have copied back: the same float). */
LT_KERNEL void ltk_sumsq_affine_f32(int64_t chunks, const double *__restrict__ part, double a, double c, double scale,
                                    float *__restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double total = sq_chunks_total(chunks, part);
    *out = (float)__dmul_rn(__dadd_rn(__dmul_rn(a, total), c), scale);
}
