/* lt_conv1d_{fwd,bwd_data,bwd_weight} test: through the exported symbols (conv1d_avx512.c, conv1d_avx2.c or
 * conv1d_ref.c by LATENT_MAX_ISA; ctest runs all three) against a naive double-precision direct sum written here, and
 * against the C reference (conv1d_*_ref, linked from the same objects), on random shapes: T around the SIMD tails
 * (1..70, 8/16/24/64-step tiles and their neighbours), odd channel counts (tails of the 4-row blocks), K in 1..5,
 * dilation 1..8 (taps that reach before t = 0 included, and kernels longer than the sequence).
 *
 *   conv1d_test                  the checks; prints "N passed, N failed" last
 *   conv1d_test --bench [reps]   a WaveNet layer (N=8, C=64 -> 64, T=4096, K=2, d = 1..512): fwd, bwd_data,
 *                                bwd_weight on 1 and 2 threads: best ms, GFLOP/s (2 N Cout T Cin K per pass, the
 *                                taps that read padding counted) and % of the lt_peak_fma_isa ceiling of the level
 *
 * Tolerance, per element: |got - want| <= u (8 sqrt(terms) + 3) mag + 1e-30 with u = 2^-24, terms the length of the
 * sum and mag = sum |terms| + |bias or old dw| (conv2d_test.c explains the bound). Write-only outputs are
 * NaN-prefilled. Also: 1, 2 and 3 threads bit-identical, causality (changing x at t0 changes no y before t0), the
 * adjoint identity <conv(x), y> = <x, conv^T(y)>, and bad arguments (LT_ERR_INVALID_ARGUMENT with a message). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "conv1d.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

typedef struct { int64_t n, ci, t, co, k, d; } shape;

static double tol(double mag, int64_t terms) { return U * (8.0 * sqrt((double)terms) + 3.0) * mag + 1e-30; }
static float *fmalloc(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }
static double *dmalloc(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(double)); }
static char shbuf[160];
static const char *sstr(const shape *s) {
    snprintf(shbuf, sizeof shbuf, "n=%lld cin=%lld t=%lld cout=%lld k=%lld d=%lld", (long long)s->n, (long long)s->ci,
             (long long)s->t, (long long)s->co, (long long)s->k, (long long)s->d);
    return shbuf;
}

/* ---- naive double reference: the direct sum over the padded input, written from the definition ---- */

static double xat(const shape *s, const float *x, int64_t n, int64_t i, int64_t t) {
    return t < 0 ? 0.0 : x[(n * s->ci + i) * s->t + t]; /* the causal left padding */
}

static void dref_fwd(const shape *s, const float *x, const float *w, const float *b, double *want, double *mag) {
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t o = 0; o < s->co; o++)
            for (int64_t t = 0; t < s->t; t++) {
                double acc = b ? b[o] : 0, m = b ? fabs(b[o]) : 0;
                for (int64_t i = 0; i < s->ci; i++)
                    for (int64_t j = 0; j < s->k; j++) {
                        double v = (double)w[(o * s->ci + i) * s->k + j] * xat(s, x, n, i, t - (s->k - 1 - j) * s->d);
                        acc += v;
                        m += fabs(v);
                    }
                want[(n * s->co + o) * s->t + t] = acc;
                mag[(n * s->co + o) * s->t + t] = m;
            }
}

/* scatter form: each y[n,o,t] sends w dy to the x it read (the adjoint written the other way round from conv1d_ref.c) */
static void dref_bwd_data(const shape *s, const float *dy, const float *w, double *want, double *mag) {
    memset(want, 0, (size_t)(s->n * s->ci * s->t) * sizeof(double));
    memset(mag, 0, (size_t)(s->n * s->ci * s->t) * sizeof(double));
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t o = 0; o < s->co; o++)
            for (int64_t t = 0; t < s->t; t++)
                for (int64_t i = 0; i < s->ci; i++)
                    for (int64_t j = 0; j < s->k; j++) {
                        int64_t ts = t - (s->k - 1 - j) * s->d;
                        if (ts < 0) continue;
                        double v = (double)dy[(n * s->co + o) * s->t + t] * w[(o * s->ci + i) * s->k + j];
                        want[(n * s->ci + i) * s->t + ts] += v;
                        mag[(n * s->ci + i) * s->t + ts] += fabs(v);
                    }
}

