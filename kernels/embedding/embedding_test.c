/* lt_embedding_bwd test: through the exported symbol (avx2 or ref by LATENT_MAX_ISA).
 *
 *   embedding_test                         the checks; prints "N passed, N failed" last
 *   embedding_test --bench [reps]          n = 8192 tokens (batch 8 x 1024), C = 768, vocab = 50257 (GPT-2),
 *                                          and C = 384, 1 and 2 threads: ms, GB/s (12 bytes per dout element:
 *                                          dout read, the table row slice read and written) and % of STREAM triad
 *
 * The contract is exact: every dtable element receives its additions in index order, so the result must equal,
 * bit for bit, a sequential float loop over i written here (tolerance 0). The same result is also compared with
 * a double-precision sum, |d| <= u (k + 1) (|dtable0| + sum |dout|) for an element with k additions (the float
 * sum's worst-case bound), as a check of the reference loop itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static void run_case(int64_t n, int64_t c, int64_t vocab, uint64_t *rng) {
    int32_t *ids = malloc((n + 1) * 4);
    float *dout = malloc((n * c + 1) * 4), *dt = malloc((vocab * c + 1) * 4), *want = malloc((vocab * c + 1) * 4);
    double *wd = malloc((vocab * c + 1) * 8), *mag = malloc((vocab * c + 1) * 8);
    int *cnt = calloc(vocab + 1, sizeof(int));
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lt_t_next(rng) % (uint64_t)vocab);
    if (n > 3) { ids[n - 1] = (int32_t)(vocab - 1); ids[1] = ids[0]; } /* the last row and a repeat */
    lt_t_fill(dout, n * c, rng);
    lt_t_fill(dt, vocab * c, rng);
    memcpy(want, dt, vocab * c * 4);
    for (int64_t e = 0; e < vocab * c; e++) { wd[e] = dt[e]; mag[e] = fabs(dt[e]); }
    for (int64_t i = 0; i < n; i++) {
        cnt[ids[i]]++;
        for (int64_t j = 0; j < c; j++) {
            want[ids[i] * c + j] += dout[i * c + j];
            wd[ids[i] * c + j] += dout[i * c + j];
            mag[ids[i] * c + j] += fabs(dout[i * c + j]);
        }
    }
    lt_status st = lt_embedding_bwd(n, c, vocab, ids, dout, dt);
    int64_t bad_exact = 0, bad_double = 0;
    for (int64_t e = 0; e < vocab * c; e++) {
        if (memcmp(&dt[e], &want[e], 4)) bad_exact++;
        if (!(fabs(dt[e] - wd[e]) <= U * (cnt[e / c] + 1) * mag[e])) bad_double++;
    }
    CHECK(st == LT_OK && bad_exact == 0 && bad_double == 0,
          "n=%lld c=%lld vocab=%lld: status %d (%s), %lld elements differ from the sequential loop, %lld outside the "
          "double bound", (long long)n, (long long)c, (long long)vocab, st, st ? lt_last_error() : "",
          (long long)bad_exact, (long long)bad_double);
    free(ids); free(dout); free(dt); free(want); free(wd); free(mag); free(cnt);
}

