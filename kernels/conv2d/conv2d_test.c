/* lt_conv2d_{fwd,bwd_data,bwd_weight} test: through the exported symbols (conv2d_*avx512.c, conv2d_*avx2.c or
 * conv2d_ref.c by LATENT_MAX_ISA; ctest runs all three), against a double-precision reference computed here and against the C
 * reference (conv2d_*_ref, linked from the same objects) on random shapes.
 *
 *   conv2d_test                  the checks; prints "N passed, N failed" last
 *   conv2d_test --bench [reps]   W3a, W3b, W3c (WORKLOADS.md), each pass on 1 and 2 threads: best ms, GFLOP/s and
 *                                % of the lt_peak_fma measured right before (FLOPs = 2 N K OH OW C R S per pass;
 *                                lt_peak_fma is the AVX2 FMA ceiling, which on a Zen 4 host is also the AVX-512 one);
 *                                CONV_BENCH_BF16=1 times each pass's lt_conv2d_*_bf16 right after it (bf16/fp32 speed-up)
 *
 * Tolerance, per element (written once, in tol()): |got - want| <= u (8 sqrt(t) + 3) mag + 1e-30, u = 2^-24, t the
 * number of terms of the sum and mag = sum |terms| + |bias or old dw|: the same probabilistic bound as gemm_test.c
 * (a float sum of t products in any order errs by ~sqrt(t) u sum|terms| for independent roundings, Higham & Mary
 * 2019; 8 is a wide margin on seeded uniform(-1, 1) data, and a lost, doubled or misplaced term moves an element by
 * ~mag / t, far above it). Scaling by mag, not |want|, keeps cancelling sums meaningful. The avx2 and C reference
 * results are each held to it against double, and to twice it against each other.
 * Zero-trust: every write-only output (y, dx, dw and db with accumulate = 0) is NaN-prefilled, so an unwritten
 * element or a NaN read back from the output fails. Also: 1, 2 and 3 threads bit-identical, the adjoint identity
 * <conv(x, w), y> = <x, conv^T(y, w)>, concurrent callers, and bad arguments (LT_ERR_INVALID_ARGUMENT with a message).
 *
 * bf16 (lt_conv2d_*_bf16; at avx512 with AVX512_BF16 the same fixed and random shapes, else the check that they are
 * refused). Each result is held twice, as gemm_test.c holds lt_gemm_bf16: (1) against the double reference computed
 * on the operands rounded to bf16 here (RNE by bit manipulation, independent of the kernel's instructions) with the
 * fp32 tolerance above: products of bf16 values are exact in fp32, so only fp32 sums err, and a kernel that rounded
 * the wrong operands, or none, fails it; (2) against the double reference on the fp32 operands with
 * (2^-7 + 2^-16) mag added: bf16 keeps 8 significant bits, so RNE errs by at most u_bf = 2^-8 relative per operand
 * and a product of two rounded operands by (2 u_bf + u_bf^2) = 2^-7 + 2^-16 relative; summed, at most that times mag
 * (first order and rigorous, not probabilistic). Bias, db and old dw/db are fp32 and not rounded (mag includes them,
 * which only loosens (2) a little). Also: 1, 2, 3 threads bit-identical on shapes of several image blocks, and that
 * the results really differ from the fp32 kernels' (rounded, not silently fp32). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "conv2d.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)


/* ---- bf16 -------------------------------------------------------------------------------------------------------- */

static int g_bf16;         /* 1: check_shape runs the lt_conv2d_*_bf16 entry points (see the header) */
static double g_extra;     /* added relative tolerance (x mag): 0, or 2^-7 + 2^-16 against the fp32 operands */

static float bf16_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) return x; /* NaN stays NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}
static float *bf16_copy(const float *x, int64_t n) {
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) y[i] = bf16_rne(x[i]);
    return y;
}

static double tol(double mag, int64_t terms) { return U * (8.0 * sqrt((double)terms) + 3.0) * mag + g_extra * mag + 1e-30; }

static int64_t nx_of(const lt_conv2d_desc *d) { return d->n * d->c * d->h * d->w; }
static int64_t nw_of(const lt_conv2d_desc *d) { return d->k * d->c * d->r * d->s; }
static int64_t ny_of(const lt_conv2d_desc *d) { return d->n * d->k * d->oh * d->ow; }

/* ---- double-precision reference ------------------------------------------------------------------------------ */

static void dref_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, double *want,
                     double *mag) {
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    double s = bias ? bias[k] : 0, m = bias ? fabs(bias[k]) : 0;
                    for (int64_t c = 0; c < d->c; c++)
                        for (int64_t r = 0; r < d->r; r++)
                            for (int64_t q = 0; q < d->s; q++) {
                                int64_t ih = oh * d->stride_h - d->pad_h + r, iw = ow * d->stride_w - d->pad_w + q;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                double t = (double)x[((n * d->c + c) * d->h + ih) * d->w + iw] *
                                           w[((k * d->c + c) * d->r + r) * d->s + q];
                                s += t;
                                m += fabs(t);
                            }
                    int64_t o = ((n * d->k + k) * d->oh + oh) * d->ow + ow;
                    want[o] = s;
                    mag[o] = m;
                }
}

/* Scatter form (the adjoint written the other way round from conv2d_ref.c's gather form). */
static void dref_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, double *want,
                          double *mag) {
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t i = 0; i < d->h * d->w; i++) {
                want[(n * d->c + c) * d->h * d->w + i] = bias ? bias[c] : 0;
                mag[(n * d->c + c) * d->h * d->w + i] = bias ? fabs(bias[c]) : 0;
            }
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    double g = dy[((n * d->k + k) * d->oh + oh) * d->ow + ow];
                    for (int64_t c = 0; c < d->c; c++)
                        for (int64_t r = 0; r < d->r; r++)
                            for (int64_t q = 0; q < d->s; q++) {
                                int64_t ih = oh * d->stride_h - d->pad_h + r, iw = ow * d->stride_w - d->pad_w + q;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                double t = g * w[((k * d->c + c) * d->r + r) * d->s + q];
                                int64_t o = ((n * d->c + c) * d->h + ih) * d->w + iw;
                                want[o] += t;
                                mag[o] += fabs(t);
                            }
                }
}

