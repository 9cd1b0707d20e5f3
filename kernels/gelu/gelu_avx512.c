/* AVX-512 exact GELU: gelu_avx2.c's operations (the same normal CDF through the upper tail, the same vexp), 16 lanes
 * per vector, in the same order, so y and dx have the AVX2 path's bits (gelu_test checks avx512 against avx2
 * bit for bit, and both against the double reference). The quadrant-free parts change only in form: the sign
 * select by an opmask from the sign bits (VPMOVD2M) instead of BLENDVPS, exp's underflow by zero-masking, and
 * the tail by masked loads and stores.
 * Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>

#include "gelu.h"

#define XMAX 13.5f
#define K 4.25f
#define PS(x) _mm512_set1_ps(x)

/* vmath_avx2.h's vexp, 16 lanes. */
static inline __m512 vexp16(__m512 y) {
    const __m512 lo = PS(-87.3365478515625f), hi = PS(88.0f);
    const __mmask16 under = _mm512_cmp_ps_mask(y, lo, _CMP_LT_OQ);
    y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
    const __m512 magic = PS(12583039.0f);
    const __m512 t = _mm512_fmadd_ps(y, PS(1.44269502f), magic);
    const __m512 kf = _mm512_sub_ps(t, magic);
    __m512 f = _mm512_fnmadd_ps(kf, PS(0x1.62e430p-1f), y);
    f = _mm512_fnmadd_ps(kf, PS(-0x1.05c610p-29f), f);
    __m512 p = PS(0x1.6a4f70p-10f);
    p = _mm512_fmadd_ps(p, f, PS(0x1.123980p-7f));
    p = _mm512_fmadd_ps(p, f, PS(0x1.5558aep-5f));
    p = _mm512_fmadd_ps(p, f, PS(0x1.555492p-3f));
    p = _mm512_fmadd_ps(p, f, PS(0x1.fffffcp-2f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f);
    p = _mm512_add_ps(p, PS(1.0f));
    const __m512 two_k = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_mul_ps(p, two_k));
}

/* gelu_avx2.c's ncdf, 16 lanes. */
static inline __m512 ncdf16(__m512 x, __m512 *pdf) {
    const __m512 a = _mm512_min_ps(PS(XMAX), _mm512_andnot_ps(PS(-0.0f), x));
    const __m512 s = _mm512_mul_ps(a, a);
    const __m512 sl = _mm512_fmsub_ps(a, a, s);
    __m512 e = vexp16(_mm512_mul_ps(s, PS(-0.5f)));
    e = _mm512_fnmadd_ps(_mm512_mul_ps(e, sl), PS(0.5f), e);
    const __m512 vk = PS(K), d = _mm512_add_ps(a, vk);
    const __m512 lo = _mm512_add_ps(_mm512_sub_ps(_mm512_max_ps(a, vk), d), _mm512_min_ps(a, vk));
    __m512 r = _mm512_div_ps(PS(1.0f), d);
    r = _mm512_fnmadd_ps(_mm512_mul_ps(r, lo), r, r);
    const __m512 q = _mm512_fmsub_ps(_mm512_add_ps(a, a), r, PS(1.0f));
    __m512 t = PS(-0x1.f21ea2p-13f);
    t = _mm512_fmadd_ps(t, q, PS(-0x1.886cdcp-12f));
    t = _mm512_fmadd_ps(t, q, PS(0x1.1d7c6cp-9f));
    t = _mm512_fmadd_ps(t, q, PS(-0x1.87d224p-11f));
    t = _mm512_fmadd_ps(t, q, PS(-0x1.3d3d94p-6f));
    t = _mm512_fmadd_ps(t, q, PS(0x1.5d45fap-4f));
    t = _mm512_fmadd_ps(t, q, PS(-0x1.c39de2p-3f));
    t = _mm512_fmadd_ps(t, q, PS(0x1.ac43d8p-2f));
    t = _mm512_fmadd_ps(t, q, PS(-0x1.401102p-1f));
    t = _mm512_fmadd_ps(t, q, PS(0x1.84e44ap-1f));
    const __m512 tail = _mm512_mul_ps(_mm512_mul_ps(e, r), t);
    if (pdf) *pdf = _mm512_mul_ps(e, PS(0x1.988454p-2f));
    const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x)); /* sign bit: Q(a) for x < 0 and -0 */
    return _mm512_mask_blend_ps(neg, _mm512_sub_ps(PS(1.0f), tail), tail);
}

static inline __m512 gelu16(__m512 x) { return _mm512_mul_ps(_mm512_max_ps(PS(-XMAX), x), ncdf16(x, NULL)); }

static inline __m512 dgelu16(__m512 x, __m512 dy) {
    __m512 pdf;
    const __m512 cdf = ncdf16(x, &pdf);
    const __m512 xc = _mm512_min_ps(PS(XMAX), _mm512_max_ps(PS(-XMAX), x));
    return _mm512_mul_ps(dy, _mm512_fmadd_ps(xc, pdf, cdf));
}

static inline __mmask16 tail16(int64_t rem) { return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1); }

void gelu_fwd_avx512(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = gelu16(_mm512_loadu_ps(x + i)), b = gelu16(_mm512_loadu_ps(x + i + 16));
        _mm512_storeu_ps(y + i, a);
        _mm512_storeu_ps(y + i + 16, b);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void gelu_bwd_avx512(int64_t n, const float *x, const float *dy, float *dx) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = dgelu16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i));
        __m512 b = dgelu16(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(dy + i + 16));
        _mm512_storeu_ps(dx + i, a);
        _mm512_storeu_ps(dx + i + 16, b);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(dx + i, m, dgelu16(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, dy + i)));
    }
}
