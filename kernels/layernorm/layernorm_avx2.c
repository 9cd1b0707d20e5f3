/* AVX2+FMA LayerNorm forward and backward over rows of C floats (the math is in layernorm_ref.c's header).
 *
 *   fwd: x, y (rows, C); w, b (C); mean, rstd (rows)              y may equal x
 *   bwd: x, dy, dx (rows, C); w (C); mean, rstd (rows); dw_part, db_part (C) overwritten with this chunk's sums
 *
 * A row (1.5 KB at C = 384) stays in L1 across its passes, so each row is read from memory once:
 *   fwd: (1) sum in double, 8 lanes; (2) sum of (x - mean)^2 in double around the double mean (exact centring:
 *        the variance keeps its accuracy when |mean| >> std); (3) y = fma((x - mean) * rstd, w, b) in float.
 *   bwd: (1) A = sum dy w, B = sum dy w xhat in double, 8 lanes each; (2) dx = rstd (dn - (A + xhat B)) and the
 *        chunk's dw/db sums in float, row after row (deterministic: fixed order within the chunk).
 * The double reductions cost 2 converts per 8 floats, cheap next to memory, and make the row statistics
 * accurate to ~1 ulp, so the test tolerances only carry the float rounding of the elementwise part and the
 * conditioning |mean| * rstd of centring with the saved float mean.
 * The last C % 8 elements go through masked loads and stores in the float passes and a scalar loop in the
 * double ones (same order every time).
 * Measured on the 2-core Zen 5 VM, shared with other builds (load average 2.3-2.7 during the run, so the
 * 2-thread figures are contended and noisy; best of the reps):
 *   N=2048 C=384: fwd 1 thr 0.290 ms (21.8 GB/s, 52% of a 42 GB/s triad), bwd 0.278 ms (34.1 GB/s, 81%);
 *   2 threads, best when the second core was free: fwd 0.164 ms (38.5 GB/s), bwd 0.188 ms (50.2 GB/s); runs
 *   with another process on that core took 0.6-1.2 ms. The bench reuses 3 MB arrays that can stay in the L3.
 */
#include <immintrin.h>
#include <math.h>

#include "layernorm.h"
#include "../common/vmath_avx2.h"

static inline __m256d lo4(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
static inline __m256d hi4(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
static inline double hsum4(__m256d v) {
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

static void fwd_row(int64_t c, float eps, const float *x, const float *w, const float *b, float *y, float *mean,
                    float *rstd) {
    const int64_t cv = c & ~(int64_t)7;
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    for (int64_t j = 0; j < cv; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        s0 = _mm256_add_pd(s0, lo4(v));
        s1 = _mm256_add_pd(s1, hi4(v));
    }
    double s = hsum4(_mm256_add_pd(s0, s1));
    for (int64_t j = cv; j < c; j++) s += x[j];
    const double m = s / c;
    const __m256d vm = _mm256_set1_pd(m);
    __m256d q0 = _mm256_setzero_pd(), q1 = q0;
    for (int64_t j = 0; j < cv; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        __m256d d0 = _mm256_sub_pd(lo4(v), vm), d1 = _mm256_sub_pd(hi4(v), vm);
        q0 = _mm256_fmadd_pd(d0, d0, q0);
        q1 = _mm256_fmadd_pd(d1, d1, q1);
    }
    double var = hsum4(_mm256_add_pd(q0, q1));
    for (int64_t j = cv; j < c; j++) var += ((double)x[j] - m) * ((double)x[j] - m);
    const float mf = (float)m, rf = (float)(1.0 / sqrt(var / c + eps));
    const __m256 vmf = _mm256_set1_ps(mf), vr = _mm256_set1_ps(rf);
    for (int64_t j = 0; j < cv; j += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmf), vr);
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(xh, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
    }
    if (cv < c) {
        __m256i k = vtail_mask(c - cv);
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + cv, k), vmf), vr);
        _mm256_maskstore_ps(y + cv, k, _mm256_fmadd_ps(xh, _mm256_maskload_ps(w + cv, k), _mm256_maskload_ps(b + cv, k)));
    }
    *mean = mf;
    *rstd = rf;
}

void layernorm_fwd_avx2(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b, float *y,
                        float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++) fwd_row(c, eps, x + i * c, w, b, y + i * c, mean + i, rstd + i);
}

void layernorm_bwd_avx2(int64_t rows, int64_t c, const float *x, const float *w, const float *mean, const float *rstd,
                        const float *dy, float *dx, float *dw_part, float *db_part) {
    const int64_t cv = c & ~(int64_t)7;
    for (int64_t j = 0; j < c; j++) dw_part[j] = db_part[j] = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c, *dyr = dy + i * c;
        float *dxr = dx + i * c;
        const float m = mean[i], r = rstd[i];
        const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
        for (int64_t j = 0; j < cv; j += 8) {
            __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(dyr + j), _mm256_loadu_ps(w + j));
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm), vr);
            __m256 p = _mm256_mul_ps(dn, xh);
            a0 = _mm256_add_pd(a0, lo4(dn));
            a1 = _mm256_add_pd(a1, hi4(dn));
            b0 = _mm256_add_pd(b0, lo4(p));
            b1 = _mm256_add_pd(b1, hi4(p));
        }
        double sa = hsum4(_mm256_add_pd(a0, a1)), sb = hsum4(_mm256_add_pd(b0, b1));
        for (int64_t j = cv; j < c; j++) {
            float dn = dyr[j] * w[j], xh = (xr[j] - m) * r;
            sa += dn;
            sb += dn * xh;
        }
        const __m256 va = _mm256_set1_ps((float)(sa / c)), vb = _mm256_set1_ps((float)(sb / c));
        for (int64_t j = 0; j < cv; j += 8) {
            __m256 g = _mm256_loadu_ps(dyr + j);
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vm), vr);
            _mm256_storeu_ps(dw_part + j, _mm256_fmadd_ps(g, xh, _mm256_loadu_ps(dw_part + j)));
            _mm256_storeu_ps(db_part + j, _mm256_add_ps(g, _mm256_loadu_ps(db_part + j)));
            __m256 t = _mm256_fmadd_ps(xh, vb, va); /* A + xhat B */
            _mm256_storeu_ps(dxr + j, _mm256_mul_ps(vr, _mm256_fmsub_ps(g, _mm256_loadu_ps(w + j), t)));
        }
        if (cv < c) {
            __m256i k = vtail_mask(c - cv);
            __m256 g = _mm256_maskload_ps(dyr + cv, k);
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + cv, k), vm), vr);
            _mm256_maskstore_ps(dw_part + cv, k, _mm256_fmadd_ps(g, xh, _mm256_maskload_ps(dw_part + cv, k)));
            _mm256_maskstore_ps(db_part + cv, k, _mm256_add_ps(g, _mm256_maskload_ps(db_part + cv, k)));
            __m256 t = _mm256_fmadd_ps(xh, vb, va);
            _mm256_maskstore_ps(dxr + cv, k, _mm256_mul_ps(vr, _mm256_fmsub_ps(g, _mm256_maskload_ps(w + cv, k), t)));
        }
    }
}
