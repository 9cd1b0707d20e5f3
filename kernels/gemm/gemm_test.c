/* lt_gemm test: every case goes through the exported symbol, so the same binary checks gemm_avx2 or
 * gemm_ref depending on LATENT_MAX_ISA (ctest runs it at both), against a double-precision product here.
 *
 *   gemm_test                         the checks below; prints "N passed, N failed" last
 *   gemm_test --bench [reps]          the two target shapes (1024^3 and (4096x384)x(384x1536)) on 1 and 2
 *                                     threads: ms, GFLOP/s and % of the FMA ceiling of the ISA in use (AVX-512
 *                                     at avx512, else AVX2), measured right before and named
 *   gemm_test --bench reps m n k [ta tb [threads]]   one shape of your choice, same report (1 and 2 threads,
 *                                     or only `threads`)
 *   gemm_test --bench-bf16 [reps]     lt_gemm and lt_gemm_bf16 alternately on the two shapes: the bf16 / fp32 ratio
 *   gemm_test --peak                  the AVX2 FMA, AVX-512 FMA and bf16 dot-product ceilings, 1 and 2 threads
 *
 * Tolerance, per element (written once, in tol()): |got - want| <= u * (8 * sqrt(k) + 3) * mag, with
 * u = 2^-24 and mag = |alpha| * sum_p |op(A)[i][p] op(B)[p][j]| + |beta * C0[i][j]|.
 * Why: a float dot product summed in any order (blocked, FMA or not) errs by at most k * u * sum|a*b|
 * (Higham, Accuracy and Stability, 3.1), but that worst case needs every rounding to push the same way; with
 * independent roundings the error grows like sqrt(k) * u * sum|a*b| (Higham & Mary, SISC 2019, the
 * probabilistic bound, lambda ~ a few for any realistic failure probability). lambda = 8 leaves a wide margin
 * on the seeded uniform(-1, 1) data used here while still catching a real bug: a lost or doubled term, a
 * wrong row or column, a k-block applied twice or a stale C moves an element by ~|a*b| ~ mag / k or more,
 * orders of magnitude above u * sqrt(k) * mag. The + 3 covers the roundings of alpha * acc and beta * C.
 * Scaling by mag rather than |want| keeps the test meaningful where cancellation makes want ~ 0.
 * Zero-trust: C is prefilled with NaN when beta == 0 (an unwritten or NaN-propagating element fails), and
 * padding between rows (ldc > n) and between batch entries must come back bit-identical. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0) /* unit roundoff of float, 2^-24 */

/* bf16 mode (lt_gemm_bf16): g_bf16 set. Each case is then checked twice: (1) against the double product of the
 * operands rounded to bf16 here (RNE, bit manipulation independent of the kernel's instructions) with the fp32
 * tolerance above: products of bf16 values are exact in fp32, so only the fp32 summation errs, and a wrong
 * rounding, pairing or dropped pad shows; (2) against the double product of the fp32 operands with g_extra =
 * 2^-7 + 2^-16 added: bf16 keeps 8 significant bits, so RNE gives |bf16(x) - x| <= u_bf |x| with u_bf = 2^-8,
 * hence |bf16(a) bf16(b) - ab| <= (2 u_bf + u_bf^2) |ab| = (2^-7 + 2^-16) |ab|, and summed over k at most that
 * times mag (a rigorous bound, not a probabilistic one; mag also holds |beta C|, which only loosens it). */
static int g_bf16;
static double g_extra;
static double tol(double mag, int64_t k) { return U * (8.0 * sqrt((double)k) + 3.0) * mag + g_extra * mag; }

static float bf16_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) return x; /* NaN stays NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}
static float *bf16_copy(const float *x, int64_t n) {
    float *y = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) y[i] = bf16_rne(x[i]);
    return y;
}

/* Element offsets of op(A)[i][p], op(B)[p][j], C[i][j] within one batch entry. */
static int64_t a_at(const lt_gemm_desc *d, int64_t i, int64_t p) { return d->trans_a ? p * d->lda + i : i * d->lda + p; }
static int64_t b_at(const lt_gemm_desc *d, int64_t p, int64_t j) { return d->trans_b ? j * d->ldb + p : p * d->ldb + j; }

