/* lt_adamw test: through the exported symbol (avx512, avx2 or ref by LATENT_MAX_ISA), against one AdamW step computed in
 * double here from the same float inputs and float hyperparameters.
 *
 *   adamw_test                    the checks; prints "N passed, N failed" last
 *   adamw_test --bench [reps] [n] n = 10.7M parameters (nanoGPT's Shakespeare-char model), 1 and 2 threads: ms,
 *                                 GB/s (28 bytes per parameter: p, g, m, v read, p, m, v written) and % of the
 *                                 STREAM triad measured in the same run
 *
 * Tolerances (written once, in step_tol), u = 2^-24, from counting float roundings in adamw_ref.c's loop:
 *   m: |d| <= 3 u (|b1 m| + |(1 - b1) g|)        v: |d| <= 4 u (|b2 v| + |(1 - b2)| g^2)
 *   p: |d| <= 3 u |p (1 - lr wd)| + 10 u |update| + k tol_m, update = k m with k = step_size / denom: denom
 *      carries 4 u (sqrt halves v's error, one division, one add), the division and the product 1 u each, the
 *      scalars 1 u; m's own error (absolute, as b1 m and (1 - b1) g may cancel) arrives scaled by k.
 * The step is also run three times in a row (the moments build up), comparing each step against the double
 * step applied to the kernel's previous output, so errors never compound into the tolerance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static double worst_ratio;
static int within(double got, double want, double tol) {
    if (want != want) return got != got;
    double r = fabs(got - want) / tol;
    if (tol > 0 && (r > worst_ratio || r != r)) worst_ratio = r;
    return fabs(got - want) <= tol || got == want;
}

/* One double-precision step of element i, and the tolerances. */
static void step_ref(const lt_adamw_desc *d, float p0, float g0, float m0, float v0, double *p, double *m, double *v,
                     double *tp, double *tm, double *tv) {
    double t = (double)d->step, b1 = d->beta1, b2 = d->beta2, g = (double)g0 * d->grad_scale;
    double pd = p0 * (1.0 - (double)d->lr * d->weight_decay);
    *m = b1 * m0 + (1 - b1) * g;
    *v = b2 * v0 + (1 - b2) * g * g;
    double k = d->lr / (1 - pow(b1, t)) / (sqrt(*v) / sqrt(1 - pow(b2, t)) + d->eps), upd = k * *m;
    *p = pd - upd;
    *tm = 3 * U * (fabs(b1 * m0) + fabs((1 - b1) * g)) + 1e-44;
    *tv = 4 * U * (b2 * v0 + (1 - b2) * g * g) + 1e-44;
    *tp = 3 * U * fabs(pd) + 10 * U * fabs(upd) + k * *tm + 1e-44; /* m's error reaches p scaled by k */
}

static void run_case(const char *what, const lt_adamw_desc *d0, int64_t n, float gscale, uint64_t *rng) {
    float *p = malloc(n * 4), *g = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4);
    float *p0 = malloc(n * 4), *m0 = malloc(n * 4), *v0 = malloc(n * 4);
    for (int64_t i = 0; i < n; i++) {
        p[i] = lt_t_uniform(rng);
        m[i] = 0.1f * lt_t_uniform(rng);
        v[i] = 0.01f * fabsf(lt_t_uniform(rng));
    }
    if (n > 2) { m[0] = v[0] = 0.0f; m[1] = 0.0f; v[1] = 0.0f; } /* fresh moments: denom = eps */
    lt_adamw_desc d = *d0;
    int64_t bad = 0;
    for (int rep = 0; rep < 3; rep++, d.step++) {
        for (int64_t i = 0; i < n; i++) g[i] = gscale * lt_t_uniform(rng);
        if (n > 2) g[1] = 0.0f; /* zero gradient and zero moments: p only decays */
        memcpy(p0, p, n * 4); memcpy(m0, m, n * 4); memcpy(v0, v, n * 4);
        lt_status st = lt_adamw(&d, n, p, g, m, v);
        CHECK(st == LT_OK, "%s n=%lld: status %d (%s)", what, (long long)n, st, lt_last_error());
        for (int64_t i = 0; i < n && st == LT_OK; i++) {
            double wp, wm, wv, tp, tm, tv;
            step_ref(&d, p0[i], g[i], m0[i], v0[i], &wp, &wm, &wv, &tp, &tm, &tv);
            if ((!within(p[i], wp, tp) || !within(m[i], wm, tm) || !within(v[i], wv, tv)) && bad++ < 3)
                fprintf(stderr, "  %s step %lld [%lld]: p %.9g (want %.9g) m %.9g (%.9g) v %.9g (%.9g)\n", what,
                        (long long)d.step, (long long)i, p[i], wp, m[i], wm, v[i], wv);
        }
    }
    CHECK(bad == 0, "%s n=%lld: %lld elements outside tolerance", what, (long long)n, (long long)bad);
    free(p); free(g); free(m); free(v); free(p0); free(m0); free(v0);
}

