/* lt_layernorm_fwd / lt_layernorm_bwd test: through the exported symbols (avx2 or ref by LATENT_MAX_ISA), against
 * a double-precision LayerNorm written here, and against central differences of it.
 *
 *   layernorm_test                    the checks; prints "N passed, N failed" last
 *   layernorm_test --bench [reps]     N=2048 C=384 (and C=768, 1536) fwd and bwd, 1 and 2 threads: ms, GB/s and %
 *                                     of the STREAM triad measured in the same run. Bytes: fwd x + y + w, b + mean,
 *                                     rstd; bwd x + dy + dx + w + mean, rstd + dw, db read and written.
 *   layernorm_test --bench reps n c   one shape of your choice
 *
 * Tolerances (written once, in the TOL_* constants and where they are used), u = 2^-24; the reference keeps
 * double mean m and rstd r, xhat = (x - m) r, dn = dy w, A = mean(dn), B = mean(dn xhat) exactly:
 *   mean:  |d| <= 2 u |m| + 1e-30         the kernel rounds a double sum once (half an ulp, up to u |m|)
 *   rstd:  |d| <= 3 u r                   the same, through sqrt and a division
 *   y:     |d| <= TOL_Y u (|xhat w| + |b| + |m| r |w|)
 *          Centring uses the saved float mean, off by up to u|m|/2: every xhat moves by u|m|r/2, the
 *          conditioning term |m| r |w| (large when |mean| >> std, as in the large-mean case); the rest is a
 *          few float roundings (x - m, * r, fma).
 *   dx:    |d| <= TOL_DX u r (|dn| + mean|dn| + |xhat| mean|dn xhat|) + 2 u |m| r^2 (|B| + |xhat A|)
 *          float roundings on each term; A and B are sums that may cancel, so their error scales with the sums
 *          of magnitudes, not with |A|, |B|; plus the mean shift above propagated through B and xhat B.
 *   dw, db: |d| <= u (N + 4) sum_i |dy xhat| + 2 u sum_i |dy| |m_i| r_i + u |dw0|, and u (N + 2) sum_i |dy| + u |db0|:
 *          float sums over N rows in any order err by at most (N - 1) u sum|terms| (Higham 3.1); the kernel
 *          adds chunk sums in a fixed order; dw0, db0 are the values accumulated onto. Loose (worst case), yet a
 *          lost or doubled row moves a column by ~sum|terms| / N, more than the bound for N < ~4000.
 * Gradient checks: central differences in double of L = sum g * LN(x) w.r.t. x, w and b (h = 1e-6), against
 * the kernel's dx, dw, db (from zero) with dy = g: |d| <= 1e-5 (1 + |num|). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)
#define TOL_Y 4.0
#define TOL_DX 8.0

static double worst_ratio;
static int within(double got, double want, double tol) {
    if (want != want) return got != got;
    double r = fabs(got - want) / tol;
    if (tol > 0 && (r > worst_ratio || r != r)) worst_ratio = r;
    return fabs(got - want) <= tol;
}

/* Double LayerNorm of one row: mean, rstd, y. */
static void ref_row(int64_t c, double eps, const float *x, const float *w, const float *b, double *y, double *m,
                    double *r) {
    double s = 0, v = 0;
    for (int64_t j = 0; j < c; j++) s += x[j];
    *m = s / c;
    for (int64_t j = 0; j < c; j++) v += (x[j] - *m) * (x[j] - *m);
    *r = 1.0 / sqrt(v / c + eps);
    if (y) for (int64_t j = 0; j < c; j++) y[j] = (x[j] - *m) * *r * w[j] + b[j];
}

typedef struct { int64_t n, c; float scale, shift, eps; int in_place, const_rows; } lcase;

