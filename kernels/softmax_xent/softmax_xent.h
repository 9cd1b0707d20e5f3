/* softmax_xent internals shared by softmax_xent.c (validation, row split, dispatch) and its implementations.
 *
 * Both implementations process `rows` consecutive rows of the (N, V) problem and never fail: the caller has
 * validated every argument (targets < v, dlogits either NULL, equal to logits, or disjoint from it).
 *   logits:  (rows, V)     targets: (rows)     losses: (rows)     dlogits: (rows, V) or NULL
 */
#ifndef LT_SOFTMAX_XENT_H
#define LT_SOFTMAX_XENT_H

#include "lt_internal.h"

/* Plain loops, sums in double: the ISA-ref fallback and the readable oracle (softmax_xent_ref.c). */
LT_HIDDEN void softmax_xent_rows_ref(int64_t rows, int64_t v, const float *logits, const int32_t *targets,
                                     float *losses, float *dlogits, float dscale);
/* Blocked online softmax, one read of each row from memory (softmax_xent_simd.h). */
/* The same blocks, 16 lanes (softmax_xent_avx512.c). */
LT_HIDDEN void softmax_xent_rows_avx512(int64_t rows, int64_t v, const float *logits, const int32_t *targets,
                                        float *losses, float *dlogits, float dscale);
LT_HIDDEN void softmax_xent_rows_avx2(int64_t rows, int64_t v, const float *logits, const int32_t *targets,
                                      float *losses, float *dlogits, float dscale);

#endif
