/* AVX2+FMA vector math shared by the fused training kernels: exp and tail masks. Header-only, static inline,
 * included by *_avx2.c files only (they are the ones compiled with -mavx2 -mfma). Used by
 * softmax_xent_avx2.c and gelu_avx2.c (../softmax_xent/vmath_avx2.h), so both see one exp.
 *
 * vexp(y) = e^y for 8 floats.
 *   Range reduction: k = round(y / ln 2) by magic-number rounding, f = y - k ln2 with ln 2 split hi + lo (two
 *   FMAs: |f| <= ln2/2 with an absolute error ~1e-8), e^f = 1 + f + f^2 P(f), P of degree 4 fitted for minimax
 *   relative error on [-ln2/2, ln2/2] (3.1e-9 with the coefficients rounded to float, i.e. 0.05 ulp), then
 *   e^y = 2^k e^f with 2^k built in the exponent field.
 *   Measured against double exp over every float y in [-87.3, 0] (gelu_test --sweep): max error 1.01 ulp, 1.42 u
 *   relative (u = 2^-24); gelu_test checks every 997th float of that range on each run.
 *   Special values: y < ln(FLT_MIN) = -87.3365 gives exactly +0 (results that would be subnormal are flushed:
 *   softmax and GELU never need them), so exp(-inf) = 0; NaN gives NaN; y > 88 gives e^88 (saturates, no
 *   caller passes y > 0).
 */
#ifndef LT_VMATH_AVX2_H
#define LT_VMATH_AVX2_H

#include <immintrin.h>
#include <stdint.h>

static inline __m256 vexp(__m256 y) {
    const __m256 lo = _mm256_set1_ps(-87.3365478515625f), hi = _mm256_set1_ps(88.0f);
    const __m256 under = _mm256_cmp_ps(y, lo, _CMP_LT_OQ); /* false for NaN: NaN flows through */
    y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));           /* operand order keeps NaN (MAXPS returns src2) */
    /* k = round(y / ln2) by the magic-number trick: t = y log2e + (1.5 * 2^23 + 127) rounds to an integer whose
     * low bits are k + 127, so t << 23 is 2^k's bit pattern and t - magic is k as a float. */
    const __m256 magic = _mm256_set1_ps(12583039.0f);
    const __m256 t = _mm256_fmadd_ps(y, _mm256_set1_ps(1.44269502f), magic);
    const __m256 kf = _mm256_sub_ps(t, magic);
    __m256 f = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0x1.62e430p-1f), y);  /* ln2 hi */
    f = _mm256_fnmadd_ps(kf, _mm256_set1_ps(-0x1.05c610p-29f), f);       /* ln2 lo: ln2 = hi + lo to ~2^-54 */
    __m256 p = _mm256_set1_ps(0x1.6a4f70p-10f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0x1.123980p-7f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0x1.5558aep-5f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0x1.555492p-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0x1.fffffcp-2f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(f, f), f);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256 two_k = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)); /* k in [-126, 127] */
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, two_k));
}

/* tanh for 8 floats (activation_avx2.c's error budget, measured there: <= 8 u). |x| < 0.4: odd Taylor polynomial
 * to x^15 (truncation < 2e-10 relative); else sign(x) (1 - 2 / (e^{2|x|} + 1)) with vexp. NaN stays NaN. */
static inline __m256 vtanh(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    __m256 ax = _mm256_andnot_ps(sign, x), sx = _mm256_and_ps(sign, x);
    /* large branch */
    __m256 e = vexp(_mm256_min_ps(_mm256_add_ps(ax, ax), _mm256_set1_ps(88.0f)));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
    /* small branch: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925 + 21844x^13/6081075 - 929569x^15/638512875 */
    __m256 x2 = _mm256_mul_ps(ax, ax);
    __m256 p = _mm256_set1_ps(-1.45583438e-3f);
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(3.59212803e-3f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-8.86323552e-3f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.18694885e-2f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.39682540e-2f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.33333333e-1f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-3.33333333e-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), ax, ax);
    __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.4f), _CMP_LT_OQ));
    r = _mm256_or_ps(r, sx);
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  /* NaN stays NaN */
}

/* Lane mask with the first `rem` (0..8) lanes set, for maskload/maskstore of a row's last partial vector. */
static inline __m256i vtail_mask(int64_t rem) {
    static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - rem));
}

/* Sum of the 8 lanes in a fixed order (pairs, then halves), in double. */
static inline double vhsum_d(__m256 v) {
    __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

/* Horizontal max of 8 lanes (NaN lanes may or may not win: callers handle NaN separately). */
static inline float vhmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

#endif
