/* AVX2+FMA exact GELU: y = x Phi(x), dx = dy (Phi(x) + x phi(x)), Phi the normal CDF = (1 + erf(x/sqrt2)) / 2.
 *
 *   x, y, dy, dx: (n) contiguous, y may equal x, dx may equal dy. 8 lanes per step, masked tail.
 *
 * The erf is evaluated as the normal CDF directly, through the upper tail Q(a) = 1 - Phi(a), a = |x|:
 *   Q(a) = exp(-a^2/2) * T(q) / (a + K),   q = (a - K) / (a + K) in [-1, 1),   K = 4.25,
 * the form of Shepherd & Laframboise (Math. Comp. 36, 1981) for (1 + 2z) exp(z^2) erfc(z), moved to x = z sqrt2
 * so no x / sqrt2 is rounded (that rounding alone costs 2 z^2 ulp in the tail). T is a degree-9 polynomial fitted
 * here for minimax relative error on a in [0, 13.5] (Lawson-reweighted least squares, coefficients rounded to
 * float one at a time and the rest refitted): 3.9e-9 relative, 0.06 ulp. One division gives r = 1/(a + K) for
 * both q = 2a r - 1 and the prefactor; the rounding of a + K is corrected exactly (Fast2Sum).
 * exp(-a^2/2) keeps its accuracy for large a by splitting a^2 = s + sl exactly with an FMA:
 * exp(-s/2) (1 - sl/2). Then Phi(x) = Q(a) for x < 0 and 1 - Q(a) for x >= 0, so both tails keep their
 * relative accuracy; phi(x) = exp(-a^2/2) / sqrt(2 pi) comes for free for the backward.
 * Why not 1 + erf(x/sqrt2): for x < 0 it cancels; even an erf correct to 1 ulp leaves GELU(-5) with up to 5%
 * relative error (half an ulp of 1 against 2 Phi(-5) = 5.7e-7). Here both tails keep a few ulp.
 * Measured, gelu_test --sweep, every float in [-14, 14] against double erfc/exp (exp: every float in [-87.3, 0]);
 * error relative to the exact value in units of u = 2^-24, and in ulps of the result:
 *   vexp  1.42 u (1.01 ulp)     Phi  4.93 u (4.29 ulp, worst near x = 0.01: T's Horner sum at q ~ -1)
 *   phi   3.35 u (2.74 ulp)     GELU 5.78 u (4.61 ulp) for |y| >= 1e-36; GELU' 5.68 u of Phi + |x| phi
 * Limits: |x| is clamped to 13.5 before use (Phi(-13.5) < FLT_MIN: vexp flushes it to 0), so y(-inf) = -0,
 * y(+inf) = +inf, dx = dy * 1 at +inf and dy * 0 at -inf; NaN gives NaN (every min/max keeps its NaN operand).
 * Cost: ~50 vector ops per 8 elements (one exp, one division, a degree-9 polynomial): compute-bound on one
 * core; see the measured throughput below.
 * Measured on the 2-core Zen 5 VM, shared with other builds (load average 2.3-2.7 during the run, so the
 * 2-thread figures are contended and noisy; best of the reps):
 *   n = 2048*1536: fwd 1 thr 2.90 ms (8.7 GB/s), bwd 3.32 ms (11.4 GB/s); STREAM triad 44 GB/s. ~0.9 ns per
 *   element per core: compute-bound. In cache (n = 65536) 2 threads halve it (fwd 0.060 -> 0.032 ms); every
 *   out-of-cache 2-thread run here had another process on the second core and was no faster (3.15-3.47 ms).
 */
#include <math.h>

#include "gelu.h"
#include "../common/vmath_avx2.h"

#define XMAX 13.5f /* Phi(-13.5) ~ 7.7e-42: past it every result is the limit */
#define K 4.25f