static void dref_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, const float *dw0,
                            const float *db0, int acc, double *ww, double *wm, double *bw, double *bm) {
    for (int64_t k = 0; k < d->k; k++) {
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t r = 0; r < d->r; r++)
                for (int64_t q = 0; q < d->s; q++) {
                    int64_t o = ((k * d->c + c) * d->r + r) * d->s + q;
                    double s = acc ? dw0[o] : 0, m = acc ? fabs(dw0[o]) : 0;
                    for (int64_t n = 0; n < d->n; n++)
                        for (int64_t oh = 0; oh < d->oh; oh++)
                            for (int64_t ow = 0; ow < d->ow; ow++) {
                                int64_t ih = oh * d->stride_h - d->pad_h + r, iw = ow * d->stride_w - d->pad_w + q;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                double t = (double)dy[((n * d->k + k) * d->oh + oh) * d->ow + ow] *
                                           x[((n * d->c + c) * d->h + ih) * d->w + iw];
                                s += t;
                                m += fabs(t);
                            }
                    ww[o] = s;
                    wm[o] = m;
                }
        double s = acc ? db0[k] : 0, m = acc ? fabs(db0[k]) : 0;
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->oh * d->ow; i++) {
                double t = dy[(n * d->k + k) * d->oh * d->ow + i];
                s += t;
                m += fabs(t);
            }
        bw[k] = s;
        bm[k] = m;
    }
}

/* ---- comparisons ----------------------------------------------------------------------------------------------- */

static char what_buf[256];
static const char *shape_str(const lt_conv2d_desc *d) {
    snprintf(what_buf, sizeof what_buf, "n=%lld c=%lld h=%lld w=%lld k=%lld r=%lld s=%lld stride=%d,%d pad=%d,%d",
             (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->k, (long long)d->r,
             (long long)d->s, d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    return what_buf;
}

/* got vs want/mag (scale 1) and got vs other float result (scale 2). Prints the worst element on failure. */
static int agree_all(const char *what, const float *got, const double *want, const double *mag, int64_t n,
                     int64_t terms, const float *other) {
    int64_t bad = 0, worst = -1;
    double worst_r = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = tol(mag[i], terms);
        int ok = lt_t_agree(got[i], want[i], t);
        if (ok && other) ok = fabs((double)got[i] - other[i]) <= 2 * t;
        if (!ok) {
            bad++;
            double r = fabs((double)got[i] - want[i]) / t;
            if (worst < 0 || !(r <= worst_r)) { worst = i; worst_r = r; }
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %lld/%lld outside tolerance, worst [%lld] got %.9g want %.9g (other %.9g, tol %g)\n", what,
                (long long)bad, (long long)n, (long long)worst, got[worst], want[worst], other ? other[worst] : NAN,
                tol(mag[worst], terms));
    return bad == 0;
}

static float *fmalloc(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }
static double *dmalloc(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(double)); }

/* All passes of one shape against double and the C reference. */
static void check_shape_bf16(const lt_conv2d_desc *d, uint64_t *rng);
static void check_shape(const lt_conv2d_desc *d, uint64_t *rng) {
    if (g_bf16) { check_shape_bf16(d, rng); return; }
    const int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d);
    char sh[256];
    snprintf(sh, sizeof sh, "%s", shape_str(d));
    float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *bk = fmalloc(d->k), *bc = fmalloc(d->c);
    float *y = fmalloc(ny), *yr = fmalloc(ny), *dx = fmalloc(nx), *dxr = fmalloc(nx);
    float *dw0 = fmalloc(nw), *dw = fmalloc(nw), *dwr = fmalloc(nw), *db0 = fmalloc(d->k), *db = fmalloc(d->k),
          *dbr = fmalloc(d->k);
    double *want = dmalloc(ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw)), *mag = dmalloc(ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw));
    double *bw = dmalloc(d->k), *bm = dmalloc(d->k);
    lt_t_fill(x, nx, rng); lt_t_fill(w, nw, rng); lt_t_fill(dy, ny, rng);
    lt_t_fill(bk, d->k, rng); lt_t_fill(bc, d->c, rng); lt_t_fill(dw0, nw, rng); lt_t_fill(db0, d->k, rng);
    char what[400];
    for (int withb = 0; withb < 2; withb++) {
        /* fwd */
        lt_t_nan(y, ny); lt_t_nan(yr, ny);
        lt_status s1 = lt_conv2d_fwd(d, x, w, withb ? bk : NULL, y);
        lt_status s2 = conv2d_fwd_ref(d, x, w, withb ? bk : NULL, yr);
        snprintf(what, sizeof what, "fwd bias=%d %s", withb, sh);
        CHECK(s1 == LT_OK && s2 == LT_OK, "%s: status %d %d (%s)", what, s1, s2, lt_last_error());
        dref_fwd(d, x, w, withb ? bk : NULL, want, mag);
        CHECK(agree_all(what, y, want, mag, ny, d->c * d->r * d->s, yr), "%s: wrong result", what);
        CHECK(agree_all("fwd C reference", yr, want, mag, ny, d->c * d->r * d->s, NULL), "%s: C reference wrong", what);
        /* bwd_data */
        lt_t_nan(dx, nx); lt_t_nan(dxr, nx);
        s1 = lt_conv2d_bwd_data(d, dy, w, withb ? bc : NULL, dx);
        s2 = conv2d_bwd_data_ref(d, dy, w, withb ? bc : NULL, dxr);
        snprintf(what, sizeof what, "bwd_data bias=%d %s", withb, sh);
        CHECK(s1 == LT_OK && s2 == LT_OK, "%s: status %d %d (%s)", what, s1, s2, lt_last_error());
        dref_bwd_data(d, dy, w, withb ? bc : NULL, want, mag);
        CHECK(agree_all(what, dx, want, mag, nx, d->k * d->r * d->s, dxr), "%s: wrong result", what);
        CHECK(agree_all("bwd_data C reference", dxr, want, mag, nx, d->k * d->r * d->s, NULL), "%s: C reference wrong", what);
    }
    /* bwd_weight: accumulate 0 / 1, db NULL or not */
    for (int acc = 0; acc < 2; acc++)
        for (int withdb = 0; withdb < 2; withdb++) {
            if (acc) { memcpy(dw, dw0, nw * 4); memcpy(dwr, dw0, nw * 4); memcpy(db, db0, d->k * 4); memcpy(dbr, db0, d->k * 4); }
            else { lt_t_nan(dw, nw); lt_t_nan(dwr, nw); lt_t_nan(db, d->k); lt_t_nan(dbr, d->k); }
            lt_status s1 = lt_conv2d_bwd_weight(d, x, dy, dw, withdb ? db : NULL, acc);
            lt_status s2 = conv2d_bwd_weight_ref(d, x, dy, dwr, withdb ? dbr : NULL, acc);
            snprintf(what, sizeof what, "bwd_weight acc=%d db=%d %s", acc, withdb, sh);
            CHECK(s1 == LT_OK && s2 == LT_OK, "%s: status %d %d (%s)", what, s1, s2, lt_last_error());
            dref_bwd_weight(d, x, dy, dw0, db0, acc, want, mag, bw, bm);
            int64_t terms = d->n * d->oh * d->ow + 1;
            CHECK(agree_all(what, dw, want, mag, nw, terms, dwr), "%s: wrong dw", what);
            CHECK(agree_all("bwd_weight C reference", dwr, want, mag, nw, terms, NULL), "%s: C reference wrong dw", what);
            if (withdb) {
                CHECK(agree_all(what, db, bw, bm, d->k, terms, dbr), "%s: wrong db", what);
                CHECK(agree_all("bwd_weight C reference db", dbr, bw, bm, d->k, terms, NULL), "%s: C reference wrong db", what);
            } else {
                /* db == NULL: db untouched (still NaN / db0) is not observable; nothing to check */
            }
        }
    free(x); free(w); free(dy); free(bk); free(bc); free(y); free(yr); free(dx); free(dxr);
    free(dw0); free(dw); free(dwr); free(db0); free(db); free(dbr); free(want); free(mag); free(bw); free(bm);
}


