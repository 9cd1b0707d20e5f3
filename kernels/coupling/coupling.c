/* lt_coupling_fwd / _inv / _bwd: validation, then one task per image on the pool (an image's sums run whole on one
 * worker, and the per-image dscale partials are added in image order afterwards), AVX-512, AVX2 or reference per ISA.
 * Test and benchmark: coupling_test.c. */
#include "coupling.h"

typedef struct {
    int64_t hw;
    const float *b, *y, *h, *dout;
    const double *dld;
    float scale;
    float *out, *dh;
    double *ld, *part;
    int which, isa;
} cp_ctx;

static void task(void *p, int64_t i, int worker) {
    const cp_ctx *c = p;
    int64_t hw = c->hw;
    const float *y = c->y + i * hw, *h0 = c->h + 2 * i * hw, *h1 = h0 + hw;
    if (c->which == 0) {
        double ld = (c->isa >= LT_ISA_AVX512 ? coupling_fwd_avx512 : c->isa >= LT_ISA_AVX2 ? coupling_fwd_avx2 : coupling_fwd_ref)(hw, c->b, y, h0, h1, c->scale, c->out + i * hw);
        if (c->ld) c->ld[i] = ld;
    } else if (c->which == 1) {
        (c->isa >= LT_ISA_AVX512 ? coupling_inv_avx512 : c->isa >= LT_ISA_AVX2 ? coupling_inv_avx2 : coupling_inv_ref)(hw, c->b, y, h0, h1, c->scale, c->out + i * hw);
    } else {
        float *dh0 = c->dh + 2 * i * hw;
        c->part[i] = (c->isa >= LT_ISA_AVX512 ? coupling_bwd_avx512 : c->isa >= LT_ISA_AVX2 ? coupling_bwd_avx2 : coupling_bwd_ref)(hw, c->b, y, h0, h1, c->scale, c->dout + i * hw,
                                                                      c->dld ? c->dld[i] : 0.0, c->out + i * hw, dh0, dh0 + hw);
    }
}

static int overlap(const void *a, int64_t na, const void *b, int64_t nb) {
    const char *x = a, *y = b;
    return a && b && x < y + nb * 4 && y < x + na * 4;
}

static lt_status check(const char *fn, int64_t n, int64_t hw, const float *mask, const float *y, const float *h, const float *out) {
    if (n < 1 || hw < 1) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld hw=%lld must be >= 1", fn, (long long)n, (long long)hw);
    if (n > INT64_MAX / hw / 8) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n*hw overflows int64 bytes", fn);
    if (!mask || !y || !h || !out) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !mask ? "mask" : !y ? "y" : !h ? "h" : "output");
    if (overlap(out, n * hw, y, n * hw) || overlap(out, n * hw, h, 2 * n * hw) || overlap(out, n * hw, mask, hw))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: the output overlaps an input", fn);
    return LT_OK;
}

lt_status lt_coupling_fwd(int64_t n, int64_t hw, const float *mask, const float *y, const float *h, float scale, float *out, double *logdet) {
    lt_status s = check("lt_coupling_fwd", n, hw, mask, y, h, out);
    if (s != LT_OK) return s;
    cp_ctx c = {hw, mask, y, h, NULL, NULL, scale, out, NULL, logdet, NULL, 0, lt_isa_level()};
    lt_parallel_for(n, task, &c);
    return LT_OK;
}

lt_status lt_coupling_inv(int64_t n, int64_t hw, const float *mask, const float *yp, const float *h, float scale, float *y) {
    lt_status s = check("lt_coupling_inv", n, hw, mask, yp, h, y);
    if (s != LT_OK) return s;
    cp_ctx c = {hw, mask, yp, h, NULL, NULL, scale, y, NULL, NULL, NULL, 1, lt_isa_level()};
    lt_parallel_for(n, task, &c);
    return LT_OK;
}

lt_status lt_coupling_bwd(int64_t n, int64_t hw, const float *mask, const float *y, const float *h, float scale, const float *dout,
                          const double *dlogdet, float *dy, float *dh, double *dscale) {
    lt_status s = check("lt_coupling_bwd", n, hw, mask, y, h, dy);
    if (s != LT_OK) return s;
    if (!dout || !dh) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_coupling_bwd: %s is NULL", !dout ? "dout" : "dh");
    if (overlap(dh, 2 * n * hw, y, n * hw) || overlap(dh, 2 * n * hw, h, 2 * n * hw) || overlap(dh, 2 * n * hw, dout, n * hw) ||
        overlap(dy, n * hw, dout, n * hw) || overlap(dh, 2 * n * hw, dy, n * hw))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_coupling_bwd: dy or dh overlaps an input or each other");
    double *part = lt_alloc((size_t)n * sizeof(double));
    if (!part) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_coupling_bwd: %lld partial sums", (long long)n);
    cp_ctx c = {hw, mask, y, h, dout, dlogdet, scale, dy, dh, NULL, part, 2, lt_isa_level()};
    lt_parallel_for(n, task, &c);
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += part[i];
    lt_free(part);
    if (dscale) *dscale += acc;
    return LT_OK;
}
