/* AVX2+FMA attention (8 floats per ymm): attention_simd.h's FlashAttention-2 body (its header comment has the design,
 * the measurements and the tuning) with tiles of L = 24 lanes (3 ymm) and a 4-row forward register block.
 * Compiled with -mavx2 -mfma only. Run: attention_test, attention_test --bench. */
#include <immintrin.h>

#include "attention.h"

#define AI static inline __attribute__((always_inline))

#define L 24 /* lanes of a tile: queries in the forward, keys in the backward (3 ymm) */
#ifndef FWD_BC
#define FWD_BC 128 /* keys per online-softmax step of the forward (multiple of 4) */
#endif
#define FWD_R 4    /* forward register block: 4 x 3 ymm accumulators (12 of the 16 ymm registers) */
#define DQW 16     /* dQ block: 6 queries x 2 ymm */

#include "../common/simd_avx2.h"
#define VI __m256i
#define VSET1I(i) _mm256_set1_epi32(i)
#define VADDI(a, b) _mm256_add_epi32(a, b)
#define VSLLI(v, n) _mm256_slli_epi32(v, n)
#define VCAST_I(v) _mm256_castps_si256(v)
#define VCAST_F(v) _mm256_castsi256_ps(v)
#define VIOTA() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)

/* Masks: AVX2 has no mask registers, so a mask is a vector of all-ones / zero lanes, applied by blend, AND or
 * vmaskmov (AVX-512 uses opmasks: attention_avx512.c). */
#define VMASK __m256i
AI void hide_ninf(float *p, __m256i lim, __m256i iota, __m256 ninf) {
    __m256 hide = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lim, iota));
    _mm256_storeu_ps(p, _mm256_blendv_ps(_mm256_loadu_ps(p), ninf, hide));
}
AI __m256 keep_below(__m256 v, int n, __m256i iota0) {
    __m256i show = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota0);
    return _mm256_and_ps(v, _mm256_castsi256_ps(show));
}
#define DQ_MASK0(rem) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)), VIOTA())
#define DQ_MASK1(rem) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem) - 8), VIOTA())

#include "attention_simd.h"