/* Floats a matrix of rows x cols with row stride ld, repeated batch times at stride, spans. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    if (rows == 0 || cols == 0) return 1;
    return (batch - 1) * stride + (rows - 1) * ld + cols;
}

/* want[t][i][j] = alpha * sum_p op(A)[i][p] op(B)[p][j] + beta * c0 in double; mag as in the header. */
static void reference(const lt_gemm_desc *d, const float *a, const float *b, const float *c0, double *want,
                      double *mag) {
    for (int64_t t = 0; t < d->batch; t++)
        for (int64_t i = 0; i < d->m; i++)
            for (int64_t j = 0; j < d->n; j++) {
                double s = 0, sa = 0;
                for (int64_t p = 0; p < d->k; p++) {
                    double x = (double)a[t * d->stride_a + a_at(d, i, p)] * b[t * d->stride_b + b_at(d, p, j)];
                    s += x;
                    sa += fabs(x);
                }
                double cv = d->beta == 0.0f ? 0.0 : (double)d->beta * c0[t * d->stride_c + i * d->ldc + j];
                int64_t o = (t * d->m + i) * d->n + j;
                want[o] = d->alpha * s + cv;
                mag[o] = fabs((double)d->alpha) * sa + fabs(cv);
            }
}

/* Compare C with want/mag inside the matrices and with c0 bit for bit outside them. */
static int compare(const char *what, const lt_gemm_desc *d, const float *c, const float *c0, int64_t clen,
                   const double *want, const double *mag) {
    int64_t bad = 0, worst = -1, untouched_bad = 0;
    double maxd = 0, worst_ratio = 0, num = 0, den = 0;
    char *inside = calloc((size_t)clen, 1);
    for (int64_t t = 0; t < d->batch; t++)
        for (int64_t i = 0; i < d->m; i++)
            for (int64_t j = 0; j < d->n; j++) {
                int64_t ci = t * d->stride_c + i * d->ldc + j, o = (t * d->m + i) * d->n + j;
                inside[ci] = 1;
                double diff = fabs((double)c[ci] - want[o]), lim = tol(mag[o], d->k);
                if (!(diff <= lim)) {
                    bad++;
                    double r = diff / (lim > 0 ? lim : 1e-300);
                    if (worst < 0 || !(r <= worst_ratio)) { worst = o; worst_ratio = r; }
                }
                if (diff > maxd || diff != diff) maxd = diff;
                num += (c[ci] - want[o]) * (c[ci] - want[o]);
                den += want[o] * want[o];
            }
    for (int64_t e = 0; e < clen; e++)
        if (!inside[e] && memcmp(&c[e], &c0[e], sizeof(float))) untouched_bad++;
    free(inside);
    if (bad) {
        int64_t t = worst / (d->m * d->n), i = worst / d->n % d->m, j = worst % d->n;
        fprintf(stderr, "  %s: %lld/%lld outside tolerance, worst [%lld][%lld][%lld] got %g want %g (tol %g), "
                "max-abs-diff %g, NMSE %g\n", what, (long long)bad, (long long)(d->batch * d->m * d->n),
                (long long)t, (long long)i, (long long)j, c[t * d->stride_c + i * d->ldc + j], want[worst],
                tol(mag[worst], d->k), maxd, den > 0 ? num / den : num);
    }
    if (untouched_bad) fprintf(stderr, "  %s: %lld padding elements of C changed\n", what, (long long)untouched_bad);
    return bad == 0 && untouched_bad == 0;
}

typedef struct {
    int ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    int64_t pad_a, pad_b, pad_c; /* leading dimension minus its minimum */
    int64_t batch, gap;          /* gap: stride minus the tightest legal stride */
} gcase;

