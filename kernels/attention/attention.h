/* Attention internals shared by attention.c (validation, dispatch) and its implementations. Not exported.
 *
 * Every implementation takes a descriptor that attention.c has already validated (b, nh, t, hs >= 1,
 * causal 0 or 1, finite scale, no NULL pointer, b*nh*t*hs fits int64) and runs on the worker pool itself.
 * Shapes (latent.h): q, k, v, o, dout, dq, dk, dv (B, NH, T, HS) contiguous; lse (B, NH, T).
 * Both return LT_OK, or LT_ERR_OUT_OF_MEMORY (through lt_fail) when their scratch cannot be allocated. */
#ifndef LT_ATTENTION_H
#define LT_ATTENTION_H

#include "lt_internal.h"

/* Plain loops, one row of scores at a time (attention_ref.c): the fallback at ISA ref and the readable oracle. */
LT_HIDDEN lt_status attention_fwd_ref(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                      float *o, float *lse);
LT_HIDDEN lt_status attention_bwd_ref(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                      const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                      float *dv);

/* FlashAttention-2 tiling with AVX2+FMA register-blocked micro-kernels (attention_simd.h, built by attention_avx2.c
 * and attention_avx512.c). */
LT_HIDDEN lt_status attention_fwd_avx2(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                       float *o, float *lse);
LT_HIDDEN lt_status attention_bwd_avx2(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                       const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                       float *dv);

/* The same tiling with AVX-512 micro-kernels, 48-lane tiles (attention_avx512.c). */
LT_HIDDEN lt_status attention_fwd_avx512(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                         float *o, float *lse);
LT_HIDDEN lt_status attention_bwd_avx512(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                         const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                         float *dv);

/* bf16 operands (RNE) and fp32 accumulation with AVX512_BF16 vdpbf16ps (attention_avx512_bf16.c); only called when
 * lt_cpu_bf16() and the level in use is avx512. */
LT_HIDDEN lt_status attention_fwd_avx512_bf16(const lt_attention_desc *d, const float *q, const float *k,
                                              const float *v, float *o, float *lse);
LT_HIDDEN lt_status attention_bwd_avx512_bf16(const lt_attention_desc *d, const float *q, const float *k,
                                              const float *v, const float *o, const float *lse, const float *dout,
                                              float *dq, float *dk, float *dv);

#endif