/* All bf16 passes of one shape: (1) against double on the bf16-rounded operands with the fp32 tolerance, (2) against
 * double on the fp32 operands with the bf16 bound (the header). Write-only outputs are NaN-prefilled. */
static void check_shape_bf16(const lt_conv2d_desc *d, uint64_t *rng) {
    const int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d), big = ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw);
    char sh[256], what[400];
    snprintf(sh, sizeof sh, "%s", shape_str(d));
    float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *bk = fmalloc(d->k), *bc = fmalloc(d->c);
    float *dw0 = fmalloc(nw), *db0 = fmalloc(d->k), *out = fmalloc(big), *db = fmalloc(d->k);
    double *want = dmalloc(big), *mag = dmalloc(big), *bw = dmalloc(d->k), *bm = dmalloc(d->k);
    lt_t_fill(x, nx, rng); lt_t_fill(w, nw, rng); lt_t_fill(dy, ny, rng);
    lt_t_fill(bk, d->k, rng); lt_t_fill(bc, d->c, rng); lt_t_fill(dw0, nw, rng); lt_t_fill(db0, d->k, rng);
    float *x16 = bf16_copy(x, nx), *w16 = bf16_copy(w, nw), *dy16 = bf16_copy(dy, ny);
    for (int pass = 0; pass < 3; pass++)
        for (int v = 0; v < 2; v++) { /* v: bias / db or not; for bwd_weight also accumulate */
            int64_t n = pass == 0 ? ny : pass == 1 ? nx : nw;
            int64_t terms = pass == 0 ? d->c * d->r * d->s : pass == 1 ? d->k * d->r * d->s : d->n * d->oh * d->ow + 1;
            lt_status st;
            if (pass == 2 && v) { memcpy(out, dw0, nw * 4); memcpy(db, db0, d->k * 4); }
            else { lt_t_nan(out, n); lt_t_nan(db, d->k); }
            st = pass == 0 ? lt_conv2d_fwd_bf16(d, x, w, v ? bk : NULL, out)
               : pass == 1 ? lt_conv2d_bwd_data_bf16(d, dy, w, v ? bc : NULL, out)
                           : lt_conv2d_bwd_weight_bf16(d, x, dy, out, db, v);
            snprintf(what, sizeof what, "bf16 %s %s=%d %s", pass == 0 ? "fwd" : pass == 1 ? "bwd_data" : "bwd_weight",
                     pass == 2 ? "acc" : "bias", v, sh);
            CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
            for (int against = 0; against < 2; against++) { /* 0: bf16-rounded operands, 1: fp32 operands */
                const float *xx = against ? x : x16, *ww = against ? w : w16, *gg = against ? dy : dy16;
                if (pass == 0) dref_fwd(d, xx, ww, v ? bk : NULL, want, mag);
                else if (pass == 1) dref_bwd_data(d, gg, ww, v ? bc : NULL, want, mag);
                else dref_bwd_weight(d, xx, gg, dw0, db0, v, want, mag, bw, bm);
                g_extra = against ? 1.0 / 128 + 1.0 / 65536 : 0;
                CHECK(agree_all(what, out, want, mag, n, terms, NULL), "%s: wrong result against the %s operands", what,
                      against ? "fp32" : "bf16-rounded");
                /* db sums dy in fp32, unrounded: the fp32 reference, fp32 tolerance */
                if (pass == 2 && !against) {
                    g_extra = 0;
                    dref_bwd_weight(d, x, dy, dw0, db0, v, want, mag, bw, bm);
                    CHECK(agree_all(what, db, bw, bm, d->k, terms, NULL), "%s: wrong db", what);
                }
            }
            g_extra = 0;
        }
    free(x); free(w); free(dy); free(bk); free(bc); free(dw0); free(db0); free(out); free(db);
    free(want); free(mag); free(bw); free(bm); free(x16); free(w16); free(dy16);
}

static int64_t irange(uint64_t *rng, int64_t lo, int64_t hi) { return lo + (int64_t)(lt_t_next(rng) % (uint64_t)(hi - lo + 1)); }

static lt_conv2d_desc make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s, int sh, int sw,
                           int ph, int pw) {
    lt_conv2d_desc d = {n, c, h, w, k, r, s, (h + 2 * ph - r) / sh + 1, (w + 2 * pw - s) / sw + 1, sh, sw, ph, pw};
    return d;
}

static lt_conv2d_desc random_shape(uint64_t *rng) {
    int64_t r = irange(rng, 1, 7), s = lt_t_next(rng) % 3 ? r : irange(rng, 1, 7);
    int sh = (int)irange(rng, 1, 3), sw = lt_t_next(rng) % 3 ? sh : (int)irange(rng, 1, 3);
    int ph = (int)irange(rng, 0, 3), pw = lt_t_next(rng) % 3 ? ph : (int)irange(rng, 0, 3);
    int64_t h = irange(rng, r - 2 * ph > 1 ? r - 2 * ph : 1, (r - 2 * ph > 1 ? r - 2 * ph : 1) + 11);
    int64_t w = irange(rng, s - 2 * pw > 1 ? s - 2 * pw : 1, (s - 2 * pw > 1 ? s - 2 * pw : 1) + 11);
    static const int64_t ks[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 24, 33};
    int64_t n = irange(rng, 1, 3), c = irange(rng, 1, 9), k = ks[lt_t_next(rng) % 11];
    return make(n, c, h, w, k, r, s, sh, sw, ph, pw);
}

