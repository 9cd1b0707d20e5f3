/* Decode attention internals shared by attention_decode.c (validation, dispatch) and its implementations.
 * Each implementation computes one (row, head) pair: o[0..hs) = softmax(scale q . k_j, j < len) v_j. */
#ifndef LT_ATTENTION_DECODE_H
#define LT_ATTENTION_DECODE_H

#include "lt_internal.h"

/* q: hs floats of one head; k, v: the head's column offset into the cache, row stride ld; o: hs floats, written. */
LT_HIDDEN void attn_decode_head_ref(int64_t hs, int64_t len, float scale, const float *q, const float *k, const float *v,
                                    int64_t ld, float *o);
LT_HIDDEN void attn_decode_head_avx2(int64_t hs, int64_t len, float scale, const float *q, const float *k, const float *v,
                                     int64_t ld, float *o);
LT_HIDDEN void attn_decode_head_avx512(int64_t hs, int64_t len, float scale, const float *q, const float *k,
                                       const float *v, int64_t ld, float *o);

#endif
