/* lt_gemm_rows_pack / lt_gemm_rows_packed test (forward only: a decoding kernel), through the exported symbols at the
 * ISA level LATENT_MAX_ISA allows:
 *   - every element bit for bit equal to an fmaf chain over k in order then + bias, written here, and within the
 *     derived bound of a double sum, on shapes that hit every tile (1-17, 33 rows), panel tail and thread split;
 *   - bits across M, thread counts and every ISA level up to the one in use (lt_set_isa);
 *   - the packed layout, the size function, refusals;
 *   - a benchmark: E1's decode GEMMs beside lt_gemm_rows, in cache and as a model pass over 43 MB of weights.
 *
 *   gemm_packed_test                 the checks; prints "N passed, N failed" last
 *   gemm_packed_test --bench [reps]  M 1 and 16, 1 and 2 threads, per shape and per model pass
 *
 * Tolerance (derived): a chain of k fused multiply-adds rounds once per step, so |acc - exact| <= k u sum_p |a_p b_p|,
 * and the bias add once more: checked as |got - ref| <= (k + 1) u (sum|a b| + |bias|) + 1e-30 (u = 2^-24). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static float *pack(int64_t n, int64_t k, const float *b, int64_t ldb) {
    int64_t size = lt_gemm_rows_packed_size(n, k);
    float *p = malloc(sizeof(float) * (size + 1));
    lt_status st = lt_gemm_rows_pack(n, k, b, ldb, p);
    CHECK(st == LT_OK, "pack n %lld k %lld: %s", (long long)n, (long long)k, lt_last_error());
    return p;
}

static void check(int64_t m, int64_t n, int64_t k, int with_bias, uint64_t *rng) {
    int64_t lda = k + 3, ldb = k + 1, ldc = n + 2;
    float *a = malloc(sizeof(float) * (m * lda + 1)), *b = malloc(sizeof(float) * (n * ldb + 1));
    float *bias = malloc(sizeof(float) * (n + 1)), *c = malloc(sizeof(float) * (m * ldc + 1));
    lt_t_fill(a, m * lda, rng);
    lt_t_fill(b, n * ldb, rng);
    lt_t_fill(bias, n, rng);
    lt_t_nan(c, m * ldc);
    float *pk = pack(n, k, b, ldb);
    lt_status st = lt_gemm_rows_packed(m, n, k, a, lda, pk, with_bias ? bias : NULL, c, ldc);
    CHECK(st == LT_OK, "m %lld n %lld k %lld: status %d (%s)", (long long)m, (long long)n, (long long)k, st, lt_last_error());
    int64_t bad = 0, diff = 0;
    for (int64_t i = 0; i < m && st == LT_OK; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, mag = 0;
            float chain = 0.0f;
            for (int64_t p = 0; p < k; p++) {
                s += (double)a[i * lda + p] * b[j * ldb + p];
                mag += fabs((double)a[i * lda + p] * b[j * ldb + p]);
                chain = fmaf(a[i * lda + p], b[j * ldb + p], chain);
            }
            if (with_bias) chain = chain + bias[j];
            double want = s + (with_bias ? bias[j] : 0.0);
            double tol = (k + 1) * U * (mag + (with_bias ? fabs(bias[j]) : 0.0)) + 1e-30;
            if (!lt_t_agree(c[i * ldc + j], want, tol) && bad++ < 3)
                fprintf(stderr, "  m %lld n %lld k %lld: C[%lld][%lld] got %.9g want %.9g\n", (long long)m, (long long)n, (long long)k,
                        (long long)i, (long long)j, c[i * ldc + j], want);
            if (memcmp(&c[i * ldc + j], &chain, 4) && diff++ < 3)
                fprintf(stderr, "  m %lld n %lld k %lld: C[%lld][%lld] = %.9g, the fmaf chain gives %.9g\n", (long long)m, (long long)n,
                        (long long)k, (long long)i, (long long)j, c[i * ldc + j], chain);
        }
    CHECK(bad == 0, "m %lld n %lld k %lld bias %d: %lld outside tolerance", (long long)m, (long long)n, (long long)k, with_bias, (long long)bad);
    CHECK(diff == 0, "m %lld n %lld k %lld bias %d: %lld differ from the fmaf chain", (long long)m, (long long)n, (long long)k, with_bias,
          (long long)diff);
    for (int64_t i = 0; i < m && st == LT_OK; i++)   /* the padding between rows of C is untouched (still NaN) */
        for (int64_t j = n; j < ldc && i * ldc + j < m * ldc; j++)
            if (!isnan(c[i * ldc + j])) { CHECK(0, "m %lld n %lld: padding written", (long long)m, (long long)n); i = m; break; }
    free(a); free(b); free(bias); free(c); free(pk);
}

