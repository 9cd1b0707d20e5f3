/* The AVX-512 spelling of the vector macros attention's kernels are written in: ../common/simd_avx512.h's float
 * ones plus the integer ones and the opmask operations of attention_simd.h's contract (its header lists them).
 * Included by attention_avx512.c (before the fp32 body) and attention_avx512_bf16.c (for attention_base.h's
 * exp2_ps); attention_avx2.c spells the same names at 8 lanes. Never compiled on its own. */
#ifndef LT_ATTENTION_AVX512_H
#define LT_ATTENTION_AVX512_H

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#include "../common/simd_avx512.h"
#define VI __m512i
#define VSET1I(i) _mm512_set1_epi32(i)
#define VADDI(a, b) _mm512_add_epi32(a, b)
#define VSLLI(v, n) _mm512_slli_epi32(v, n)
#define VCAST_I(v) _mm512_castps_si512(v)
#define VCAST_F(v) _mm512_castsi512_ps(v)
#define VIOTA() _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

/* Masks are opmask registers: a masked store / zero-masking move / masked load, where AVX2 needs a vector mask and
 * a blend, an AND or vmaskmov (attention_avx2.c). */
#define VMASK __mmask16
AI void hide_ninf(float *p, __m512i lim, __m512i iota, __m512 ninf) {
    _mm512_mask_storeu_ps(p, _mm512_cmpgt_epi32_mask(lim, iota), ninf);
}
AI __m512 keep_below(__m512 v, int n, __m512i iota0) {
    return _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(_mm512_set1_epi32(n), iota0), v);
}
#define DQ_MASK0(rem) ((rem) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (rem)) - 1))
#define DQ_MASK1(rem) ((rem) > 16 ? (__mmask16)((1u << ((rem) - 16)) - 1) : 0)

#endif