static void dref_bwd_weight(const shape *s, const float *x, const float *dy, const float *dw0, const float *db0,
                            int acc, double *ww, double *wm, double *bw, double *bm) {
    for (int64_t o = 0; o < s->co; o++) {
        for (int64_t i = 0; i < s->ci; i++)
            for (int64_t j = 0; j < s->k; j++) {
                int64_t q = (o * s->ci + i) * s->k + j;
                double a = acc ? dw0[q] : 0, m = acc ? fabs(dw0[q]) : 0;
                for (int64_t n = 0; n < s->n; n++)
                    for (int64_t t = 0; t < s->t; t++) {
                        double v = (double)dy[(n * s->co + o) * s->t + t] * xat(s, x, n, i, t - (s->k - 1 - j) * s->d);
                        a += v;
                        m += fabs(v);
                    }
                ww[q] = a;
                wm[q] = m;
            }
        double a = acc ? db0[o] : 0, m = acc ? fabs(db0[o]) : 0;
        for (int64_t n = 0; n < s->n; n++)
            for (int64_t t = 0; t < s->t; t++) {
                a += dy[(n * s->co + o) * s->t + t];
                m += fabs(dy[(n * s->co + o) * s->t + t]);
            }
        bw[o] = a;
        bm[o] = m;
    }
}

/* got vs want within tol, and (when other != NULL) vs the other float result within 2 tol */
static int agree_all(const char *what, const float *got, const double *want, const double *mag, int64_t n,
                     int64_t terms, const float *other) {
    int64_t bad = 0, worst = -1;
    double wr = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = tol(mag[i], terms);
        int ok = lt_t_agree(got[i], want[i], t);
        if (ok && other) ok = fabs((double)got[i] - other[i]) <= 2 * t;
        if (!ok) {
            bad++;
            double r = fabs((double)got[i] - want[i]) / t;
            if (worst < 0 || !(r <= wr)) { worst = i; wr = r; }
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %lld/%lld outside tolerance, worst [%lld] got %.9g want %.9g (other %.9g, tol %g)\n", what,
                (long long)bad, (long long)n, (long long)worst, got[worst], want[worst], other ? other[worst] : NAN,
                tol(mag[worst], terms));
    return bad == 0;
}

