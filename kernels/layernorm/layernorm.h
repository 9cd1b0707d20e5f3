/* LayerNorm internals shared by layernorm.c (validation, row split, the dw/db reduction) and its implementations.
 *
 * Both implementations work on `rows` consecutive rows of C floats and never fail (layernorm.c validated):
 *   fwd: x, y (rows, C); w, b (C); mean, rstd (rows). y may equal x.
 *   bwd: x, dy, dx (rows, C); w (C); mean, rstd (rows); dx may equal dy. dw_part, db_part (C) are OVERWRITTEN
 *        with the sums over these rows, in row order, of dy * xhat and dy: layernorm.c adds the parts of all
 *        chunks in chunk order, so dw and db do not depend on which thread ran which chunk. */
#ifndef LT_LAYERNORM_H
#define LT_LAYERNORM_H

#include "lt_internal.h"

LT_HIDDEN void layernorm_fwd_ref(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b,
                                 float *y, float *mean, float *rstd);
LT_HIDDEN void layernorm_bwd_ref(int64_t rows, int64_t c, const float *x, const float *w, const float *mean,
                                 const float *rstd, const float *dy, float *dx, float *dw_part, float *db_part);
/* The same passes, 16 floats per step (layernorm_avx512.c). */
LT_HIDDEN void layernorm_fwd_avx512(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b,
                                    float *y, float *mean, float *rstd);
LT_HIDDEN void layernorm_bwd_avx512(int64_t rows, int64_t c, const float *x, const float *w, const float *mean,
                                    const float *rstd, const float *dy, float *dx, float *dw_part, float *db_part);
LT_HIDDEN void layernorm_fwd_avx2(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b,
                                  float *y, float *mean, float *rstd);
LT_HIDDEN void layernorm_bwd_avx2(int64_t rows, int64_t c, const float *x, const float *w, const float *mean,
                                  const float *rstd, const float *dy, float *dx, float *dw_part, float *db_part);
/* lt_layernorm_residual_fwd's rows: s = x + a (s may equal x or a), then exactly layernorm_fwd_* on s. */
LT_HIDDEN void layernorm_residual_fwd_ref(int64_t rows, int64_t c, float eps, const float *x, const float *a, float *s,
                                          const float *w, const float *b, float *y, float *mean, float *rstd);
LT_HIDDEN void layernorm_residual_fwd_avx2(int64_t rows, int64_t c, float eps, const float *x, const float *a, float *s,
                                           const float *w, const float *b, float *y, float *mean, float *rstd);
LT_HIDDEN void layernorm_residual_fwd_avx512(int64_t rows, int64_t c, float eps, const float *x, const float *a, float *s,
                                             const float *w, const float *b, float *y, float *mean, float *rstd);
/* s = x + a over n floats (s may equal x or a): lt_layernorm_residual_bwd's dx = ds + dx. */
LT_HIDDEN void layernorm_add_ref(int64_t n, const float *x, const float *a, float *s);
LT_HIDDEN void layernorm_add_avx2(int64_t n, const float *x, const float *a, float *s);
LT_HIDDEN void layernorm_add_avx512(int64_t n, const float *x, const float *a, float *s);

#endif
