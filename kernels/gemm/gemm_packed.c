/* lt_gemm_rows_pack / lt_gemm_rows_packed: the skinny GEMM of decoding on weights packed once (latent.h has the contract).
 *
 * lt_gemm_rows (gemm_rows.c) reads a Linear layer's weight (N, K) in place, so each C element is a dot product along
 * K and ends in a horizontal sum: at M = 16 rows those sums and the 4-row B tiles cost about a third of the FMA rate,
 * and 4 rows of K floats are short streams for the hardware prefetcher. A decoder keeps its weights for its whole
 * life, so here they are packed once (lt_gemm_rows_pack) into k-major panels of 16 columns: per k, one 64-byte line
 * of a panel is one vector of 16 columns, and A[i][k] broadcast against it accumulates 16 outputs of row i at once;
 * up to 16 rows of A stay in registers (gemm_packed_avx512.c) while the panel streams through once, sequentially.
 * A is transposed per call into blocks of 16 rows (M x K floats; at M = 16, K = 1536 that is 96 KB, next to N K
 * multiply-adds), so the 16 broadcasts of a k read one cache line. Tasks own groups of 4 panels (64 columns, fixed
 * whatever the thread count); every element is one fma chain in k order then + bias (gemm_packed.h), so the bits
 * depend neither on the thread count, nor on M, nor on the ISA. Small products (under 2^18 multiply-adds) run on the
 * calling thread. Test: gemm_packed_test.c (against double sums with a derived bound, bits across M, threads and
 * ISAs, refusals, and a benchmark beside lt_gemm_rows). */
#include <string.h>

#include "gemm_packed.h"

#define TASK_PANELS 4

int64_t lt_gemm_rows_packed_size(int64_t n, int64_t k) {
    if (n < 0 || k < 0) return -1;
    int64_t panels = (n + GP_NR - 1) / GP_NR, e;
    if (__builtin_mul_overflow(panels * GP_NR, k, &e) || e > INT64_MAX / 4) return -1;
    return e;
}

lt_status lt_gemm_rows_pack(int64_t n, int64_t k, const float *b, int64_t ldb, float *packed) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gemm_rows_pack: " __VA_ARGS__)
    if (n < 0 || k < 0) return BAD("n=%lld k=%lld must be >= 0", (long long)n, (long long)k);
    if (ldb < 1 || ldb < k) return BAD("ldb=%lld must be >= max(1, k=%lld)", (long long)ldb, (long long)k);
    int64_t size = lt_gemm_rows_packed_size(n, k), e;
    if (size < 0 || (n > 0 && __builtin_mul_overflow(n - 1, ldb, &e))) return BAD("n=%lld k=%lld ldb=%lld overflow int64", (long long)n, (long long)k, (long long)ldb);
    if (size == 0) return LT_OK;
    if (!b || !packed) return BAD("%s is NULL", !b ? "b" : "packed");
    const float *b1 = b + (n - 1) * ldb + k;
    if (packed < b1 && b < packed + size) return BAD("packed overlaps b");
    for (int64_t q = 0; q * GP_NR < n; q++) {
        float *dst = packed + q * k * GP_NR;
        int64_t cols = n - q * GP_NR < GP_NR ? n - q * GP_NR : GP_NR;
        for (int64_t p = 0; p < k; p++) {
            for (int64_t j = 0; j < cols; j++) dst[p * GP_NR + j] = b[(q * GP_NR + j) * ldb + p];
            for (int64_t j = cols; j < GP_NR; j++) dst[p * GP_NR + j] = 0.0f;
        }
    }
    return LT_OK;
#undef BAD
}

typedef struct {
    int64_t m, n, k, ldc;
    const float *at, *pk, *bias;
    float *c;
    void (*run)(GP_TASK_ARGS);
} ctx_t;

