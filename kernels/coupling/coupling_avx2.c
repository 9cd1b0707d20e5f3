/* AVX2 affine coupling: coupling_simd.h's body at 8 lanes, with vmath_avx2.h's vexp and vtanh; per-image sums in
 * double, 4 lanes per accumulator, combined in a fixed order. The row tail goes through the reference. */
#include <immintrin.h>

#include "coupling.h"
#include "../common/vmath_avx2.h"

static inline double hsum_pd(__m256d v) {
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

#include "../common/simd_avx2.h"
#define VEXP(x) vexp(x)
#define VTANH(x) vtanh(x)
#define VLO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define VHI(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))
#define VDHSUM(v) hsum_pd(v)
#define TAILFN(name) name##_ref

#include "coupling_simd.h"
