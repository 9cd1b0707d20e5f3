/* lt_conv2d_fwd / lt_conv2d_bwd_data / lt_conv2d_bwd_weight: the front door. Validates the descriptor (every check
 * names the field and its value in lt_last_error()) and the pointers (outputs may not overlap inputs), then
 * dispatches by ISA: the im2col + GEMM path (conv2d_avx2.c) at avx2, the direct reference loops (conv2d_ref.c)
 * at ref. Test and benchmark: conv2d_test.c (`conv2d_test --bench`). */
#include "conv2d.h"

static int mul_ok(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

static lt_status check(const char *fn, const lt_conv2d_desc *d) {
    if (!d) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: descriptor is NULL", fn);
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1 || d->r < 1 || d->s < 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld c=%lld h=%lld w=%lld k=%lld r=%lld s=%lld must all be >= 1", fn, (long long)d->n,
                       (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->k, (long long)d->r, (long long)d->s);
    if (d->stride_h < 1 || d->stride_w < 1 || d->pad_h < 0 || d->pad_w < 0)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: stride %dx%d must be >= 1 and padding %dx%d >= 0", fn, d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    if (d->h > (int64_t)1 << 30 || d->w > (int64_t)1 << 30 || d->r > (int64_t)1 << 30 || d->s > (int64_t)1 << 30)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: spatial sizes above 2^30 are not supported", fn);
    if (d->r > d->h + 2 * (int64_t)d->pad_h || d->s > d->w + 2 * (int64_t)d->pad_w)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: kernel %lldx%lld is larger than the padded input %lldx%lld", fn, (long long)d->r,
                       (long long)d->s, (long long)(d->h + 2 * d->pad_h), (long long)(d->w + 2 * d->pad_w));
    int64_t oh = (d->h + 2 * (int64_t)d->pad_h - d->r) / d->stride_h + 1, ow = (d->w + 2 * (int64_t)d->pad_w - d->s) / d->stride_w + 1;
    if (d->oh != oh || d->ow != ow)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: oh=%lld ow=%lld but (h + 2 pad - r) / stride + 1 gives %lldx%lld", fn, (long long)d->oh,
                       (long long)d->ow, (long long)oh, (long long)ow);
    int64_t t, u;
    if (!mul_ok(d->n, d->c, &t) || !mul_ok(t, d->h, &t) || !mul_ok(t, d->w, &t) || !mul_ok(t, 4, &t) || !mul_ok(d->n, d->k, &u) ||
        !mul_ok(u, oh, &u) || !mul_ok(u, ow, &u) || !mul_ok(u, 4, &u) || !mul_ok(d->k, d->c, &t) || !mul_ok(t, d->r, &t) ||
        !mul_ok(t, d->s, &t) || !mul_ok(t, oh * ow, &t) || !mul_ok(t, 4, &t))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: sizes overflow int64 bytes", fn);
    return LT_OK;
}

static int overlap(const void *a, int64_t na, const void *b, int64_t nb) {
    const char *x = a, *y = b;
    return a && b && x < y + nb * 4 && y < x + na * 4;
}

lt_status lt_conv2d_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    lt_status s = check("lt_conv2d_fwd", d);
    if (s != LT_OK) return s;
    if (!x || !w || !y) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_fwd: %s is NULL", !x ? "x" : !w ? "w" : "y");
    int64_t nx = d->n * d->c * d->h * d->w, nw = d->k * d->c * d->r * d->s, ny = d->n * d->k * d->oh * d->ow;
    if (overlap(y, ny, x, nx) || overlap(y, ny, w, nw) || overlap(y, ny, bias, d->k))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_fwd: y overlaps an input");
    return lt_isa_level() >= LT_ISA_AVX2 ? conv_fwd_gemm(d, x, w, bias, y) : conv_fwd_ref(d, x, w, bias, y);
}

lt_status lt_conv2d_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    lt_status s = check("lt_conv2d_bwd_data", d);
    if (s != LT_OK) return s;
    if (!dy || !w || !dx) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_data: %s is NULL", !dy ? "dy" : !w ? "w" : "dx");
    int64_t nx = d->n * d->c * d->h * d->w, nw = d->k * d->c * d->r * d->s, ny = d->n * d->k * d->oh * d->ow;
    if (overlap(dx, nx, dy, ny) || overlap(dx, nx, w, nw) || overlap(dx, nx, bias, d->c))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_data: dx overlaps an input");
    return lt_isa_level() >= LT_ISA_AVX2 ? conv_bwd_data_gemm(d, dy, w, bias, dx) : conv_bwd_data_ref(d, dy, w, bias, dx);
}

lt_status lt_conv2d_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db, int32_t accumulate) {
    lt_status s = check("lt_conv2d_bwd_weight", d);
    if (s != LT_OK) return s;
    if (!x || !dy || !dw) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_weight: %s is NULL", !x ? "x" : !dy ? "dy" : "dw");
    if (accumulate != 0 && accumulate != 1) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_weight: accumulate=%d must be 0 or 1", accumulate);
    int64_t nx = d->n * d->c * d->h * d->w, nw = d->k * d->c * d->r * d->s, ny = d->n * d->k * d->oh * d->ow;
    if (overlap(dw, nw, x, nx) || overlap(dw, nw, dy, ny) || overlap(db, d->k, x, nx) || overlap(db, d->k, dy, ny) || overlap(db, d->k, dw, nw))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_weight: dw or db overlaps an input or each other");
    return lt_isa_level() >= LT_ISA_AVX2 ? conv_bwd_weight_gemm(d, x, dy, dw, db, accumulate) : conv_bwd_weight_ref(d, x, dy, dw, db, accumulate);
}
