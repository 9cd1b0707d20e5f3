/* lt_adamw: one AdamW step over n parameters, in PyTorch's torch.optim.AdamW order (single-tensor path):
 *   g = grad * grad_scale
 *   p = p * (1 - lr * wd)                                   decoupled weight decay, first
 *   m = beta1 * m + (1 - beta1) * g                         v = beta2 * v + (1 - beta2) * g * g
 *   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The scalars are computed here once in double (adamw_consts) and the elementwise update runs on
 * CHUNK-element tasks, adamw_avx512 (adamw_avx512.c) at ISA avx512, adamw_avx2 (adamw_avx2.c) at avx2, both from
 * adamw_simd.h and bit-identical to each other, else adamw_ref (adamw_ref.c). Elementwise, so the bits never depend
 * on the thread count.
 * Validation: beta1, beta2 in [0, 1); lr, weight_decay, grad_scale finite and >= 0; eps finite and > 0 (PyTorch
 * accepts 0, but v = 0 then divides 0 by 0); step >= 1; the four arrays must not overlap.
 * Test and benchmark: adamw_test.c (`adamw_test --bench`). */
#include <math.h>

#include "adamw.h"

#define CHUNK 16384 /* parameters per task: 4 arrays x 64 KB */

typedef struct { const adamw_consts *k; int64_t n; float *p, *m, *v; const float *g; int isa; } adamw_ctx;

static void task(void *p, int64_t t, int worker) {
    const adamw_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    (c->isa >= LT_ISA_AVX512 ? adamw_avx512 : c->isa >= LT_ISA_AVX2 ? adamw_avx2 : adamw_ref)(c->k, len, c->p + lo, c->g + lo, c->m + lo, c->v + lo);
}

static int overlap(const float *a, const float *b, int64_t n) { return a < b + n && b < a + n; }

lt_status lt_adamw(const lt_adamw_desc *d, int64_t n, float *param, const float *grad, float *m, float *v) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_adamw: " __VA_ARGS__)
    if (!d) return BAD("descriptor is NULL");
    if (!(d->lr >= 0.0f) || !isfinite(d->lr)) return BAD("lr=%g must be finite and >= 0", (double)d->lr);
    if (!(d->beta1 >= 0.0f && d->beta1 < 1.0f)) return BAD("beta1=%g must be in [0, 1)", (double)d->beta1);
    if (!(d->beta2 >= 0.0f && d->beta2 < 1.0f)) return BAD("beta2=%g must be in [0, 1)", (double)d->beta2);
    if (!(d->eps > 0.0f) || !isfinite(d->eps)) return BAD("eps=%g must be finite and > 0", (double)d->eps);
    if (!(d->weight_decay >= 0.0f) || !isfinite(d->weight_decay))
        return BAD("weight_decay=%g must be finite and >= 0", (double)d->weight_decay);
    if (!(d->grad_scale >= 0.0f) || !isfinite(d->grad_scale))
        return BAD("grad_scale=%g must be finite and >= 0", (double)d->grad_scale);
    if (d->step < 1) return BAD("step=%lld must be >= 1 (the first step is 1)", (long long)d->step);
    if (n < 0) return BAD("n=%lld must be >= 0", (long long)n);
    if (n == 0) return LT_OK;
    if (n > INT64_MAX / 4) return BAD("n=%lld overflows int64 bytes", (long long)n);
    const char *null = !param ? "param" : !grad ? "grad" : !m ? "m" : !v ? "v" : NULL;
    if (null) return BAD("%s is NULL with n=%lld", null, (long long)n);
    if (overlap(param, grad, n) || overlap(param, m, n) || overlap(param, v, n) || overlap(grad, m, n) ||
        overlap(grad, v, n) || overlap(m, v, n))
        return BAD("param=%p grad=%p m=%p v=%p overlap (n=%lld)", (void *)param, (const void *)grad, (void *)m,
                   (void *)v, (long long)n);
#undef BAD
    const double t = (double)d->step, b1 = d->beta1, b2 = d->beta2;
    const adamw_consts k = {
        d->grad_scale,
        (float)(1.0 - (double)d->lr * d->weight_decay),
        d->beta1, (float)(1.0 - b1), d->beta2, (float)(1.0 - b2),
        (float)(d->lr / (1.0 - pow(b1, t))),
        (float)sqrt(1.0 - pow(b2, t)),
        d->eps,
    };
    adamw_ctx c = {&k, n, param, m, v, grad, lt_isa_level()};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, task, &c);
    return LT_OK;
}
