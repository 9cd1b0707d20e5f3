/* lt_gemm_rows AVX-512 tile: up to 4 x 4 elements, 16 zmm accumulators; per 16-wide k chunk 4 B loads, up to 4 A loads
 * and up to 16 FMAs (the last chunk masked); then each accumulator is summed by _mm512_reduce_add_ps (a fixed tree) and
 * stored as alpha * s (+ beta * C). An element's arithmetic is the same in every tile shape (gemm_rows.h). */
#include <immintrin.h>

#include "gemm_rows.h"

#ifndef PF_ROWS
#define PF_ROWS 4 /* B rows ahead that each chunk prefetches */
#endif

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

static inline __attribute__((always_inline)) void tile(const int64_t mr, const int64_t nr, int64_t k, const float *a, int64_t lda,
                                                       const float *b, int64_t ldb, float *c, int64_t ldc, float alpha, float beta) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        /* The next 4 B rows, a line per row per chunk: rows of K floats are too short for the hardware prefetcher to
         * ramp up on, and at M = 1 the weights' DRAM latency is the whole cost (prefetching past B does not fault). */
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(b + (j + PF_ROWS) * ldb + p), _MM_HINT_T0);
        __m512 bv[4], av[4];
        for (int j = 0; j < 4; j++) bv[j] = j < nr ? _mm512_loadu_ps(b + j * ldb + p) : _mm512_setzero_ps();
        for (int i = 0; i < 4; i++) av[i] = i < mr ? _mm512_loadu_ps(a + i * lda + p) : _mm512_setzero_ps();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (i < mr && j < nr) acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    if (p < k) {
        const __mmask16 m = lanes(k - p);
        __m512 bv[4], av[4];
        for (int j = 0; j < 4; j++) bv[j] = j < nr ? _mm512_maskz_loadu_ps(m, b + j * ldb + p) : _mm512_setzero_ps();
        for (int i = 0; i < 4; i++) av[i] = i < mr ? _mm512_maskz_loadu_ps(m, a + i * lda + p) : _mm512_setzero_ps();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (i < mr && j < nr) acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            if (i < mr && j < nr) {
                float y = alpha * _mm512_reduce_add_ps(acc[i][j]);
                c[i * ldc + j] = beta == 0.0f ? y : y + beta * c[i * ldc + j];
            }
}

void gemm_rows_tile_avx512(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, float alpha, float beta) {
    if (mr == 4 && nr == 4) tile(4, 4, k, a, lda, b, ldb, c, ldc, alpha, beta);
    else if (mr == 1 && nr == 4) tile(1, 4, k, a, lda, b, ldb, c, ldc, alpha, beta);
    else tile(mr, nr, k, a, lda, b, ldb, c, ldc, alpha, beta);
}