static void check_shape(const shape *s, uint64_t *rng) {
    const int64_t nx = s->n * s->ci * s->t, nw = s->co * s->ci * s->k, ny = s->n * s->co * s->t;
    char sh[160], what[256];
    snprintf(sh, sizeof sh, "%s", sstr(s));
    float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *b = fmalloc(s->co);
    float *y = fmalloc(ny), *yr = fmalloc(ny), *dx = fmalloc(nx), *dxr = fmalloc(nx);
    float *dw0 = fmalloc(nw), *dw = fmalloc(nw), *dwr = fmalloc(nw), *db0 = fmalloc(s->co), *db = fmalloc(s->co),
          *dbr = fmalloc(s->co);
    int64_t mx = ny > nx ? ny : nx;
    mx = mx > nw ? mx : nw;
    double *want = dmalloc(mx), *mag = dmalloc(mx), *bw = dmalloc(s->co), *bm = dmalloc(s->co);
    lt_t_fill(x, nx, rng); lt_t_fill(w, nw, rng); lt_t_fill(dy, ny, rng); lt_t_fill(b, s->co, rng);
    lt_t_fill(dw0, nw, rng); lt_t_fill(db0, s->co, rng);
    const int64_t tf = s->ci * s->k;
    for (int withb = 0; withb < 2; withb++) {
        lt_t_nan(y, ny); lt_t_nan(yr, ny);
        lt_status st = lt_conv1d_fwd(s->n, s->ci, s->t, s->co, s->k, s->d, x, w, withb ? b : NULL, y);
        conv1d_fwd_ref(s->n, s->ci, s->t, s->co, s->k, s->d, x, w, withb ? b : NULL, yr);
        snprintf(what, sizeof what, "fwd bias=%d %s", withb, sh);
        CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
        dref_fwd(s, x, w, withb ? b : NULL, want, mag);
        CHECK(agree_all(what, y, want, mag, ny, tf + 1, yr), "%s: wrong result", what);
        CHECK(agree_all("fwd C reference", yr, want, mag, ny, tf + 1, NULL), "%s: C reference wrong", what);
    }
    lt_t_nan(dx, nx); lt_t_nan(dxr, nx);
    lt_status st = lt_conv1d_bwd_data(s->n, s->ci, s->t, s->co, s->k, s->d, dy, w, dx);
    conv1d_bwd_data_ref(s->n, s->ci, s->t, s->co, s->k, s->d, dy, w, dxr);
    snprintf(what, sizeof what, "bwd_data %s", sh);
    CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
    dref_bwd_data(s, dy, w, want, mag);
    CHECK(agree_all(what, dx, want, mag, nx, s->co * s->k, dxr), "%s: wrong result", what);
    CHECK(agree_all("bwd_data C reference", dxr, want, mag, nx, s->co * s->k, NULL), "%s: C reference wrong", what);
    for (int acc = 0; acc < 2; acc++)
        for (int withdb = 0; withdb < 2; withdb++) {
            if (acc) { memcpy(dw, dw0, nw * 4); memcpy(dwr, dw0, nw * 4); memcpy(db, db0, s->co * 4); memcpy(dbr, db0, s->co * 4); }
            else { lt_t_nan(dw, nw); lt_t_nan(dwr, nw); lt_t_nan(db, s->co); lt_t_nan(dbr, s->co); }
            st = lt_conv1d_bwd_weight(s->n, s->ci, s->t, s->co, s->k, s->d, x, dy, dw, withdb ? db : NULL, acc);
            conv1d_bwd_weight_ref(s->n, s->ci, s->t, s->co, s->k, s->d, x, dy, dwr, withdb ? dbr : NULL, acc);
            snprintf(what, sizeof what, "bwd_weight acc=%d db=%d %s", acc, withdb, sh);
            CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
            dref_bwd_weight(s, x, dy, dw0, db0, acc, want, mag, bw, bm);
            const int64_t terms = s->n * s->t + 1;
            CHECK(agree_all(what, dw, want, mag, nw, terms, dwr), "%s: wrong dw", what);
            CHECK(agree_all("bwd_weight C reference", dwr, want, mag, nw, terms, NULL), "%s: C reference wrong dw", what);
            if (withdb) {
                CHECK(agree_all(what, db, bw, bm, s->co, terms, dbr), "%s: wrong db", what);
                CHECK(agree_all("bwd_weight C reference db", dbr, bw, bm, s->co, terms, NULL), "%s: C reference wrong db", what);
            } else if (!acc) {
                int untouched = 1; /* db == NULL: the NaN-prefilled db must stay as it was (nothing written through it) */
                for (int64_t o = 0; o < s->co; o++) untouched &= db[o] != db[o];
                CHECK(untouched, "%s: db written although NULL was passed", what);
            }
        }
    free(x); free(w); free(dy); free(b); free(y); free(yr); free(dx); free(dxr); free(dw0); free(dw); free(dwr);
    free(db0); free(db); free(dbr); free(want); free(mag); free(bw); free(bm);
}

static int64_t irange(uint64_t *rng, int64_t lo, int64_t hi) { return lo + (int64_t)(lt_t_next(rng) % (uint64_t)(hi - lo + 1)); }

static void test_shapes(void) {
    uint64_t rng = 0xC1D1ull;
    static const shape fixed[] = {
        {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 3, 2},  {2, 3, 7, 5, 2, 1},   {1, 4, 8, 4, 2, 1},   {1, 5, 9, 3, 3, 2},
        {2, 7, 15, 9, 2, 4}, {1, 3, 16, 8, 5, 3}, {3, 2, 17, 7, 2, 8},  {1, 6, 23, 4, 4, 1},  {2, 9, 24, 13, 2, 2},
        {1, 5, 25, 6, 3, 7}, {2, 8, 31, 8, 2, 5}, {1, 3, 33, 11, 5, 8}, {1, 16, 63, 16, 2, 1}, {2, 4, 64, 5, 2, 32},
        {1, 3, 65, 4, 3, 16}, {2, 17, 70, 19, 2, 8}, {1, 2, 200, 3, 2, 64}, {1, 33, 130, 31, 3, 1},
        {1, 4, 5, 3, 5, 8},  /* only the last tap reaches a sample: the others never do */
        {2, 64, 97, 64, 2, 1}, {1, 20, 513, 12, 2, 128}, /* several time blocks and 4-row blocks */
        {2, 9, 256, 6, 3, 16}, {1, 5, 128, 7, 2, 1},  /* T a multiple of 64: bwd_weight reads dy in place */
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) check_shape(&fixed[i], &rng);
    for (int i = 0; i < 120; i++) {
        shape s = {irange(&rng, 1, 3), irange(&rng, 1, 9), irange(&rng, 1, 70), irange(&rng, 1, 11), irange(&rng, 1, 5),
                   irange(&rng, 1, 8)};
        check_shape(&s, &rng);
    }
}

