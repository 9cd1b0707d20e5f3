/* lt_layernorm_residual_fwd / _bwd test (registered at ISA ref, avx2 and avx512 through LATENT_MAX_ISA):
 *
 *   1. the SAME BITS as the unfused sequence GPT ran before, at this ISA: s = copy(x), lt_axpby(1, a, 1, s) (F.add),
 *      lt_layernorm_fwd(s); backward lt_layernorm_bwd(s, dy) into a fresh dx, then copy(ds) and lt_axpby(1, dx, 1, .)
 *      (the graph's gradient accumulation, F.add). Forward: s, y, mean, rstd; backward: dx, dw, db (accumulated onto
 *      the same random dw0, db0), compared with memcmp. Shapes: C at SIMD tails (1, 3, 7, 15, 17, 33, 1023, ...),
 *      384 and 768, N over several backward chunks; inputs: random, huge offsets (|mean| >> std), constant rows;
 *      in place s == x, s == a and dx == dy; 1 and 2 threads.
 *   2. against a double reference: s = x + a exactly (one rounding of the double sum), y within TOL_Y u of the double
 *      LayerNorm of s (layernorm_test.c's bound), dx within layernorm_test.c's dx bound plus u |ds + dLN| of ds + dLN.
 *   3. refusals: NULL pointers, n < 0, c = 0, eps <= 0, partial overlaps, dx aliasing ds.
 *   layernorm_residual_test --bench [reps]   fused vs unfused (axpby + layernorm) at GPT shapes, 1 and 2 threads. */
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
    double r = fabs(got - want) / tol;
    if (tol > 0 && (r > worst_ratio || r != r)) worst_ratio = r;
    return fabs(got - want) <= tol;
}

static float *fl(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * 4); }

typedef struct { int64_t n, c; float scale, shift; int in_place, const_rows; } rcase;

