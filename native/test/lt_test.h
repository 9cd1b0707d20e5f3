/* Tiny test harness for the native tests: seeded data, tolerance checks with max-abs-diff and NMSE,
 * NaN-prefill, and a pass/fail tally. Every test binary prints "N passed, N failed" last. */
#ifndef LT_TEST_H
#define LT_TEST_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "latent.h"

static int lt_t_pass, lt_t_fail;

#define CHECK(cond, ...) do { if (cond) lt_t_pass++; else { lt_t_fail++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static inline int lt_test_summary(void) {
    printf("%d passed, %d failed\n", lt_t_pass, lt_t_fail);
    return lt_t_fail ? 1 : 0;
}

/* xorshift64*: test data only (the library's RNG is Philox). */
static inline uint64_t lt_t_next(uint64_t *s) { *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27; return *s * 2685821657736338717ull; }
static inline float lt_t_uniform(uint64_t *s) { return (float)((lt_t_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static inline void lt_t_fill(float *x, int64_t n, uint64_t *s) { for (int64_t i = 0; i < n; i++) x[i] = lt_t_uniform(s); }
static inline void lt_t_nan(float *x, int64_t n) { for (int64_t i = 0; i < n; i++) x[i] = NAN; }

/* |x - ref| <= atol + rtol*|ref| elementwise; on failure report the worst element, max-abs-diff, NMSE. */
static inline int lt_t_close(const char *what, const float *x, const double *ref, int64_t n, double atol, double rtol) {
    double maxd = 0, num = 0, den = 0; int64_t worst = -1, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) { bad++; if (worst < 0 || !(d <= maxd)) worst = i; }
        if (d > maxd || d != d) maxd = d;
        num += (x[i] - ref[i]) * (x[i] - ref[i]); den += ref[i] * ref[i];
    }
    if (bad) fprintf(stderr, "  %s: %lld/%lld outside tolerance, worst [%lld] got %g want %g, max-abs-diff %g, NMSE %g\n",
                     what, (long long)bad, (long long)n, (long long)worst, x[worst], ref[worst], maxd, den > 0 ? num / den : num);
    return bad == 0;
}

/* One value: got == want exactly for non-finite want (NaN must stay NaN, inf must match), else within tol.
 * lt_t_worst_ratio keeps the largest |got - want| / tol seen, so a test can print how much of its tolerance
 * the kernel uses. */
static double lt_t_worst_ratio;
static inline int lt_t_agree(float got, double want, double tol) {
    if (want != want) return got != got;
    if (isinf(want)) return got == want;
    double r = fabs((double)got - want) / tol;
    if (r > lt_t_worst_ratio || r != r) lt_t_worst_ratio = r;
    return fabs((double)got - want) <= tol;
}

/* Name of the ISA level in use, for test and bench output. */
static inline const char *lt_t_isa_name(void) {
    int i = lt_isa();
    return i == LT_ISA_AVX512 ? "avx512" : i == LT_ISA_AVX2 ? "avx2" : "ref";
}

/* The avx512 registration of every test (cmake/LatentKernels.cmake) on a CPU without AVX-512: say so and pass
 * rather than run the avx2 level a second time. Runs after the library's ISA detection (constructor 101). */
__attribute__((constructor(200))) static void lt_t_isa_gate(void) {
    const char *cap = getenv("LATENT_MAX_ISA");
    if (cap && !strcmp(cap, "avx512") && lt_isa_supported() < LT_ISA_AVX512) {
        printf("skipped: no AVX-512 (%s)\n", lt_isa_reason());
        printf("0 passed, 0 failed, 1 skipped\n");
        fflush(stdout);
        exit(0);
    }
}

static inline double lt_t_now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#endif