static void run_case(const lcase *k, uint64_t *rng) {
    const int64_t n = k->n, c = k->c, nc = n * c;
    float *x = malloc(nc * 4), *w = malloc(c * 4), *b = malloc(c * 4), *y = malloc(nc * 4), *mean = malloc(n * 4);
    float *rstd = malloc(n * 4), *dy = malloc(nc * 4), *dx = malloc(nc * 4), *dw = malloc(c * 4), *db = malloc(c * 4);
    float *dw0 = malloc(c * 4), *db0 = malloc(c * 4);
    double *yr = malloc(c * 8), *dwr = calloc(c, 8), *dbr = calloc(c, 8), *dwm = calloc(c, 8), *dbm = calloc(c, 8);
    for (int64_t i = 0; i < nc; i++) x[i] = lt_t_uniform(rng) * k->scale + k->shift;
    if (k->const_rows)
        for (int64_t i = 0; i < n; i += 3) for (int64_t j = 0; j < c; j++) x[i * c + j] = k->shift; /* variance 0 */
    for (int64_t j = 0; j < c; j++) { w[j] = 1.0f + 0.5f * lt_t_uniform(rng); b[j] = lt_t_uniform(rng); }
    lt_t_fill(dy, nc, rng);
    lt_t_fill(dw0, c, rng);
    lt_t_fill(db0, c, rng);
    memcpy(dw, dw0, c * 4);
    memcpy(db, db0, c * 4);
    lt_t_nan(mean, n);
    lt_t_nan(rstd, n);
    lt_t_nan(dx, nc);
    if (k->in_place) memcpy(y, x, nc * 4); /* y = x: the input is overwritten */
    else lt_t_nan(y, nc);
    lt_status s1 = lt_layernorm_fwd(n, c, k->eps, k->in_place ? y : x, w, b, y, mean, rstd);
    char what[160];
    snprintf(what, sizeof what, "n=%lld c=%lld scale=%g shift=%g eps=%g%s%s", (long long)n, (long long)c, k->scale,
             k->shift, k->eps, k->in_place ? " in-place" : "", k->const_rows ? " const-rows" : "");
    int64_t bad_f = 0, bad_b = 0;
    for (int64_t i = 0; i < n && s1 == LT_OK; i++) {
        double m, r;
        ref_row(c, k->eps, x + i * c, w, b, yr, &m, &r);
        if (!within(mean[i], m, 2 * U * fabs(m) + 1e-30) || !within(rstd[i], r, 3 * U * r)) {
            if (bad_f++ < 3) fprintf(stderr, "  %s: row %lld mean %.9g (want %.9g) rstd %.9g (want %.9g)\n", what,
                                     (long long)i, mean[i], m, rstd[i], r);
        }
        for (int64_t j = 0; j < c; j++) {
            double xh = (x[i * c + j] - m) * r;
            double tol = TOL_Y * U * (fabs(xh * w[j]) + fabs(b[j]) + fabs(m) * r * fabs(w[j]));
            if (!within(y[i * c + j], yr[j], tol) && bad_f++ < 3)
                fprintf(stderr, "  %s: y[%lld][%lld] got %.9g want %.9g\n", what, (long long)i, (long long)j, y[i * c + j], yr[j]);
        }
    }
    CHECK(s1 == LT_OK && bad_f == 0, "%s: forward status %d (%s), %lld wrong", what, s1, s1 ? lt_last_error() : "", (long long)bad_f);
    /* backward, with the kernel's saved mean and rstd as in training; in place means dx = dy */
    float *dyin = dy;
    if (k->in_place) { dyin = malloc(nc * 4); memcpy(dyin, dy, nc * 4); memcpy(dx, dy, nc * 4); }
    lt_status s2 = lt_layernorm_bwd(n, c, x, w, mean, rstd, k->in_place ? dx : dy, dx, dw, db);
    for (int64_t i = 0; i < n && s2 == LT_OK; i++) {
        double m, r, sa = 0, sb = 0, saa = 0, sab = 0;
        ref_row(c, k->eps, x + i * c, w, b, NULL, &m, &r);
        for (int64_t j = 0; j < c; j++) {
            double xh = (x[i * c + j] - m) * r, dn = (double)dyin[i * c + j] * w[j];
            sa += dn; sb += dn * xh; saa += fabs(dn); sab += fabs(dn * xh);
            dwr[j] += dyin[i * c + j] * xh;
            dbr[j] += dyin[i * c + j];
            dwm[j] += fabs(dyin[i * c + j] * xh) * (n + 4) + 2 * fabs(dyin[i * c + j]) * fabs(m) * r;
            dbm[j] += fabs(dyin[i * c + j]) * (n + 2);
        }
        double A = sa / c, B = sb / c, Aabs = saa / c, Babs = sab / c;
        for (int64_t j = 0; j < c; j++) {
            double xh = (x[i * c + j] - m) * r, dn = (double)dyin[i * c + j] * w[j];
            double want = r * (dn - A - xh * B);
            double tol = TOL_DX * U * r * (fabs(dn) + Aabs + fabs(xh) * Babs) +
                         2 * U * fabs(m) * r * r * (fabs(B) + fabs(xh * A));
            if (!within(dx[i * c + j], want, tol) && bad_b++ < 3)
                fprintf(stderr, "  %s: dx[%lld][%lld] got %.9g want %.9g (tol %g)\n", what, (long long)i, (long long)j,
                        dx[i * c + j], want, tol);
        }
    }
    for (int64_t j = 0; j < c && s2 == LT_OK; j++) {
        if (!within(dw[j], dw0[j] + dwr[j], U * (dwm[j] + fabs(dw0[j]) + fabs(dwr[j]))) && bad_b++ < 3)
            fprintf(stderr, "  %s: dw[%lld] got %.9g want %.9g\n", what, (long long)j, dw[j], dw0[j] + dwr[j]);
        if (!within(db[j], db0[j] + dbr[j], U * (dbm[j] + fabs(db0[j]) + fabs(dbr[j]))) && bad_b++ < 3)
            fprintf(stderr, "  %s: db[%lld] got %.9g want %.9g\n", what, (long long)j, db[j], db0[j] + dbr[j]);
    }
    CHECK(s2 == LT_OK && bad_b == 0, "%s: backward status %d (%s), %lld wrong", what, s2, s2 ? lt_last_error() : "", (long long)bad_b);
    if (k->in_place) free(dyin);
    free(x); free(w); free(b); free(y); free(mean); free(rstd); free(dy); free(dx); free(dw); free(db); free(dw0);
    free(db0); free(yr); free(dwr); free(dbr); free(dwm); free(dbm);
}

