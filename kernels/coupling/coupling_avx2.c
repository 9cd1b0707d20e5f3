/* AVX2 affine coupling: coupling_simd.h's body at 8 lanes, with vmath_avx2.h's vexp and vtanh; per-image sums in
 * double, 4 lanes per accumulator, combined in a fixed order. The row tail goes through the reference. */
#include <immintrin.h>

#include "coupling.h"
#include "../common/vmath_avx2.h"

static inline double hsum_pd(__m256d v) {
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

#define V __m256
#define VL 8
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VEXP(x) vexp(x)
#define VTANH(x) vtanh(x)
#define VD __m256d
#define VDZERO() _mm256_setzero_pd()
#define VDADD(a, b) _mm256_add_pd(a, b)
#define VLO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define VHI(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))
#define VDHSUM(v) hsum_pd(v)
#define SFX(name) name##_avx2
#define TAILFN(name) name##_ref

#include "coupling_simd.h"
