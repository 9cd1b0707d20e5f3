/* Affine coupling internals shared by coupling.c (validation, per-image tasks, dispatch) and its implementations.
 * Each function handles one image i (row of hw elements). */
#ifndef LT_COUPLING_H
#define LT_COUPLING_H

#include "lt_internal.h"

/* Double-precision loops rounded once: the ISA-ref fallback and the oracle (coupling_ref.c). */
LT_HIDDEN double coupling_fwd_ref(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out);
LT_HIDDEN void coupling_inv_ref(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y);
LT_HIDDEN double coupling_bwd_ref(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                                  const float *dout, double dld, float *dy, float *dh0, float *dh1);
/* AVX2 versions (coupling_avx2.c): float arithmetic with the shared vexp / vtanh, sums in double. */
LT_HIDDEN double coupling_fwd_avx2(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out);
LT_HIDDEN void coupling_inv_avx2(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y);
LT_HIDDEN double coupling_bwd_avx2(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                                   const float *dout, double dld, float *dy, float *dh0, float *dh1);
/* AVX-512 versions (coupling_avx512.c, the same body as coupling_avx2.c from coupling_simd.h): same per-element bits
 * as AVX2, the per-image double sums in another order. */
LT_HIDDEN double coupling_fwd_avx512(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out);
LT_HIDDEN void coupling_inv_avx512(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y);
LT_HIDDEN double coupling_bwd_avx512(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                                     const float *dout, double dld, float *dy, float *dh0, float *dh1);

#endif
