/* Embedding lookup and its backward on the GPU (the CUDA siblings of F.embedding's gather and lt_embedding_bwd).
 *   ltk_embedding_fwd(n, c, ids, table, out)     out[i, :] = table[ids[i], :]; 256 threads, grid-stride over n * c.
 *       The ids come from the host, where the caller checks them against the vocabulary before the launch.
 *   ltk_embedding_bwd(rows, c, uniq, start, pos, dout, dtable)
 *       dtable[uniq[r], j] += dout[pos[p], j] for p = start[r] .. start[r + 1] - 1, in that order; grid
 *       (rows, ceil(c / 128)), 128 threads: one thread per dtable element, no atomics. The caller groups the
 *       positions by id on the host (the ids are host data) in increasing index order, so every element receives
 *       exactly the additions lt_embedding_bwd makes, in its order: the same bits (embedding_cuda_test.cc).
 * dout (n, c), table / dtable (vocab, c); uniq, start (rows + 1), pos (n) int32. Memory-bound, coalesced in j.
 * An empty group (start[r] == start[r + 1]) is skipped without touching dtable: the Java side pads the groups to
 * min(n, vocab) rows, so the launch does not depend on how many ids are distinct (a CUDA graph replays it for any batch). */
#include "lt_cuda.cuh"

/*@ launch=embedding grid=stride(n*c) block=256 ids[n] table[0] out[n*c] */
LT_KERNEL void ltk_embedding_fwd(int64_t n, int64_t c, const int32_t *__restrict__ ids, const float *__restrict__ table,
                                 float *__restrict__ out) {
    const int64_t total = n * c, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t i = e / c, j = e - i * c;
        out[e] = table[(int64_t)ids[i] * c + j];
    }
}

LT_KERNEL void ltk_embedding_bwd(int64_t rows, int64_t c, const int32_t *__restrict__ uniq, const int32_t *__restrict__ start,
                                 const int32_t *__restrict__ pos, const float *__restrict__ dout, float *__restrict__ dtable) {
    const int64_t r = blockIdx.x, j = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (r >= rows || j >= c || start[r] == start[r + 1]) return;   /* an empty group (padding): touches nothing */
    float *d = dtable + (int64_t)uniq[r] * c + j;
    float s = *d;
    for (int32_t p = start[r], e = start[r + 1]; p < e; p++) s += dout[(int64_t)pos[p] * c + j];
    *d = s;
}