static void test_shapes(void) {
    uint64_t rng = 0xC0FFEEull;
    static const int64_t cs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 47, 65, 385, 1000, 1031};
    static const int64_t ns[] = {1, 5, 71};
    for (size_t ic = 0; ic < sizeof cs / sizeof cs[0]; ic++)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
            int64_t c = cs[ic], n = ns[in];
            lcase a = {n, c, 1.0f, 0.0f, 1e-5f, (int)((ic + in) % 2), 0};
            run_case(&a, &rng);
        }
    static const lcase hard[] = {
        {37, 385, 1e-3f, 1000.0f, 1e-5f, 0, 0},   /* large mean, small variance */
        {37, 385, 1e-3f, -1000.0f, 1e-12f, 1, 0}, /* the same, eps tiny */
        {37, 65, 1e3f, 0.0f, 1e-5f, 0, 0},       /* large variance */
        {37, 65, 3e-4f, 0.0f, 1e-5f, 0, 0},      /* variance ~ eps */
        {37, 65, 1e-8f, 0.5f, 1e-5f, 0, 0},      /* variance << eps */
        {37, 9, 1.0f, 7.0f, 1e-5f, 0, 1},        /* constant rows: variance 0, rstd = 1/sqrt(eps) */
        {37, 1, 1.0f, 0.0f, 0.1f, 1, 0},          /* C = 1: y = b, dx = 0 */
        {1000, 37, 1.0f, 0.0f, 1e-5f, 0, 0},     /* many chunks of rows */
        {300, 1031, 2.0f, 1.0f, 1e-6f, 1, 0},    /* several chunks, C with a tail, reduction over 3 column blocks */
    };
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++) run_case(&hard[i], &rng);
}

