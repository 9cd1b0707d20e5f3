/* AVX2 affine coupling, one image: the reference's formulas in float, 8 lanes at a time, with the shared vexp and
 * vtanh (a few ulp each); per-image sums (logdet, dscale) accumulate in double, 4 lanes per accumulator, combined in
 * a fixed order. The row tail goes through the reference. */
#include <immintrin.h>

#include "coupling.h"
#include "../common/vmath_avx2.h"

static inline double hsum_pd(__m256d v) {
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

double coupling_fwd_avx2(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out) {
    const __m256 one = _mm256_set1_ps(1.0f), sc = _mm256_set1_ps(scale);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) {
        __m256 bv = _mm256_loadu_ps(b + j), m = _mm256_sub_ps(one, bv), yv = _mm256_loadu_ps(y + j);
        __m256 s = _mm256_mul_ps(_mm256_mul_ps(vtanh(_mm256_loadu_ps(h0 + j)), sc), m);
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(h1 + j), m);
        __m256 r = _mm256_add_ps(_mm256_mul_ps(bv, yv), _mm256_mul_ps(m, _mm256_fmadd_ps(yv, vexp(s), t)));
        _mm256_storeu_ps(out + j, r);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
    }
    double ld = hsum_pd(_mm256_add_pd(a0, a1));
    if (j < hw) ld += coupling_fwd_ref(hw - j, b + j, y + j, h0 + j, h1 + j, scale, out + j);
    return ld;
}

void coupling_inv_avx2(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y) {
    const __m256 one = _mm256_set1_ps(1.0f), sc = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) {
        __m256 bv = _mm256_loadu_ps(b + j), m = _mm256_sub_ps(one, bv), v = _mm256_loadu_ps(yp + j);
        __m256 s = _mm256_mul_ps(_mm256_mul_ps(vtanh(_mm256_loadu_ps(h0 + j)), sc), m);
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(h1 + j), m);
        __m256 r = _mm256_add_ps(_mm256_mul_ps(bv, v), _mm256_mul_ps(m, _mm256_mul_ps(_mm256_sub_ps(v, t), vexp(_mm256_sub_ps(zero, s)))));
        _mm256_storeu_ps(y + j, r);
    }
    if (j < hw) coupling_inv_ref(hw - j, b + j, yp + j, h0 + j, h1 + j, scale, y + j);
}

double coupling_bwd_avx2(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                         const float *dout, double dld, float *dy, float *dh0, float *dh1) {
    const __m256 one = _mm256_set1_ps(1.0f), sc = _mm256_set1_ps(scale), dl = _mm256_set1_ps((float)dld);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) {
        __m256 bv = _mm256_loadu_ps(b + j), m = _mm256_sub_ps(one, bv), yv = _mm256_loadu_ps(y + j), g = _mm256_loadu_ps(dout + j);
        __m256 th = vtanh(_mm256_loadu_ps(h0 + j)), e = vexp(_mm256_mul_ps(_mm256_mul_ps(th, sc), m));
        _mm256_storeu_ps(dy + j, _mm256_mul_ps(g, _mm256_fmadd_ps(m, e, bv)));
        __m256 ds = _mm256_mul_ps(_mm256_fmadd_ps(_mm256_mul_ps(g, yv), e, dl), m);
        _mm256_storeu_ps(dh0 + j, _mm256_mul_ps(_mm256_mul_ps(ds, sc), _mm256_fnmadd_ps(th, th, one)));
        _mm256_storeu_ps(dh1 + j, _mm256_mul_ps(g, m));
        __m256 p = _mm256_mul_ps(ds, th);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    double dscale = hsum_pd(_mm256_add_pd(a0, a1));
    if (j < hw) dscale += coupling_bwd_ref(hw - j, b + j, y + j, h0 + j, h1 + j, scale, dout + j, dld, dy + j, dh0 + j, dh1 + j);
    return dscale;
}
