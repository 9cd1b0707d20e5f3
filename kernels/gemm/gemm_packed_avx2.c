/* lt_gemm_rows_packed AVX2 task. A tile is MR rows (up to 6) x NP panels (16 columns = 2 ymm each): per k, 2 NP loads
 * and 2 MR NP fused multiply-adds with A[i][k] broadcast (12 accumulators at most, of 16 registers). Shapes: 4-6 rows x
 * 1 panel, 1-3 x 2, the panels left over 1 at a time; a 16-row block of at runs as tiles of 6, 6 and 4 rows. Each lane
 * is fma(a, b, acc) in k order, as in the reference (gemm_packed.h). */
#include <immintrin.h>

#include "gemm_packed.h"

#ifndef GP_PF
#define GP_PF 24
#endif

static inline __m256i lanes8(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), idx);
}

static inline __attribute__((always_inline)) void tile(const int MR, const int NP, int64_t k, const float *at, const float *pk,
                                                       int64_t ncols, const float *bias, float *c, int64_t ldc) {
    __m256 acc[6][4]; /* fixed bounds (not MR x 2 NP: a VLA stays in memory); only MR x 2 NP are used */
    for (int i = 0; i < MR; i++)
        for (int q = 0; q < 2 * NP; q++) acc[i][q] = _mm256_setzero_ps();
    const int64_t ps = k * GP_NR;
    for (int64_t p = 0; p < k; p++) {
        __m256 bv[4];
        for (int q = 0; q < NP; q++) {
            _mm_prefetch((const char *)(pk + q * ps + (p + GP_PF) * GP_NR), _MM_HINT_T0);
            bv[2 * q] = _mm256_loadu_ps(pk + q * ps + p * GP_NR);
            bv[2 * q + 1] = _mm256_loadu_ps(pk + q * ps + p * GP_NR + 8);
        }
        const float *ap = at + p * GP_MB;
        for (int i = 0; i < MR; i++) {
            const __m256 av = _mm256_broadcast_ss(ap + i);
            for (int q = 0; q < 2 * NP; q++) acc[i][q] = _mm256_fmadd_ps(av, bv[q], acc[i][q]);
        }
    }
    for (int q = 0; q < 2 * NP; q++) {
        const int64_t left = ncols - q * 8;
        if (left <= 0) break;
        const __m256i mk = lanes8(left);
        const __m256 bb = bias ? _mm256_maskload_ps(bias + q * 8, mk) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++)
            _mm256_maskstore_ps(c + i * ldc + q * 8, mk, bias ? _mm256_add_ps(acc[i][q], bb) : acc[i][q]);
    }
}

#define GP_ROWS(MR, NP)                                                                                                           \
    case MR: {                                                                                                                    \
        int64_t q = 0;                                                                                                            \
        for (; q + NP <= np; q += NP)                                                                                             \
            tile(MR, NP, k, a0, pk + q * k * GP_NR, ncols - q * GP_NR, bias ? bias + q * GP_NR : 0, c0 + q * GP_NR, ldc);       \
        for (; q < np; q++) tile(MR, 1, k, a0, pk + q * k * GP_NR, ncols - q * GP_NR, bias ? bias + q * GP_NR : 0, c0 + q * GP_NR, ldc); \
        break;                                                                                                                    \
    }

void gemm_packed_task_avx2(GP_TASK_ARGS) {
    for (int64_t i0 = 0; i0 < m; i0 += GP_MB, at += k * GP_MB, c += GP_MB * ldc) {
        const int64_t rows = m - i0 < GP_MB ? m - i0 : GP_MB;
        for (int64_t r = 0; r < rows; r += 6) {
            const float *a0 = at + r;
            float *c0 = c + r * ldc;
            switch (rows - r < 6 ? rows - r : 6) {
                GP_ROWS(1, 2) GP_ROWS(2, 2) GP_ROWS(3, 2) GP_ROWS(4, 1) GP_ROWS(5, 1) GP_ROWS(6, 1)
            }
        }
    }
}