static void test_shapes(void) {
    uint64_t rng = 17;
    static const int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 33};
    static const int64_t ns[] = {1, 5, 15, 16, 17, 63, 64, 65, 130, 200};
    static const int64_t ks[] = {1, 2, 7, 16, 17, 37, 100, 384};
    lt_t_worst_ratio = 0;
    for (size_t x = 0; x < 14; x++)
        for (size_t y = 0; y < 10; y++) check(ms[x], ns[y], ks[(x + y) % 8], (x + y) % 2, &rng);
    check(16, 1152, 384, 1, &rng);
    check(3, 384, 1536, 0, &rng);
    check(16, 65, 384, 0, &rng);
    check(2, 3, 0, 1, &rng);
    check(2, 3, 0, 0, &rng);
    printf("shapes: worst error %.3f of the tolerance (%s)\n", lt_t_worst_ratio, lt_t_isa_name());
}

/* The layout lt_gemm_rows_pack promises (latent.h), and its size. */
static void test_layout(void) {
    int64_t n = 21, k = 5, ldb = 7;
    float b[21 * 7];
    for (int i = 0; i < 21 * 7; i++) b[i] = (float)i;
    CHECK(lt_gemm_rows_packed_size(n, k) == 32 * 5, "size of 21 x 5: %lld", (long long)lt_gemm_rows_packed_size(n, k));
    CHECK(lt_gemm_rows_packed_size(16, 3) == 48 && lt_gemm_rows_packed_size(0, 3) == 0, "sizes at a panel edge / empty");
    CHECK(lt_gemm_rows_packed_size(-1, 3) == -1 && lt_gemm_rows_packed_size(INT64_MAX / 2, INT64_MAX / 2) == -1, "bad sizes not refused");
    float *p = pack(n, k, b, ldb);
    int ok = 1;
    for (int64_t q = 0; q < 2; q++)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t j = 0; j < 16; j++) {
                float want = q * 16 + j < n ? b[(q * 16 + j) * ldb + kk] : 0.0f;
                if (p[(q * k + kk) * 16 + j] != want) ok = 0;
            }
    CHECK(ok, "packed layout differs from packed[(p K + k) 16 + j] = B[p 16 + j][k], zero padded");
    free(p);
}

