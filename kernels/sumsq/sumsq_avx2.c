/* AVX2+FMA chunk sum of squares: x (len <= 4096) -> sum x[i]^2 in double.
 * Four 4-lane double accumulators (16 partial sums: enough FMAs in flight to cover the latency), each element
 * converted to double and squared exactly by the FMA; the partial sums are combined in a fixed order, then the
 * scalar tail is added. One read of x; memory-bound. Measured (sumsq_test --bench, n = 10.7M, shared 2-core VM):
 * 1 thread 1.02-1.41 ms (30-42 GB/s, about the 1-thread triad of the same run, 31-37 GB/s); 2 threads 0.674 ms
 * (63.5 GB/s, 96% of the 2-thread triad) when the second core was free. */
#include <immintrin.h>

#include "sumsq.h"

double sumsq_chunk_avx2(const float *x, int64_t len) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
        __m256d d0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), d1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        __m256d d2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), d3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
        a2 = _mm256_fmadd_pd(d2, d2, a2);
        a3 = _mm256_fmadd_pd(d3, d3, a3);
    }
    __m256d a = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    double s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < len; i++) s += (double)x[i] * x[i];
    return s;
}