static void test_shapes(void) {
    uint64_t rng = 0xC0471234ull;
    /* hand-picked: the workload shapes scaled down, tails of the 6 x 16 tile, 1x1, kernel = whole padded input */
    lt_conv2d_desc fixed[] = {
        make(2, 8, 9, 11, 16, 3, 3, 1, 1, 1, 1),   make(3, 16, 14, 14, 24, 4, 4, 2, 2, 1, 1),
        make(2, 20, 7, 7, 17, 4, 4, 2, 2, 1, 1),   make(1, 5, 13, 6, 7, 1, 1, 1, 1, 0, 0),
        make(2, 3, 8, 10, 33, 1, 1, 2, 2, 0, 0),   make(1, 2, 5, 4, 3, 7, 6, 1, 1, 1, 1),
        make(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0),     make(1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1),
        make(2, 3, 6, 9, 5, 1, 1, 3, 2, 1, 0),     make(1, 4, 3, 3, 19, 2, 2, 3, 3, 2, 2),
        make(1, 40, 12, 10, 50, 3, 3, 1, 1, 1, 1), make(2, 7, 17, 15, 9, 5, 5, 1, 1, 2, 2),
        make(1, 6, 20, 3, 10, 7, 1, 2, 1, 3, 0),   make(2, 16, 20, 18, 8, 4, 4, 2, 2, 1, 1), /* stride-2 conv^T rows >= 8 */
        make(1, 32, 9, 35, 5, 3, 3, 2, 2, 1, 1),
        /* few output channels (the pixel-vector tile): conv^T into 1 and 3 channels, a 3-channel fwd */
        make(2, 1, 32, 32, 8, 4, 4, 2, 2, 1, 1),   make(2, 3, 34, 37, 8, 4, 4, 2, 2, 1, 1),
        make(2, 5, 20, 40, 3, 3, 3, 1, 1, 1, 1),   make(1, 2, 9, 50, 7, 2, 5, 1, 1, 0, 2),
        /* a coupling net's ends (RealNVP, 28-pixel rows: overlapping 16-pixel runs, small-K bwd_weight with a row tail) */
        make(3, 6, 28, 28, 2, 3, 3, 1, 1, 1, 1),   make(2, 1, 28, 28, 5, 3, 3, 1, 1, 1, 1),
        make(2, 7, 11, 19, 1, 3, 3, 1, 1, 1, 1),
        /* 8..15-pixel rows into few channels (runs of 8): a VAE's first conv / last conv^T at 28 x 28, 12-wide */
        make(2, 1, 28, 28, 6, 4, 4, 2, 2, 1, 1),   make(2, 3, 9, 12, 3, 3, 3, 1, 1, 1, 1),
        /* fully connected (1 x 1 output, no padding: the GEMM path): a DCGAN's last D conv and first G conv^T, scaled */
        make(3, 5, 4, 4, 7, 4, 4, 1, 1, 0, 0),     make(2, 17, 3, 5, 1, 3, 5, 2, 1, 0, 0),
        make(5, 9, 1, 1, 13, 1, 1, 1, 1, 0, 0),    make(4, 20, 4, 4, 33, 4, 4, 1, 1, 0, 0),
        /* Winograd F(2x2, 3x3) (3x3, stride 1, >= 16 channels): pads 0..2, odd sizes, rows of 1..3 slivers, N = 1 */
        make(2, 16, 9, 13, 17, 3, 3, 1, 1, 0, 0),  make(1, 19, 7, 30, 16, 3, 3, 1, 1, 2, 2),
        make(3, 33, 11, 5, 20, 3, 3, 1, 1, 1, 1),  make(1, 16, 2, 2, 16, 3, 3, 1, 1, 1, 1),
        make(2, 24, 28, 28, 24, 3, 3, 1, 1, 1, 1), make(1, 16, 10, 70, 18, 3, 3, 1, 1, 1, 1),
        /* the 8 x 32 zmm tile of the avx512 kernels: channel counts around 16 and 32 (a last sliver of <= 16 channels
         * runs one vector wide; 8-channel store groups), panels of 1..8 pixels, odd sizes, strides, padding; Winograd
         * with an odd number of 16-tile slivers and of 16-channel dy slivers */
        make(2, 15, 9, 7, 31, 3, 3, 2, 2, 1, 1),   make(1, 33, 11, 13, 15, 4, 4, 2, 2, 1, 1),
        make(3, 17, 7, 9, 33, 1, 1, 1, 1, 0, 0),   make(1, 3, 13, 11, 47, 5, 5, 3, 3, 2, 2),
        make(2, 31, 6, 5, 49, 4, 4, 2, 2, 1, 1),   make(1, 48, 9, 9, 40, 2, 3, 1, 2, 0, 1),
        make(1, 16, 9, 66, 33, 3, 3, 1, 1, 1, 1),  make(2, 17, 11, 35, 47, 3, 3, 1, 1, 1, 1),
        make(1, 33, 13, 9, 16, 3, 3, 1, 1, 0, 0),  make(1, 40, 10, 38, 17, 3, 3, 1, 1, 2, 2),
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) check_shape(&fixed[i], &rng);
    for (int i = 0; i < (g_bf16 ? 60 : 150); i++) {
        lt_conv2d_desc d = random_shape(&rng);
        check_shape(&d, &rng);
    }
}

