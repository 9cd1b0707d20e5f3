/* lt_gemm: C = alpha * op(A) * op(B) + beta * C, row-major, strided batch (latent.h has the layouts).
 *
 * This file is the front door shared by every implementation: it validates the descriptor (every check
 * names the field and its value in lt_last_error()), does the cases that need no multiply (empty C,
 * k == 0, alpha == 0: C = beta * C, with beta == 0 writing zeros so NaNs in C do not survive, as in BLAS),
 * then dispatches by ISA, fastest first: gemm_avx512 (gemm_avx512.c) at avx512, gemm_avx2 (gemm_avx2.c) at
 * avx2, else gemm_ref (gemm_ref.c). No implementation declines a valid shape, so there is no further fallback.
 * lt_gemm_bf16 takes the same descriptor and checks, rounds op(A) and op(B) to bf16 and sums in fp32
 * (gemm_avx512_bf16.c); it is refused with LT_ERR_UNSUPPORTED where AVX512_BF16 or the avx512 level is missing.
 * Test and benchmark: gemm_test.c (ctest runs it at LATENT_MAX_ISA=ref, =avx2 and =avx512; `gemm_test --bench`). */
#include "gemm.h"

/* Largest element offset a matrix of `rows` x `cols` with row stride `ld` repeated `batch` times at
 * `stride` reaches, or -1 on int64 overflow: an absurd descriptor must fail here, not wrap in a kernel. */
static int64_t extent(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    if (rows == 0 || cols == 0) return 0;
    int64_t r, s, e;
    if (__builtin_mul_overflow(rows - 1, ld, &r) || __builtin_mul_overflow(batch - 1, stride, &s) ||
        __builtin_add_overflow(r, s, &e) || __builtin_add_overflow(e, cols, &e))
        return -1;
    return e;
}

static lt_status check(const lt_gemm_desc *d, const float *a, const float *b, const float *c) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gemm: " __VA_ARGS__)
    if (!d) return BAD("descriptor is NULL");
    if ((d->trans_a != 0 && d->trans_a != 1) || (d->trans_b != 0 && d->trans_b != 1))
        return BAD("trans_a=%d trans_b=%d must be 0 or 1", d->trans_a, d->trans_b);
    if (d->m < 0 || d->n < 0 || d->k < 0)
        return BAD("m=%lld n=%lld k=%lld must be >= 0", (long long)d->m, (long long)d->n, (long long)d->k);
    if (d->batch < 1) return BAD("batch=%lld must be >= 1", (long long)d->batch);
    /* A is stored (trans_a ? K x M : M x K): a row holds lda >= its column count elements. */
    int64_t a_rows = d->trans_a ? d->k : d->m, a_cols = d->trans_a ? d->m : d->k;
    int64_t b_rows = d->trans_b ? d->n : d->k, b_cols = d->trans_b ? d->k : d->n;
    if (d->lda < 1 || d->lda < a_cols)
        return BAD("lda=%lld must be >= max(1, %s=%lld) (trans_a=%d)", (long long)d->lda, d->trans_a ? "m" : "k",
                   (long long)a_cols, d->trans_a);
    if (d->ldb < 1 || d->ldb < b_cols)
        return BAD("ldb=%lld must be >= max(1, %s=%lld) (trans_b=%d)", (long long)d->ldb, d->trans_b ? "k" : "n",
                   (long long)b_cols, d->trans_b);
    if (d->ldc < 1 || d->ldc < d->n)
        return BAD("ldc=%lld must be >= max(1, n=%lld)", (long long)d->ldc, (long long)d->n);
    if (d->stride_a < 0 || d->stride_b < 0 || d->stride_c < 0)
        return BAD("stride_a=%lld stride_b=%lld stride_c=%lld must be >= 0", (long long)d->stride_a,
                   (long long)d->stride_b, (long long)d->stride_c);
    if (extent(a_rows, a_cols, d->lda, d->batch, d->stride_a) < 0 ||
        extent(b_rows, b_cols, d->ldb, d->batch, d->stride_b) < 0 ||
        extent(d->m, d->n, d->ldc, d->batch, d->stride_c) < 0)
        return BAD("m=%lld n=%lld k=%lld with these leading dimensions, strides and batch=%lld overflow int64",
                   (long long)d->m, (long long)d->n, (long long)d->k, (long long)d->batch);
    /* Inputs may be shared between batch entries (stride 0 broadcasts), outputs may not: two entries writing
     * one element would race on the pool and make the result depend on the order. */
    int64_t c_span = d->m > 0 && d->n > 0 ? (d->m - 1) * d->ldc + d->n : 0;
    if (d->batch > 1 && c_span > 0 && d->stride_c < c_span)
        return BAD("stride_c=%lld < (m-1)*ldc+n=%lld: batch entries of C overlap (batch=%lld)",
                   (long long)d->stride_c, (long long)c_span, (long long)d->batch);
    if (!a && d->m > 0 && d->k > 0) return BAD("a is NULL for a %lld x %lld op(A)", (long long)d->m, (long long)d->k);
    if (!b && d->k > 0 && d->n > 0) return BAD("b is NULL for a %lld x %lld op(B)", (long long)d->k, (long long)d->n);
    if (!c && d->m > 0 && d->n > 0) return BAD("c is NULL for a %lld x %lld C", (long long)d->m, (long long)d->n);
#undef BAD
    return LT_OK;
}

/* C = beta * C without reading A or B (k == 0 or alpha == 0). beta == 0 writes zeros. */
static void scale_c(const lt_gemm_desc *d, float *c) {
    if (d->beta == 1.0f) return;
    for (int64_t bi = 0; bi < d->batch; bi++) {
        for (int64_t i = 0; i < d->m; i++) {
            float *row = c + bi * d->stride_c + i * d->ldc; // (N,)
            if (d->beta == 0.0f)
                for (int64_t j = 0; j < d->n; j++) row[j] = 0.0f;
            else
                for (int64_t j = 0; j < d->n; j++) row[j] *= d->beta;
        }
    }
}

lt_status lt_gemm(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    lt_status st = check(d, a, b, c);
    if (st) return st;
    if (d->m == 0 || d->n == 0) return LT_OK;
    if (d->k == 0 || d->alpha == 0.0f) {
        scale_c(d, c);
        return LT_OK;
    }
    if (lt_isa_level() >= LT_ISA_AVX512) return gemm_avx512(d, a, b, c);
    if (lt_isa_level() >= LT_ISA_AVX2) return gemm_avx2(d, a, b, c);
    return gemm_ref(d, a, b, c);
}

lt_status lt_gemm_bf16(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    lt_status st = check(d, a, b, c);
    if (st) return st;
    /* Refused, never emulated, where the CPU (or the level in use) has no AVX512_BF16. */
    if (!lt_cpu_bf16() || lt_isa_level() < LT_ISA_AVX512)
        return lt_fail(LT_ERR_UNSUPPORTED, "lt_gemm_bf16: bf16 GEMM needs AVX512_BF16 at ISA avx512 (CPU %s AVX512_BF16, "
                       "level in use: %s)", lt_cpu_bf16() ? "has" : "lacks",
                       lt_isa_level() == LT_ISA_AVX512 ? "avx512" : lt_isa_level() == LT_ISA_AVX2 ? "avx2" : "ref");
    if (d->m == 0 || d->n == 0) return LT_OK;
    if (d->k == 0 || d->alpha == 0.0f) {
        scale_c(d, c);
        return LT_OK;
    }
    return gemm_avx512_bf16(d, a, b, c);
}
