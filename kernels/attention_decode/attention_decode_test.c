/* lt_attention_decode_fwd test: through the exported symbol (ref, avx2 or avx512 by LATENT_MAX_ISA), against an
 * independent double-precision softmax written here; plus bits across thread counts and batches, refusals, and a
 * benchmark.
 *
 *   attention_decode_test                 the checks; prints "N passed, N failed" last
 *   attention_decode_test --bench [reps]  E1's decode shape (NH 6, HS 64) at len 128 and 256, rows 1 and 16, 1 and 2
 *                                         threads: us per call and GB/s of cache read (K and V once each)
 *   attention_decode_test --bench-cold    a decode step's attention as KvDecoder runs it at 16 sequences: 6 layers x 16
 *                                         rows x 80 keys, each (layer, row) its own 256 x 384 cache, 64 MB swept before
 *                                         each step (so the caches come from DRAM, as after the weights' stream), in
 *                                         the (ctx, nh hs) layout (6 heads a row) and head-major (96 rows of 1 head)
 *
 * Tolerance (derived, per output element of row r, head h; u = 2^-24):
 *   |o - ref| <= ((2 hs + 4) S + 2 len + 16) u W + 1e-30,  W = sum_j w_j |v_j,e| (w the exact weights),
 *   S = max_j scale sum_e |q_e k_je| (the largest score magnitude the float dot products can carry).
 * Why: a float dot product of hs terms errs by <= hs u sum|q k| (scaled: <= hs u S per score, + 1 u for the scale),
 * and w_j = exp(s_j - m) / l moves by the error of s_j plus that of the max m: <= (2 hs + 2) u S relative; exp itself
 * adds <= 1.5 u (vexp 1.42 u, exp2 0.95 ulp); the normalizer l, a sum of len positive terms, <= len u; the weighted
 * sum of len float products adds <= len u W; the online-softmax rescale between 64-key blocks and the final 1/l
 * a few u. Summed: ((2 hs + 4) S + 2 len + 16) u W, a worst-case bound the kernels use a small fraction of (printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

typedef struct {
    int64_t rows, nh, hs, ldq, ldkv, ldo;
    float scale;
    float *q, *o;
    float **k, **v;
    int32_t *len;
} problem;

static problem make(int64_t rows, int64_t nh, int64_t hs, const int32_t *lens, float amp, uint64_t *rng) {
    problem p = {rows, nh, hs, nh * hs + 3, nh * hs + 5, nh * hs + 1, (float)(1.0 / sqrt((double)hs)), 0, 0, 0, 0, 0};
    p.q = malloc(sizeof(float) * rows * p.ldq);
    p.o = malloc(sizeof(float) * rows * p.ldo);
    p.k = malloc(sizeof(float *) * rows);
    p.v = malloc(sizeof(float *) * rows);
    p.len = malloc(sizeof(int32_t) * rows);
    lt_t_fill(p.q, rows * p.ldq, rng);
    for (int64_t i = 0; i < rows * p.ldq; i++) p.q[i] *= amp;
    for (int64_t r = 0; r < rows; r++) {
        p.len[r] = lens[r];
        p.k[r] = malloc(sizeof(float) * lens[r] * p.ldkv);
        p.v[r] = malloc(sizeof(float) * lens[r] * p.ldkv);
        lt_t_fill(p.k[r], lens[r] * p.ldkv, rng);
        lt_t_fill(p.v[r], lens[r] * p.ldkv, rng);
        for (int64_t i = 0; i < lens[r] * p.ldkv; i++) p.k[r][i] *= amp;
    }
    return p;
}

static void drop(problem *p) {
    for (int64_t r = 0; r < p->rows; r++) { free(p->k[r]); free(p->v[r]); }
    free(p->q); free(p->o); free(p->k); free(p->v); free(p->len);
}

static lt_status run(const problem *p) {
    lt_attention_decode_desc d = {p->rows, p->nh, p->hs, p->ldq, p->ldkv, p->ldo, p->scale, 0};
    return lt_attention_decode_fwd(&d, p->q, (const float *const *)p->k, (const float *const *)p->v, p->len, p->o);
}

/* Checks every output element of p (already run) against the double softmax; returns the count outside tolerance. */
static int64_t verify(const char *what, const problem *p) {
    int64_t bad = 0;
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t len = p->len[r];
        double *s = malloc(sizeof(double) * len), *w = malloc(sizeof(double) * len);
        for (int64_t h = 0; h < p->nh; h++) {
            const float *q = p->q + r * p->ldq + h * p->hs;
            double mx = -INFINITY, big = 0, l = 0;
            for (int64_t j = 0; j < len; j++) {
                double acc = 0, mag = 0;
                for (int64_t e = 0; e < p->hs; e++) {
                    double t = (double)q[e] * p->k[r][j * p->ldkv + h * p->hs + e];
                    acc += t;
                    mag += fabs(t);
                }
                s[j] = acc * p->scale;
                if (mag * p->scale > big) big = mag * p->scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < len; j++) l += (w[j] = exp(s[j] - mx));
            for (int64_t j = 0; j < len; j++) w[j] /= l;
            for (int64_t e = 0; e < p->hs; e++) {
                double ref = 0, W = 0;
                for (int64_t j = 0; j < len; j++) {
                    double vv = p->v[r][j * p->ldkv + h * p->hs + e];
                    ref += w[j] * vv;
                    W += w[j] * fabs(vv);
                }
                double tol = ((2.0 * p->hs + 4) * big + 2.0 * len + 16) * U * W + 1e-30;
                float got = p->o[r * p->ldo + h * p->hs + e];
                if (!lt_t_agree(got, ref, tol) && bad++ < 3)
                    fprintf(stderr, "  %s: row %lld head %lld e %lld (len %lld): got %.9g want %.9g tol %.3g\n", what, (long long)r,
                            (long long)h, (long long)e, (long long)len, got, ref, tol);
            }
        }
        free(s); free(w);
    }
    return bad;
}