static void run_case(const gcase *g, uint64_t *rng) {
    lt_gemm_desc d = {g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->beta, 0, 0, 0, g->batch, 0, 0, 0};
    int64_t ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
    int64_t br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
    d.lda = (ac > 0 ? ac : 1) + g->pad_a;
    d.ldb = (bc > 0 ? bc : 1) + g->pad_b;
    d.ldc = (g->n > 0 ? g->n : 1) + g->pad_c;
    d.stride_a = ar * d.lda + g->gap;
    d.stride_b = br * d.ldb + g->gap;
    d.stride_c = g->m > 0 && g->n > 0 ? (g->m - 1) * d.ldc + g->n + g->gap : 0;
    int64_t alen = span(ar, ac, d.lda, d.batch, d.stride_a), blen = span(br, bc, d.ldb, d.batch, d.stride_b);
    int64_t clen = span(g->m, g->n, d.ldc, d.batch, d.stride_c), olen = d.batch * g->m * g->n;
    float *a = malloc(alen * sizeof(float)), *b = malloc(blen * sizeof(float));
    float *c = malloc(clen * sizeof(float)), *c0 = malloc(clen * sizeof(float));
    double *want = malloc((olen + 1) * sizeof(double)), *mag = malloc((olen + 1) * sizeof(double));
    lt_t_fill(a, alen, rng);
    lt_t_fill(b, blen, rng);
    if (g->beta == 0.0f) lt_t_nan(c0, clen); else lt_t_fill(c0, clen, rng);
    memcpy(c, c0, clen * sizeof(float));
    float *a16 = g_bf16 ? bf16_copy(a, alen) : a, *b16 = g_bf16 ? bf16_copy(b, blen) : b;
    reference(&d, a16, b16, c0, want, mag);
    lt_status st = g_bf16 ? lt_gemm_bf16(&d, a, b, c) : lt_gemm(&d, a, b, c);
    char what[200];
    snprintf(what, sizeof what, "%sta=%d tb=%d m=%lld n=%lld k=%lld alpha=%g beta=%g lda=%lld ldb=%lld ldc=%lld batch=%lld",
             g_bf16 ? "bf16 " : "", g->ta, g->tb, (long long)g->m, (long long)g->n, (long long)g->k, g->alpha, g->beta, (long long)d.lda,
             (long long)d.ldb, (long long)d.ldc, (long long)d.batch);
    CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
    if (st == LT_OK) CHECK(compare(what, &d, c, c0, clen, want, mag), "%s: wrong result%s", what,
                           g_bf16 ? " (against the bf16-rounded operands)" : "");
    if (st == LT_OK && g_bf16) { /* (2) against the fp32 operands, with the bf16 rounding bound */
        reference(&d, a, b, c0, want, mag);
        g_extra = 1.0 / 128 + 1.0 / 65536;
        CHECK(compare(what, &d, c, c0, clen, want, mag), "%s: bf16 result outside the bf16 bound of the fp32 product", what);
        g_extra = 0;
    }
    if (g_bf16) { free(a16); free(b16); }
    free(a); free(b); free(c); free(c0); free(want); free(mag);
}

static float pick(uint64_t *rng, const float *v, int n) { return v[lt_t_next(rng) % n]; }
static int64_t irange(uint64_t *rng, int64_t lo, int64_t hi) { return lo + (int64_t)(lt_t_next(rng) % (uint64_t)(hi - lo + 1)); }

static void test_shapes(void) {
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 37};
    static const float alphas[] = {1.0f, -0.75f, 2.5f}, betas[] = {0.0f, 1.0f, -0.5f};
    /* Every transpose pair on the tail sizes around the 6 x 16 tile and the 8-wide vectors. */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int im = 0; im < 8; im++)
                for (int in = 0; in < 8; in += 1 + (im + ta) % 2) {
                    gcase g = {ta, tb, sizes[im], sizes[in], sizes[(im * 3 + in + tb) % 8], pick(&rng, alphas, 3),
                               betas[(im + in) % 3], 0, 0, 0, 1, 0};
                    run_case(&g, &rng);
                }
    /* The AVX-512 kernel's tails: 16-lane vectors, the 64-wide sliver, the 6-row tile and the 8-column
     * transposes of packing, each transpose pair, beta 0 (NaN-prefilled C) and not. */
    static const int64_t wide[] = {5, 6, 7, 13, 17, 31, 33, 47, 63, 64, 65, 129};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int im = 0; im < 12; im += 1 + (ta ^ tb))
                for (int in = (im + ta) % 3; in < 12; in += 3) {
                    gcase g = {ta, tb, wide[im], wide[in], wide[(im * 5 + in * 7 + ta) % 12], pick(&rng, alphas, 3),
                               betas[(im + in + tb) % 3], (im + in) % 3, in % 2, (im * in) % 5, 1, 0};
                    run_case(&g, &rng);
                }
    /* Larger products: several k blocks, row blocks and sliver splits, on the parallel paths. */
    static const gcase big[] = {
        {0, 0, 100, 130, 70, 1.0f, 0.0f, 0, 0, 0, 1, 0},
        {0, 0, 257, 129, 300, 1.0f, 1.0f, 3, 5, 7, 1, 0},
        {1, 0, 300, 200, 800, -0.75f, 0.0f, 1, 0, 2, 1, 0},
        {0, 1, 150, 333, 801, 1.0f, -0.5f, 0, 9, 0, 1, 0},
        {1, 1, 211, 97, 385, 2.5f, 1.0f, 4, 4, 4, 1, 0},
        {0, 0, 20, 3100, 40, 1.0f, 0.0f, 0, 0, 0, 1, 0},   /* n past NC */
        {0, 1, 1000, 17, 120, 1.0f, 0.0f, 0, 0, 0, 1, 0},  /* tall and thin */
        {1, 0, 5, 1000, 500, 1.0f, 1.0f, 0, 0, 0, 1, 0},   /* short and wide */
        {0, 0, 150, 140, 400, 1.0f, 0.0f, 0, 0, 0, 2, 0},  /* batch of big entries, tight C stride */
        {1, 1, 37, 15, 9, -0.75f, 1.0f, 2, 1, 3, 7, 5},    /* batch of small entries with gaps */
        {0, 0, 8, 16, 1000, 1.0f, -0.5f, 0, 0, 0, 5, 0},   /* batch of long dot products */
        {0, 1, 1, 1000, 300, 1.0f, 0.0f, 0, 0, 0, 1, 0},   /* one row: small, so serial, but many slivers */
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_case(&big[i], &rng);
    /* Random shapes, paddings and batches. */
    for (int it = 0; it < 60; it++) {
        gcase g = {(int)irange(&rng, 0, 1), (int)irange(&rng, 0, 1), irange(&rng, 1, 160), irange(&rng, 1, 160),
                   irange(&rng, 1, 420), pick(&rng, alphas, 3), pick(&rng, betas, 3), irange(&rng, 0, 3) * irange(&rng, 0, 9),
                   irange(&rng, 0, 3) * irange(&rng, 0, 9), irange(&rng, 0, 3) * irange(&rng, 0, 9), irange(&rng, 1, 3),
                   irange(&rng, 0, 1) * irange(&rng, 0, 40)};
        run_case(&g, &rng);
    }
}