/* 1, 2 and 3 threads give the same bits, on shapes with several tasks per pass and several bwd_weight chunks. */
static void test_threads(void) {
    uint64_t rng = 4242;
    lt_conv2d_desc shapes[] = {make(4, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1), make(6, 12, 14, 14, 20, 4, 4, 2, 2, 1, 1),
                               make(1, 9, 23, 17, 18, 5, 3, 1, 2, 2, 1), make(3, 33, 7, 7, 16, 4, 4, 2, 2, 1, 1),
                               make(2, 16, 20, 18, 8, 4, 4, 2, 2, 1, 1), make(3, 3, 34, 37, 2, 4, 4, 2, 2, 1, 1),
                               make(3, 6, 28, 21, 3, 3, 3, 1, 1, 1, 1),
                               make(3, 24, 15, 17, 40, 4, 4, 2, 2, 1, 1), /* avx512: 32 + 8 channel slivers */
                               make(3, 17, 21, 21, 47, 3, 3, 1, 1, 1, 1), /* Winograd, odd sliver counts */
                               make(6, 40, 4, 4, 19, 4, 4, 1, 1, 0, 0),   /* fully connected: the GEMM */
                               make(64, 64, 8, 8, 128, 4, 4, 2, 2, 1, 1)}; /* few pixels, big dW: 4 chunks */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const lt_conv2d_desc *d = &shapes[si];
        int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d);
        float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *b = fmalloc(d->k > d->c ? d->k : d->c);
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(dy, ny, &rng); lt_t_fill(b, d->k > d->c ? d->k : d->c, &rng);
        float *out[3][4];
        for (int t = 0; t < 3; t++) {
            lt_set_num_threads(t + 1);
            out[t][0] = fmalloc(ny); out[t][1] = fmalloc(nx); out[t][2] = fmalloc(nw); out[t][3] = fmalloc(d->k);
            lt_status s = lt_conv2d_fwd(d, x, w, b, out[t][0]);
            s |= lt_conv2d_bwd_data(d, dy, w, b, out[t][1]);
            s |= lt_conv2d_bwd_weight(d, x, dy, out[t][2], out[t][3], 0);
            CHECK(s == LT_OK, "threads=%d %s: status %d (%s)", t + 1, shape_str(d), s, lt_last_error());
        }
        for (int t = 1; t < 3; t++) {
            CHECK(!memcmp(out[0][0], out[t][0], ny * 4) && !memcmp(out[0][1], out[t][1], nx * 4) &&
                      !memcmp(out[0][2], out[t][2], nw * 4) && !memcmp(out[0][3], out[t][3], d->k * 4),
                  "%s: 1 and %d threads differ (fwd %d bwd_data %d dw %d db %d)", shape_str(d), t + 1,
                  !!memcmp(out[0][0], out[t][0], ny * 4), !!memcmp(out[0][1], out[t][1], nx * 4),
                  !!memcmp(out[0][2], out[t][2], nw * 4), !!memcmp(out[0][3], out[t][3], d->k * 4));
        }
        for (int t = 0; t < 3; t++) for (int j = 0; j < 4; j++) free(out[t][j]);
        free(x); free(w); free(dy); free(b);
    }
    lt_set_num_threads(2);
}

/* bwd_data is the adjoint of fwd: <conv(x, w), y> == <x, conv^T(y, w)>, in double, within the summed tolerances of
 * both sides; the double references must agree to ~1e-12 (which checks the oracle's two forms against each other). */
static void test_adjoint(void) {
    uint64_t rng = 99;
    for (int i = 0; i < 40; i++) {
        lt_conv2d_desc d = random_shape(&rng);
        int64_t nx = nx_of(&d), nw = nw_of(&d), ny = ny_of(&d);
        float *x = fmalloc(nx), *w = fmalloc(nw), *y = fmalloc(ny), *cy = fmalloc(ny), *cx = fmalloc(nx);
        double *wf = dmalloc(ny), *mf = dmalloc(ny), *wb = dmalloc(nx), *mb = dmalloc(nx);
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(y, ny, &rng);
        lt_status s = lt_conv2d_fwd(&d, x, w, NULL, cy) | lt_conv2d_bwd_data(&d, y, w, NULL, cx);
        CHECK(s == LT_OK, "adjoint %s: status (%s)", shape_str(&d), lt_last_error());
        dref_fwd(&d, x, w, NULL, wf, mf);
        dref_bwd_data(&d, y, w, NULL, wb, mb);
        double l = 0, r = 0, lr = 0, rr = 0, t = 0, sa = 0;
        for (int64_t j = 0; j < ny; j++) {
            l += (double)cy[j] * y[j]; lr += wf[j] * y[j];
            t += fabs(y[j]) * tol(mf[j], d.c * d.r * d.s); sa += fabs(wf[j] * y[j]) + mf[j] * fabs(y[j]);
        }
        for (int64_t j = 0; j < nx; j++) {
            r += (double)x[j] * cx[j]; rr += x[j] * wb[j];
            t += fabs(x[j]) * tol(mb[j], d.k * d.r * d.s);
        }
        CHECK(fabs(lr - rr) <= 1e-12 * sa + 1e-300, "adjoint %s: double references disagree %.17g vs %.17g", shape_str(&d), lr, rr);
        CHECK(fabs(l - r) <= t, "adjoint %s: <conv(x,w),y> = %.12g but <x,conv^T(y,w)> = %.12g (tol %g)", shape_str(&d), l, r, t);
        free(x); free(w); free(y); free(cy); free(cx); free(wf); free(mf); free(wb); free(mb);
    }
}

/* Several threads calling at once (a service does): a call that finds the pool busy runs inline, scratch parked
 * between calls is taken by one caller only; every result must equal the same call made alone. */
typedef struct { lt_conv2d_desc d; float *x, *w, *dy, *out[3], *want[3]; lt_status st; } cjob_t;

static void *conc_main(void *p) {
    cjob_t *j = p;
    for (int it = 0; it < 3; it++) {
        j->st |= lt_conv2d_fwd(&j->d, j->x, j->w, NULL, j->out[0]);
        j->st |= lt_conv2d_bwd_data(&j->d, j->dy, j->w, NULL, j->out[1]);
        j->st |= lt_conv2d_bwd_weight(&j->d, j->x, j->dy, j->out[2], NULL, 0);
    }
    return NULL;
}

static void test_concurrent(void) {
    enum { NJ = 4 };
    lt_conv2d_desc shapes[NJ] = {make(4, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1), make(6, 12, 14, 14, 20, 4, 4, 2, 2, 1, 1),
                                 make(2, 9, 23, 17, 18, 5, 3, 1, 2, 2, 1), make(3, 33, 7, 7, 16, 4, 4, 2, 2, 1, 1)};
    cjob_t jobs[NJ];
    pthread_t tid[NJ];
    uint64_t rng = 7;
    lt_set_num_threads(2);
    for (int i = 0; i < NJ; i++) {
        cjob_t *j = &jobs[i];
        j->d = shapes[i];
        j->st = 0;
        int64_t n[3] = {ny_of(&j->d), nx_of(&j->d), nw_of(&j->d)};
        j->x = fmalloc(n[1]); j->w = fmalloc(n[2]); j->dy = fmalloc(n[0]);
        lt_t_fill(j->x, n[1], &rng); lt_t_fill(j->w, n[2], &rng); lt_t_fill(j->dy, n[0], &rng);
        for (int k = 0; k < 3; k++) { j->out[k] = fmalloc(n[k]); j->want[k] = fmalloc(n[k]); }
        lt_status st = lt_conv2d_fwd(&j->d, j->x, j->w, NULL, j->want[0]) |
                       lt_conv2d_bwd_data(&j->d, j->dy, j->w, NULL, j->want[1]) |
                       lt_conv2d_bwd_weight(&j->d, j->x, j->dy, j->want[2], NULL, 0);
        CHECK(st == LT_OK, "concurrent setup %d: %s", i, lt_last_error());
    }
    for (int i = 0; i < NJ; i++) pthread_create(&tid[i], NULL, conc_main, &jobs[i]);
    for (int i = 0; i < NJ; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < NJ; i++) {
        cjob_t *j = &jobs[i];
        int64_t n[3] = {ny_of(&j->d), nx_of(&j->d), nw_of(&j->d)};
        CHECK(j->st == LT_OK && !memcmp(j->out[0], j->want[0], n[0] * 4) && !memcmp(j->out[1], j->want[1], n[1] * 4) &&
                  !memcmp(j->out[2], j->want[2], n[2] * 4),
              "concurrent caller %d (%s): status %d or bits differ from a lone call", i, shape_str(&j->d), j->st);
        free(j->x); free(j->w); free(j->dy);
        for (int k = 0; k < 3; k++) { free(j->out[k]); free(j->want[k]); }
    }
}

