/* GEMM internals shared by gemm.c (validation, dispatch) and its implementations. Not exported.
 *
 * Both implementations take a descriptor that lt_gemm has already validated and with k > 0 and
 * alpha != 0 (lt_gemm handles those cases itself: C = beta * C), and loop over the batch themselves.
 * Shapes: C (M, N) row stride ldc; op(A) (M, K); op(B) (K, N); see latent.h for the layouts. */
#ifndef LT_GEMM_H
#define LT_GEMM_H

#include "lt_internal.h"

/* Plain loops, float accumulation in increasing k: the fallback at ISA ref and the readable oracle. */
LT_HIDDEN lt_status gemm_ref(const lt_gemm_desc *d, const float *a, const float *b, float *c);
/* Packed, register-blocked AVX2+FMA kernel on the worker pool (gemm_avx2.c). */
LT_HIDDEN lt_status gemm_avx2(const lt_gemm_desc *d, const float *a, const float *b, float *c);
/* The same with a 14 x 32 zmm micro-tile and masked edges (gemm_avx512.c); only at ISA avx512. */
LT_HIDDEN lt_status gemm_avx512(const lt_gemm_desc *d, const float *a, const float *b, float *c);
/* bf16 operands (rounded RNE when packed), fp32 accumulation with vdpbf16ps (gemm_avx512_bf16.c); only when
 * lt_cpu_bf16() and the level in use is avx512. */
LT_HIDDEN lt_status gemm_avx512_bf16(const lt_gemm_desc *d, const float *a, const float *b, float *c);

#endif