/* 1, 2 and 3 threads: the same bits (several tasks per pass: time blocks, 4-row blocks). */
static void test_threads(void) {
    uint64_t rng = 4242;
    static const shape shapes[] = {{4, 16, 300, 24, 2, 4}, {3, 9, 1000, 13, 3, 8}, {2, 33, 129, 7, 5, 2}, {1, 64, 2100, 64, 2, 64}, {3, 10, 512, 9, 2, 8}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        const int64_t nx = s->n * s->ci * s->t, nw = s->co * s->ci * s->k, ny = s->n * s->co * s->t;
        float *x = fmalloc(nx), *w = fmalloc(nw), *dy = fmalloc(ny), *b = fmalloc(s->co), *o[3][4];
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(dy, ny, &rng); lt_t_fill(b, s->co, &rng);
        for (int t = 0; t < 3; t++) {
            lt_set_num_threads(t + 1);
            o[t][0] = fmalloc(ny); o[t][1] = fmalloc(nx); o[t][2] = fmalloc(nw); o[t][3] = fmalloc(s->co);
            lt_status st = lt_conv1d_fwd(s->n, s->ci, s->t, s->co, s->k, s->d, x, w, b, o[t][0]);
            st |= lt_conv1d_bwd_data(s->n, s->ci, s->t, s->co, s->k, s->d, dy, w, o[t][1]);
            st |= lt_conv1d_bwd_weight(s->n, s->ci, s->t, s->co, s->k, s->d, x, dy, o[t][2], o[t][3], 0);
            CHECK(st == LT_OK, "threads=%d %s: status %d (%s)", t + 1, sstr(s), st, lt_last_error());
        }
        for (int t = 1; t < 3; t++)
            CHECK(!memcmp(o[0][0], o[t][0], ny * 4) && !memcmp(o[0][1], o[t][1], nx * 4) && !memcmp(o[0][2], o[t][2], nw * 4) &&
                      !memcmp(o[0][3], o[t][3], s->co * 4),
                  "%s: 1 and %d threads differ", sstr(s), t + 1);
        for (int t = 0; t < 3; t++) for (int j = 0; j < 4; j++) free(o[t][j]);
        free(x); free(w); free(dy); free(b);
    }
    lt_set_num_threads(2);
}

/* Causality: y before t0 does not move when x at t0 (and after) changes; y at t0 does (w nonzero at tap K-1). */
static void test_causal(void) {
    uint64_t rng = 77;
    shape s = {2, 5, 90, 6, 3, 4};
    const int64_t nx = s.n * s.ci * s.t, nw = s.co * s.ci * s.k, ny = s.n * s.co * s.t;
    float *x = fmalloc(nx), *w = fmalloc(nw), *y0 = fmalloc(ny), *y1 = fmalloc(ny);
    lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng);
    CHECK(lt_conv1d_fwd(s.n, s.ci, s.t, s.co, s.k, s.d, x, w, NULL, y0) == LT_OK, "causal: %s", lt_last_error());
    const int64_t t0 = 41;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t i = 0; i < s.ci; i++)
            for (int64_t t = t0; t < s.t; t++) x[(n * s.ci + i) * s.t + t] += 10.0f;
    CHECK(lt_conv1d_fwd(s.n, s.ci, s.t, s.co, s.k, s.d, x, w, NULL, y1) == LT_OK, "causal: %s", lt_last_error());
    int past_same = 1, now_moved = 1;
    for (int64_t n = 0; n < s.n; n++)
        for (int64_t o = 0; o < s.co; o++) {
            const int64_t r = (n * s.co + o) * s.t;
            past_same &= !memcmp(y0 + r, y1 + r, t0 * 4);
            now_moved &= y0[r + t0] != y1[r + t0];
        }
    CHECK(past_same, "causal: an output before t=%lld changed with the input at t >= %lld", (long long)t0, (long long)t0);
    CHECK(now_moved, "causal: the outputs at t=%lld did not see the input at t=%lld", (long long)t0, (long long)t0);
    free(x); free(w); free(y0); free(y1);
}

