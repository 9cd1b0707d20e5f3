/* lt_gelu_fwd / lt_gelu_bwd test: through the exported symbols (avx2 or ref by LATENT_MAX_ISA), against double
 * erfc/exp here; plus, on an AVX2 CPU, sweeps of the vector exp and normal CDF themselves.
 *
 *   gelu_test                  the checks; prints "N passed, N failed" last
 *   gelu_test --sweep          every float in [-14, 14] (and exp on [-87.3, 0]): max error of vexp, Phi, phi,
 *                              GELU and GELU' (needs AVX2; ~5 minutes on one core)
 *   gelu_test --bench [reps] [n]  n = 2048*1536 (the MLP activation of a 384-wide model, batch 2048), fwd and
 *                              bwd, 1 and 2 threads: ms, GB/s (fwd 8 bytes/element, bwd 12), % of STREAM triad
 * Each run also sweeps every 997th float of [-14, 14] through the kernels, and (AVX2 CPUs) of the vector math.
 *
 * Tolerances (written once, below), as relative error in u = 2^-24 (1 ulp is between u and 2u of the value):
 *   fwd:  |got - want| <= FWD_ULP u |want| + 1e-37, FWD_ULP = 6. The CDF path: exp ~1.4 u, T's Horner sum up to
 *         ~2 u near x = 0 (q ~ -1, where T'/T is largest), the division 0.5 u, three products, 1 - Q, then the
 *         product with x; the exhaustive sweep measures 5.78 u at worst. The ref is double rounded once (1 u).
 *         1e-37 absorbs the flush of Phi < FLT_MIN (x < -13.2) to 0.
 *   bwd:  |got - want| <= BWD_ULP u |dy| (Phi + |x| phi) + 1e-37 |dy|, BWD_ULP = 8: the same per-term error on
 *         each of Phi and x phi, measured against their magnitudes rather than the sum, which cancels near the
 *         root of GELU' (x = -0.7518); the sweep measures 5.68 u.
 * Vector math thresholds: exp 1.5 u, Phi and phi 6 u (measured 1.42, 4.93, 3.35 u over every float).
 * Measured with --sweep on this machine: the header of gelu_simd.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "gelu.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)
#define FWD_ULP 6.0 /* relative error in units of u (1 ulp is u to 2u of the value) */
#define BWD_ULP 8.0

static double cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
static double pdf(double x) { return exp(-0.5 * x * x) * 0.39894228040143267794; }
static double want_fwd(double x) { return x == -INFINITY ? -0.0 : x == INFINITY ? x : x * cdf(x); }
static double dgelu(double x) { return x == INFINITY ? 1.0 : x == -INFINITY ? 0.0 : cdf(x) + x * pdf(x); }
static double mag_bwd(double x) { return isinf(x) ? 1.0 : cdf(x) + fabs(x) * pdf(x); }

/* ulp of the float nearest w (normal range): the spacing of floats in w's binade */
static double ulp_of(double w) { int e; frexp(w, &e); return ldexp(1.0, e - 24); }


/* Check fwd and bwd of x[n] (dy random), out of place and in place, outputs NaN-prefilled. */
static void check(const char *what, const float *x, int64_t n, uint64_t *rng) {
    float *y = malloc((n + 1) * sizeof(float)), *dy = malloc((n + 1) * sizeof(float)), *dx = malloc((n + 1) * sizeof(float));
    lt_t_fill(dy, n, rng);
    lt_t_nan(y, n);
    lt_t_nan(dx, n);
    lt_status s1 = lt_gelu_fwd(n, x, y), s2 = lt_gelu_bwd(n, x, dy, dx);
    CHECK(s1 == LT_OK && s2 == LT_OK, "%s n=%lld: status %d %d (%s)", what, (long long)n, s1, s2, lt_last_error());
    int64_t badf = 0, badb = 0;
    for (int64_t i = 0; i < n; i++) {
        double wf = want_fwd(x[i]), wb = dy[i] * dgelu(x[i]);
        if (!lt_t_agree(y[i], wf, FWD_ULP * U * fabs(wf) + 1e-37) && badf++ < 3)
            fprintf(stderr, "  %s: gelu(%.9g) got %.9g want %.9g\n", what, x[i], y[i], wf);
        if (!lt_t_agree(dx[i], wb, BWD_ULP * U * fabs(dy[i]) * mag_bwd(x[i]) + 1e-37 * fabs(dy[i])) && badb++ < 3)
            fprintf(stderr, "  %s: gelu'(%.9g) * %g got %.9g want %.9g\n", what, x[i], dy[i], dx[i], wb);
    }
    CHECK(badf == 0 && badb == 0, "%s n=%lld: %lld fwd, %lld bwd outside tolerance", what, (long long)n, (long long)badf,
          (long long)badb);
    /* In place: y = x and dx = dy give the same bits. */
    float *xi = malloc((n + 1) * sizeof(float)), *di = malloc((n + 1) * sizeof(float));
    memcpy(xi, x, n * sizeof(float));
    memcpy(di, dy, n * sizeof(float));
    s1 = lt_gelu_fwd(n, xi, xi);
    s2 = lt_gelu_bwd(n, x, di, di);
    CHECK(s1 == LT_OK && s2 == LT_OK && !memcmp(xi, y, n * sizeof(float)) && !memcmp(di, dx, n * sizeof(float)),
          "%s n=%lld: in place differs", what, (long long)n);
    free(y); free(dy); free(dx); free(xi); free(di);
}

