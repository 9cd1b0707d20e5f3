/* sumsq internals: sumsq.c cuts x into CHUNK-element chunks, gets each chunk's sum of squares (in double, in a
 * fixed order inside the chunk) from one implementation, and adds the chunk sums in chunk order. */
#ifndef LT_SUMSQ_H
#define LT_SUMSQ_H

#include "lt_internal.h"

#define SUMSQ_CHUNK 4096 /* part of the contract: the reduction order is fixed per 4096 elements */

/* sum_i x[i]^2 over len <= SUMSQ_CHUNK elements, in double. */
LT_HIDDEN double sumsq_chunk_ref(const float *x, int64_t len);
LT_HIDDEN double sumsq_chunk_avx2(const float *x, int64_t len);

#endif
