/* AVX-512 LayerNorm forward and backward: layernorm_avx2.c's passes (double row statistics around the double
 * mean, then the float elementwise pass), 16 floats per step: the double sums take 8 doubles per zmm (so their
 * order differs from the AVX2 path's; both within layernorm_test's bounds of the double reference), the float
 * passes end in opmask-masked loads and stores, the double passes in the same scalar tail as AVX2 (C % 16).
 * Deterministic: fixed order inside a row and, for dw / db, inside the chunk (layernorm.c).
 * Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>
#include <math.h>

#include "layernorm.h"

static inline __m512d lo8(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d hi8(__m512 v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline double hsum8(__m512d v) {
    const __m256d a = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}
static inline __mmask16 tail16(int64_t rem) { return (__mmask16)((1u << rem) - 1); } /* 0 < rem < 16 */

static void fwd_row(int64_t c, float eps, const float *x, const float *w, const float *b, float *y, float *mean,
                    float *rstd) {
    const int64_t cv = c & ~(int64_t)15;
    __m512d s0 = _mm512_setzero_pd(), s1 = s0;
    for (int64_t j = 0; j < cv; j += 16) {
        const __m512 v = _mm512_loadu_ps(x + j);
        s0 = _mm512_add_pd(s0, lo8(v));
        s1 = _mm512_add_pd(s1, hi8(v));
    }
    double s = hsum8(_mm512_add_pd(s0, s1));
    for (int64_t j = cv; j < c; j++) s += x[j];
    const double m = s / c;
    const __m512d vm = _mm512_set1_pd(m);
    __m512d q0 = _mm512_setzero_pd(), q1 = q0;
    for (int64_t j = 0; j < cv; j += 16) {
        const __m512 v = _mm512_loadu_ps(x + j);
        const __m512d d0 = _mm512_sub_pd(lo8(v), vm), d1 = _mm512_sub_pd(hi8(v), vm);
        q0 = _mm512_fmadd_pd(d0, d0, q0);
        q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    double var = hsum8(_mm512_add_pd(q0, q1));
    for (int64_t j = cv; j < c; j++) var += ((double)x[j] - m) * ((double)x[j] - m);
    const float mf = (float)m, rf = (float)(1.0 / sqrt(var / c + eps));
    const __m512 vmf = _mm512_set1_ps(mf), vr = _mm512_set1_ps(rf);
    for (int64_t j = 0; j < cv; j += 16) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), vmf), vr);
        _mm512_storeu_ps(y + j, _mm512_fmadd_ps(xh, _mm512_loadu_ps(w + j), _mm512_loadu_ps(b + j)));
    }
    if (cv < c) {
        const __mmask16 k = tail16(c - cv);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + cv), vmf), vr);
        _mm512_mask_storeu_ps(y + cv, k, _mm512_fmadd_ps(xh, _mm512_maskz_loadu_ps(k, w + cv), _mm512_maskz_loadu_ps(k, b + cv)));
    }
    *mean = mf;
    *rstd = rf;
}

void layernorm_fwd_avx512(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b, float *y,
                          float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++) fwd_row(c, eps, x + i * c, w, b, y + i * c, mean + i, rstd + i);
}

void layernorm_bwd_avx512(int64_t rows, int64_t c, const float *x, const float *w, const float *mean, const float *rstd,
                          const float *dy, float *dx, float *dw_part, float *db_part) {
    const int64_t cv = c & ~(int64_t)15;
    for (int64_t j = 0; j < c; j++) dw_part[j] = db_part[j] = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c, *dyr = dy + i * c;
        float *dxr = dx + i * c;
        const float m = mean[i], r = rstd[i];
        const __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r);
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
        for (int64_t j = 0; j < cv; j += 16) {
            const __m512 dn = _mm512_mul_ps(_mm512_loadu_ps(dyr + j), _mm512_loadu_ps(w + j));
            const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + j), vm), vr);
            const __m512 p = _mm512_mul_ps(dn, xh);
            a0 = _mm512_add_pd(a0, lo8(dn));
            a1 = _mm512_add_pd(a1, hi8(dn));
            b0 = _mm512_add_pd(b0, lo8(p));
            b1 = _mm512_add_pd(b1, hi8(p));
        }
        double sa = hsum8(_mm512_add_pd(a0, a1)), sb = hsum8(_mm512_add_pd(b0, b1));
        for (int64_t j = cv; j < c; j++) {
            const float dn = dyr[j] * w[j], xh = (xr[j] - m) * r;
            sa += dn;
            sb += dn * xh;
        }
        const __m512 va = _mm512_set1_ps((float)(sa / c)), vb = _mm512_set1_ps((float)(sb / c));
        for (int64_t j = 0; j < cv; j += 16) {
            const __m512 g = _mm512_loadu_ps(dyr + j);
            const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + j), vm), vr);
            _mm512_storeu_ps(dw_part + j, _mm512_fmadd_ps(g, xh, _mm512_loadu_ps(dw_part + j)));
            _mm512_storeu_ps(db_part + j, _mm512_add_ps(g, _mm512_loadu_ps(db_part + j)));
            const __m512 t = _mm512_fmadd_ps(xh, vb, va); /* A + xhat B */
            _mm512_storeu_ps(dxr + j, _mm512_mul_ps(vr, _mm512_fmsub_ps(g, _mm512_loadu_ps(w + j), t)));
        }
        if (cv < c) {
            const __mmask16 k = tail16(c - cv);
            const __m512 g = _mm512_maskz_loadu_ps(k, dyr + cv);
            const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + cv), vm), vr);
            _mm512_mask_storeu_ps(dw_part + cv, k, _mm512_fmadd_ps(g, xh, _mm512_maskz_loadu_ps(k, dw_part + cv)));
            _mm512_mask_storeu_ps(db_part + cv, k, _mm512_add_ps(g, _mm512_maskz_loadu_ps(k, db_part + cv)));
            const __m512 t = _mm512_fmadd_ps(xh, vb, va);
            _mm512_mask_storeu_ps(dxr + cv, k, _mm512_mul_ps(vr, _mm512_fmsub_ps(g, _mm512_maskz_loadu_ps(k, w + cv), t)));
        }
    }
}
