/* Softmax + cross-entropy on the GPU (the CUDA sibling of softmax_xent_ref.c; math in its header).
 *   logits (rows, V), targets (rows), losses (rows), dlogits (rows, V) or NULL (may equal logits).
 * One 256-thread block per row (grid.x = rows): block max, block sum of exp(x - M) in float (the reference sums
 * in double: the test allows float summation error), loss = M + log S - x[t]; then dlogits in the same pass
 * over the row. x[t] is read before the first barrier, every dlogits[j] after the last one, so in place is safe.
 * target < 0: loss 0 and a zero gradient row. Three reads of the row (two if dlogits is NULL): at V = 50257 the
 * row is 200 KB and stays in L2 between passes. */
#include "lt_cuda.cuh"

/*@ launch=softmaxCrossEntropy grid=ceil(rows,1) block=256 check=rows>=0,v>=1 logits[rows*v] targets[rows] losses[rows] dlogits[rows*v]? */
LT_KERNEL void __launch_bounds__(256) ltk_softmax_xent(int64_t rows, int64_t v, const float *logits,
                                                       const int32_t *__restrict__ targets, float *__restrict__ losses,
                                                       float *dlogits, float dscale) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    if (row >= rows) return; /* uniform per block */
    const float *x = logits + row * v;
    float *d = dlogits ? dlogits + row * v : nullptr;
    const int32_t t = targets[row];
    if (t < 0) {
        if (threadIdx.x == 0) losses[row] = 0.0f;
        if (d)
            for (int64_t j = threadIdx.x; j < v; j += blockDim.x) d[j] = 0.0f;
        return;
    }
    const float xt = x[t];
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, x[j]);
    m = lt_block_max(m, red);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += expf(x[j] - m);
    s = lt_block_sum(s, red);
    if (threadIdx.x == 0) losses[row] = m + logf(s) - xt;
    if (!d) return;
    const float inv = dscale / s;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
        float g = expf(x[j] - m) * inv;
        if (j == t) g -= dscale;
        d[j] = g;
    }
}
