/* lt_batchnorm2d_fwd_train / _fwd_infer / _bwd: validation, then one task per channel on the pool (each channel's
 * reductions run whole on one worker, so the bits never depend on the thread count), AVX2 or reference per ISA.
 * Test and benchmark: batchnorm_test.c. */
#include "batchnorm.h"

typedef struct { bn_args a; int which, avx2; } bn_ctx;

static void task(void *p, int64_t ch, int worker) {
    const bn_ctx *c = p;
    if (c->which == 0) (c->avx2 ? bn_train_avx2 : bn_train_ref)(&c->a, ch);
    else if (c->which == 1) (c->avx2 ? bn_infer_avx2 : bn_infer_ref)(&c->a, ch);
    else (c->avx2 ? bn_bwd_avx2 : bn_bwd_ref)(&c->a, ch);
}

static lt_status dims(const char *fn, int64_t n, int64_t c, int64_t hw) {
    if (n < 1 || c < 1 || hw < 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld c=%lld hw=%lld must all be >= 1", fn, (long long)n, (long long)c, (long long)hw);
    if (n > INT64_MAX / c || n * c > INT64_MAX / hw / 4)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n*c*hw overflows int64 bytes", fn);
    return LT_OK;
}

static lt_status run(bn_ctx *ctx, int64_t c) {
    ctx->avx2 = lt_isa_level() >= LT_ISA_AVX2;
    lt_parallel_for(c, task, ctx);
    return LT_OK;
}

lt_status lt_batchnorm2d_fwd_train(int64_t n, int64_t c, int64_t hw, float eps, float momentum, const float *x, const float *gamma,
                                   const float *beta, float *y, float *mean, float *rstd, float *running_mean, float *running_var) {
    lt_status s = dims("lt_batchnorm2d_fwd_train", n, c, hw);
    if (s != LT_OK) return s;
    if (!x || !y || !mean || !rstd)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_train: %s is NULL", !x ? "x" : !y ? "y" : !mean ? "mean" : "rstd");
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_train: eps=%g must be > 0 and momentum=%g in [0, 1]", eps, momentum);
    if (x != y && x < y + n * c * hw && y < x + n * c * hw)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_train: y overlaps x without being equal to it");
    if (x == y) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_train: in place (y == x) is not supported: the statistics pass reads x twice");
    bn_ctx ctx = {.which = 0};
    ctx.a = (bn_args){n, c, hw, eps, momentum, x, gamma, beta, NULL, NULL, NULL, y, mean, rstd, running_mean, running_var, NULL, NULL, NULL};
    return run(&ctx, c);
}

lt_status lt_batchnorm2d_fwd_infer(int64_t n, int64_t c, int64_t hw, float eps, const float *x, const float *gamma, const float *beta,
                                   const float *mean, const float *var, float *y) {
    lt_status s = dims("lt_batchnorm2d_fwd_infer", n, c, hw);
    if (s != LT_OK) return s;
    if (!x || !y || !mean || !var)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_infer: %s is NULL", !x ? "x" : !y ? "y" : !mean ? "mean" : "var");
    if (!(eps > 0)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_infer: eps=%g must be > 0", eps);
    if (x != y && x < y + n * c * hw && y < x + n * c * hw)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_fwd_infer: y overlaps x without being equal to it");
    bn_ctx ctx = {.which = 1};
    ctx.a = (bn_args){n, c, hw, eps, 0, x, gamma, beta, mean, var, NULL, y, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    return run(&ctx, c);
}

lt_status lt_batchnorm2d_bwd(int64_t n, int64_t c, int64_t hw, const float *x, const float *gamma, const float *mean, const float *rstd,
                             const float *dy, float *dx, float *dgamma, float *dbeta) {
    lt_status s = dims("lt_batchnorm2d_bwd", n, c, hw);
    if (s != LT_OK) return s;
    if (!x || !mean || !rstd || !dy || !dx)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_bwd: %s is NULL", !x ? "x" : !mean ? "mean" : !rstd ? "rstd" : !dy ? "dy" : "dx");
    int64_t tot = n * c * hw;
    if ((dx < x + tot && x < dx + tot) || (dx < dy + tot && dy < dx + tot))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_batchnorm2d_bwd: dx overlaps x or dy (both are read after dx is written)");
    bn_ctx ctx = {.which = 2};
    ctx.a = (bn_args){n, c, hw, 0, 0, x, gamma, NULL, mean, NULL, dy, NULL, (float *)mean, (float *)rstd, NULL, NULL, dx, dgamma, dbeta};
    return run(&ctx, c);
}