/* <conv(x), y> = <x, conv^T(y)> with the library's own two passes. */
static void test_adjoint(void) {
    uint64_t rng = 99;
    for (int it = 0; it < 30; it++) {
        shape s = {irange(&rng, 1, 3), irange(&rng, 1, 9), irange(&rng, 1, 90), irange(&rng, 1, 11), irange(&rng, 1, 5),
                   irange(&rng, 1, 8)};
        const int64_t nx = s.n * s.ci * s.t, nw = s.co * s.ci * s.k, ny = s.n * s.co * s.t;
        float *x = fmalloc(nx), *w = fmalloc(nw), *y = fmalloc(ny), *cy = fmalloc(ny), *cx = fmalloc(nx);
        lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(y, ny, &rng);
        lt_status st = lt_conv1d_fwd(s.n, s.ci, s.t, s.co, s.k, s.d, x, w, NULL, cy) |
                       lt_conv1d_bwd_data(s.n, s.ci, s.t, s.co, s.k, s.d, y, w, cx);
        CHECK(st == LT_OK, "adjoint %s: %s", sstr(&s), lt_last_error());
        double l = 0, r = 0, m = 0;
        for (int64_t j = 0; j < ny; j++) { l += (double)cy[j] * y[j]; m += fabs((double)cy[j] * y[j]); }
        for (int64_t j = 0; j < nx; j++) { r += (double)x[j] * cx[j]; m += fabs((double)x[j] * cx[j]); }
        CHECK(fabs(l - r) <= 1e-5 * m + 1e-30, "adjoint %s: %.10g vs %.10g", sstr(&s), l, r);
        free(x); free(w); free(y); free(cy); free(cx);
    }
}

static void test_invalid(void) {
    float buf[256] = {0}, o[64], o2[64];
#define EXPECT_BAD(call, why) do { lt_status s_ = (call); \
        CHECK(s_ == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "%s: status %d, message '%s'", why, s_, lt_last_error()); } while (0)
    CHECK(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, buf, buf + 8, NULL, o) == LT_OK, "valid call: %s", lt_last_error());
    CHECK(lt_conv1d_bwd_data(1, 2, 4, 3, 2, 1, buf, buf + 16, o) == LT_OK, "valid call: %s", lt_last_error());
    CHECK(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, 1, buf, buf + 16, o, o2, 1) == LT_OK, "valid call: %s", lt_last_error());
    EXPECT_BAD(lt_conv1d_fwd(0, 2, 4, 3, 2, 1, buf, buf, NULL, o), "n = 0");
    EXPECT_BAD(lt_conv1d_fwd(1, -1, 4, 3, 2, 1, buf, buf, NULL, o), "cin = -1");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 0, 3, 2, 1, buf, buf, NULL, o), "t = 0");
    EXPECT_BAD(lt_conv1d_bwd_data(1, 2, 4, 0, 2, 1, buf, buf, o), "cout = 0");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 0, 1, buf, buf, NULL, o), "k = 0");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 0, buf, buf, NULL, o), "dilation = 0");
    EXPECT_BAD(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, -2, buf, buf, o, NULL, 0), "dilation = -2");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, INT64_MAX / 2, 4, buf, buf, NULL, o), "receptive field overflow");
    EXPECT_BAD(lt_conv1d_fwd(1 << 30, 1 << 30, 1 << 30, 3, 2, 1, buf, buf, NULL, o), "element count overflow");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, NULL, buf, NULL, o), "NULL x");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, buf, NULL, NULL, o), "NULL w");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, buf, buf, NULL, NULL), "NULL y");
    EXPECT_BAD(lt_conv1d_bwd_data(1, 2, 4, 3, 2, 1, NULL, buf, o), "NULL dy");
    EXPECT_BAD(lt_conv1d_bwd_data(1, 2, 4, 3, 2, 1, buf, buf, NULL), "NULL dx");
    EXPECT_BAD(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, 1, buf, buf, NULL, NULL, 0), "NULL dw");
    EXPECT_BAD(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, 1, buf, buf + 16, o, o2, 2), "accumulate = 2");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, buf, buf + 16, NULL, buf + 4), "y overlapping x");
    EXPECT_BAD(lt_conv1d_fwd(1, 2, 4, 3, 2, 1, buf, buf + 16, buf + 40, buf + 38), "y overlapping bias");
    EXPECT_BAD(lt_conv1d_bwd_data(1, 2, 4, 3, 2, 1, buf, buf + 16, buf + 20), "dx overlapping w");
    EXPECT_BAD(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, 1, buf, buf + 16, buf + 20, NULL, 0), "dw overlapping dy");
    EXPECT_BAD(lt_conv1d_bwd_weight(1, 2, 4, 3, 2, 1, buf, buf + 16, o, o + 4, 0), "db overlapping dw");