static void test_shapes(void) {
    uint64_t rng = 77;
    static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 37, 65, 385, 1000, 1031, 16385, 40000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        float *x = malloc(n * sizeof(float));
        for (int64_t i = 0; i < n; i++) x[i] = 4.0f * lt_t_uniform(&rng);
        check("uniform(-4, 4)", x, n, &rng);
        for (int64_t i = 0; i < n; i++) x[i] = 14.0f * lt_t_uniform(&rng);
        check("uniform(-14, 14)", x, n, &rng);
        free(x);
    }
}

static void test_extremes(void) {
    uint64_t rng = 5;
    static const float x[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, -1e-40f, 1e-8f, -1e-8f, 0.5f, -0.5f, 1.0f, -1.0f,
                              -0.751791524f, -0.7517915f, 2.0f, -2.0f, 3.0f, -3.0f, 5.0f, -5.0f, -5.6f, 8.0f, -8.0f,
                              -10.0f, 10.0f, -13.0f, -13.2f, -13.3f, -13.5f, 13.5f, -14.0f, 14.0f, -20.0f, 20.0f,
                              -1e30f, 1e30f, -3.4e38f, 3.4e38f, INFINITY, -INFINITY, NAN, -NAN};
    int n = sizeof x / sizeof x[0];
    check("extremes", x, n, &rng);
    float y[64], dx[64], dy[64];
    for (int i = 0; i < n; i++) dy[i] = 1.0f;
    lt_gelu_fwd(n, x, y);
    lt_gelu_bwd(n, x, dy, dx);
    CHECK(y[38] == INFINITY && y[39] == 0.0f && signbit(y[39]) && y[40] != y[40], "gelu(inf, -inf, nan) = %g %g %g",
          y[38], y[39], y[40]);
    CHECK(dx[38] == 1.0f && dx[39] == 0.0f && dx[40] != dx[40], "gelu'(inf, -inf, nan) = %g %g %g", dx[38], dx[39], dx[40]);
    CHECK(y[1] == 0.0f && signbit(y[1]) && y[0] == 0.0f && !signbit(y[0]), "gelu(+-0) = %g %g", y[0], y[1]);
}

