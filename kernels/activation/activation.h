/* Pointwise activations and BCE-with-logits: internals shared by activation.c (validation, chunking, dispatch) and
 * its implementations. Each implementation handles one contiguous chunk; y may equal x, dx may equal dy. */
#ifndef LT_ACTIVATION_H
#define LT_ACTIVATION_H

#include "lt_internal.h"

/* Plain loops (tanh and exp in double, rounded once): the ISA-ref fallback and the readable oracle. */
LT_HIDDEN void act_fwd_ref(int kind, int64_t n, float alpha, const float *x, float *y);
LT_HIDDEN void act_bwd_ref(int kind, int64_t n, float alpha, const float *in, const float *dy, float *dx);
/* AVX2+FMA: ReLU / LeakyReLU by compare-and-blend, Tanh and Sigmoid through the shared vexp (activation_avx2.c). */
LT_HIDDEN void act_fwd_avx2(int kind, int64_t n, float alpha, const float *x, float *y);
LT_HIDDEN void act_bwd_avx2(int kind, int64_t n, float alpha, const float *in, const float *dy, float *dx);
/* AVX-512 forward: the same body (activation_simd.h) at 16 lanes, the AVX2 path's bits (activation_avx512.c). The
 * backward runs act_bwd_avx2 at avx512 too (measured: no consistent gain; BENCHMARKS.md). */
LT_HIDDEN void act_fwd_avx512(int kind, int64_t n, float alpha, const float *x, float *y);
/* BCE-with-logits over one chunk: returns the loss sum in double (elements in order); writes dlogits when not NULL.
 * Scalar at every ISA (log1p has no vector twin here; the loss is a reduction over logits, small next to the convs). */
LT_HIDDEN double bce_chunk(int64_t n, const float *x, const float *t, float tc, float *dx, float dscale);

#endif