/* k == 0 and alpha == 0: C = beta * C, and A, B are never read (they hold NaN here). */
static void test_degenerate(void) {
    uint64_t rng = 7;
    float a[64], b[64], c[64], c0[64];
    lt_t_nan(a, 64);
    lt_t_nan(b, 64);
    static const float betas[] = {0.0f, 1.0f, -0.5f};
    for (int z = 0; z < 2; z++)
        for (int bi = 0; bi < 3; bi++) {
            float beta = betas[bi];
            lt_gemm_desc d = {0, 0, 3, 5, z ? 4 : 0, z ? 0.0f : 1.0f, beta, z ? 4 : 1, 5, 6, 1, 0, 0, 0};
            lt_t_fill(c0, 64, &rng);
            if (beta == 0.0f) for (int i = 0; i < 64; i++) c0[i] = NAN;
            memcpy(c, c0, sizeof c);
            lt_status st = lt_gemm(&d, a, b, c);
            int ok = st == LT_OK;
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 6; j++) {
                    float want = j < 5 ? (beta == 0.0f ? 0.0f : beta * c0[i * 6 + j]) : c0[i * 6 + j];
                    if (memcmp(&c[i * 6 + j], &want, 4)) ok = 0;
                }
            CHECK(ok, "%s == 0, beta=%g: C must be beta * C (status %d)", z ? "alpha" : "k", beta, st);
        }
    /* Empty products: nothing to read or write, NULL pointers allowed. */
    lt_gemm_desc d0 = {0, 0, 0, 5, 3, 1.0f, 0.0f, 3, 5, 5, 1, 0, 0, 0};
    CHECK(lt_gemm(&d0, NULL, b, NULL) == LT_OK, "m == 0 with NULL A and C: %s", lt_last_error());
    lt_gemm_desc d1 = {0, 0, 4, 0, 3, 1.0f, 0.0f, 3, 1, 1, 1, 0, 0, 0};
    CHECK(lt_gemm(&d1, a, NULL, NULL) == LT_OK, "n == 0 with NULL B and C: %s", lt_last_error());
    lt_gemm_desc d2 = {0, 0, 2, 2, 0, 1.0f, 0.0f, 1, 2, 2, 1, 0, 0, 0};
    c[0] = c[1] = c[2] = c[3] = NAN;
    CHECK(lt_gemm(&d2, NULL, NULL, c) == LT_OK && c[0] == 0.0f && c[3] == 0.0f, "k == 0 with NULL A, B: %s",
          lt_last_error());
}

