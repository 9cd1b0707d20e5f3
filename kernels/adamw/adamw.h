/* AdamW internals shared by adamw.c (validation, the scalar constants, chunking) and its implementations. */
#ifndef LT_ADAMW_H
#define LT_ADAMW_H

#include "lt_internal.h"

/* Per-step scalars, computed once in double by adamw.c and rounded to float (as PyTorch passes Python floats
 * to its float kernels). */
typedef struct {
    float grad_scale;  /* g = grad * grad_scale */
    float decay;       /* 1 - lr * weight_decay */
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float step_size;   /* lr / (1 - beta1^t) */
    float bc2_sqrt;    /* sqrt(1 - beta2^t) */
    float eps;
} adamw_consts;

/* One contiguous chunk of len parameters; param, m, v updated in place. */
LT_HIDDEN void adamw_ref(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v);
LT_HIDDEN void adamw_avx2(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v);
LT_HIDDEN void adamw_avx512(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v);

#endif