#undef EXPECT_BAD
}

/* ---- --bench ---- */

static void bench(int reps) {
    const int64_t N = 8, C = 64, T = 4096, K = 2;
    const int isa = lt_isa();
    float *x = fmalloc(N * C * T), *w = fmalloc(C * C * K), *b = fmalloc(C), *y = fmalloc(N * C * T),
          *dx = fmalloc(N * C * T), *dw = fmalloc(C * C * K), *db = fmalloc(C);
    uint64_t rng = 5;
    lt_t_fill(x, N * C * T, &rng); lt_t_fill(w, C * C * K, &rng); lt_t_fill(b, C, &rng);
    const double flop = 2.0 * N * C * T * C * K;
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double peak = 0;
        for (int r = 0; r < 3; r++) { double g; if (lt_peak_fma_isa(isa, th, 30000000, &g) == LT_OK && g > peak) peak = g; }
        printf("ISA %s, threads %d, FMA peak (%s) %.1f GFLOP/s\n", lt_t_isa_name(), th, lt_t_isa_name(), peak);
        for (int64_t d = 1; d <= 512; d *= 2) {
            double best[3] = {1e30, 1e30, 1e30};
            for (int r = 0; r <= reps; r++) {
                double t0 = lt_t_now();
                lt_status st = lt_conv1d_fwd(N, C, T, C, K, d, x, w, b, y);
                double t1 = lt_t_now();
                st |= lt_conv1d_bwd_data(N, C, T, C, K, d, y, w, dx);
                double t2 = lt_t_now();
                st |= lt_conv1d_bwd_weight(N, C, T, C, K, d, x, y, dw, db, 0);
                double t3 = lt_t_now();
                if (st) { printf("bench: %s\n", lt_last_error()); return; }
                if (r > 0) {
                    if (t1 - t0 < best[0]) best[0] = t1 - t0;
                    if (t2 - t1 < best[1]) best[1] = t2 - t1;
                    if (t3 - t2 < best[2]) best[2] = t3 - t2;
                }
            }
            const double tot = best[0] + best[1] + best[2];
            printf("  d=%-4lld fwd %7.3f ms %6.1f GF/s | bwd_data %7.3f ms %6.1f | bwd_weight %7.3f ms %6.1f | "
                   "fwd+bwd %7.3f ms %6.1f GF/s %5.1f%% of peak\n", (long long)d, best[0] * 1e3, flop / best[0] / 1e9,
                   best[1] * 1e3, flop / best[1] / 1e9, best[2] * 1e3, flop / best[2] / 1e9, tot * 1e3,
                   3 * flop / tot / 1e9, 100 * 3 * flop / tot / 1e9 / peak);
            fflush(stdout);
        }
    }
    free(x); free(w); free(b); free(y); free(dx); free(dw); free(db);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s)\n", lt_isa_reason()); return 0; }
        bench(argc > 2 ? atoi(argv[2]) : 10);
        return 0;
    }
    printf("lt_conv1d at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_shapes();
    test_threads();
    test_causal();
    test_adjoint();
    printf("worst error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