static void test_invalid(void) {
    float buf[4096];
    memset(buf, 0, sizeof buf);
    const lt_gemm_desc ok = {0, 0, 4, 5, 6, 1.0f, 0.0f, 6, 5, 5, 2, 24, 30, 20};
    CHECK(lt_gemm(&ok, buf, buf + 1024, buf + 2048) == LT_OK, "the valid base case fails: %s", lt_last_error());
    struct { const char *field; lt_gemm_desc d; int null_a, null_b, null_c; } bad[] = {
        {"trans_a", {2, 0, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"trans_b", {0, -1, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"m=", {0, 0, -1, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"n=", {0, 0, 4, -5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"k=", {0, 0, 4, 5, -6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"batch=", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 0, 0, 0, 0}, 0, 0, 0},
        {"lda=", {0, 0, 4, 5, 6, 1, 0, 5, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"lda=", {1, 0, 4, 5, 6, 1, 0, 3, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"lda=", {1, 0, 0, 5, 6, 1, 0, 0, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"ldb=", {0, 0, 4, 5, 6, 1, 0, 6, 4, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"ldb=", {0, 1, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 0},
        {"ldc=", {0, 0, 4, 5, 6, 1, 0, 6, 5, 4, 1, 0, 0, 0}, 0, 0, 0},
        {"stride_a=", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 2, -1, 30, 20}, 0, 0, 0},
        {"stride_c=", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 2, 24, 30, 19}, 0, 0, 0},
        {"stride_c=", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 2, 24, 30, 0}, 0, 0, 0},
        {"overflow", {0, 0, 1ll << 40, 5, 6, 1, 0, 6, 5, 1ll << 40, 1, 0, 0, 0}, 0, 0, 0},
        {"a is NULL", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 1, 0, 0},
        {"b is NULL", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 1, 0},
        {"c is NULL", {0, 0, 4, 5, 6, 1, 0, 6, 5, 5, 1, 0, 0, 0}, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_status st = lt_gemm(&bad[i].d, bad[i].null_a ? NULL : buf, bad[i].null_b ? NULL : buf + 1024,
                               bad[i].null_c ? NULL : buf + 2048);
        const char *msg = lt_last_error();
        CHECK(st == LT_ERR_INVALID_ARGUMENT && strstr(msg, bad[i].field),
              "invalid case %zu (%s): status %d, message \"%s\"", i, bad[i].field, st, msg);
    }
    CHECK(lt_gemm(NULL, buf, buf, buf) == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "NULL descriptor");
}

/* Results must not depend on the pool size: 1 and 2 threads give the same bits. */
static void test_determinism(void) {
    uint64_t rng = 42;
    for (int tr = 0; tr < 4; tr++) {
        int64_t m = 301, n = 517, k = 777 - 100 * tr;
        lt_gemm_desc d = {tr & 1, tr >> 1, m, n, k, 0.5f, tr == 1 ? 0.0f : 1.5f, (tr & 1) ? m : k, (tr >> 1) ? k : n,
                          n, 1, 0, 0, 0};
        float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float));
        float *c0 = malloc(m * n * sizeof(float)), *c1 = malloc(m * n * sizeof(float)), *c2 = malloc(m * n * sizeof(float));
        lt_t_fill(a, m * k, &rng);
        lt_t_fill(b, k * n, &rng);
        lt_t_fill(c0, m * n, &rng);
        memcpy(c1, c0, m * n * sizeof(float));
        memcpy(c2, c0, m * n * sizeof(float));
        lt_set_num_threads(1);
        lt_status s1 = lt_gemm(&d, a, b, c1);
        lt_set_num_threads(2);
        lt_status s2 = lt_gemm(&d, a, b, c2);
        CHECK(s1 == LT_OK && s2 == LT_OK && !memcmp(c1, c2, m * n * sizeof(float)),
              "ta=%d tb=%d %lldx%lldx%lld: 1 and 2 threads differ (status %d %d)", d.trans_a, d.trans_b,
              (long long)m, (long long)n, (long long)k, s1, s2);
        free(a); free(b); free(c0); free(c1); free(c2);
    }
    lt_set_num_threads(2);
}

/* Several threads calling at once: one owns the pool, the others run inline on their own threads, all share
 * the parked scratch. Each result must match the same product computed alone, bit for bit. */
typedef struct { lt_gemm_desc d; float *a, *b, *c, *want; lt_status st; } job;
static void *job_main(void *p) {
    job *j = p;
    for (int r = 0; r < 3 && j->st == LT_OK; r++) j->st = lt_gemm(&j->d, j->a, j->b, j->c);
    return NULL;
}
static void test_concurrent(void) {
    enum { NJ = 4 };
    job jobs[NJ];
    pthread_t tid[NJ];
    uint64_t rng = 99;
    for (int i = 0; i < NJ; i++) {
        int64_t m = 90 + 70 * i, n = 200 - 30 * i, k = 150 + 100 * i;
        lt_gemm_desc d = {i & 1, (i >> 1) & 1, m, n, k, 1.0f, 0.0f, (i & 1) ? m : k, ((i >> 1) & 1) ? k : n, n, 1, 0, 0, 0};
        job *j = &jobs[i];
        j->d = d;
        j->a = malloc(m * k * sizeof(float)); j->b = malloc(k * n * sizeof(float));
        j->c = malloc(m * n * sizeof(float)); j->want = malloc(m * n * sizeof(float));
        lt_t_fill(j->a, m * k, &rng); lt_t_fill(j->b, k * n, &rng);
        j->st = lt_gemm(&d, j->a, j->b, j->want);
    }
    for (int i = 0; i < NJ; i++) pthread_create(&tid[i], NULL, job_main, &jobs[i]);
    for (int i = 0; i < NJ; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < NJ; i++) {
        job *j = &jobs[i];
        CHECK(j->st == LT_OK && !memcmp(j->c, j->want, j->d.m * j->d.n * sizeof(float)),
              "concurrent caller %d (%lldx%lldx%lld): status %d or bits differ from a lone call", i, (long long)j->d.m,
              (long long)j->d.n, (long long)j->d.k, j->st);
        free(j->a); free(j->b); free(j->c); free(j->want);
    }
}

/* lt_gemm_bf16: refused with a reason where AVX512_BF16 or the avx512 level is missing; elsewhere the tail shapes
 * and parallel paths checked as above (both bounds), and 1 and 2 threads bit-identical. */
static void test_bf16(void) {
    float buf[64] = {0};
    lt_gemm_desc d = {0, 0, 2, 2, 2, 1.0f, 0.0f, 2, 2, 2, 1, 0, 0, 0};
    lt_status st = lt_gemm_bf16(&d, buf, buf + 16, buf + 32);
    if (!(lt_isa() >= LT_ISA_AVX512 && lt_cpu_bf16())) {
        CHECK(st == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"),
              "lt_gemm_bf16 at ISA %s (cpu bf16 %d) must be refused naming AVX512_BF16: status %d, \"%s\"",
              lt_t_isa_name(), lt_cpu_bf16(), st, lt_last_error());
        printf("bf16: refused at ISA %s (%s)\n", lt_t_isa_name(), lt_last_error());
        return;
    }
    CHECK(st == LT_OK, "lt_gemm_bf16 2x2x2: %s", lt_last_error());
    lt_gemm_desc bad = d;
    bad.lda = 1;
    CHECK(lt_gemm_bf16(&bad, buf, buf, buf) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "lda="),
          "lt_gemm_bf16 validates like lt_gemm: %s", lt_last_error());
    g_bf16 = 1;
    uint64_t rng = 0xBF16;
    static const float alphas[] = {1.0f, -0.75f, 2.5f}, betas[] = {0.0f, 1.0f, -0.5f};
    static const int64_t wide[] = {1, 2, 3, 5, 6, 7, 13, 17, 31, 33, 63, 64, 65, 129};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int im = 0; im < 14; im += 1 + (ta ^ tb))
                for (int in = (im + tb) % 3; in < 14; in += 3) {
                    gcase g = {ta, tb, wide[im], wide[in], wide[(im * 5 + in * 3 + ta) % 14], pick(&rng, alphas, 3),
                               betas[(im + in + ta) % 3], in % 3, im % 2, (im + in) % 4, 1, 0};
                    run_case(&g, &rng);
                }
    static const gcase big[] = {
        {0, 0, 257, 129, 801, 1.0f, 1.0f, 3, 5, 7, 1, 0},    /* odd k over two k blocks: pad pairs */
        {1, 0, 300, 200, 769, -0.75f, 0.0f, 1, 0, 2, 1, 0},
        {0, 1, 150, 333, 1601, 1.0f, -0.5f, 0, 9, 0, 1, 0},
        {1, 1, 211, 97, 385, 2.5f, 1.0f, 4, 4, 4, 1, 0},
        {0, 0, 20, 3100, 40, 1.0f, 0.0f, 0, 0, 0, 1, 0},     /* n past NC */
        {1, 1, 37, 15, 9, -0.75f, 1.0f, 2, 1, 3, 7, 5},      /* batch of small entries with gaps */
        {0, 0, 150, 140, 400, 1.0f, 0.0f, 0, 0, 0, 2, 0},    /* batch of big entries */
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_case(&big[i], &rng);
    g_bf16 = 0;
    for (int tr = 0; tr < 4; tr++) {
        int64_t m = 301, n = 517, k = 1777 - 300 * tr;
        lt_gemm_desc e = {tr & 1, tr >> 1, m, n, k, 0.5f, tr == 1 ? 0.0f : 1.5f, (tr & 1) ? m : k, (tr >> 1) ? k : n,
                          n, 1, 0, 0, 0};
        float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float));
        float *c1 = malloc(m * n * sizeof(float)), *c2 = malloc(m * n * sizeof(float));
        lt_t_fill(a, m * k, &rng);
        lt_t_fill(b, k * n, &rng);
        lt_t_fill(c1, m * n, &rng);
        memcpy(c2, c1, m * n * sizeof(float));
        lt_set_num_threads(1);
        lt_status s1 = lt_gemm_bf16(&e, a, b, c1);
        lt_set_num_threads(2);
        lt_status s2 = lt_gemm_bf16(&e, a, b, c2);
        CHECK(s1 == LT_OK && s2 == LT_OK && !memcmp(c1, c2, m * n * sizeof(float)),
              "bf16 ta=%d tb=%d %lldx%lldx%lld: 1 and 2 threads differ (status %d %d)", e.trans_a, e.trans_b,
              (long long)m, (long long)n, (long long)k, s1, s2);
        free(a); free(b); free(c1); free(c2);
    }
}

/* ---- --bench ------------------------------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return (a > b) - (a < b); }

/* The FMA ceiling of the level in use (AVX-512 at avx512, else AVX2), best of 3 short runs right before the
 * kernel; *name says which. */
static double ceiling(int threads, const char **name) {
    int isa = lt_isa() >= LT_ISA_AVX512 ? LT_ISA_AVX512 : LT_ISA_AVX2;
    *name = isa == LT_ISA_AVX512 ? "AVX-512 FMA" : "AVX2 FMA";
    double peak = 0;
    for (int r = 0; r < 3; r++) {
        double g;
        if (lt_peak_fma_isa(isa, threads, 30000000, &g) == LT_OK && g > peak) peak = g;
    }
    return peak;
}

static void bench_one(int64_t m, int64_t n, int64_t k, int ta, int tb, int threads, int reps) {
    lt_set_num_threads(threads);
    const char *pname;
    double peak = ceiling(threads, &pname);
    lt_gemm_desc d = {ta, tb, m, n, k, 1.0f, 0.0f, ta ? m : k, tb ? k : n, n, 1, 0, 0, 0};
    uint64_t rng = 1;
    float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float)), *c = malloc(m * n * sizeof(float));
    lt_t_fill(a, m * k, &rng);
    lt_t_fill(b, k * n, &rng);
    lt_gemm(&d, a, b, c); /* warm-up: pool, page faults, scratch */
    double *t = malloc(reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = lt_t_now();
        lt_gemm(&d, a, b, c);
        t[r] = lt_t_now() - t0;
    }
    qsort(t, reps, sizeof(double), cmp_double);
    double flop = 2.0 * m * n * k, best = t[0], med = t[reps / 2];
    printf("gemm %5lldx%5lldx%5lld ta=%d tb=%d  %d thr: best %8.3f ms %7.1f GFLOP/s %5.1f%% | median %8.3f ms %7.1f "
           "GFLOP/s %5.1f%% | %s peak %6.1f GFLOP/s\n", (long long)m, (long long)n, (long long)k, ta, tb, threads,
           best * 1e3, flop / best / 1e9, 100 * flop / best / 1e9 / peak, med * 1e3, flop / med / 1e9,
           100 * flop / med / 1e9 / peak, pname, peak);
    fflush(stdout);
    free(t); free(a); free(b); free(c);
}