static void test_shapes(void) {
    uint64_t rng = 555;
    static const int64_t cs[] = {1, 3, 7, 8, 9, 15, 16, 37, 64, 65, 385, 1000};
    static const int64_t ns[] = {1, 17, 1000};
    static const int64_t vs[] = {1, 5, 50, 3000};
    for (size_t a = 0; a < sizeof cs / sizeof cs[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++)
                if (ns[b] * cs[a] <= 400000) run_case(ns[b], cs[a], vs[v], &rng);
    run_case(4096, 768, 50257, &rng); /* GPT-2's table: 12 column blocks, scattered rows */
}

static void test_invalid(void) {
    int32_t ids[4] = {0, 3, 7, 2}, bad[4] = {0, 3, -1, 2}, big[4] = {0, 8, 1, 2};
    float dout[16], dt[32], dt0[32];
    for (int i = 0; i < 16; i++) dout[i] = 1.0f;
    for (int i = 0; i < 32; i++) dt[i] = dt0[i] = (float)i;
    CHECK(lt_embedding_bwd(4, 4, 8, ids, dout, dt) == LT_OK, "valid case: %s", lt_last_error());
    memcpy(dt, dt0, sizeof dt);
    lt_status s1 = lt_embedding_bwd(4, 4, 8, bad, dout, dt);
    CHECK(s1 == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "ids[2]=-1") && !memcmp(dt, dt0, sizeof dt),
          "negative id: status %d \"%s\", table untouched %d", s1, lt_last_error(), !memcmp(dt, dt0, sizeof dt));
    lt_status s2 = lt_embedding_bwd(4, 4, 8, big, dout, dt);
    CHECK(s2 == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "ids[1]=8") && strstr(lt_last_error(), "vocab=8") &&
          !memcmp(dt, dt0, sizeof dt), "id == vocab: status %d \"%s\"", s2, lt_last_error());
    struct { const char *want; lt_status st; } t[] = {
        {"n=-1", lt_embedding_bwd(-1, 4, 8, ids, dout, dt)},
        {"c=-4", lt_embedding_bwd(4, -4, 8, ids, dout, dt)},
        {"vocab=-8", lt_embedding_bwd(4, 4, -8, ids, dout, dt)},
        {"ids is NULL", lt_embedding_bwd(4, 4, 8, NULL, dout, dt)},
        {"dout is NULL", lt_embedding_bwd(4, 4, 8, ids, NULL, dt)},
        {"dtable is NULL", lt_embedding_bwd(4, 4, 8, ids, dout, NULL)},
        {"overlaps", lt_embedding_bwd(4, 4, 8, ids, dt + 4, dt)},
        {"ids[0]=0 outside [0, vocab=0)", lt_embedding_bwd(4, 4, 0, ids, dout, dt)},
        {"overflows", lt_embedding_bwd(1ll << 40, 1ll << 40, 8, ids, dout, dt)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK(t[i].st == LT_ERR_INVALID_ARGUMENT, "invalid case %zu (%s): status %d", i, t[i].want, t[i].st);
    CHECK(lt_embedding_bwd(0, 4, 8, NULL, NULL, NULL) == LT_OK, "n == 0 with NULLs");
    CHECK(lt_embedding_bwd(4, 0, 8, ids, NULL, NULL) == LT_OK, "c == 0 with NULL dout, dtable");
}

static void test_determinism(void) {
    static const int64_t shapes[][3] = {{8192, 768, 5000}, {20000, 37, 300}};
    for (int s = 0; s < 2; s++) {
        int64_t n = shapes[s][0], c = shapes[s][1], vocab = shapes[s][2];
        uint64_t rng = 100 + s;
        int32_t *ids = malloc(n * 4);
        float *dout = malloc(n * c * 4), *a = calloc(vocab * c, 4), *b = calloc(vocab * c, 4);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lt_t_next(&rng) % (uint64_t)(i % 3 ? vocab : 7)); /* hot rows */
        lt_t_fill(dout, n * c, &rng);
        lt_set_num_threads(1);
        lt_embedding_bwd(n, c, vocab, ids, dout, a);
        lt_set_num_threads(2);
        lt_embedding_bwd(n, c, vocab, ids, dout, b);
        CHECK(!memcmp(a, b, vocab * c * 4), "n=%lld c=%lld vocab=%lld: 1 and 2 threads differ", (long long)n, (long long)c,
              (long long)vocab);
        free(ids); free(dout); free(a); free(b);
    }
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int64_t c, int64_t vocab, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    int32_t *ids = malloc(n * 4);
    float *dout = malloc(n * c * 4), *dt = calloc(vocab * c, 4);
    uint64_t rng = 8;
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lt_t_next(&rng) % (uint64_t)vocab);
    lt_t_fill(dout, n * c, &rng);
    memset(dt, 0, vocab * c * 4); /* touch the table */
    double *tm = malloc(reps * sizeof(double));
    for (int r = -1; r < reps; r++) {
        double t0 = lt_t_now();
        lt_embedding_bwd(n, c, vocab, ids, dout, dt);
        if (r >= 0) tm[r] = lt_t_now() - t0;
    }
    qsort(tm, reps, sizeof(double), cmp_double);
    double bytes = 12.0 * n * c, best = tm[0], med = tm[reps / 2];
    printf("embedding_bwd n=%lld C=%lld vocab=%lld %d thr: best %7.3f ms %6.1f GB/s %5.1f%% of triad | median %7.3f ms "
           "%6.1f GB/s | triad %5.1f GB/s\n", (long long)n, (long long)c, (long long)vocab, threads, best * 1e3,
           bytes / best / 1e9, 100 * bytes / best / 1e9 / triad, med * 1e3, bytes / med / 1e9, triad);
    fflush(stdout);
    free(ids); free(dout); free(dt); free(tm);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        for (int th = 1; th <= 2; th++) {
            bench(8192, 768, 50257, th, reps);
            bench(8192, 384, 50257, th, reps);
        }
        return 0;
    }
    printf("lt_embedding_bwd at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_shapes();
    test_determinism();
    return lt_test_summary();
}