/* Every `stride`-th float in [-14, 14] through the exported kernels (the sweep mode uses stride 1). */
static void sweep_gelu(uint32_t stride, int print) {
    const int64_t B = 1 << 16;
    float *x = malloc(B * 4), *y = malloc(B * 4), *dy = malloc(B * 4), *dx = malloc(B * 4);
    for (int64_t i = 0; i < B; i++) dy[i] = 1.0f;
    double wf = 0, wb = 0, xf = 0, xb = 0, wfu = 0; /* worst relative error in u (and fwd in ulp), and where */
    int64_t bad = 0;
    for (int sgn = 0; sgn < 2; sgn++) {
        uint32_t top = 0x41600000u; /* 14.0f */
        for (uint32_t b0 = 0; b0 <= top; ) {
            int64_t m = 0;
            for (; m < B && b0 <= top; m++, b0 += stride) {
                uint32_t bits = b0 | (sgn ? 0x80000000u : 0);
                memcpy(&x[m], &bits, 4);
            }
            lt_gelu_fwd(m, x, y);
            lt_gelu_bwd(m, x, dy, dx);
            for (int64_t i = 0; i < m; i++) {
                double f = want_fwd(x[i]), d = dgelu(x[i]);
                double uf = fabs(y[i] - f) / (U * fabs(f) + 1e-45);
                double ub = fabs(dx[i] - d) / (U * mag_bwd(x[i]));
                if (fabs(f) >= 1e-36 && uf > wf) { wf = uf; xf = x[i]; }
                if (fabs(f) >= 1e-36 && fabs(y[i] - f) / ulp_of(f) > wfu) wfu = fabs(y[i] - f) / ulp_of(f);
                if (mag_bwd(x[i]) >= 1e-30 && ub > wb) { wb = ub; xb = x[i]; }
                if (!lt_t_agree(y[i], f, FWD_ULP * U * fabs(f) + 1e-37) || !lt_t_agree(dx[i], d, BWD_ULP * U * mag_bwd(x[i]) + 1e-37))
                    bad++;
            }
        }
    }
    if (print)
        printf("sweep gelu, every %u-th float in [-14, 14]: fwd max %.3f u relative = %.3f ulp (at x=%.9g, |y| >= 1e-36); "
               "bwd max %.3f u (Phi+|x|phi) (at x=%.9g, Phi+|x|phi >= 1e-30)\n", stride, wf, wfu, xf, wb, xb);
    CHECK(bad == 0, "sweep every %u-th float: %lld outside tolerance (fwd max %.2f u at %g, bwd %.2f at %g)", stride,
          (long long)bad, wf, xf, wb, xb);
    free(x); free(y); free(dy); free(dx);
}

/* The vector exp on [-87.4, 0] and Phi, phi on [-14, 14], every `stride`-th float (needs AVX2). */
static void sweep_vmath(uint32_t stride, int print) {
    const int64_t B = 1 << 16;
    float *x = malloc(B * 4), *r = malloc(B * 4);
    static const char *name[3] = {"exp", "Phi", "phi"};
    for (int which = 0; which < 3; which++) {
        double worst = 0, at = 0, worst_ulp = 0;
        int64_t count = 0, nonfinite_bad = 0;
        for (int sgn = 1; sgn >= (which == 0 ? 1 : 0); sgn--) {
            uint32_t top = which == 0 ? 0x42aeb000u /* 87.34375 */ : 0x41600000u;
            for (uint32_t b0 = 0; b0 <= top;) {
                int64_t m = 0;
                for (; m < B && b0 <= top; m++, b0 += stride) {
                    uint32_t bits = b0 | (sgn ? 0x80000000u : 0);
                    memcpy(&x[m], &bits, 4);
                }
                gelu_vmath_avx2(which, m, x, r);
                for (int64_t i = 0; i < m; i++) {
                    double w = which == 0 ? exp((double)x[i]) : which == 1 ? cdf(x[i]) : pdf(x[i]);
                    if (w < 1.1754944e-38) { nonfinite_bad += !(r[i] == 0.0f || fabs(r[i] - w) < 1.2e-38); continue; }
                    double e = fabs(r[i] - w) / (U * w);
                    count++;
                    if (e > worst || e != e) { worst = e; at = x[i]; }
                    if (fabs(r[i] - w) / ulp_of(w) > worst_ulp) worst_ulp = fabs(r[i] - w) / ulp_of(w);
                }
            }
        }
        if (print)
            printf("sweep %s: %lld floats, max error %.3f u relative (at x=%.9g), %.3f ulp\n", name[which], (long long)count,
                   worst, at, worst_ulp);
        CHECK(worst <= (which == 0 ? 1.5 : 6.0) && nonfinite_bad == 0,
              "vmath %s: max %.3f u at %g, %lld bad below FLT_MIN", name[which], worst, at, (long long)nonfinite_bad);
    }
    /* special values of exp */
    float sx[8] = {-INFINITY, NAN, -87.3365479f, -88.0f, -100.0f, 0.0f, -0.0f, 1.0f}, sr[8];
    gelu_vmath_avx2(0, 8, sx, sr);
    CHECK(sr[0] == 0.0f && sr[1] != sr[1] && sr[2] > 0.0f && sr[3] == 0.0f && sr[4] == 0.0f && sr[5] == 1.0f &&
          sr[6] == 1.0f && fabs(sr[7] - 2.718281828) < 3e-7, "vexp specials: %g %g %g %g %g %g %g %g", sr[0], sr[1], sr[2],
          sr[3], sr[4], sr[5], sr[6], sr[7]);
    free(x); free(r);
}

