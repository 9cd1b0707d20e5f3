/* AVX-512 affine coupling: coupling_simd.h's body at 16 lanes, with vmath_avx512.h's vexp16 / vtanh16 (the AVX2
 * ones' operations lane for lane: each output element has coupling_avx2.c's bits); per-image sums in double, 8 lanes
 * per accumulator, so logdet / dscale are summed in another order than at AVX2 (both within coupling_test's
 * bounds). Deterministic: fixed order within an image, images combined in order (coupling.c). The row tail
 * (hw % 16) goes to coupling_*_avx2 (8 lanes, then the reference), so tails keep the AVX2 bits too. Speed: BENCHMARKS.md ("Memory-bound ops at AVX-512, measured"). */
#include <immintrin.h>

#include "coupling.h"
#include "../common/vmath_avx512.h"

/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline double hsum8_pd(__m512d v) {
    const __m256d a = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

#include "../common/simd_avx512.h"
#define VEXP(x) vexp16(x)
#define VTANH(x) vtanh16(x)
#define VLO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define VHI(v) _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1))
#define VDHSUM(v) hsum8_pd(v)
#define TAILFN(name) name##_avx2

#include "coupling_simd.h"
