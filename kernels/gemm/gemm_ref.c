/* Reference GEMM: C = alpha * op(A) * op(B) + beta * C, plain loops (the ISA-ref fallback and the oracle).
 *
 *   A: (M, K) row stride lda, or (K, M) when trans_a     op(A)[i][p]
 *   B: (K, N) row stride ldb, or (N, K) when trans_b     op(B)[p][j]
 *   C: (M, N) row stride ldc                             C[i][j] = alpha * sum_p op(A)[i][p] op(B)[p][j] + beta * C[i][j]
 *   batch entry t of X starts at X + t * stride_x.
 *
 * Every C element is one float accumulator summed over p = 0, 1, ..., K-1 in that order, started at 0,
 * then scaled: the same bits for any thread count, and the textbook summation whose error gemm_test.c
 * bounds. beta == 0 does not read C (BLAS: C is write-only then). The loop runs over a strip of columns
 * at a time with the strip's accumulators in a small array, only so the innermost loop walks B along a
 * row (trans_b = 0) and the compiler can vectorise it; per element the arithmetic is the plain dot product.
 * Work is split into tasks of (batch entry, block of rows) for lt_parallel_for: each C element belongs to
 * one task. gemm.c has validated the descriptor and handled k == 0 and alpha == 0.
 * Checked by gemm_test.c against a double-precision product (LATENT_MAX_ISA=ref runs this file). */
#include "gemm.h"

#define ROWS_PER_TASK 16
#define STRIP 64 /* columns accumulated together: 256 bytes of accumulators, in L1 */

typedef struct {
    const lt_gemm_desc *d;
    const float *a, *b;
    float *c;
    int64_t row_blocks; /* tasks per batch entry */
} ref_ctx;

static void ref_task(void *p, int64_t task, int worker) {
    const ref_ctx *x = p;
    const lt_gemm_desc *d = x->d;
    int64_t t = task / x->row_blocks, i0 = (task % x->row_blocks) * ROWS_PER_TASK;
    int64_t i1 = i0 + ROWS_PER_TASK < d->m ? i0 + ROWS_PER_TASK : d->m;
    const float *a = x->a + t * d->stride_a; // (M, K) or (K, M)
    const float *b = x->b + t * d->stride_b; // (K, N) or (N, K)
    float *c = x->c + t * d->stride_c;       // (M, N)
    /* op(A)[i][p] and op(B)[p][j] through the transposes. */
    const int64_t a_si = d->trans_a ? 1 : d->lda, a_sp = d->trans_a ? d->lda : 1;
    const int64_t b_sp = d->trans_b ? 1 : d->ldb, b_sj = d->trans_b ? d->ldb : 1;
    for (int64_t i = i0; i < i1; i++) {
        for (int64_t j0 = 0; j0 < d->n; j0 += STRIP) {
            int64_t w = d->n - j0 < STRIP ? d->n - j0 : STRIP;
            float acc[STRIP]; // (w,) partial sums of C[i][j0 .. j0+w)
            for (int64_t jj = 0; jj < w; jj++) acc[jj] = 0.0f;
            for (int64_t p = 0; p < d->k; p++) {
                float aip = a[i * a_si + p * a_sp];
                const float *brow = b + p * b_sp + j0 * b_sj; // op(B)[p][j0 ..]
                for (int64_t jj = 0; jj < w; jj++) acc[jj] += aip * brow[jj * b_sj];
            }
            float *crow = c + i * d->ldc + j0;
            for (int64_t jj = 0; jj < w; jj++)
                crow[jj] = d->beta == 0.0f ? d->alpha * acc[jj] : d->alpha * acc[jj] + d->beta * crow[jj];
        }
    }
}

lt_status gemm_ref(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    ref_ctx x = {d, a, b, c, (d->m + ROWS_PER_TASK - 1) / ROWS_PER_TASK};
    lt_parallel_for(d->batch * x.row_blocks, ref_task, &x);
    return LT_OK;
}
