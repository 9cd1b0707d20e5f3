/* BatchNorm2d internals shared by batchnorm.c (validation, per-channel tasks, dispatch) and its implementations.
 * x, y, dy, dx: (N, C, HW). Each function handles one channel c; sums are in double, in a fixed order (n, then
 * position), so the result never depends on the thread count. */
#ifndef LT_BATCHNORM_H
#define LT_BATCHNORM_H

#include "lt_internal.h"

typedef struct {
    int64_t n, c, hw;
    float eps, momentum;
    const float *x, *gamma, *beta, *mean_in, *var_in, *dy;
    float *y, *mean, *rstd, *rmean, *rvar, *dx, *dgamma, *dbeta;
} bn_args;

/* Training forward (statistics, normalise, running update), inference forward, backward, for channel ch. */
LT_HIDDEN void bn_train_ref(const bn_args *a, int64_t ch);
LT_HIDDEN void bn_infer_ref(const bn_args *a, int64_t ch);
LT_HIDDEN void bn_bwd_ref(const bn_args *a, int64_t ch);
LT_HIDDEN void bn_train_avx2(const bn_args *a, int64_t ch);
LT_HIDDEN void bn_infer_avx2(const bn_args *a, int64_t ch);
LT_HIDDEN void bn_bwd_avx2(const bn_args *a, int64_t ch);

#endif