/* Central differences of L = sum g * LN(x; w, b) in double against the kernel's backward. */
static double loss(int64_t n, int64_t c, const double *x, const double *w, const double *b, const float *g, double eps) {
    double l = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0, v = 0;
        for (int64_t j = 0; j < c; j++) s += x[i * c + j];
        double m = s / c;
        for (int64_t j = 0; j < c; j++) v += (x[i * c + j] - m) * (x[i * c + j] - m);
        double r = 1.0 / sqrt(v / c + eps);
        for (int64_t j = 0; j < c; j++) l += g[i * c + j] * ((x[i * c + j] - m) * r * w[j] + b[j]);
    }
    return l;
}

static void test_gradcheck(void) {
    uint64_t rng = 4242;
    static const int64_t cs[] = {1, 2, 5, 9, 17};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        enum { N = 3, CM = 17 };
        int64_t c = cs[k];
        float x[N * CM], w[CM], b[CM], g[N * CM], y[N * CM], mean[N], rstd[N], dx[N * CM], dw[CM] = {0}, db[CM] = {0};
        double xd[N * CM], wd[CM], bd[CM], eps = 1e-5, h = 1e-6, worst = 0;
        for (int64_t i = 0; i < N * c; i++) { x[i] = 2.0f * lt_t_uniform(&rng); g[i] = lt_t_uniform(&rng); xd[i] = x[i]; }
        for (int64_t j = 0; j < c; j++) { w[j] = 1.0f + 0.5f * lt_t_uniform(&rng); b[j] = lt_t_uniform(&rng); wd[j] = w[j]; bd[j] = b[j]; }
        lt_status st = lt_layernorm_fwd(N, c, (float)eps, x, w, b, y, mean, rstd);
        st |= lt_layernorm_bwd(N, c, x, w, mean, rstd, g, dx, dw, db);
        int ok = st == LT_OK;
        for (int which = 0; which < 3; which++) {
            double *v = which == 0 ? xd : which == 1 ? wd : bd;
            const float *got = which == 0 ? dx : which == 1 ? dw : db;
            for (int64_t e = 0; e < (which == 0 ? N * c : c); e++) {
                double keep = v[e];
                v[e] = keep + h;
                double lp = loss(N, c, xd, wd, bd, g, eps);
                v[e] = keep - h;
                double lm = loss(N, c, xd, wd, bd, g, eps);
                v[e] = keep;
                double num = (lp - lm) / (2 * h), d = fabs(num - got[e]);
                if (!(d <= 1e-5 * (1 + fabs(num)))) ok = 0;
                if (d > worst || d != d) worst = d;
            }
        }
        CHECK(ok, "gradcheck c=%lld: status %d, worst |numeric - kernel| %g", (long long)c, st, worst);
    }
}