/* in_place: 0 none, 1 s == x and dx == dy, 2 s == a */
static void run_case(const rcase *k, uint64_t *rng) {
    const int64_t n = k->n, c = k->c, nc = n * c;
    const float eps = 1e-5f;
    float *x = fl(nc), *a = fl(nc), *w = fl(c), *b = fl(c), *dy = fl(nc), *ds = fl(nc), *dw0 = fl(c), *db0 = fl(c);
    for (int64_t i = 0; i < nc; i++) { x[i] = lt_t_uniform(rng) * k->scale + k->shift; a[i] = lt_t_uniform(rng) * k->scale; }
    if (k->const_rows) /* every third row of s constant: variance 0 */
        for (int64_t i = 0; i < n; i += 3) for (int64_t j = 0; j < c; j++) { x[i * c + j] = k->shift; a[i * c + j] = 0.25f; }
    for (int64_t j = 0; j < c; j++) { w[j] = 1.0f + 0.5f * lt_t_uniform(rng); b[j] = lt_t_uniform(rng); }
    lt_t_fill(dy, nc, rng);
    lt_t_fill(ds, nc, rng);
    lt_t_fill(dw0, c, rng);
    lt_t_fill(db0, c, rng);
    char what[160];
    snprintf(what, sizeof what, "n=%lld c=%lld scale=%g shift=%g%s%s", (long long)n, (long long)c, k->scale, k->shift,
             k->in_place == 1 ? " s=x,dx=dy" : k->in_place == 2 ? " s=a" : "", k->const_rows ? " const-rows" : "");

    /* unfused: F.add then F.layerNorm; backward layernorm then the graph's F.add(ds, dLN) */
    float *su = fl(nc), *yu = fl(nc), *mu = fl(n), *ru = fl(n), *dxl = fl(nc), *dxu = fl(nc), *dwu = fl(c), *dbu = fl(c);
    memcpy(su, x, nc * 4);
    lt_status st = lt_axpby(nc, 1.0f, a, 1.0f, su);
    st |= lt_layernorm_fwd(n, c, eps, su, w, b, yu, mu, ru);
    memcpy(dwu, dw0, c * 4);
    memcpy(dbu, db0, c * 4);
    st |= lt_layernorm_bwd(n, c, su, w, mu, ru, dy, dxl, dwu, dbu);
    memcpy(dxu, ds, nc * 4);
    st |= lt_axpby(nc, 1.0f, dxl, 1.0f, dxu);
    CHECK(st == LT_OK, "%s: unfused status %d", what, st);

    /* fused */
    float *xin = fl(nc), *ain = fl(nc), *s = fl(nc), *y = fl(nc), *m = fl(n), *r = fl(n), *dx = fl(nc), *dw = fl(c), *db = fl(c);
    memcpy(xin, x, nc * 4);
    memcpy(ain, a, nc * 4);
    lt_t_nan(y, nc);
    lt_t_nan(m, n);
    lt_t_nan(r, n);
    float *sp = k->in_place == 1 ? xin : k->in_place == 2 ? ain : s;
    if (!k->in_place) lt_t_nan(s, nc);
    lt_status s1 = lt_layernorm_residual_fwd(n, c, eps, xin, ain, w, b, sp, y, m, r);
    CHECK(s1 == LT_OK, "%s: fused forward status %d (%s)", what, s1, s1 ? lt_last_error() : "");
    int fsame = !memcmp(sp, su, nc * 4) && !memcmp(y, yu, nc * 4) && !memcmp(m, mu, n * 4) && !memcmp(r, ru, n * 4);
    CHECK(s1 != LT_OK || fsame, "%s: fused forward differs from add then layernorm", what);
    memcpy(dw, dw0, c * 4);
    memcpy(db, db0, c * 4);
    float *dyin = dy;
    if (k->in_place == 1) { dyin = dx; memcpy(dx, dy, nc * 4); } /* dx == dy */
    else lt_t_nan(dx, nc);
    lt_status s2 = lt_layernorm_residual_bwd(n, c, sp, w, m, r, dyin, ds, dx, dw, db);
    CHECK(s2 == LT_OK, "%s: fused backward status %d (%s)", what, s2, s2 ? lt_last_error() : "");
    int bsame = !memcmp(dx, dxu, nc * 4) && !memcmp(dw, dwu, c * 4) && !memcmp(db, dbu, c * 4);
    CHECK(s2 != LT_OK || bsame, "%s: fused backward differs from layernorm backward then the add", what);

    /* the double reference */
    int64_t bad = 0;
    for (int64_t i = 0; i < n && s1 == LT_OK && s2 == LT_OK; i++) {
        const float *sr = sp + i * c;
        double sum = 0, v = 0;
        for (int64_t j = 0; j < c; j++) {
            if (sr[j] != (float)((double)x[i * c + j] + (double)a[i * c + j]) && bad++ < 3)
                fprintf(stderr, "  %s: s[%lld][%lld] = %.9g is not x + a\n", what, (long long)i, (long long)j, sr[j]);
            sum += sr[j];
        }
        const double mm = sum / c;
        for (int64_t j = 0; j < c; j++) v += (sr[j] - mm) * (sr[j] - mm);
        const double rr = 1.0 / sqrt(v / c + eps);
        double sa = 0, sb = 0, saa = 0, sab = 0;
        for (int64_t j = 0; j < c; j++) {
            double xh = (sr[j] - mm) * rr, want = xh * w[j] + b[j];
            double tol = TOL_Y * U * (fabs(xh * w[j]) + fabs(b[j]) + fabs(mm) * rr * fabs(w[j]));
            if (!within(y[i * c + j], want, tol) && bad++ < 3)
                fprintf(stderr, "  %s: y[%lld][%lld] got %.9g want %.9g\n", what, (long long)i, (long long)j, y[i * c + j], want);
            double dn = (double)dy[i * c + j] * w[j];
            sa += dn; sb += dn * xh; saa += fabs(dn); sab += fabs(dn * xh);
        }
        const double A = sa / c, B = sb / c, Aabs = saa / c, Babs = sab / c;
        for (int64_t j = 0; j < c; j++) {
            double xh = (sr[j] - mm) * rr, dn = (double)dy[i * c + j] * w[j];
            double want = ds[i * c + j] + rr * (dn - A - xh * B);
            double tol = TOL_DX * U * rr * (fabs(dn) + Aabs + fabs(xh) * Babs) +
                         2 * U * fabs(mm) * rr * rr * (fabs(B) + fabs(xh * A)) + U * fabs(want);
            if (!within(dx[i * c + j], want, tol) && bad++ < 3)
                fprintf(stderr, "  %s: dx[%lld][%lld] got %.9g want %.9g (tol %g)\n", what, (long long)i, (long long)j,
                        dx[i * c + j], want, tol);
        }
    }
    CHECK(bad == 0, "%s: %lld values outside the double reference's bounds", what, (long long)bad);
    free(x); free(a); free(w); free(b); free(dy); free(ds); free(dw0); free(db0); free(su); free(yu); free(mu); free(ru);
    free(dxl); free(dxu); free(dwu); free(dbu); free(xin); free(ain); free(s); free(y); free(m); free(r); free(dx);
    free(dw); free(db);
}