/* Central differences of the double GELU against the kernel's gradient (dy = 1). */
static void test_gradcheck(void) {
    uint64_t rng = 3;
    enum { N = 200 };
    float x[N], dy[N], dx[N];
    for (int i = 0; i < N; i++) { x[i] = 6.0f * lt_t_uniform(&rng); dy[i] = 1.0f; }
    x[0] = 0.0f; x[1] = -0.7517915f; x[2] = -5.0f; x[3] = 5.0f;
    CHECK(lt_gelu_bwd(N, x, dy, dx) == LT_OK, "gradcheck: %s", lt_last_error());
    double worst = 0;
    int ok = 1;
    for (int i = 0; i < N; i++) {
        double h = 1e-6, num = (want_fwd(x[i] + h) - want_fwd(x[i] - h)) / (2 * h), d = fabs(num - dx[i]);
        if (!(d <= 1e-9 + 1e-6 * mag_bwd(x[i]))) ok = 0; /* kernel error <= 6u mag = 3.6e-7 mag */
        if (d > worst) worst = d;
    }
    CHECK(ok, "gradcheck: worst |numeric - kernel| %g", worst);
}

static void test_invalid(void) {
    float a[32] = {0}, b[32], c[32];
    struct { const char *want; lt_status st; } r[] = {
        {"n=-1", lt_gelu_fwd(-1, a, b)},
        {"x is NULL", lt_gelu_fwd(4, NULL, b)},
        {"y is NULL", lt_gelu_fwd(4, a, NULL)},
        {"overlaps", lt_gelu_fwd(8, a, a + 1)},
        {"n=-2", lt_gelu_bwd(-2, a, b, c)},
        {"dy is NULL", lt_gelu_bwd(4, a, NULL, c)},
        {"dx is NULL", lt_gelu_bwd(4, a, b, NULL)},
        {"overlaps dy", lt_gelu_bwd(8, a, b, b + 3)},
        {"overlaps x", lt_gelu_bwd(8, a, b, a + 7)},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        CHECK(r[i].st == LT_ERR_INVALID_ARGUMENT, "invalid case %zu (%s): status %d", i, r[i].want, r[i].st);
    CHECK(lt_gelu_bwd(8, a, b, a + 7) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlaps x="),
          "message \"%s\"", lt_last_error());
    CHECK(lt_gelu_fwd(0, NULL, NULL) == LT_OK && lt_gelu_bwd(0, NULL, NULL, NULL) == LT_OK, "n == 0 with NULLs");
}

static void test_determinism(void) {
    int64_t n = 3 * 1000 * 1000 + 5;
    uint64_t rng = 8;
    float *x = malloc(n * 4), *dy = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4), *d = malloc(n * 4);
    for (int64_t i = 0; i < n; i++) { x[i] = 5.0f * lt_t_uniform(&rng); dy[i] = lt_t_uniform(&rng); }
    lt_set_num_threads(1);
    lt_gelu_fwd(n, x, a);
    lt_gelu_bwd(n, x, dy, c);
    lt_set_num_threads(2);
    lt_gelu_fwd(n, x, b);
    lt_gelu_bwd(n, x, dy, d);
    CHECK(!memcmp(a, b, n * 4) && !memcmp(c, d, n * 4), "1 and 2 threads differ");
    free(x); free(dy); free(a); free(b); free(c); free(d);
}

/* ---- --bench ------------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    float *x = malloc(n * 4), *y = malloc(n * 4), *dy = malloc(n * 4);
    uint64_t rng = 1;
    for (int64_t i = 0; i < n; i++) { x[i] = 3.0f * lt_t_uniform(&rng); dy[i] = lt_t_uniform(&rng); y[i] = 0; }
    for (int bwd = 0; bwd < 2; bwd++) {
        double *tm = malloc(reps * sizeof(double));
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double t0 = lt_t_now();
            if (bwd) lt_gelu_bwd(n, x, dy, y); else lt_gelu_fwd(n, x, y);
            if (r >= 0) tm[r] = lt_t_now() - t0;
        }
        qsort(tm, reps, sizeof(double), cmp_double);
        double bytes = (bwd ? 12.0 : 8.0) * n, best = tm[0], med = tm[reps / 2];
        printf("gelu_%s n=%lld %d thr: best %7.3f ms %6.1f GB/s %5.1f%% of triad | median %7.3f ms %6.1f GB/s | "
               "triad %5.1f GB/s\n", bwd ? "bwd" : "fwd", (long long)n, threads, best * 1e3, bytes / best / 1e9,
               100 * bytes / best / 1e9 / triad, med * 1e3, bytes / med / 1e9, triad);
        fflush(stdout);
        free(tm);
    }
    free(x); free(y); free(dy);
}

/* The AVX-512 path runs the AVX2 path's operations in the same order: the same bits, on every 61st float of
 * [-14, 14], the extremes, and 16-lane tails (runs only where the CPU has AVX-512; noted otherwise). */