static void task(void *p, int64_t t, int worker) {
    const ctx_t *x = p;
    int64_t panels = (x->n + GP_NR - 1) / GP_NR, q0 = t * TASK_PANELS, q1 = q0 + TASK_PANELS < panels ? q0 + TASK_PANELS : panels;
    int64_t col = q0 * GP_NR, ncols = (x->n < q1 * GP_NR ? x->n : q1 * GP_NR) - col;
    x->run(x->m, x->k, x->at, x->pk + q0 * x->k * GP_NR, q1 - q0, ncols, x->bias ? x->bias + col : NULL, x->c + col, x->ldc);
}

static int overlaps(const float *a0, const float *a1, const float *b0, const float *b1) { return a0 < b1 && b0 < a1; }

lt_status lt_gemm_rows_packed(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *packed, const float *bias,
                              float *c, int64_t ldc) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gemm_rows_packed: " __VA_ARGS__)
    if (m < 0 || n < 0 || k < 0) return BAD("m=%lld n=%lld k=%lld must be >= 0", (long long)m, (long long)n, (long long)k);
    if (lda < 1 || lda < k || ldc < 1 || ldc < n)
        return BAD("lda=%lld must be >= max(1, k=%lld), ldc=%lld >= max(1, n=%lld)", (long long)lda, (long long)k, (long long)ldc, (long long)n);
    int64_t size = lt_gemm_rows_packed_size(n, k), e;
    if (size < 0 || (m > 0 && (__builtin_mul_overflow(m - 1, lda, &e) || __builtin_mul_overflow(m - 1, ldc, &e))) ||
        __builtin_mul_overflow((m + GP_MB - 1) / GP_MB * GP_MB, k, &e) || e > INT64_MAX / 4)
        return BAD("m=%lld n=%lld k=%lld with these leading dimensions overflow int64", (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return LT_OK;
    if (!c) return BAD("c is NULL for a %lld x %lld C", (long long)m, (long long)n);
    if (k > 0 && (!a || !packed)) return BAD("%s is NULL with k=%lld", !a ? "a" : "packed", (long long)k);
    const float *c0 = c, *c1 = c + (m - 1) * ldc + n;
    if (k > 0 && overlaps(c0, c1, a, a + (m - 1) * lda + k)) return BAD("c overlaps a");
    if (k > 0 && overlaps(c0, c1, packed, packed + size)) return BAD("c overlaps packed");
    if (bias && overlaps(c0, c1, bias, bias + n)) return BAD("c overlaps bias");
    if (k == 0) {   /* empty sums: C = bias (or 0) */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = bias ? 0.0f + bias[j] : 0.0f;
        return LT_OK;
    }
    int64_t blocks = (m + GP_MB - 1) / GP_MB;
    float *at = lt_alloc((size_t)(blocks * GP_MB * k) * sizeof(float));
    if (!at) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_gemm_rows_packed: %lld bytes of scratch for A", (long long)(blocks * GP_MB * k * 4));
    for (int64_t bl = 0; bl < blocks; bl++) {
        float *dst = at + bl * k * GP_MB;
        int64_t rows = m - bl * GP_MB < GP_MB ? m - bl * GP_MB : GP_MB;
        for (int64_t p = 0; p < k; p++) {
            for (int64_t i = 0; i < rows; i++) dst[p * GP_MB + i] = a[(bl * GP_MB + i) * lda + p];
            for (int64_t i = rows; i < GP_MB; i++) dst[p * GP_MB + i] = 0.0f;
        }
    }
    int isa = lt_isa_level();
    ctx_t x = {m, n, k, ldc, at, packed, bias, c,
               isa >= LT_ISA_AVX512 ? gemm_packed_task_avx512 : isa >= LT_ISA_AVX2 ? gemm_packed_task_avx2 : gemm_packed_task_ref};
    int64_t tasks = ((n + GP_NR - 1) / GP_NR + TASK_PANELS - 1) / TASK_PANELS;
    if ((double)m * n * k < (double)(1 << 18)) {
        for (int64_t t = 0; t < tasks; t++) task(&x, t, 0);
    } else {
        lt_parallel_for(tasks, task, &x);
    }
    lt_free(at);
    return LT_OK;
#undef BAD
}