/* The ceilings gemm --bench and `bench peak` grade against: valid at the levels that have them, refused with a
 * message naming the missing ISA elsewhere, bad arguments named. */
static void test_peaks(void) {
    double g = -1;
    CHECK(lt_peak_fma_isa(LT_ISA_AVX2, 0, 10, &g) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "threads=0"),
          "lt_peak_fma_isa threads=0: %s", lt_last_error());
    CHECK(lt_peak_fma_isa(LT_ISA_AVX2, 1, 10, NULL) == LT_ERR_INVALID_ARGUMENT, "lt_peak_fma_isa gflops=NULL");
    CHECK(lt_peak_bf16(1, 0, &g) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "iters=0"),
          "lt_peak_bf16 iters=0: %s", lt_last_error());
    if (lt_isa() >= LT_ISA_AVX2)
        CHECK(lt_peak_fma_isa(7, 1, 10, &g) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "isa=7"),
              "lt_peak_fma_isa isa=7: %s", lt_last_error());
    static const char *names[3] = {"AVX2 FMA", "AVX-512 FMA", "bf16 dot"};
    int have[3] = {lt_isa() >= LT_ISA_AVX2, lt_isa() >= LT_ISA_AVX512, lt_isa() >= LT_ISA_AVX512 && lt_cpu_bf16()};
    for (int i = 0; i < 3; i++) {
        g = -1;
        lt_status st = i == 2 ? lt_peak_bf16(2, 200000, &g) : lt_peak_fma_isa(i ? LT_ISA_AVX512 : LT_ISA_AVX2, 2, 200000, &g);
        if (have[i])
            CHECK(st == LT_OK && g > 1.0 && g < 1e6, "%s ceiling: status %d, %g GFLOP/s (%s)", names[i], st, g,
                  lt_last_error());
        else
            CHECK(st == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "needs"),
                  "%s ceiling at ISA %s must be refused with a reason: status %d, \"%s\"", names[i], lt_t_isa_name(), st,
                  lt_last_error());
    }
}