static void test_avx512_bits(void) {
    if (lt_isa_supported() < LT_ISA_AVX512) { printf("  note: no AVX-512 on this CPU: avx512-vs-avx2 bits not checked\n"); return; }
    const float lo = -14.0f;
    int64_t n = 0;
    uint32_t b0, b1;
    float f = lo, hi = 14.0f;
    memcpy(&b0, &f, 4); memcpy(&b1, &hi, 4);
    const int64_t cap = 2 * ((int64_t)b0 + b1) / 61 + 64;
    float *x = malloc(cap * sizeof(float)), *dy = malloc(cap * sizeof(float)), *out[4];
    for (uint32_t u = 0x80000000u; u <= b0; u += 61) { memcpy(&x[n], &u, 4); n++; } /* -0 .. -14 */
    for (uint32_t u = 0; u <= b1; u += 61) { memcpy(&x[n], &u, 4); n++; }           /* +0 .. 14 */
    const float special[] = {INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 13.5f, -13.5f, 13.6f, -13.6f, 1e-40f, -1e-40f};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) x[n++] = special[k];
    uint64_t rng = 5;
    lt_t_fill(dy, n, &rng);
    const int32_t isa0 = lt_isa();
    for (int r = 0; r < 2; r++) {
        lt_set_isa(r ? LT_ISA_AVX512 : LT_ISA_AVX2);
        out[2 * r] = malloc(n * sizeof(float)); out[2 * r + 1] = malloc(n * sizeof(float));
        lt_t_nan(out[2 * r], n); lt_t_nan(out[2 * r + 1], n);
        lt_gelu_fwd(n, x, out[2 * r]);
        lt_gelu_bwd(n, x, dy, out[2 * r + 1]);
    }
    CHECK(!memcmp(out[0], out[2], n * sizeof(float)), "fwd: avx512 differs from avx2 (%lld values)", (long long)n);
    CHECK(!memcmp(out[1], out[3], n * sizeof(float)), "bwd: avx512 differs from avx2 (%lld values)", (long long)n);
    static const int64_t tails[] = {1, 15, 16, 17, 31, 33, 47};
    for (size_t k = 0; k < sizeof tails / sizeof tails[0]; k++) {
        float y2[2][64], d2[2][64];
        for (int r = 0; r < 2; r++) {
            lt_set_isa(r ? LT_ISA_AVX512 : LT_ISA_AVX2);
            lt_t_nan(y2[r], 64); lt_t_nan(d2[r], 64);
            lt_gelu_fwd(tails[k], x + 1000 + k, y2[r]);
            lt_gelu_bwd(tails[k], x + 1000 + k, dy, d2[r]);
        }
        CHECK(!memcmp(y2[0], y2[1], sizeof y2[0]) && !memcmp(d2[0], d2[1], sizeof d2[0]), "n=%lld: avx512 differs from avx2 "
              "(or wrote past n)", (long long)tails[k]);
    }
    lt_set_isa(isa0);
    for (int r = 0; r < 4; r++) free(out[r]);
    free(x); free(dy);
}

int main(int argc, char **argv) {
    int avx2_cpu = lt_isa_supported() >= LT_ISA_AVX2;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        int64_t n = argc > 3 ? atoll(argv[3]) : 2048 * 1536;
        for (int th = 1; th <= 2; th++) bench(n, th, reps);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--sweep")) {
        if (!avx2_cpu) { printf("sweep: CPU lacks AVX2\n"); return 0; }
        sweep_vmath(1, 1);
        sweep_gelu(1, 1);
        return lt_test_summary();
    }
    printf("lt_gelu at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_extremes();
    test_gradcheck();
    test_shapes();
    sweep_gelu(997, 1);
    if (avx2_cpu) sweep_vmath(997, 1); /* the vector math is tested at every ISA level the CPU has */
    test_determinism();
    test_avx512_bits();
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
