/* lt_sumsq test: through the exported symbol (avx2 or ref by LATENT_MAX_ISA), against a compensated (Neumaier)
 * double sum here.
 *
 *   sumsq_test                     the checks; prints "N passed, N failed" last
 *   sumsq_test --bench [reps] [n]  n = 10.7M floats (a 10.7M-parameter model's gradients), 1 and 2 threads:
 *                                  ms, GB/s (4 bytes per element read) and % of the STREAM triad of the same run
 *
 * Tolerance (once, in tol): |got - want| <= (4096 + n/4096 + 16) 2^-53 want. Squares of floats are exact in
 * double; a chunk of 4096 terms summed in any order errs by at most 4095 2^-53 of its (positive) sum, the chunk
 * sums add n/4096 more. Loose for the 16-accumulator AVX2 chunk, exact enough to catch a lost element (x^2/sum). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

static double tol(double want, int64_t n) { return (4096.0 + n / 4096.0 + 16.0) * 0x1p-53 * want; }

static double neumaier(const float *x, int64_t n) {
    double s = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)x[i] * x[i], u = s + t;
        c += fabs(s) >= fabs(t) ? (s - u) + t : (t - u) + s;
        s = u;
    }
    return s + c;
}

static void test_sizes(void) {
    uint64_t rng = 2024;
    static const int64_t sizes[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 37, 65, 385, 1000, 4095, 4096, 4097, 8192 + 15, 65537, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        float *x = malloc((n + 1) * 4);
        for (int scale = 0; scale < 3; scale++) {
            for (int64_t i = 0; i < n; i++) x[i] = lt_t_uniform(&rng) * (scale == 0 ? 1.0f : scale == 1 ? 1e-20f : 1e18f);
            if (scale == 2 && n > 4) x[n / 2] = 3e38f; /* one huge square among large ones: 9e76, fine in double */
            double got = NAN, want = neumaier(x, n);
            lt_status st = lt_sumsq(n, x, &got);
            CHECK(st == LT_OK && fabs(got - want) <= tol(want, n), "n=%lld scale %d: got %.17g want %.17g (status %d)",
                  (long long)n, scale, got, want, st);
        }
        free(x);
    }
}

static void test_special(void) {
    float x[100];
    double out;
    for (int i = 0; i < 100; i++) x[i] = 1.0f;
    x[77] = NAN;
    CHECK(lt_sumsq(100, x, &out) == LT_OK && out != out, "NaN element: got %g", out);
    x[77] = -INFINITY;
    CHECK(lt_sumsq(100, x, &out) == LT_OK && out == INFINITY, "-inf element: got %g", out);
    x[77] = 1.0f;
    CHECK(lt_sumsq(100, x, &out) == LT_OK && out == 100.0, "hundred ones: got %.17g", out);
    out = 5;
    CHECK(lt_sumsq(0, NULL, &out) == LT_OK && out == 0.0, "n == 0: got %g", out);
}

static void test_invalid(void) {
    float x[4] = {1, 2, 3, 4};
    double out;
    CHECK(lt_sumsq(-1, x, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "n=-1"), "n<0: \"%s\"", lt_last_error());
    CHECK(lt_sumsq(4, x, NULL) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "out is NULL"), "out NULL: \"%s\"", lt_last_error());
    CHECK(lt_sumsq(4, NULL, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "x is NULL"), "x NULL: \"%s\"", lt_last_error());
}

static void test_determinism(void) {
    int64_t n = 10700005;
    uint64_t rng = 6;
    float *x = malloc(n * 4);
    lt_t_fill(x, n, &rng);
    double a, b;
    lt_set_num_threads(1);
    lt_sumsq(n, x, &a);
    lt_set_num_threads(2);
    lt_sumsq(n, x, &b);
    CHECK(!memcmp(&a, &b, sizeof a), "1 and 2 threads differ: %.17g %.17g", a, b);
    free(x);
}

/* lt_sumsq_segments: bit-identical to per-segment lt_sumsq added in order from 0, for segments of every size class
 * (empty, tails, chunk multiples, unaligned starts, gaps, a repeated range), at 1 and 2 threads; and its refusals. */
static void test_segments(void) {
    static const int64_t lens[] = {0, 1, 7, 4096, 3, 8192 + 15, 0, 37, 65537, 16, 4097, 1000};
    enum { NS = sizeof lens / sizeof lens[0] };
    int64_t off[NS + 1], len[NS + 1], at = 5;
    for (int k = 0; k < NS; k++) { off[k] = at; len[k] = lens[k]; at += lens[k] + (k % 3); }
    off[NS] = off[3]; len[NS] = 4096; /* the same range twice */
    uint64_t rng = 77;
    float *x = malloc(at * 4);
    lt_t_fill(x, at, &rng);
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        for (int nseg = 0; nseg <= NS + 1; nseg++) {
            double want = 0, got = NAN;
            for (int k = 0; k < nseg; k++) { double t; lt_sumsq(len[k], x + off[k], &t); want += t; }
            lt_status st = lt_sumsq_segments(nseg, off, len, x, &got);
            CHECK(st == LT_OK && !memcmp(&got, &want, sizeof got), "segments nseg=%d %d thr: got %.17g want %.17g (status %d)",
                  nseg, th, got, want, st);
        }
    }
    double out;
    int64_t bad = -1, one = 1, zero = 0;
    CHECK(lt_sumsq_segments(-1, off, len, x, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "nseg=-1"), "nseg<0: \"%s\"", lt_last_error());
    CHECK(lt_sumsq_segments(1, off, len, x, NULL) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "out is NULL"), "out NULL: \"%s\"", lt_last_error());
    CHECK(lt_sumsq_segments(1, NULL, len, x, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "offset is NULL"), "offset NULL: \"%s\"", lt_last_error());
    CHECK(lt_sumsq_segments(1, &bad, &one, x, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "offset=-1"), "offset<0: \"%s\"", lt_last_error());
    CHECK(lt_sumsq_segments(1, &zero, &bad, x, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "len=-1"), "len<0: \"%s\"", lt_last_error());
    CHECK(lt_sumsq_segments(1, &zero, &one, NULL, &out) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "x is NULL"), "x NULL: \"%s\"", lt_last_error());
    out = 5;
    CHECK(lt_sumsq_segments(1, &zero, &zero, NULL, &out) == LT_OK && out == 0.0, "one empty segment: got %g", out);
    free(x);
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0, out;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    float *x = malloc(n * 4);
    uint64_t rng = 3;
    lt_t_fill(x, n, &rng);
    double *tm = malloc(reps * sizeof(double));
    for (int r = -1; r < reps; r++) {
        double t0 = lt_t_now();
        lt_sumsq(n, x, &out);
        if (r >= 0) tm[r] = lt_t_now() - t0;
    }
    qsort(tm, reps, sizeof(double), cmp_double);
    double bytes = 4.0 * n, best = tm[0], med = tm[reps / 2];
    printf("sumsq n=%lld %d thr: best %7.3f ms %6.1f GB/s %5.1f%% of triad | median %7.3f ms %6.1f GB/s | triad %5.1f GB/s\n",
           (long long)n, threads, best * 1e3, bytes / best / 1e9, 100 * bytes / best / 1e9 / triad, med * 1e3,
           bytes / med / 1e9, triad);
    fflush(stdout);
    free(x); free(tm);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        int64_t n = argc > 3 ? atoll(argv[3]) : 10700000;
        for (int th = 1; th <= 2; th++) bench(n, th, reps);
        return 0;
    }
    printf("lt_sumsq at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_special();
    test_sizes();
    test_determinism();
    test_segments();
    return lt_test_summary();
}