/* A row's bits depend neither on M, nor the thread count, nor the ISA level. */
static void test_bits(void) {
    uint64_t rng = 5;
    int64_t m = 21, n = 300, k = 389;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *bias = malloc(sizeof(float) * n);
    float *c1 = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n), *one = malloc(sizeof(float) * n);
    lt_t_fill(a, m * k, &rng);
    lt_t_fill(b, n * k, &rng);
    lt_t_fill(bias, n, &rng);
    float *pk = pack(n, k, b, k);
    int32_t old = lt_num_threads();
    lt_set_num_threads(1);
    lt_gemm_rows_packed(m, n, k, a, k, pk, bias, c1, n);
    lt_set_num_threads(2);
    lt_gemm_rows_packed(m, n, k, a, k, pk, bias, c2, n);
    CHECK(!memcmp(c1, c2, sizeof(float) * m * n), "bits: 1 and 2 threads differ");
    for (int64_t i = 0; i < m; i++) {
        lt_gemm_rows_packed(1, n, k, a + i * k, k, pk, bias, one, n);
        if (memcmp(one, c1 + i * n, sizeof(float) * n)) { CHECK(0, "bits: row %lld alone differs from the same row among %lld", (long long)i, (long long)m); break; }
    }
    for (int64_t i0 = 0; i0 + 7 <= m; i0 += 7) {   /* a block of 7 rows starting anywhere */
        lt_gemm_rows_packed(7, n, k, a + i0 * k, k, pk, bias, c2, n);
        CHECK(!memcmp(c2, c1 + i0 * n, sizeof(float) * 7 * n), "bits: rows %lld..%lld as a block of 7 differ", (long long)i0, (long long)i0 + 6);
    }
    int32_t level = lt_isa();   /* the level in use (LATENT_MAX_ISA caps it) */
    for (int32_t isa = LT_ISA_REF; isa < level; isa++) {
        lt_set_isa(isa);
        lt_gemm_rows_packed(m, n, k, a, k, pk, bias, c2, n);
        CHECK(!memcmp(c1, c2, sizeof(float) * m * n), "bits: ISA level %d differs from level %d", isa, level);
    }
    lt_set_isa(level);
    lt_set_num_threads(old);
    free(a); free(b); free(bias); free(c1); free(c2); free(one); free(pk);
}

static void test_refusals(void) {
    float a[16] = {0}, b[64] = {0}, c[64], pk[64];
    CHECK(lt_gemm_rows_pack(2, 4, b, 4, pk) == LT_OK, "refusals: the valid pack failed: %s", lt_last_error());
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, NULL, c, 2) == LT_OK, "refusals: the valid call failed: %s", lt_last_error());
    CHECK(lt_gemm_rows_pack(2, 4, b, 3, pk) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "ldb=3"), "pack ldb < k accepted: %s", lt_last_error());
    CHECK(lt_gemm_rows_pack(-1, 4, b, 4, pk) == LT_ERR_INVALID_ARGUMENT, "pack n < 0 accepted");
    CHECK(lt_gemm_rows_pack(2, 4, NULL, 4, pk) == LT_ERR_INVALID_ARGUMENT, "pack NULL b accepted");
    CHECK(lt_gemm_rows_pack(2, 4, b, 4, b + 2) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlaps"), "pack overlap accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 3, pk, NULL, c, 2) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "lda=3"), "lda < k accepted: %s", lt_last_error());
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, NULL, c, 1) == LT_ERR_INVALID_ARGUMENT, "ldc < n accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, NULL, 4, pk, NULL, c, 2) == LT_ERR_INVALID_ARGUMENT, "NULL a accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, NULL, NULL, c, 2) == LT_ERR_INVALID_ARGUMENT, "NULL packed accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, NULL, NULL, 2) == LT_ERR_INVALID_ARGUMENT, "NULL c accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, NULL, a, 2) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlaps a"), "c overlapping a accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, NULL, pk + 4, 2) == LT_ERR_INVALID_ARGUMENT, "c overlapping packed accepted");
    CHECK(lt_gemm_rows_packed(2, 2, 4, a, 4, pk, c + 1, c, 2) == LT_ERR_INVALID_ARGUMENT, "c overlapping bias accepted");
    CHECK(lt_gemm_rows_packed(-1, 2, 4, a, 4, pk, NULL, c, 2) == LT_ERR_INVALID_ARGUMENT, "m < 0 accepted");
    CHECK(lt_gemm_rows_packed(0, 2, 4, NULL, 4, NULL, NULL, NULL, 2) == LT_OK, "an empty product refused: %s", lt_last_error());
}

static const int64_t SHAPES[4][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};

