/* GELU internals shared by gelu.c (validation, chunking, dispatch) and its implementations.
 * Each implementation handles one contiguous chunk of n elements; y may equal x, dx may equal dy. */
#ifndef LT_GELU_H
#define LT_GELU_H

#include "lt_internal.h"

/* Plain loops in double (erfc, exp), rounded once: the ISA-ref fallback and the readable oracle (gelu_ref.c). */
LT_HIDDEN void gelu_fwd_ref(int64_t n, const float *x, float *y);
LT_HIDDEN void gelu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx);
/* AVX2+FMA with a vectorized normal CDF (gelu_simd.h). */
LT_HIDDEN void gelu_fwd_avx2(int64_t n, const float *x, float *y);
LT_HIDDEN void gelu_bwd_avx2(int64_t n, const float *x, const float *dy, float *dx);
/* The vector math alone, for the accuracy sweeps in gelu_test.c: which = 0: exp(in) (vexp),
 * 1: Phi(in), the normal CDF, 2: phi(in), the normal density. Needs a CPU with AVX2+FMA. */
/* The same operations, 16 lanes (gelu_avx512.c): the AVX2 path's bits. */
LT_HIDDEN void gelu_fwd_avx512(int64_t n, const float *x, float *y);
LT_HIDDEN void gelu_bwd_avx512(int64_t n, const float *x, const float *dy, float *dx);
LT_HIDDEN void gelu_vmath_avx2(int which, int64_t n, const float *in, float *out);

#endif