/* fp32 (lt_gemm) and bf16 (lt_gemm_bf16) timed alternately on one shape: medians, the ratio, and each against
 * its ceiling (AVX-512 FMA, bf16 dot) measured right before. */
static void bench_bf16(int64_t m, int64_t n, int64_t k, int threads, int reps) {
    lt_set_num_threads(threads);
    double pf = 0, pb = 0, g;
    for (int r = 0; r < 3; r++) {
        if (lt_peak_fma_isa(LT_ISA_AVX512, threads, 30000000, &g) == LT_OK && g > pf) pf = g;
        if (lt_peak_bf16(threads, 30000000, &g) == LT_OK && g > pb) pb = g;
    }
    lt_gemm_desc d = {0, 0, m, n, k, 1.0f, 0.0f, k, n, n, 1, 0, 0, 0};
    uint64_t rng = 1;
    float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float)), *c = malloc(m * n * sizeof(float));
    lt_t_fill(a, m * k, &rng);
    lt_t_fill(b, k * n, &rng);
    lt_gemm(&d, a, b, c);
    lt_gemm_bf16(&d, a, b, c);
    double *tf = malloc(reps * sizeof(double)), *tb = malloc(reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = lt_t_now();
        lt_gemm(&d, a, b, c);
        tf[r] = lt_t_now() - t0;
        t0 = lt_t_now();
        lt_gemm_bf16(&d, a, b, c);
        tb[r] = lt_t_now() - t0;
    }
    qsort(tf, reps, sizeof(double), cmp_double);
    qsort(tb, reps, sizeof(double), cmp_double);
    double flop = 2.0 * m * n * k, f = flop / tf[reps / 2] / 1e9, bb = flop / tb[reps / 2] / 1e9;
    printf("gemm %5lldx%5lldx%5lld %d thr medians: fp32 %7.1f GFLOP/s (%5.1f%% of AVX-512 FMA %.1f) | bf16 %7.1f GFLOP/s "
           "(%5.1f%% of bf16 dot %.1f) | bf16 / fp32 %.2fx\n", (long long)m, (long long)n, (long long)k, threads, f,
           100 * f / pf, pf, bb, 100 * bb / pb, pb, bb / f);
    fflush(stdout);
    free(tf); free(tb); free(a); free(b); free(c);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench-bf16")) {
        if (lt_isa() < LT_ISA_AVX512 || !lt_cpu_bf16()) { printf("bench-bf16: needs AVX512_BF16 at ISA avx512\n"); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 15;
        for (int th = 1; th <= 2; th++) {
            bench_bf16(1024, 1024, 1024, th, reps);
            bench_bf16(4096, 1536, 384, th, reps);
        }
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--peak")) { /* the three ceilings, best of 5, 1 and 2 threads */
        for (int th = 1; th <= 2; th++) {
            double best[3] = {0, 0, 0}, g;
            for (int r = 0; r < 5; r++) {
                if (lt_peak_fma_isa(LT_ISA_AVX2, th, 30000000, &g) == LT_OK && g > best[0]) best[0] = g;
                if (lt_peak_fma_isa(LT_ISA_AVX512, th, 30000000, &g) == LT_OK && g > best[1]) best[1] = g;
                if (lt_peak_bf16(th, 30000000, &g) == LT_OK && g > best[2]) best[2] = g;
            }
            printf("peak %d thr: AVX2 FMA %.1f  AVX-512 FMA %.1f  bf16 dot %.1f GFLOP/s (0 = not available at ISA %s)\n",
                   th, best[0], best[1], best[2], lt_t_isa_name());
        }
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_fma needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 15;
        if (argc >= 6) {
            int ta = argc > 6 ? atoi(argv[6]) : 0, tb = argc > 7 ? atoi(argv[7]) : 0;
            int th0 = argc > 8 ? atoi(argv[8]) : 1, th1 = argc > 8 ? th0 : 2;
            for (int th = th0; th <= th1; th++) bench_one(atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), ta, tb, th, reps);
            return 0;
        }
        for (int th = 1; th <= 2; th++) {
            bench_one(1024, 1024, 1024, 0, 0, th, reps);
            bench_one(4096, 1536, 384, 0, 0, th, reps);
        }
        return 0;
    }
    printf("lt_gemm at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_peaks();
    test_degenerate();
    test_shapes();
    test_determinism();
    test_concurrent();
    test_bf16();
    return lt_test_summary();
}