static void test_invalid(void) {
    float buf[64] = {0}, o[64], o2[64];
    lt_conv2d_desc ok = make(1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1);
#define EXPECT_BAD(call, why) do { lt_status s_ = (call); \
        CHECK(s_ == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "%s: status %d, message '%s'", why, s_, lt_last_error()); } while (0)
    CHECK(lt_conv2d_fwd(&ok, buf, buf + 16, NULL, o) == LT_OK, "valid call failed: %s", lt_last_error());
    CHECK(lt_conv2d_bwd_data(&ok, buf, buf + 16, NULL, o) == LT_OK, "valid call failed: %s", lt_last_error());
    CHECK(lt_conv2d_bwd_weight(&ok, buf, buf + 16, o, o2, 1) == LT_OK, "valid call failed: %s", lt_last_error());
    EXPECT_BAD(lt_conv2d_fwd(NULL, buf, buf, NULL, o), "NULL descriptor");
    EXPECT_BAD(lt_conv2d_fwd(&ok, NULL, buf, NULL, o), "NULL x");
    EXPECT_BAD(lt_conv2d_fwd(&ok, buf, NULL, NULL, o), "NULL w");
    EXPECT_BAD(lt_conv2d_fwd(&ok, buf, buf, NULL, NULL), "NULL y");
    EXPECT_BAD(lt_conv2d_bwd_data(&ok, NULL, buf, NULL, o), "NULL dy");
    EXPECT_BAD(lt_conv2d_bwd_data(&ok, buf, buf, NULL, NULL), "NULL dx");
    EXPECT_BAD(lt_conv2d_bwd_weight(&ok, buf, buf, NULL, NULL, 0), "NULL dw");
    EXPECT_BAD(lt_conv2d_bwd_weight(&ok, NULL, buf, o, NULL, 0), "NULL x (bwd_weight)");
    EXPECT_BAD(lt_conv2d_bwd_weight(&ok, buf, buf, o, o2, 2), "accumulate = 2");
    EXPECT_BAD(lt_conv2d_fwd(&ok, buf, buf + 16, NULL, buf + 8), "y overlapping x");
    EXPECT_BAD(lt_conv2d_bwd_data(&ok, buf, buf + 16, NULL, buf + 20), "dx overlapping w");
    EXPECT_BAD(lt_conv2d_bwd_weight(&ok, buf, buf + 16, buf + 30, NULL, 0), "dw overlapping dy");
    lt_conv2d_desc d;
    d = ok; d.n = 0;        EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "n = 0");
    d = ok; d.c = -1;       EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "c = -1");
    d = ok; d.k = 0;        EXPECT_BAD(lt_conv2d_bwd_data(&d, buf, buf, NULL, o), "k = 0");
    d = ok; d.r = 0;        EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "r = 0");
    d = ok; d.stride_h = 0; EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "stride_h = 0");
    d = ok; d.pad_w = -1;   EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "pad_w = -1");
    d = ok; d.oh = 3;       EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "oh off by one");
    d = ok; d.ow = 5;       EXPECT_BAD(lt_conv2d_bwd_weight(&d, buf, buf, o, NULL, 0), "ow off by one");
    d = make(1, 1, 2, 2, 1, 5, 5, 1, 1, 1, 1); d.oh = d.ow = 0;
    EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "kernel larger than padded input");
    d = make(1 << 20, 1 << 20, 1 << 20, 1 << 20, 1, 1, 1, 1, 1, 0, 0);
    EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "element count overflow");
    d = make(1, 1, INT64_MAX / 2, 1, 1, 1, 1, 1, 1, 1, 0);
    EXPECT_BAD(lt_conv2d_fwd(&d, buf, buf, NULL, o), "h near INT64_MAX");
#undef EXPECT_BAD
}

/* bf16: 1, 2 and 3 threads give the same bits, on shapes of several image blocks (conv2d_bf16.c) and the FC path. */
static void test_bf16_threads(void) {
    uint64_t rng = 4343;
    lt_conv2d_desc shapes[] = {make(40, 5, 9, 9, 7, 3, 3, 1, 1, 1, 1), make(9, 17, 14, 14, 33, 4, 4, 2, 2, 1, 1),
                               make(3, 33, 11, 13, 16, 3, 3, 1, 1, 1, 1), make(6, 40, 4, 4, 19, 4, 4, 1, 1, 0, 0),
                               make(64, 64, 8, 8, 128, 4, 4, 2, 2, 1, 1)};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const lt_conv2d_desc *d = &shapes[si];
        int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d), nb = d->k > d->c ? d->k : d->c;
        float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *b = fmalloc(nb);
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(dy, ny, &rng); lt_t_fill(b, nb, &rng);
        float *out[3][4];
        for (int t = 0; t < 3; t++) {
            lt_set_num_threads(t + 1);
            out[t][0] = fmalloc(ny); out[t][1] = fmalloc(nx); out[t][2] = fmalloc(nw); out[t][3] = fmalloc(d->k);
            lt_status s = lt_conv2d_fwd_bf16(d, x, w, b, out[t][0]);
            s |= lt_conv2d_bwd_data_bf16(d, dy, w, b, out[t][1]);
            s |= lt_conv2d_bwd_weight_bf16(d, x, dy, out[t][2], out[t][3], 0);
            CHECK(s == LT_OK, "bf16 threads=%d %s: status %d (%s)", t + 1, shape_str(d), s, lt_last_error());
        }
        for (int t = 1; t < 3; t++)
            CHECK(!memcmp(out[0][0], out[t][0], ny * 4) && !memcmp(out[0][1], out[t][1], nx * 4) &&
                      !memcmp(out[0][2], out[t][2], nw * 4) && !memcmp(out[0][3], out[t][3], d->k * 4),
                  "bf16 %s: 1 and %d threads differ (fwd %d bwd_data %d dw %d db %d)", shape_str(d), t + 1,
                  !!memcmp(out[0][0], out[t][0], ny * 4), !!memcmp(out[0][1], out[t][1], nx * 4),
                  !!memcmp(out[0][2], out[t][2], nw * 4), !!memcmp(out[0][3], out[t][3], d->k * 4));
        for (int t = 0; t < 3; t++) for (int j = 0; j < 4; j++) free(out[t][j]);
        free(x); free(w); free(dy); free(b);
    }
    lt_set_num_threads(2);
}