static void test_shapes(void) {
    uint64_t rng = 0x5EED5ull;
    static const int64_t cs[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 47, 65, 384, 768, 1023, 1031};
    static const int64_t ns[] = {1, 5, 70};
    for (size_t ic = 0; ic < sizeof cs / sizeof cs[0]; ic++)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
            rcase k = {ns[in], cs[ic], 1.0f, 0.0f, (int)((ic + in) % 3), 0};
            run_case(&k, &rng);
        }
    static const rcase hard[] = {
        {37, 385, 1e-3f, 1000.0f, 0, 0},  /* huge offset: |mean| >> std */
        {37, 385, 1e-3f, -3e4f, 1, 0},    /* larger, in place */
        {37, 65, 1e3f, 0.0f, 2, 0},       /* large variance */
        {37, 9, 1.0f, 7.0f, 0, 1},        /* constant rows: variance 0 */
        {37, 1, 1.0f, 0.0f, 1, 0},        /* C = 1: y = b, dx = ds */
        {1000, 37, 1.0f, 0.0f, 0, 0},     /* many backward chunks */
        {300, 1031, 2.0f, 1.0f, 1, 0},    /* several chunks, C with a tail, 3 column blocks of the reduction */
        {256, 384, 1.0f, 0.5f, 0, 0},     /* GPT's C */
    };
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++) run_case(&hard[i], &rng);
}

/* 1 and 2 threads: the same bits (the row split of the forward, the chunks of the backward do not depend on it). */
static void test_threads(void) {
    uint64_t rng = 99;
    rcase k = {777, 385, 1.0f, 0.0f, 0, 0};
    lt_set_num_threads(1);
    run_case(&k, &rng);
    rng = 99;
    lt_set_num_threads(2);
    run_case(&k, &rng);
}

static void test_invalid(void) {
    float x[12] = {0}, a[12] = {0}, w[4] = {1, 1, 1, 1}, b[4] = {0}, s[12], y[12], m[3], r[3], dx[12], dw[4] = {0}, db[4] = {0};
    float dy[12] = {0}, ds[12] = {0};
#define REFUSED(call, frag)                                                                                              \
    do {                                                                                                                 \
        lt_status st_ = (call);                                                                                          \
        CHECK(st_ == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), frag), #call ": status %d, message '%s'", st_, \
              lt_last_error());                                                                                          \
    } while (0)
    REFUSED(lt_layernorm_residual_fwd(-1, 4, 1e-5f, x, a, w, b, s, y, m, r), "n=-1");
    REFUSED(lt_layernorm_residual_fwd(3, 0, 1e-5f, x, a, w, b, s, y, m, r), "c=0");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 0.0f, x, a, w, b, s, y, m, r), "eps=0");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, NULL, w, b, s, y, m, r), "a is NULL");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, a, w, b, NULL, y, m, r), "s is NULL");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, a, w, b, x + 1, y, m, r), "s=");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, a, w, b, s, s, m, r), "y=");
    REFUSED(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, a, w, b, s, y, m, m), "overlaps another array");
    CHECK(lt_layernorm_residual_fwd(3, 4, 1e-5f, x, a, w, b, x, y, m, r) == LT_OK, "s == x is allowed");
    CHECK(lt_layernorm_residual_fwd(0, 4, 1e-5f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == LT_OK, "n = 0 is a no-op");
    REFUSED(lt_layernorm_residual_bwd(3, 4, s, w, m, r, dy, NULL, dx, dw, db), "ds is NULL");
    REFUSED(lt_layernorm_residual_bwd(3, 4, s, w, m, r, dy, dx, dx, dw, db), "dx=");
    REFUSED(lt_layernorm_residual_bwd(3, 4, s, w, m, r, dy, ds, s, dw, db), "dx=");
    REFUSED(lt_layernorm_residual_bwd(3, 4, s, w, m, r, dy, ds, dx, dw, dw), "dw=");
    REFUSED(lt_layernorm_residual_bwd(-2, 4, s, w, m, r, dy, ds, dx, dw, db), "n=-2");
#undef REFUSED
}

