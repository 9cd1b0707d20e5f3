/* Embedding-backward internals: embedding.c validates every id, then splits the table into tasks of
 * (column block, vocabulary range); an implementation walks all n ids in order and adds the rows whose id falls
 * in its vocabulary range, restricted to its columns. Every dtable element is owned by one task and receives
 * its additions in index order, so the bits match a sequential loop whatever the split or thread count. */
#ifndef LT_EMBEDDING_H
#define LT_EMBEDDING_H

#include "lt_internal.h"

/* dtable[ids[i], c0:c1] += dout[i, c0:c1] for i < n with v0 <= ids[i] < v1. dout (n, c), dtable (vocab, c). */
LT_HIDDEN void embedding_bwd_ref(int64_t n, int64_t c, int64_t c0, int64_t c1, int64_t v0, int64_t v1,
                                 const int32_t *ids, const float *dout, float *dtable);
LT_HIDDEN void embedding_bwd_avx2(int64_t n, int64_t c, int64_t c0, int64_t c1, int64_t v0, int64_t v1,
                                  const int32_t *ids, const float *dout, float *dtable);

#endif