/* bf16 really rounds: on random inputs most outputs differ from the fp32 kernels' (a path that silently ran fp32 would
 * pass the looser bf16 tolerance), yet stay close to them. */
static void test_bf16_rounds(void) {
    uint64_t rng = 555;
    lt_conv2d_desc shapes[] = {make(3, 17, 14, 14, 33, 4, 4, 2, 2, 1, 1), make(4, 40, 4, 4, 19, 4, 4, 1, 1, 0, 0)};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const lt_conv2d_desc *d = &shapes[si];
        int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d), n[3] = {ny, nx, nw};
        float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *a[3], *b[3];
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(dy, ny, &rng);
        for (int p = 0; p < 3; p++) { a[p] = fmalloc(n[p]); b[p] = fmalloc(n[p]); }
        lt_status s = lt_conv2d_fwd(d, x, w, NULL, a[0]) | lt_conv2d_bwd_data(d, dy, w, NULL, a[1]) |
                      lt_conv2d_bwd_weight(d, x, dy, a[2], NULL, 0) | lt_conv2d_fwd_bf16(d, x, w, NULL, b[0]) |
                      lt_conv2d_bwd_data_bf16(d, dy, w, NULL, b[1]) | lt_conv2d_bwd_weight_bf16(d, x, dy, b[2], NULL, 0);
        CHECK(s == LT_OK, "bf16 rounds %s: (%s)", shape_str(d), lt_last_error());
        static const char *names[3] = {"fwd", "bwd_data", "bwd_weight"};
        for (int p = 0; p < 3; p++) {
            int64_t differ = 0;
            double worst = 0, mx = 0;
            for (int64_t i = 0; i < n[p]; i++) {
                if (a[p][i] != b[p][i]) differ++;
                worst = fmax(worst, fabs((double)a[p][i] - b[p][i]));
                mx = fmax(mx, fabs((double)a[p][i]));
            }
            CHECK(differ > n[p] / 2, "bf16 %s %s: only %lld of %lld differ from fp32: operands not rounded?", names[p],
                  shape_str(d), (long long)differ, (long long)n[p]);
            CHECK(worst < 0.05 * mx, "bf16 %s %s: max |bf16 - fp32| %g against max |fp32| %g", names[p], shape_str(d),
                  worst, mx);
        }
        for (int p = 0; p < 3; p++) { free(a[p]); free(b[p]); }
        free(x); free(w); free(dy);
    }
}

/* Without AVX512_BF16 or below avx512 the bf16 entry points refuse, naming why; a bad descriptor is still
 * LT_ERR_INVALID_ARGUMENT (checked first). */
static void test_bf16_refused(void) {
    float buf[64] = {0}, o[64], o2[64];
    lt_conv2d_desc ok = make(1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1), bad = ok;
    bad.oh = 3;
    lt_status s = lt_conv2d_fwd_bf16(&ok, buf, buf + 16, NULL, o);
    CHECK(s == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"), "fwd_bf16 refused: %d \"%s\"", s, lt_last_error());
    s = lt_conv2d_bwd_data_bf16(&ok, buf, buf + 16, NULL, o);
    CHECK(s == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"), "bwd_data_bf16 refused: %d \"%s\"", s, lt_last_error());
    s = lt_conv2d_bwd_weight_bf16(&ok, buf, buf + 16, o, o2, 0);
    CHECK(s == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"), "bwd_weight_bf16 refused: %d \"%s\"", s, lt_last_error());
    s = lt_conv2d_fwd_bf16(&bad, buf, buf + 16, NULL, o);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "oh=3"), "fwd_bf16 bad oh: %d \"%s\"", s, lt_last_error());
}

static void test_bf16_invalid(void) {
    float buf[64] = {0}, o[64];
    lt_conv2d_desc ok = make(1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1);
    lt_status s = lt_conv2d_bwd_weight_bf16(&ok, buf, buf + 16, o, NULL, 2);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "accumulate"), "bwd_weight_bf16 accumulate=2: %d", s);
    s = lt_conv2d_fwd_bf16(&ok, buf, buf + 16, NULL, buf + 8);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlaps"), "fwd_bf16 in place: %d", s);
    s = lt_conv2d_bwd_data_bf16(NULL, buf, buf + 16, NULL, o);
    CHECK(s == LT_ERR_INVALID_ARGUMENT, "bwd_data_bf16 NULL descriptor: %d", s);
}

/* ---- --bench --------------------------------------------------------------------------------------------------- */

static double best_of(int reps, int pass, const lt_conv2d_desc *d, const float *a, const float *b, float *out) {
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
        double t0 = lt_t_now();
        lt_status s = g_bf16 ? (pass == 0 ? lt_conv2d_fwd_bf16(d, a, b, NULL, out)
                                : pass == 1 ? lt_conv2d_bwd_data_bf16(d, a, b, NULL, out)
                                            : lt_conv2d_bwd_weight_bf16(d, a, b, out, NULL, 0))
                    : pass == 0 ? lt_conv2d_fwd(d, a, b, NULL, out)
                    : pass == 1 ? lt_conv2d_bwd_data(d, a, b, NULL, out)
                                : lt_conv2d_bwd_weight(d, a, b, out, NULL, 0);
        double t = lt_t_now() - t0;
        if (s != LT_OK) { printf("bench: status %d (%s)\n", s, lt_last_error()); return 1e30; }
        if (r > 0 && t < best) best = t;
    }
    return best;
}

