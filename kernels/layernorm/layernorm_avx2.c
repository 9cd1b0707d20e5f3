/* AVX2+FMA LayerNorm forward and backward (8 floats per ymm, 4 doubles for the row statistics): layernorm_simd.h's
 * passes (its header comment has the design and the measurements). Compiled with -mavx2 -mfma only. */
#include <immintrin.h>

#include "layernorm.h"
#include "../common/vmath_avx2.h"

static inline __m256d lo4(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
static inline __m256d hi4(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
static inline double hsum4(__m256d v) {
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
#define VFMSUB(a, b, c) _mm256_fmsub_ps(a, b, c)
#define VD __m256d
#define VDZERO() _mm256_setzero_pd()
#define VDSET1(x) _mm256_set1_pd(x)
#define VDADD(a, b) _mm256_add_pd(a, b)
#define VDSUB(a, b) _mm256_sub_pd(a, b)
#define VDFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VLO(v) lo4(v)
#define VHI(v) hi4(v)
#define VDHSUM(v) hsum4(v)
/* the float passes' tail by vector masks and vmaskmov (no mask registers before AVX-512) */
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)
#define VMASKLOAD(p, k) _mm256_maskload_ps(p, k)
#define VMASKSTORE(p, k, v) _mm256_maskstore_ps(p, k, v)
#define SFX(name) name##_avx2

#include "layernorm_simd.h"
