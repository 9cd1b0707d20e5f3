/* lt_gemm_rows test: through the exported symbol (ref, avx2 or avx512 by LATENT_MAX_ISA), against double sums written
 * here, on shapes that hit every tile and vector tail; plus bits across M and thread counts, refusals, and a benchmark.
 *
 *   gemm_rows_test                  the checks; prints "N passed, N failed" last
 *   gemm_rows_test --bench-model [reps]   one decode pass over E1's 24 weight matrices (43 MB, from DRAM) at M = 1 and
 *                                   16, 1 and 2 threads: ms, GB/s of weights and % of the triad measured right after
 *   gemm_rows_test --bench [reps]   E1's decode GEMMs (K 384 -> N 1152, 384, 1536; K 1536 -> N 384) at M = 1 and 16,
 *                                   1 and 2 threads, beside lt_gemm: us per call, GB/s of B read
 *
 * Tolerance (derived): an element is a float sum of k products, each product rounded once (FMA: not at all) and every
 * partial sum once, so |C - exact| <= (k + 2) u sum_p |a_p b_p| |alpha| + 1 u |beta C| (u = 2^-24; the +2: alpha and
 * beta). Checked as |got - ref| <= (k + 3) u (|alpha| sum|a b| + |beta C0|) + 1e-30. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static lt_status rows(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                      float beta, float *c, int64_t ldc) {
    lt_gemm_desc d = {0, 1, m, n, k, alpha, beta, lda, ldb, ldc, 1, 0, 0, 0};
    return lt_gemm_rows(&d, a, b, c);
}

static void check(int64_t m, int64_t n, int64_t k, float alpha, float beta, uint64_t *rng) {
    int64_t lda = k + 3, ldb = k + 1, ldc = n + 2;
    float *a = malloc(sizeof(float) * (m * lda + 1)), *b = malloc(sizeof(float) * (n * ldb + 1));
    float *c = malloc(sizeof(float) * (m * ldc + 1)), *c0 = malloc(sizeof(float) * (m * ldc + 1));
    lt_t_fill(a, m * lda, rng);
    lt_t_fill(b, n * ldb, rng);
    if (beta == 0.0f) lt_t_nan(c, m * ldc);
    else lt_t_fill(c, m * ldc, rng);
    memcpy(c0, c, sizeof(float) * m * ldc);
    lt_status st = rows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    CHECK(st == LT_OK, "m %lld n %lld k %lld: status %d (%s)", (long long)m, (long long)n, (long long)k, st, lt_last_error());
    int64_t bad = 0;
    for (int64_t i = 0; i < m && st == LT_OK; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
                s += (double)a[i * lda + p] * b[j * ldb + p];
                mag += fabs((double)a[i * lda + p] * b[j * ldb + p]);
            }
            double c00 = beta == 0.0f ? 0 : c0[i * ldc + j];
            double want = alpha * s + beta * c00;
            double tol = (k + 3) * U * (fabs(alpha) * mag + fabs(beta * c00)) + 1e-30;
            if (!lt_t_agree(c[i * ldc + j], want, tol) && bad++ < 3)
                fprintf(stderr, "  m %lld n %lld k %lld: C[%lld][%lld] got %.9g want %.9g\n", (long long)m, (long long)n, (long long)k,
                        (long long)i, (long long)j, c[i * ldc + j], want);
        }
    CHECK(bad == 0, "m %lld n %lld k %lld alpha %g beta %g: %lld outside tolerance", (long long)m, (long long)n, (long long)k, alpha,
          beta, (long long)bad);
    /* the padding between rows of C is untouched */
    for (int64_t i = 0; i < m && st == LT_OK; i++)
        for (int64_t j = n; j < ldc && i * ldc + j < m * ldc; j++)
            if (memcmp(&c[i * ldc + j], &c0[i * ldc + j], 4)) { CHECK(0, "m %lld n %lld: padding written", (long long)m, (long long)n); i = m; break; }
    free(a); free(b); free(c); free(c0);
}

static void test_shapes(void) {
    uint64_t rng = 11;
    static const int64_t ms[] = {1, 2, 3, 4, 5, 7, 9, 16, 17};
    static const int64_t ns[] = {1, 3, 4, 5, 63, 64, 65, 130};
    static const int64_t ks[] = {1, 7, 8, 9, 15, 16, 17, 37, 384};
    lt_t_worst_ratio = 0;
    for (size_t x = 0; x < 9; x++)
        for (size_t y = 0; y < 8; y++)
            check(ms[x], ns[y], ks[(x + y) % 9], 1.0f, 0.0f, &rng);
    check(5, 70, 100, -0.5f, 0.75f, &rng);
    check(16, 1152, 384, 1.0f, 0.0f, &rng);
    check(3, 384, 1536, 2.0f, 1.0f, &rng);
    check(2, 3, 0, 1.0f, 0.5f, &rng);
    printf("shapes: worst error %.3f of the tolerance (%s)\n", lt_t_worst_ratio, lt_t_isa_name());
}

/* A row's bits do not depend on M or the thread count. */
static void test_bits(void) {
    uint64_t rng = 3;
    int64_t m = 13, n = 300, k = 389;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k);
    float *c1 = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n), *one = malloc(sizeof(float) * n);
    lt_t_fill(a, m * k, &rng);
    lt_t_fill(b, n * k, &rng);
    int32_t old = lt_num_threads();
    lt_set_num_threads(1);
    rows(m, n, k, 1.0f, a, k, b, k, 0.0f, c1, n);
    lt_set_num_threads(2);
    rows(m, n, k, 1.0f, a, k, b, k, 0.0f, c2, n);
    CHECK(!memcmp(c1, c2, sizeof(float) * m * n), "bits: 1 and 2 threads differ");
    for (int64_t i = 0; i < m; i++) {
        rows(1, n, k, 1.0f, a + i * k, k, b, k, 0.0f, one, n);
        if (memcmp(one, c1 + i * n, sizeof(float) * n)) { CHECK(0, "bits: row %lld alone differs from the same row among %lld", (long long)i, (long long)m); break; }
    }
    lt_set_num_threads(old);
    free(a); free(b); free(c1); free(c2); free(one);
}