static void test_invalid(void) {
    float a[256] = {0}, w[16], bb[16], y[256], m[16], r[16], dx[256], dw[16], db[16];
    for (int i = 0; i < 16; i++) { w[i] = 1.0f; bb[i] = 0.0f; }
    CHECK(lt_layernorm_fwd(4, 16, 1e-5f, a, w, bb, y, m, r) == LT_OK, "valid fwd: %s", lt_last_error());
    CHECK(lt_layernorm_bwd(4, 16, a, w, m, r, a + 64, dx, dw, db) == LT_OK, "valid bwd: %s", lt_last_error());
    CHECK(lt_layernorm_fwd(0, 16, 1e-5f, NULL, NULL, NULL, NULL, NULL, NULL) == LT_OK &&
          lt_layernorm_bwd(0, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == LT_OK, "n == 0 with NULLs");
    struct { const char *want; lt_status st; } t[] = {
        {"n=-1", lt_layernorm_fwd(-1, 16, 1e-5f, a, w, bb, y, m, r)},
        {"c=-16", lt_layernorm_fwd(4, -16, 1e-5f, a, w, bb, y, m, r)},
        {"c=0", lt_layernorm_fwd(4, 0, 1e-5f, a, w, bb, y, m, r)},
        {"eps=0", lt_layernorm_fwd(4, 16, 0.0f, a, w, bb, y, m, r)},
        {"eps=-1e-05", lt_layernorm_fwd(4, 16, -1e-5f, a, w, bb, y, m, r)},
        {"eps=nan", lt_layernorm_fwd(4, 16, NAN, a, w, bb, y, m, r)},
        {"eps=inf", lt_layernorm_fwd(4, 16, INFINITY, a, w, bb, y, m, r)},
        {"x is NULL", lt_layernorm_fwd(4, 16, 1e-5f, NULL, w, bb, y, m, r)},
        {"b is NULL", lt_layernorm_fwd(4, 16, 1e-5f, a, w, NULL, y, m, r)},
        {"rstd is NULL", lt_layernorm_fwd(4, 16, 1e-5f, a, w, bb, y, m, NULL)},
        {"y=", lt_layernorm_fwd(4, 16, 1e-5f, a, w, bb, a + 1, m, r)},
        {"mean=", lt_layernorm_fwd(4, 16, 1e-5f, a, w, bb, y, y + 3, r)},
        {"overflow", lt_layernorm_fwd(1ll << 40, 1ll << 40, 1e-5f, a, w, bb, y, m, r)},
        {"n=-2", lt_layernorm_bwd(-2, 16, a, w, m, r, a, dx, dw, db)},
        {"dy is NULL", lt_layernorm_bwd(4, 16, a, w, m, r, NULL, dx, dw, db)},
        {"db is NULL", lt_layernorm_bwd(4, 16, a, w, m, r, a, dx, dw, NULL)},
        {"dx=", lt_layernorm_bwd(4, 16, a, w, m, r, dx, dx + 5, dw, db)},
        {"dx=", lt_layernorm_bwd(4, 16, a, w, m, r, y, a, dw, db)},
        {"dw=", lt_layernorm_bwd(4, 16, a, w, m, r, y, dx, dx + 8, db)},
        {"and db=", lt_layernorm_bwd(4, 16, a, w, m, r, y, dx, dw, dw + 4)},
        {"c=0", lt_layernorm_bwd(4, 0, a, w, m, r, y, dx, dw, db)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK(t[i].st == LT_ERR_INVALID_ARGUMENT, "invalid case %zu (%s): status %d", i, t[i].want, t[i].st);
    CHECK(lt_layernorm_fwd(4, 16, -1e-5f, a, w, bb, y, m, r) == LT_ERR_INVALID_ARGUMENT &&
          strstr(lt_last_error(), "eps=-1e-05"), "message \"%s\" names eps", lt_last_error());
    CHECK(lt_layernorm_bwd(4, 16, a, w, m, r, a, dx, dw, NULL) == LT_ERR_INVALID_ARGUMENT &&
          strstr(lt_last_error(), "db is NULL"), "message \"%s\" names db", lt_last_error());
}

static void test_determinism(void) {
    static const int64_t shapes[][2] = {{2048, 384}, {1000, 1031}, {130, 7}};
    for (int s = 0; s < 3; s++) {
        int64_t n = shapes[s][0], c = shapes[s][1], nc = n * c;
        uint64_t rng = 11 + s;
        float *x = malloc(nc * 4), *w = malloc(c * 4), *b = malloc(c * 4), *dy = malloc(nc * 4);
        float *out[2][6];
        for (int64_t i = 0; i < nc; i++) { x[i] = 3.0f * lt_t_uniform(&rng) + 0.5f; dy[i] = lt_t_uniform(&rng); }
        for (int64_t j = 0; j < c; j++) { w[j] = 1.0f + lt_t_uniform(&rng); b[j] = lt_t_uniform(&rng); }
        for (int t = 0; t < 2; t++) {
            out[t][0] = malloc(nc * 4); out[t][1] = malloc(n * 4); out[t][2] = malloc(n * 4);
            out[t][3] = malloc(nc * 4); out[t][4] = calloc(c, 4); out[t][5] = calloc(c, 4);
            lt_set_num_threads(t + 1);
            lt_layernorm_fwd(n, c, 1e-5f, x, w, b, out[t][0], out[t][1], out[t][2]);
            lt_layernorm_bwd(n, c, x, w, out[t][1], out[t][2], dy, out[t][3], out[t][4], out[t][5]);
            lt_layernorm_bwd(n, c, x, w, out[t][1], out[t][2], dy, out[t][3], out[t][4], out[t][5]); /* accumulate twice */
        }
        int same = !memcmp(out[0][0], out[1][0], nc * 4) && !memcmp(out[0][1], out[1][1], n * 4) &&
                   !memcmp(out[0][2], out[1][2], n * 4) && !memcmp(out[0][3], out[1][3], nc * 4) &&
                   !memcmp(out[0][4], out[1][4], c * 4) && !memcmp(out[0][5], out[1][5], c * 4);
        CHECK(same, "n=%lld c=%lld: 1 and 2 threads differ", (long long)n, (long long)c);
        for (int t = 0; t < 2; t++) for (int q = 0; q < 6; q++) free(out[t][q]);
        free(x); free(w); free(b); free(dy);
    }
    lt_set_num_threads(2);
}

/* ---- --bench ------------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int64_t c, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    int64_t nc = n * c;
    float *x = malloc(nc * 4), *w = malloc(c * 4), *b = malloc(c * 4), *y = malloc(nc * 4), *m = malloc(n * 4);
    float *r = malloc(n * 4), *dy = malloc(nc * 4), *dx = malloc(nc * 4), *dw = calloc(c, 4), *db = calloc(c, 4);
    uint64_t rng = 2;
    lt_t_fill(x, nc, &rng); lt_t_fill(dy, nc, &rng); lt_t_fill(w, c, &rng); lt_t_fill(b, c, &rng);
    memset(y, 0, nc * 4); memset(dx, 0, nc * 4);
    for (int bwd = 0; bwd < 2; bwd++) {
        double *tm = malloc(reps * sizeof(double));
        for (int it = -1; it < reps; it++) {
            double t0 = lt_t_now();
            if (bwd) lt_layernorm_bwd(n, c, x, w, m, r, dy, dx, dw, db);
            else lt_layernorm_fwd(n, c, 1e-5f, x, w, b, y, m, r);
            if (it >= 0) tm[it] = lt_t_now() - t0;
        }
        qsort(tm, reps, sizeof(double), cmp_double);
        double bytes = bwd ? 4.0 * (3 * nc + 5 * c + 2 * n) : 4.0 * (2 * nc + 2 * c + 2 * n), best = tm[0], med = tm[reps / 2];
        printf("layernorm_%s N=%lld C=%lld %d thr: best %7.3f ms %6.1f GB/s %5.1f%% of triad | median %7.3f ms %6.1f GB/s | "
               "triad %5.1f GB/s\n", bwd ? "bwd" : "fwd", (long long)n, (long long)c, threads, best * 1e3,
               bytes / best / 1e9, 100 * bytes / best / 1e9 / triad, med * 1e3, bytes / med / 1e9, triad);
        fflush(stdout);
        free(tm);
    }
    free(x); free(w); free(b); free(y); free(m); free(r); free(dy); free(dx); free(dw); free(db);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 50;
        if (argc >= 5) {
            for (int th = 1; th <= 2; th++) bench(atoll(argv[3]), atoll(argv[4]), th, reps);
            return 0;
        }
        for (int th = 1; th <= 2; th++) {
            bench(2048, 384, th, reps);
            bench(2048, 768, th, reps);
            bench(2048, 1536, th, reps);
        }
        return 0;
    }
    printf("lt_layernorm at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_gradcheck();
    test_shapes();
    test_determinism();
    printf("largest error / tolerance: %.3f\n", worst_ratio);
    return lt_test_summary();
}