static void test_shapes(void) {
    uint64_t rng = 31337;
    static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 37, 65, 385, 1000, 16385, 50001};
    const lt_adamw_desc base = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) run_case("default", &base, sizes[k], 1.0f, &rng);
    lt_adamw_desc a = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.5f, 1000}; /* no decay, clipped gradients, late step */
    run_case("no-decay clipped late", &a, 1000, 1.0f, &rng);
    lt_adamw_desc b = {1e-2f, 0.0f, 0.0f, 1e-3f, 0.01f, 1.0f, 1};   /* beta = 0: plain sign-like steps */
    run_case("beta=0", &b, 1000, 1.0f, &rng);
    lt_adamw_desc c = {0.0f, 0.99f, 0.9999f, 1e-6f, 1.0f, 2.0f, 3000000000ll}; /* lr = 0, huge step */
    run_case("lr=0 huge step", &c, 385, 1.0f, &rng);
    lt_adamw_desc e = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1e-3f, 1};
    run_case("large gradients", &e, 1000, 1e15f, &rng);
    run_case("tiny gradients", &base, 1000, 1e-20f, &rng);
}

static void test_invalid(void) {
    float a[64] = {0}, b[64] = {0}, m[64] = {0}, v[64] = {0};
    const lt_adamw_desc ok = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1};
    CHECK(lt_adamw(&ok, 64, a, b, m, v) == LT_OK, "valid case: %s", lt_last_error());
    CHECK(lt_adamw(&ok, 0, NULL, NULL, NULL, NULL) == LT_OK, "n == 0 with NULLs");
    struct { const char *want; lt_adamw_desc d; int64_t n; int shift; } t[] = {
        {"lr=-0.001", {-1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, 64, 0},
        {"lr=nan", {NAN, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, 64, 0},
        {"beta1=1", {1e-3f, 1.0f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, 64, 0},
        {"beta1=-0.1", {1e-3f, -0.1f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, 64, 0},
        {"beta2=1.5", {1e-3f, 0.9f, 1.5f, 1e-8f, 0.1f, 1.0f, 1}, 64, 0},
        {"eps=0", {1e-3f, 0.9f, 0.999f, 0.0f, 0.1f, 1.0f, 1}, 64, 0},
        {"eps=inf", {1e-3f, 0.9f, 0.999f, INFINITY, 0.1f, 1.0f, 1}, 64, 0},
        {"weight_decay=-0.1", {1e-3f, 0.9f, 0.999f, 1e-8f, -0.1f, 1.0f, 1}, 64, 0},
        {"grad_scale=nan", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, NAN, 1}, 64, 0},
        {"step=0", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 0}, 64, 0},
        {"n=-1", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, -1, 0},
        {"overlap", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1}, 64, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        lt_status st = lt_adamw(&t[i].d, t[i].n, a, t[i].shift ? a + 3 : b, m, v);
        CHECK(st == LT_ERR_INVALID_ARGUMENT && *lt_last_error() && (t[i].shift || strstr(lt_last_error(), t[i].want)),
              "invalid case %zu (%s): status %d, message \"%s\"", i, t[i].want, st, lt_last_error());
    }
    CHECK(lt_adamw(NULL, 64, a, b, m, v) == LT_ERR_INVALID_ARGUMENT, "NULL descriptor");
    CHECK(lt_adamw(&ok, 64, a, b, NULL, v) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "m is NULL"),
          "NULL m: \"%s\"", lt_last_error());
}