static void bench(int reps) {
    /* W3c (transposed 4x4 s2 p1, 128 -> 64, 7x7 -> 14x14) is the conv 64 -> 128, 14x14 -> 7x7 read backwards: its
     * fwd is our bwd_data, its bwd-data our fwd, its bwd-weight our bwd_weight with x and dy swapped. */
    struct { const char *name; lt_conv2d_desc d; int map[3]; } w[] = {
        {"W3a 3x3 s1 p1 N32 64->64 32x32", make(32, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1), {0, 1, 2}},
        {"W3b 4x4 s2 p1 N64 64->128 14->7", make(64, 64, 14, 14, 128, 4, 4, 2, 2, 1, 1), {0, 1, 2}},
        {"W3c convT 4x4 s2 p1 N64 128->64 7->14", make(64, 64, 14, 14, 128, 4, 4, 2, 2, 1, 1), {1, 0, 2}},
        /* E4 (RealNVP 1x28x28, batch 64): the three convs of a coupling net */
        {"E4 3x3 s1 p1 N64 1->64 28x28", make(64, 1, 28, 28, 64, 3, 3, 1, 1, 1, 1), {0, 1, 2}},
        {"E4 3x3 s1 p1 N64 64->64 28x28", make(64, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1), {0, 1, 2}},
        {"E4 3x3 s1 p1 N64 64->2 28x28", make(64, 64, 28, 28, 2, 3, 3, 1, 1, 1, 1), {0, 1, 2}},
        /* E3 (conv VAE, batch 128): encoder 1 -> 32 (its bwd_data is conv^T into 1 channel) and the decoder's last conv^T */
        {"E3 4x4 s2 p1 N128 1->32 28->14", make(128, 1, 28, 28, 32, 4, 4, 2, 2, 1, 1), {0, 1, 2}},
        {"E3 convT 4x4 s2 p1 N128 32->1 14->28", make(128, 1, 28, 28, 32, 4, 4, 2, 2, 1, 1), {1, 0, 2}},
        /* E2 (DCGAN 1x32x32, batch 64): the discriminator's convs and the generator's conv^Ts (as the convs they invert) */
        {"E2 D 4x4 s2 p1 N64 1->64 32->16", make(64, 1, 32, 32, 64, 4, 4, 2, 2, 1, 1), {0, 1, 2}},
        {"E2 D 4x4 s2 p1 N64 64->128 16->8", make(64, 64, 16, 16, 128, 4, 4, 2, 2, 1, 1), {0, 1, 2}},
        {"E2 D 4x4 s2 p1 N64 128->256 8->4", make(64, 128, 8, 8, 256, 4, 4, 2, 2, 1, 1), {0, 1, 2}},
        {"E2 D 4x4 s1 p0 N64 256->1 4->1", make(64, 256, 4, 4, 1, 4, 4, 1, 1, 0, 0), {0, 1, 2}},
        {"E2 G convT 4x4 s1 p0 N64 100->256 1->4", make(64, 256, 4, 4, 100, 4, 4, 1, 1, 0, 0), {1, 0, 2}},
        {"E2 G convT 4x4 s2 p1 N64 256->128 4->8", make(64, 128, 8, 8, 256, 4, 4, 2, 2, 1, 1), {1, 0, 2}},
        {"E2 G convT 4x4 s2 p1 N64 128->64 8->16", make(64, 64, 16, 16, 128, 4, 4, 2, 2, 1, 1), {1, 0, 2}},
        {"E2 G convT 4x4 s2 p1 N64 64->1 16->32", make(64, 1, 32, 32, 64, 4, 4, 2, 2, 1, 1), {1, 0, 2}},
    };
    static const char *pname[3] = {"fwd", "bwd_data", "bwd_weight"}, *ours[3] = {"lt_conv2d_fwd", "lt_conv2d_bwd_data", "lt_conv2d_bwd_weight"};
    const char *only = getenv("CONV_BENCH_ONLY"); /* e.g. "E4": only the shapes whose name starts so */
    /* CONV_BENCH_BF16=1: each pass also through its lt_conv2d_*_bf16 entry point (needs AVX512_BF16 at avx512) */
    const int bf = getenv("CONV_BENCH_BF16") && atoi(getenv("CONV_BENCH_BF16")) && lt_cpu_bf16() && lt_isa() >= LT_ISA_AVX512;
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double peak = 0;
        for (int r = 0; r < 3; r++) { double g; if (lt_peak_fma(th, 30000000, &g) == LT_OK && g > peak) peak = g; }
        printf("threads %d, FMA peak %.1f GFLOP/s\n", th, peak);
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            if (only && strncmp(w[i].name, only, strlen(only))) continue;
            const lt_conv2d_desc *d = &w[i].d;
            int64_t nx = nx_of(d), nw = nw_of(d), ny = ny_of(d);
            float *x = fmalloc(nx), *wt = fmalloc(nw), *dy = fmalloc(ny), *o = fmalloc(nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw));
            uint64_t rng = 5;
            lt_t_fill(x, nx, &rng); lt_t_fill(wt, nw, &rng); lt_t_fill(dy, ny, &rng);
            double flop = 2.0 * d->n * d->k * d->oh * d->ow * d->c * d->r * d->s;
            for (int p = 0; p < 3; p++) {
                int q = w[i].map[p];
                double t = best_of(reps, q, d, q == 1 ? dy : x, q == 0 ? wt : q == 1 ? wt : dy, o);
                printf("  %-40s %-10s (%-20s) %d thr: %8.3f ms %7.1f GFLOP/s %5.1f%% of peak\n", w[i].name, pname[p],
                       ours[q], th, t * 1e3, flop / t / 1e9, 100 * flop / t / 1e9 / peak);
                if (bf) { /* the bf16 entry point right after, on the same inputs */
                    g_bf16 = 1;
                    double tb = best_of(reps, q, d, q == 1 ? dy : x, q == 0 ? wt : q == 1 ? wt : dy, o);
                    g_bf16 = 0;
                    printf("  %-40s %-10s (%-15s_bf16) %d thr: %8.3f ms %7.1f GFLOP/s  bf16/fp32 speed-up %.2fx\n", w[i].name,
                           pname[p], ours[q], th, tb * 1e3, flop / tb / 1e9, t / tb);
                }
                fflush(stdout);
            }
            free(x); free(wt); free(dy); free(o);
        }
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_fma needs avx2\n", lt_isa_reason()); return 0; }
        bench(argc > 2 ? atoi(argv[2]) : 10);
        return 0;
    }
    printf("lt_conv2d at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_shapes();
    test_threads();
    if (lt_isa() >= LT_ISA_AVX512) {
        /* at avx512, shapes with fewer than 16 channels on a side run the AVX2 kernels (conv2d.c): run the shapes
         * and the thread checks again with every shape on the AVX-512 kernels, so their channel tails (1, 3, 5, ...)
         * are covered too */
        conv2d_force_avx512(1);
        test_shapes();
        test_threads();
        conv2d_force_avx512(0);
    }
    test_adjoint();
    test_concurrent();
    test_bf16_invalid();
    if (lt_cpu_bf16() && lt_isa() >= LT_ISA_AVX512) {
        g_bf16 = 1;
        test_shapes();
        g_bf16 = 0;
        test_bf16_threads();
        test_bf16_rounds();
    } else {
        test_bf16_refused();
    }
    printf("worst error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