/* Phi(x) and, when pdf != NULL, phi(x) (of |x| clamped to XMAX). */
static inline __m256 ncdf(__m256 x, __m256 *pdf) {
    const __m256 a = _mm256_min_ps(_mm256_set1_ps(XMAX), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x));
    const __m256 s = _mm256_mul_ps(a, a);
    const __m256 sl = _mm256_fmsub_ps(a, a, s); /* a^2 = s + sl exactly */
    __m256 e = vexp(_mm256_mul_ps(s, _mm256_set1_ps(-0.5f)));
    e = _mm256_fnmadd_ps(_mm256_mul_ps(e, sl), _mm256_set1_ps(0.5f), e); /* exp(-a^2/2) = exp(-s/2) (1 - sl/2) */
    /* r = 1 / (a + K) to ~0.5 ulp: a + K rounds by up to an ulp of ~4 (1 u of r, as much as the division); the
     * rounding error lo of d = a + K is exact (Fast2Sum, larger operand first) and r (1 - r lo) removes it. */
    const __m256 vk = _mm256_set1_ps(K), d = _mm256_add_ps(a, vk);
    const __m256 lo = _mm256_add_ps(_mm256_sub_ps(_mm256_max_ps(a, vk), d), _mm256_min_ps(a, vk));
    __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), d);
    r = _mm256_fnmadd_ps(_mm256_mul_ps(r, lo), r, r);
    /* q = (a - K) r written as 2a r - 1 with one rounding: near a = 0, where T' / T is largest, the error of r
     * is scaled by 1 + q ~ 0 (as (a - K) r, rounding a - K and r cost up to 6 ulp of Phi there). */
    const __m256 q = _mm256_fmsub_ps(_mm256_add_ps(a, a), r, _mm256_set1_ps(1.0f));
    __m256 t = _mm256_set1_ps(-0x1.f21ea2p-13f);
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(-0x1.886cdcp-12f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(0x1.1d7c6cp-9f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(-0x1.87d224p-11f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(-0x1.3d3d94p-6f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(0x1.5d45fap-4f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(-0x1.c39de2p-3f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(0x1.ac43d8p-2f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(-0x1.401102p-1f));
    t = _mm256_fmadd_ps(t, q, _mm256_set1_ps(0x1.84e44ap-1f));
    const __m256 tail = _mm256_mul_ps(_mm256_mul_ps(e, r), t); /* Q(a) = 1 - Phi(a) */
    if (pdf) *pdf = _mm256_mul_ps(e, _mm256_set1_ps(0x1.988454p-2f)); /* 1/sqrt(2 pi) */
    /* the sign bit of x picks Q(a) (x < 0, and -0: Q(0) = 1/2) or 1 - Q(a) */
    return _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), tail), tail, x);
}

static inline __m256 gelu8(__m256 x) {
    /* x >= -XMAX keeps -inf * 0 from making a NaN; above XMAX, Phi = 1 and y = x. */
    return _mm256_mul_ps(_mm256_max_ps(_mm256_set1_ps(-XMAX), x), ncdf(x, NULL));
}

static inline __m256 dgelu8(__m256 x, __m256 dy) {
    __m256 pdf;
    const __m256 cdf = ncdf(x, &pdf);
    const __m256 xc = _mm256_min_ps(_mm256_set1_ps(XMAX), _mm256_max_ps(_mm256_set1_ps(-XMAX), x));
    return _mm256_mul_ps(dy, _mm256_fmadd_ps(xc, pdf, cdf));
}

void gelu_fwd_avx2(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = gelu8(_mm256_loadu_ps(x + i)), b = gelu8(_mm256_loadu_ps(x + i + 8));
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i < n; i += 8) {
        __m256i m = vtail_mask(n - i < 8 ? n - i : 8);
        _mm256_maskstore_ps(y + i, m, gelu8(_mm256_maskload_ps(x + i, m)));
    }
}

void gelu_bwd_avx2(int64_t n, const float *x, const float *dy, float *dx) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = dgelu8(_mm256_loadu_ps(x + i), _mm256_loadu_ps(dy + i));
        __m256 b = dgelu8(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(dy + i + 8));
        _mm256_storeu_ps(dx + i, a);
        _mm256_storeu_ps(dx + i + 8, b);
    }
    for (; i < n; i += 8) {
        __m256i m = vtail_mask(n - i < 8 ? n - i : 8);
        _mm256_maskstore_ps(dx + i, m, dgelu8(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(dy + i, m)));
    }
}

void gelu_vmath_avx2(int which, int64_t n, const float *in, float *out) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = vtail_mask(n - i < 8 ? n - i : 8);
        __m256 v = _mm256_maskload_ps(in + i, m), r, pdf;
        if (which == 0) r = vexp(v);
        else {
            r = ncdf(v, &pdf);
            if (which == 2) r = pdf;
        }
        _mm256_maskstore_ps(out + i, m, r);
    }
}