static void test_refusals(void) {
    float a[16] = {0}, b[16] = {0}, c[16];
    lt_gemm_desc d = {0, 1, 2, 2, 4, 1.0f, 0.0f, 4, 4, 2, 1, 0, 0, 0};
    CHECK(lt_gemm_rows(&d, a, b, c) == LT_OK, "refusals: the valid call failed: %s", lt_last_error());
    CHECK(lt_gemm_rows(NULL, a, b, c) == LT_ERR_INVALID_ARGUMENT, "NULL descriptor accepted");
    lt_gemm_desc e = d;
    e.trans_b = 0;
    CHECK(lt_gemm_rows(&e, a, b, c) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "trans_b=0"), "trans_b 0 accepted: %s", lt_last_error());
    e = d;
    e.batch = 2;
    CHECK(lt_gemm_rows(&e, a, b, c) == LT_ERR_INVALID_ARGUMENT, "batch 2 accepted");
    e = d;
    e.lda = 3;
    CHECK(lt_gemm_rows(&e, a, b, c) == LT_ERR_INVALID_ARGUMENT, "lda < k accepted");
    CHECK(lt_gemm_rows(&d, a, b, a) == LT_ERR_INVALID_ARGUMENT, "c overlapping a accepted");
    CHECK(lt_gemm_rows(&d, NULL, b, c) == LT_ERR_INVALID_ARGUMENT, "NULL a accepted");
}

static void bench(int reps) {
    uint64_t rng = 9;
    int64_t shapes[4][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    for (int mi = 0; mi < 2; mi++)
        for (int th = 1; th <= 2; th++) {
            lt_set_num_threads(th);
            for (int s = 0; s < 4; s++) {
                int64_t m = mi ? 16 : 1, n = shapes[s][0], k = shapes[s][1];
                float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
                lt_t_fill(a, m * k, &rng);
                lt_t_fill(b, n * k, &rng);
                lt_gemm_desc d = {0, 1, m, n, k, 1.0f, 0.0f, k, k, n, 1, 0, 0, 0};
                double best[2] = {1e30, 1e30};
                for (int r = 0; r < reps; r++)
                    for (int which = 0; which < 2; which++) {
                        double t0 = lt_t_now();
                        for (int u = 0; u < 10; u++) (which ? lt_gemm : lt_gemm_rows)(&d, a, b, c);
                        double t = (lt_t_now() - t0) / 10;
                        if (t < best[which]) best[which] = t;
                    }
                printf("%s M %lld N %lld K %lld, %d thread(s): lt_gemm_rows %.1f us (%.1f GB/s of B), lt_gemm %.1f us\n", lt_t_isa_name(),
                       (long long)m, (long long)n, (long long)k, th, best[0] * 1e6, 4.0 * n * k / best[0] / 1e9, best[1] * 1e6);
                free(a); free(b); free(c);
            }
        }
}

/* The decode pass of E1's weights: 6 layers x the 4 shapes, every matrix its own buffer (43 MB, past the L3), so each
 * call streams its weights from DRAM as decoding does; GB/s of weights per pass, to set beside the triad. */
static void bench_model(int reps) {
    uint64_t rng = 4;
    int64_t shapes[4][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    float *w[24];
    double bytes = 0;
    for (int l = 0; l < 24; l++) {
        int64_t n = shapes[l % 4][0], k = shapes[l % 4][1];
        w[l] = malloc(sizeof(float) * n * k);
        lt_t_fill(w[l], n * k, &rng);
        bytes += 4.0 * n * k;
    }
    float *a = malloc(sizeof(float) * 16 * 1536), *c = malloc(sizeof(float) * 16 * 1536);
    lt_t_fill(a, 16 * 1536, &rng);
    for (int th = 1; th <= 2; th++)
        for (int m = 1; m <= 16; m *= 16) {
            lt_set_num_threads(th);
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = lt_t_now();
                for (int l = 0; l < 24; l++) {
                    int64_t n = shapes[l % 4][0], k = shapes[l % 4][1];
                    lt_gemm_desc d = {0, 1, m, n, k, 1.0f, 0.0f, k, k, n, 1, 0, 0, 0};
                    lt_gemm_rows(&d, a, w[l], c);
                }
                double t = lt_t_now() - t0;
                if (t < best) best = t;
            }
            double tri;
            lt_peak_triad(th, 64 << 20, 3, &tri);
            printf("%s model pass (%.1f MB of weights), M %d, %d thread(s): %.3f ms, %.1f GB/s (triad %.1f GB/s: %.0f%%)\n", lt_t_isa_name(),
                   bytes / 1e6, m, th, best * 1e3, bytes / best / 1e9, tri, 100 * bytes / best / 1e9 / tri);
        }
    for (int l = 0; l < 24; l++) free(w[l]);
    free(a); free(c);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench-model")) {
        bench_model(argc > 2 ? atoi(argv[2]) : 20);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench(argc > 2 ? atoi(argv[2]) : 20);
        return 0;
    }
    test_shapes();
    test_bits();
    test_refusals();
    return lt_test_summary();
}
