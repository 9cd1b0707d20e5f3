/* AVX2 BatchNorm2d: the reference's algorithm per channel with the position loop vectorised. Sums go to four
 * double accumulators (8 floats widened per step) combined in a fixed order, so results are deterministic for any
 * thread count (they may differ from the reference in the last bits: a different summation order). The
 * elementwise passes use y = x * scale + shift with scale = rstd gamma, shift = beta - mean scale (one FMA). */
#include <immintrin.h>
#include <math.h>

#include "batchnorm.h"

static inline __m256d widen_lo(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
static inline __m256d widen_hi(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
static inline double hsum(__m256d v) {
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

/* sum and sum of (x - m)^2 over one row of hw floats, in double */
static void row_sums(const float *x, int64_t hw, double m, double *s, double *q, int centred) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), md = _mm256_set1_pd(m);
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        __m256d lo = widen_lo(v), hi = widen_hi(v);
        if (centred) {
            lo = _mm256_sub_pd(lo, md); hi = _mm256_sub_pd(hi, md);
            a0 = _mm256_fmadd_pd(lo, lo, a0); a1 = _mm256_fmadd_pd(hi, hi, a1);
        } else {
            a0 = _mm256_add_pd(a0, lo); a1 = _mm256_add_pd(a1, hi);
        }
    }
    double r = hsum(_mm256_add_pd(a0, a1));
    for (; j < hw; j++) { double d = x[j] - (centred ? m : 0); r += centred ? d * d : d; }
    if (centred) *q += r; else *s += r;
}

static void apply(const float *x, float *y, int64_t hw, float scale, float shift) {
    __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
    int64_t j = 0;
    for (; j + 8 <= hw; j += 8) _mm256_storeu_ps(y + j, _mm256_fmadd_ps(_mm256_loadu_ps(x + j), sc, sh));
    for (; j < hw; j++) y[j] = fmaf(x[j], scale, shift);
}

void bn_train_avx2(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double cnt = (double)n * hw, s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) row_sums(a->x + (i * c + ch) * hw, hw, 0, &s, &q, 0);
    double mean = s / cnt;
    for (int64_t i = 0; i < n; i++) row_sums(a->x + (i * c + ch) * hw, hw, mean, &s, &q, 1);
    double var = q / cnt, rstd = 1.0 / sqrt(var + a->eps);
    double g = a->gamma ? a->gamma[ch] : 1.0, b = a->beta ? a->beta[ch] : 0.0;
    float scale = (float)(rstd * g), shift = (float)(b - mean * rstd * g);
    for (int64_t i = 0; i < n; i++) apply(a->x + (i * c + ch) * hw, a->y + (i * c + ch) * hw, hw, scale, shift);
    a->mean[ch] = (float)mean;
    a->rstd[ch] = (float)rstd;
    if (a->rmean) a->rmean[ch] = (float)((1.0 - a->momentum) * a->rmean[ch] + a->momentum * mean);
    if (a->rvar) a->rvar[ch] = (float)((1.0 - a->momentum) * a->rvar[ch] + a->momentum * (cnt > 1 ? q / (cnt - 1) : var));
}

void bn_infer_avx2(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double rstd = 1.0 / sqrt((double)a->var_in[ch] + a->eps), m = a->mean_in[ch];
    double g = a->gamma ? a->gamma[ch] : 1.0, b = a->beta ? a->beta[ch] : 0.0;
    float scale = (float)(rstd * g), shift = (float)(b - m * rstd * g);
    for (int64_t i = 0; i < n; i++) apply(a->x + (i * c + ch) * hw, a->y + (i * c + ch) * hw, hw, scale, shift);
}

void bn_bwd_avx2(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double cnt = (double)n * hw, m = a->mean[ch], rstd = a->rstd[ch], g = a->gamma ? a->gamma[ch] : 1.0;
    double sdy = 0, sdyx = 0;
    __m256d md = _mm256_set1_pd(m), rd = _mm256_set1_pd(rstd);
    for (int64_t i = 0; i < n; i++) {
        const float *x = a->x + (i * c + ch) * hw, *dy = a->dy + (i * c + ch) * hw;
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
        int64_t j = 0;
        for (; j + 8 <= hw; j += 8) {
            __m256 xv = _mm256_loadu_ps(x + j), dv = _mm256_loadu_ps(dy + j);
            __m256d dlo = widen_lo(dv), dhi = widen_hi(dv);
            __m256d xlo = _mm256_mul_pd(_mm256_sub_pd(widen_lo(xv), md), rd), xhi = _mm256_mul_pd(_mm256_sub_pd(widen_hi(xv), md), rd);
            s0 = _mm256_add_pd(s0, dlo); s1 = _mm256_add_pd(s1, dhi);
            q0 = _mm256_fmadd_pd(dlo, xlo, q0); q1 = _mm256_fmadd_pd(dhi, xhi, q1);
        }
        double rs = hsum(_mm256_add_pd(s0, s1)), rq = hsum(_mm256_add_pd(q0, q1));
        for (; j < hw; j++) { double d = dy[j], xh = (x[j] - m) * rstd; rs += d; rq += d * xh; }
        sdy += rs;
        sdyx += rq;
    }
    /* dx = rstd g dy - rstd k1 - rstd k2 (x - m) rstd  =  A dy + B x + C */
    double k1 = g * sdy / cnt, k2 = g * sdyx / cnt;
    float A = (float)(rstd * g), B = (float)(-rstd * rstd * k2), C = (float)(-rstd * k1 + rstd * rstd * k2 * m);
    __m256 av = _mm256_set1_ps(A), bv = _mm256_set1_ps(B), cv = _mm256_set1_ps(C);
    for (int64_t i = 0; i < n; i++) {
        const float *x = a->x + (i * c + ch) * hw, *dy = a->dy + (i * c + ch) * hw;
        float *dx = a->dx + (i * c + ch) * hw;
        int64_t j = 0;
        for (; j + 8 <= hw; j += 8)
            _mm256_storeu_ps(dx + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(dy + j), _mm256_fmadd_ps(bv, _mm256_loadu_ps(x + j), cv)));
        for (; j < hw; j++) dx[j] = fmaf(A, dy[j], fmaf(B, x[j], C));
    }
    if (a->dgamma) a->dgamma[ch] += (float)sdyx;
    if (a->dbeta) a->dbeta[ch] += (float)sdy;
}
