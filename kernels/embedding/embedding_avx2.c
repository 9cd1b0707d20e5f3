/* AVX2 embedding backward: embedding_ref.c's loop with 8-wide adds (masked tail) and a prefetch of the table
 * row slice PREFETCH ids ahead, since the rows a batch touches are scattered over the table (a 50257 x 768 table
 * is 154 MB: most row slices come from DRAM). Float adds in index order per element, as the reference: the same
 * bits. ids (n); dout (n, C); dtable (vocab, C); this task owns columns [c0, c1) of rows [v0, v1).
 * Measured (embedding_test --bench, n = 8192, vocab = 50257, shared 2-core VM; 12 bytes per dout element):
 * C = 768: 1 thread 4.0-4.5 ms (17-19 GB/s), 2 threads 2.44 ms (30.9 GB/s); C = 384: 2.0-2.9 ms / 1.28 ms. */
#include <immintrin.h>

#include "embedding.h"
#include "../common/vmath_avx2.h"

#define PREFETCH 8

void embedding_bwd_avx2(int64_t n, int64_t c, int64_t c0, int64_t c1, int64_t v0, int64_t v1, const int32_t *ids,
                        const float *dout, float *dtable) {
    const int64_t w = c1 - c0, wv = w & ~(int64_t)7;
    const __m256i tail = vtail_mask(w - wv);
    for (int64_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) {
            const int64_t rp = ids[i + PREFETCH];
            if (rp >= v0 && rp < v1)
                for (int64_t j = 0; j < w; j += 16) _mm_prefetch((const char *)(dtable + rp * c + c0 + j), _MM_HINT_T0);
        }
        const int64_t r = ids[i];
        if (r < v0 || r >= v1) continue;
        const float *src = dout + i * c + c0;
        float *dst = dtable + r * c + c0;
        int64_t j = 0;
        for (; j < wv; j += 8) _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(dst + j), _mm256_loadu_ps(src + j)));
        if (j < w) _mm256_maskstore_ps(dst + j, tail, _mm256_add_ps(_mm256_maskload_ps(dst + j, tail), _mm256_maskload_ps(src + j, tail)));
    }
}