/* ---- --bench: fused vs lt_axpby + lt_layernorm_fwd (and the backward pair), best and median of reps ---- */

static int cmp_double(const void *p, const void *q) { double u = *(const double *)p, v = *(const double *)q; return (u > v) - (u < v); }

static void bench(int64_t n, int64_t c, int threads, int reps) {
    lt_set_num_threads(threads);
    const int64_t nc = n * c;
    float *x = fl(nc), *a = fl(nc), *w = fl(c), *b = fl(c), *s = fl(nc), *y = fl(nc), *m = fl(n), *r = fl(n);
    float *dy = fl(nc), *ds = fl(nc), *dx = fl(nc), *dxl = fl(nc), *dw = calloc(c, 4), *db = calloc(c, 4);
    uint64_t rng = 3;
    lt_t_fill(x, nc, &rng); lt_t_fill(a, nc, &rng); lt_t_fill(w, c, &rng); lt_t_fill(b, c, &rng);
    lt_t_fill(dy, nc, &rng); lt_t_fill(ds, nc, &rng);
    memset(s, 0, nc * 4); memset(y, 0, nc * 4); memset(dx, 0, nc * 4); memset(dxl, 0, nc * 4);
    static const char *names[4] = {"fwd unfused (copy+axpby+layernorm)", "fwd fused", "bwd unfused (layernorm+copy+axpby)", "bwd fused"};
    double best[4], med[4];
    double *tm = malloc(reps * sizeof(double));
    for (int v = 0; v < 4; v++) {
        for (int it = -2; it < reps; it++) {
            double t0 = lt_t_now();
            if (v == 0) { memcpy(s, x, nc * 4); lt_axpby(nc, 1.0f, a, 1.0f, s); lt_layernorm_fwd(n, c, 1e-5f, s, w, b, y, m, r); }
            else if (v == 1) lt_layernorm_residual_fwd(n, c, 1e-5f, x, a, w, b, s, y, m, r);
            else if (v == 2) { lt_layernorm_bwd(n, c, s, w, m, r, dy, dxl, dw, db); memcpy(dx, ds, nc * 4); lt_axpby(nc, 1.0f, dxl, 1.0f, dx); }
            else lt_layernorm_residual_bwd(n, c, s, w, m, r, dy, ds, dx, dw, db);
            if (it >= 0) tm[it] = lt_t_now() - t0;
        }
        qsort(tm, reps, sizeof(double), cmp_double);
        best[v] = tm[0];
        med[v] = tm[reps / 2];
        printf("N=%lld C=%lld %d thr  %-36s best %8.3f ms  median %8.3f ms\n", (long long)n, (long long)c, threads,
               names[v], best[v] * 1e3, med[v] * 1e3);
    }
    printf("N=%lld C=%lld %d thr  fused/unfused (median): fwd %.2fx faster, bwd %.2fx faster\n", (long long)n,
           (long long)c, threads, med[0] / med[1], med[2] / med[3]);
    fflush(stdout);
    free(tm); free(x); free(a); free(w); free(b); free(s); free(y); free(m); free(r); free(dy); free(ds); free(dx);
    free(dxl); free(dw); free(db);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        int reps = argc > 2 ? atoi(argv[2]) : 30;
        printf("lt_layernorm_residual bench at ISA %s\n", lt_t_isa_name());
        for (int th = 1; th <= 2; th++) {
            bench(32 * 256, 384, th, reps);
            bench(8 * 1024, 768, th, reps);
        }
        return 0;
    }
    printf("lt_layernorm_residual at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_shapes();
    test_threads();
    printf("largest error / tolerance: %.3f\n", worst_ratio);
    return lt_test_summary();
}
