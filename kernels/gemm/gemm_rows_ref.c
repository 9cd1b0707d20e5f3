/* lt_gemm_rows reference tile: one float accumulator per element over k in order, then alpha and beta. */
#include "gemm_rows.h"

void gemm_rows_tile_ref(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                        int64_t ldc, float alpha, float beta) {
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++) s += a[i * lda + p] * b[j * ldb + p];
            float y = alpha * s;
            c[i * ldc + j] = beta == 0.0f ? y : y + beta * c[i * ldc + j];
        }
}