static void test_shapes(void) {
    uint64_t rng = 0x5eed;
    static const int64_t hss[] = {1, 3, 7, 8, 9, 15, 16, 17, 37, 64, 65, 100};
    static const int32_t lens[] = {1, 2, 7, 63, 64, 65, 130, 257};
    lt_t_worst_ratio = 0;
    for (size_t a = 0; a < sizeof hss / sizeof hss[0]; a++)
        for (int64_t nh = 1; nh <= 3; nh += 2) {
            int64_t rows = 1 + (int64_t)((a + nh) % 5);
            int32_t ls[8];
            for (int64_t r = 0; r < rows; r++) ls[r] = lens[(a * 3 + r * 5 + nh) % 8];
            for (int amp = 0; amp < 2; amp++) {
                problem p = make(rows, nh, hss[a], ls, amp ? 6.0f : 1.0f, &rng);
                lt_t_nan(p.o, rows * p.ldo);
                lt_status st = run(&p);
                char what[96];
                snprintf(what, sizeof what, "rows %lld nh %lld hs %lld amp %d", (long long)rows, (long long)nh, (long long)hss[a], amp);
                CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
                if (st == LT_OK) {
                    int64_t bad = verify(what, &p);
                    CHECK(bad == 0, "%s: %lld outside tolerance", what, (long long)bad);
                }
                drop(&p);
            }
        }
    printf("shapes: worst error %.3f of the tolerance (%s)\n", lt_t_worst_ratio, lt_t_isa_name());
}

/* A row's bits do not depend on the thread count or on the rows beside it. */
static void test_bits(void) {
    uint64_t rng = 99;
    int32_t ls[6] = {200, 1, 77, 129, 64, 300};
    problem p = make(6, 6, 64, ls, 1.0f, &rng);
    int64_t n = p.rows * p.ldo;
    float *one = malloc(sizeof(float) * n), *two = malloc(sizeof(float) * n);
    int32_t old = lt_num_threads();
    lt_set_num_threads(1);
    lt_t_nan(p.o, n);
    CHECK(run(&p) == LT_OK, "bits: 1 thread failed: %s", lt_last_error());
    memcpy(one, p.o, sizeof(float) * n);
    lt_set_num_threads(2);
    lt_t_nan(p.o, n);
    CHECK(run(&p) == LT_OK, "bits: 2 threads failed: %s", lt_last_error());
    memcpy(two, p.o, sizeof(float) * n);
    CHECK(!memcmp(one, two, sizeof(float) * n), "bits: 1 and 2 threads differ");
    /* row 3 alone */
    problem a = p;
    a.rows = 1;
    a.q = p.q + 3 * p.ldq;
    a.k = p.k + 3;
    a.v = p.v + 3;
    a.len = p.len + 3;
    float alone[6 * 64 + 1];
    a.o = alone;
    CHECK(run(&a) == LT_OK, "bits: alone failed: %s", lt_last_error());
    CHECK(!memcmp(alone, one + 3 * p.ldo, sizeof(float) * 6 * 64), "bits: a row alone differs from the same row in a batch");
    lt_set_num_threads(old);
    free(one); free(two);
    drop(&p);
}

