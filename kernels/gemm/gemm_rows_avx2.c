/* lt_gemm_rows AVX2 tile: up to 4 x 4 elements computed as two 2 x 4 halves (8 ymm accumulators, 4 B and 2 A vectors:
 * 14 of the 16 registers); per 8-wide k chunk 4 B loads, 2 A loads, 8 FMAs (the last chunk masked); then each
 * accumulator is summed in a fixed order and stored as alpha * s (+ beta * C). An element's arithmetic is the same in
 * every tile shape (gemm_rows.h). */
#include <immintrin.h>

#include "gemm_rows.h"
#include "../common/vmath_avx2.h"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void half(const int64_t mr, const int64_t nr, int64_t k, const float *a, int64_t lda,
                                                       const float *b, int64_t ldb, float *c, int64_t ldc, float alpha, float beta) {
    __m256 acc[2][4];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 bv[4], av[2];
        for (int j = 0; j < 4; j++) bv[j] = j < nr ? _mm256_loadu_ps(b + j * ldb + p) : _mm256_setzero_ps();
        for (int i = 0; i < 2; i++) av[i] = i < mr ? _mm256_loadu_ps(a + i * lda + p) : _mm256_setzero_ps();
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                if (i < mr && j < nr) acc[i][j] = _mm256_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    if (p < k) {
        const __m256i m = vtail_mask(k - p);
        __m256 bv[4], av[2];
        for (int j = 0; j < 4; j++) bv[j] = j < nr ? _mm256_maskload_ps(b + j * ldb + p, m) : _mm256_setzero_ps();
        for (int i = 0; i < 2; i++) av[i] = i < mr ? _mm256_maskload_ps(a + i * lda + p, m) : _mm256_setzero_ps();
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                if (i < mr && j < nr) acc[i][j] = _mm256_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            if (i < mr && j < nr) {
                float y = alpha * hsum(acc[i][j]);
                c[i * ldc + j] = beta == 0.0f ? y : y + beta * c[i * ldc + j];
            }
}

void gemm_rows_tile_avx2(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                         int64_t ldc, float alpha, float beta) {
    for (int64_t i = 0; i < mr; i += 2) {
        int64_t h = mr - i < 2 ? mr - i : 2;
        if (h == 2 && nr == 4) half(2, 4, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, alpha, beta);
        else if (h == 1 && nr == 4) half(1, 4, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, alpha, beta);
        else half(h, nr, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, alpha, beta);
    }
}
