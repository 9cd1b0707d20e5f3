/* lt_gemm_rows: C = alpha * A B^T + beta * C for skinny products, without packing (latent.h has the contract).
 *
 * What lt_gemm pays to reach the FMA ceiling on large products (packing B into slivers, 6-row micro-tiles) is waste
 * when M is a handful of rows: at M = 1 the pack is a transposing copy of the whole weight matrix per call and five of
 * six tile rows are zero. Decoding multiplies a few rows (one per sequence in flight) by every weight matrix once per
 * token, so this entry computes each C element as the dot product of an A row and a B row (B stored (N, K), as a
 * Linear layer's weight): the weights stream through once per call, 4 B rows at a time kept in L1 while the A rows (few,
 * in L1 / L2) pass over them. Tasks own disjoint column blocks of C (64 columns, fixed whatever the thread count) and
 * every element is summed in one fixed order (gemm_rows.h), so the bits depend neither on the thread count nor on M:
 * a row of C is the same alone or among any other rows. Dispatch: gemm_rows_tile_avx512 (gemm_rows_avx512.c) at ISA
 * avx512, _avx2 at avx2, else _ref. Small products (under 2^18 multiply-adds) run on the calling thread.
 * Test: gemm_rows_test.c (against double sums with a derived bound, bits across M and threads, refusals). */
#include "gemm_rows.h"

#define COLS 64 /* columns of C per task */

typedef struct {
    const lt_gemm_desc *d;
    const float *a, *b;
    float *c;
    int isa;
} ctx_t;

static void task(void *p, int64_t t, int worker) {
    const ctx_t *x = p;
    const lt_gemm_desc *d = x->d;
    void (*tile)(int64_t, int64_t, int64_t, const float *, int64_t, const float *, int64_t, float *, int64_t, float, float) =
        x->isa >= LT_ISA_AVX512 ? gemm_rows_tile_avx512 : x->isa >= LT_ISA_AVX2 ? gemm_rows_tile_avx2 : gemm_rows_tile_ref;
    int64_t j1 = (t + 1) * COLS < d->n ? (t + 1) * COLS : d->n;
    for (int64_t j = t * COLS; j < j1; j += GEMM_ROWS_NR) {
        int64_t nr = j1 - j < GEMM_ROWS_NR ? j1 - j : GEMM_ROWS_NR;
        for (int64_t i = 0; i < d->m; i += GEMM_ROWS_MR) {
            int64_t mr = d->m - i < GEMM_ROWS_MR ? d->m - i : GEMM_ROWS_MR;
            tile(mr, nr, d->k, x->a + i * d->lda, d->lda, x->b + j * d->ldb, d->ldb, x->c + i * d->ldc + j, d->ldc, d->alpha, d->beta);
        }
    }
}

lt_status lt_gemm_rows(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gemm_rows: " __VA_ARGS__)
    if (!d) return BAD("descriptor is NULL");
    if (d->trans_a != 0 || d->trans_b != 1) return BAD("trans_a=%d trans_b=%d: only A (M, K) times B (N, K) transposed is supported", d->trans_a, d->trans_b);
    if (d->batch != 1) return BAD("batch=%lld: only batch 1 is supported", (long long)d->batch);
    if (d->m < 0 || d->n < 0 || d->k < 0) return BAD("m=%lld n=%lld k=%lld must be >= 0", (long long)d->m, (long long)d->n, (long long)d->k);
    if (d->lda < 1 || d->lda < d->k || d->ldb < 1 || d->ldb < d->k || d->ldc < 1 || d->ldc < d->n)
        return BAD("lda=%lld ldb=%lld must be >= max(1, k=%lld), ldc=%lld >= max(1, n=%lld)", (long long)d->lda, (long long)d->ldb,
                   (long long)d->k, (long long)d->ldc, (long long)d->n);
    int64_t e;
    if ((d->m > 0 && (__builtin_mul_overflow(d->m - 1, d->lda, &e) || __builtin_mul_overflow(d->m - 1, d->ldc, &e))) ||
        (d->n > 0 && __builtin_mul_overflow(d->n - 1, d->ldb, &e)))
        return BAD("m=%lld n=%lld with these leading dimensions overflow int64", (long long)d->m, (long long)d->n);
    if (d->m == 0 || d->n == 0) return LT_OK;
    if (!c) return BAD("c is NULL for a %lld x %lld C", (long long)d->m, (long long)d->n);
    if (d->k > 0 && (!a || !b)) return BAD("%s is NULL with k=%lld", !a ? "a" : "b", (long long)d->k);
    /* C must not overlap A or B: tasks write C while others read A and B. */
    const float *c0 = c, *c1 = c + (d->m - 1) * d->ldc + d->n;
    if (d->k > 0 && ((a < c1 && c0 < a + (d->m - 1) * d->lda + d->k) || (b < c1 && c0 < b + (d->n - 1) * d->ldb + d->k)))
        return BAD("c overlaps %s", (a < c1 && c0 < a + (d->m - 1) * d->lda + d->k) ? "a" : "b");
    ctx_t x = {d, a, b, c, lt_isa_level()};
    int64_t tasks = (d->n + COLS - 1) / COLS;
    if ((double)d->m * d->n * d->k < (double)(1 << 18)) {
        for (int64_t t = 0; t < tasks; t++) task(&x, t, 0);
    } else {
        lt_parallel_for(tasks, task, &x);
    }
    return LT_OK;
#undef BAD
}