static void test_refusals(void) {
    float q[8] = {0}, o[8], kc[8] = {0};
    const float *kp[1] = {kc};
    const float *np[1] = {NULL};
    int32_t len1[1] = {1}, len0[1] = {0};
    lt_attention_decode_desc d = {1, 2, 4, 8, 8, 8, 0.5f, 0};
    CHECK(lt_attention_decode_fwd(&d, q, kp, kp, len1, o) == LT_OK, "refusals: the valid call failed: %s", lt_last_error());
    CHECK(lt_attention_decode_fwd(NULL, q, kp, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "NULL descriptor accepted");
    CHECK(lt_attention_decode_fwd(&d, q, kp, kp, len0, o) == LT_ERR_INVALID_ARGUMENT, "len 0 accepted");
    CHECK(strstr(lt_last_error(), "len[0]=0") != NULL, "message lacks the field: %s", lt_last_error());
    CHECK(lt_attention_decode_fwd(&d, q, np, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "NULL cache accepted");
    CHECK(lt_attention_decode_fwd(&d, NULL, kp, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "NULL q accepted");
    lt_attention_decode_desc e = d;
    e.ldkv = 7;
    CHECK(lt_attention_decode_fwd(&e, q, kp, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "ldkv < nh*hs accepted");
    e = d;
    e.hs = 0;
    CHECK(lt_attention_decode_fwd(&e, q, kp, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "hs 0 accepted");
    e = d;
    e.scale = NAN;
    CHECK(lt_attention_decode_fwd(&e, q, kp, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "NaN scale accepted");
    const float *op[1] = {o};
    CHECK(lt_attention_decode_fwd(&d, q, op, kp, len1, o) == LT_ERR_INVALID_ARGUMENT, "o overlapping a cache accepted");
    e = d;
    e.rows = 0;
    CHECK(lt_attention_decode_fwd(&e, NULL, NULL, NULL, NULL, NULL) == LT_OK, "rows 0 must be a no-op");
}

static void bench(int reps) {
    uint64_t rng = 5;
    int64_t rowss[] = {1, 16};
    int32_t lenss[] = {128, 256};
    for (int ri = 0; ri < 2; ri++)
        for (int li = 0; li < 2; li++)
            for (int th = 1; th <= 2; th++) {
                int64_t rows = rowss[ri];
                int32_t ls[16];
                for (int r = 0; r < 16; r++) ls[r] = lenss[li];
                problem p = make(rows, 6, 64, ls, 1.0f, &rng);
                lt_set_num_threads(th);
                double best = 1e30;
                for (int i = 0; i < reps; i++) {
                    double t0 = lt_t_now();
                    for (int u = 0; u < 20; u++) run(&p);
                    double t = (lt_t_now() - t0) / 20;
                    if (t < best) best = t;
                }
                double bytes = 2.0 * rows * lenss[li] * 384 * 4;
                printf("decode attention %s rows %lld len %d threads %d: %.2f us, %.1f GB/s of cache read\n", lt_t_isa_name(),
                       (long long)rows, lenss[li], th, best * 1e6, bytes / best / 1e9);
                drop(&p);
            }
}

static void bench_cold(void) {
    enum { L = 6, R = 16, CTX = 256, NH = 6, HS = 64, C = NH * HS, LEN = 80 };
    float *kc[L][R], *vc[L][R];
    uint64_t rng = 8;
    for (int l = 0; l < L; l++)
        for (int r = 0; r < R; r++) {
            kc[l][r] = malloc(sizeof(float) * CTX * C);
            vc[l][r] = malloc(sizeof(float) * CTX * C);
            lt_t_fill(kc[l][r], CTX * C, &rng);
            lt_t_fill(vc[l][r], CTX * C, &rng);
        }
    size_t fl = (size_t)64 << 20;
    char *flush = malloc(fl);
    memset(flush, 1, fl);
    float *q = malloc(sizeof(float) * R * C), *o = malloc(sizeof(float) * R * C);
    lt_t_fill(q, R * C, &rng);
    int32_t len[R * NH];
    for (int r = 0; r < R * NH; r++) len[r] = LEN;
    for (int th = 1; th <= 2; th++)
        for (int hm = 0; hm < 2; hm++) {
            lt_set_num_threads(th);
            lt_attention_decode_desc d = {hm ? R * NH : R, hm ? 1 : NH, HS, hm ? HS : C, hm ? HS : C, hm ? HS : C, 0.125f, 0};
            double best = 1e30;
            volatile long sink = 0;
            for (int rep = 0; rep < 15; rep++) {
                for (size_t i = 0; i < fl; i += 64) sink += flush[i];
                double t = 0;
                for (int l = 0; l < L; l++) {
                    const float *kp[R * NH], *vp[R * NH];
                    for (int r = 0; r < d.rows; r++) {
                        kp[r] = hm ? kc[l][r / NH] + (r % NH) * CTX * HS : kc[l][r];
                        vp[r] = hm ? vc[l][r / NH] + (r % NH) * CTX * HS : vc[l][r];
                    }
                    double t0 = lt_t_now();
                    lt_attention_decode_fwd(&d, q, kp, vp, len, o);
                    t += lt_t_now() - t0;
                }
                if (t < best) best = t;
            }
            printf("decode attention %s, caches from DRAM, %s, 6 layers x 16 rows x %d keys, %d thread(s): %.0f us per step, %.1f GB/s\n",
                   lt_t_isa_name(), hm ? "head-major (ld = hs)" : "(ctx, nh hs) rows", LEN, th, best * 1e6, 2.0 * L * R * LEN * C * 4 / best / 1e9);
        }
    for (int l = 0; l < L; l++)
        for (int r = 0; r < R; r++) { free(kc[l][r]); free(vc[l][r]); }
    free(flush); free(q); free(o);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench-cold")) {
        bench_cold();
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