static void bench(int reps) {
    uint64_t rng = 9;
    for (int mi = 0; mi < 2; mi++)
        for (int th = 1; th <= 2; th++) {
            lt_set_num_threads(th);
            for (int s = 0; s < 4; s++) {
                int64_t m = mi ? 16 : 1, n = SHAPES[s][0], k = SHAPES[s][1];
                float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
                lt_t_fill(a, m * k, &rng);
                lt_t_fill(b, n * k, &rng);
                float *pk = pack(n, k, b, k);
                lt_gemm_desc d = {0, 1, m, n, k, 1.0f, 0.0f, k, k, n, 1, 0, 0, 0};
                double best[2] = {1e30, 1e30};
                for (int r = 0; r < reps; r++)
                    for (int which = 0; which < 2; which++) {
                        double t0 = lt_t_now();
                        for (int u = 0; u < 10; u++)
                            if (which) lt_gemm_rows(&d, a, b, c);
                            else lt_gemm_rows_packed(m, n, k, a, k, pk, NULL, c, n);
                        double t = (lt_t_now() - t0) / 10;
                        if (t < best[which]) best[which] = t;
                    }
                printf("%s M %lld N %lld K %lld, %d thread(s): packed %.1f us (%.1f GFLOP/s), lt_gemm_rows %.1f us (%.1f GFLOP/s)\n", lt_t_isa_name(),
                       (long long)m, (long long)n, (long long)k, th, best[0] * 1e6, 2e-9 * m * n * k / best[0], best[1] * 1e6,
                       2e-9 * m * n * k / best[1]);
                free(a); free(b); free(c); free(pk);
            }
        }
    /* model pass: 6 layers x the 4 shapes, each its own buffer (43 MB, past the L3), as decoding streams them */
    float *w[24], *p[24];
    double bytes = 0;
    for (int l = 0; l < 24; l++) {
        int64_t n = SHAPES[l % 4][0], k = SHAPES[l % 4][1];
        w[l] = malloc(sizeof(float) * n * k);
        lt_t_fill(w[l], n * k, &rng);
        p[l] = pack(n, k, w[l], k);
        bytes += 4.0 * n * k;
    }
    float *a = malloc(sizeof(float) * 16 * 1536), *c = malloc(sizeof(float) * 16 * 1536);
    lt_t_fill(a, 16 * 1536, &rng);
    for (int th = 1; th <= 2; th++)
        for (int m = 1; m <= 16; m *= 16) {
            lt_set_num_threads(th);
            double best[2] = {1e30, 1e30};
            for (int r = 0; r < reps; r++)
                for (int which = 0; which < 2; which++) {
                    double t0 = lt_t_now();
                    for (int l = 0; l < 24; l++) {
                        int64_t n = SHAPES[l % 4][0], k = SHAPES[l % 4][1];
                        lt_gemm_desc d = {0, 1, m, n, k, 1.0f, 0.0f, k, k, n, 1, 0, 0, 0};
                        if (which) lt_gemm_rows(&d, a, w[l], c);
                        else lt_gemm_rows_packed(m, n, k, a, k, p[l], NULL, c, n);
                    }
                    double t = lt_t_now() - t0;
                    if (t < best[which]) best[which] = t;
                }
            double tri;
            lt_peak_triad(th, 64 << 20, 3, &tri);
            printf("%s model pass (%.1f MB), M %d, %d thread(s): packed %.3f ms (%.1f GB/s), lt_gemm_rows %.3f ms (%.1f GB/s); triad %.1f GB/s\n",
                   lt_t_isa_name(), bytes / 1e6, m, th, best[0] * 1e3, bytes / best[0] / 1e9, best[1] * 1e3, bytes / best[1] / 1e9, tri);
        }
    for (int l = 0; l < 24; l++) { free(w[l]); free(p[l]); }
    free(a); free(c);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench(argc > 2 ? atoi(argv[2]) : 20);
        return 0;
    }
    test_shapes();
    test_layout();
    test_bits();
    test_refusals();
    return lt_test_summary();
}
