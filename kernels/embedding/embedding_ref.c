/* Reference embedding backward, plain loops (the ISA-ref fallback and the readable oracle):
 *   for i in [0, n) with v0 <= ids[i] < v1:  dtable[ids[i]][c0:c1] += dout[i][c0:c1]
 *   ids (n); dout (n, C); dtable (vocab, C). embedding.c owns the split into (column, vocabulary) blocks. */
#include "embedding.h"

void embedding_bwd_ref(int64_t n, int64_t c, int64_t c0, int64_t c1, int64_t v0, int64_t v1, const int32_t *ids,
                       const float *dout, float *dtable) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t r = ids[i];
        if (r < v0 || r >= v1) continue;
        const float *src = dout + i * c; // (C,)
        float *dst = dtable + r * c;     // (C,)
        for (int64_t j = c0; j < c1; j++) dst[j] += src[j];
    }
}