static void test_determinism(void) {
    int64_t n = 1000003;
    uint64_t rng = 77;
    float *p[2], *m[2], *v[2], *g = malloc(n * 4);
    lt_t_fill(g, n, &rng);
    const lt_adamw_desc d = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.7f, 5};
    for (int t = 0; t < 2; t++) {
        uint64_t r2 = 5;
        p[t] = malloc(n * 4); m[t] = malloc(n * 4); v[t] = malloc(n * 4);
        lt_t_fill(p[t], n, &r2); lt_t_fill(m[t], n, &r2); lt_t_fill(v[t], n, &r2);
        for (int64_t i = 0; i < n; i++) v[t][i] = fabsf(v[t][i]);
        lt_set_num_threads(t + 1);
        lt_adamw(&d, n, p[t], g, m[t], v[t]);
    }
    CHECK(!memcmp(p[0], p[1], n * 4) && !memcmp(m[0], m[1], n * 4) && !memcmp(v[0], v[1], n * 4), "1 and 2 threads differ");
    for (int t = 0; t < 2; t++) { free(p[t]); free(m[t]); free(v[t]); }
    free(g);
    lt_set_num_threads(2);
}

/* adamw_avx512.c runs adamw_avx2.c's operations (one body, adamw_simd.h) in the same order: the same bits for p, m
 * and v, on opmask tails and across chunk edges, and nothing written past n (runs only where the CPU has AVX-512;
 * noted otherwise). */
static void test_avx512_bits(void) {
    if (lt_isa_supported() < LT_ISA_AVX512) { printf("  note: no AVX-512 on this CPU: avx512-vs-avx2 bits not checked\n"); return; }
    static const int64_t sizes[] = {1, 7, 15, 16, 17, 31, 33, 47, 1000, 16383, 16385, 50001};
    const lt_adamw_desc d = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.7f, 3};
    const int32_t isa0 = lt_isa();
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int64_t n = sizes[k], pad = n + 16;
        float *buf[2][4];
        for (int r = 0; r < 2; r++) {
            uint64_t rng = 1234 + k;
            for (int a = 0; a < 4; a++) { buf[r][a] = malloc(pad * 4); lt_t_nan(buf[r][a], pad); lt_t_fill(buf[r][a], n, &rng); }
            for (int64_t i = 0; i < n; i++) buf[r][3][i] = 0.01f * fabsf(buf[r][3][i]);
            if (n > 2) buf[r][2][0] = buf[r][3][0] = 0.0f;
            lt_set_isa(r ? LT_ISA_AVX512 : LT_ISA_AVX2);
            lt_adamw(&d, n, buf[r][0], buf[r][1], buf[r][2], buf[r][3]);
        }
        int same = 1;
        for (int a = 0; a < 4; a++) same &= !memcmp(buf[0][a], buf[1][a], pad * 4);
        CHECK(same, "n=%lld: avx512 differs from avx2 (or wrote past n)", (long long)n);
        for (int r = 0; r < 2; r++) for (int a = 0; a < 4; a++) free(buf[r][a]);
    }
    lt_set_isa(isa0);
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    float *p = malloc(n * 4), *g = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4);
    uint64_t rng = 9;
    lt_t_fill(p, n, &rng);
    lt_t_fill(g, n, &rng);
    lt_adamw_desc d = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1};
    double *tm = malloc(reps * sizeof(double));
    for (int r = -1; r < reps; r++, d.step++) {
        double t0 = lt_t_now();
        lt_adamw(&d, n, p, g, m, v);
        if (r >= 0) tm[r] = lt_t_now() - t0;
    }
    qsort(tm, reps, sizeof(double), cmp_double);
    double bytes = 28.0 * n, best = tm[0], med = tm[reps / 2];
    printf("adamw n=%lld %d thr: best %7.3f ms %6.1f GB/s %5.1f%% of triad | median %7.3f ms %6.1f GB/s | triad %5.1f GB/s\n",
           (long long)n, threads, best * 1e3, bytes / best / 1e9, 100 * bytes / best / 1e9 / triad, med * 1e3,
           bytes / med / 1e9, triad);
    fflush(stdout);
    free(p); free(g); free(m); free(v); free(tm);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        int64_t n = argc > 3 ? atoll(argv[3]) : 10700000;
        for (int th = 1; th <= 2; th++) bench(n, th, reps);
        return 0;
    }
    printf("lt_adamw at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_shapes();
    test_determinism();
    test_avx512_bits();
    printf("largest error / tolerance: %.3f\n", worst_ratio);
    return lt_test_summary();
}
