/* AVX-512 vector math shared by the fused training kernels: vmath_avx2.h's exp and tanh 16 wide (same bits per lane),
 * tail masks, and the 16-lane reductions (down to 8 lanes, then vmath_avx2.h's fixed order). Header-only, static
 * inline, included by *_avx512.c files only (compiled with the AVX-512 flags). Used by softmax_xent_avx512.c,
 * gelu_avx512.c, coupling_avx512.c and activation_avx512.c. */
#ifndef LT_VMATH_AVX512_H
#define LT_VMATH_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "vmath_avx2.h"

/* vmath_avx2.h's vexp, 16 lanes: the same operations in the same order (so the same bits per lane); e^y, NaN kept,
 * y < -87.34 gives 0 by zero-masking where the AVX2 one uses ANDNOT. */
static inline __m512 vexp16(__m512 y) {
    const __m512 lo = _mm512_set1_ps(-87.3365478515625f), hi = _mm512_set1_ps(88.0f);
    const __mmask16 under = _mm512_cmp_ps_mask(y, lo, _CMP_LT_OQ);
    y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
    const __m512 magic = _mm512_set1_ps(12583039.0f);
    const __m512 t = _mm512_fmadd_ps(y, _mm512_set1_ps(1.44269502f), magic);
    const __m512 kf = _mm512_sub_ps(t, magic);
    __m512 f = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0x1.62e430p-1f), y);
    f = _mm512_fnmadd_ps(kf, _mm512_set1_ps(-0x1.05c610p-29f), f);
    __m512 p = _mm512_set1_ps(0x1.6a4f70p-10f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.123980p-7f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.5558aep-5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.555492p-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.fffffcp-2f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    const __m512 two_k = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_mul_ps(p, two_k));
}

/* vmath_avx2.h's vtanh, 16 lanes: the same operations in the same order (so the same bits per lane), the blends as
 * opmask blends. NaN stays NaN. */
static inline __m512 vtanh16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
    __m512i sx = _mm512_and_si512(sign, _mm512_castps_si512(x));
    __m512 e = vexp16(_mm512_min_ps(_mm512_add_ps(ax, ax), _mm512_set1_ps(88.0f)));
    __m512 big = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
    __m512 x2 = _mm512_mul_ps(ax, ax);
    __m512 p = _mm512_set1_ps(-1.45583438e-3f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(3.59212803e-3f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.86323552e-3f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.18694885e-2f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.39682540e-2f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.33333333e-1f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-3.33333333e-1f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, x2), ax, ax);
    __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.4f), _CMP_LT_OQ), big, small);
    r = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sx));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), r, x);
}

/* Opmask with the first min(rem, 16) lanes set (rem >= 0), for a row's last partial vector. */
static inline __mmask16 tail16(int64_t rem) { return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1); }

/* Sum of 16 lanes in double: the two halves added in float, then vhsum_d's fixed order. */
static inline double vhsum16_d(__m512 v) {
    return vhsum_d(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* Horizontal max of 16 lanes (as vhmax: NaN lanes may or may not win). */
static inline float vhmax16(__m512 v) {
    return vhmax(_mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

#endif
