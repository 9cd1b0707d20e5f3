/* Reference AdamW, one plain loop (the ISA-ref fallback and the readable oracle); adamw.c has the math and
 * computes the scalars. Each line is one PyTorch in-place op, in PyTorch's order:
 *   param, grad, m, v: (len) contiguous; param, m, v updated in place.
 * Checked by adamw_test.c against a double-precision step (LATENT_MAX_ISA=ref). */
#include <math.h>

#include "adamw.h"

void adamw_ref(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v) {
    for (int64_t i = 0; i < len; i++) {
        float g = grad[i] * k->grad_scale;
        float p = param[i] * k->decay;                                   /* param.mul_(1 - lr * wd) */
        float mi = k->beta1 * m[i] + k->one_minus_beta1 * g;             /* exp_avg */
        float vi = k->beta2 * v[i] + k->one_minus_beta2 * g * g;         /* exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2) */
        float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;                  /* (v.sqrt() / sqrt(bc2)).add_(eps) */
        param[i] = p - k->step_size * (mi / denom);                      /* param.addcdiv_(m, denom, -step_size) */
        m[i] = mi;
        v[i] = vi;
    }
}
