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

#include "../common/simd_avx2.h"
#define VDSET1(x) _mm256_set1_pd(x)
#define VDSUB(a, b) _mm256_sub_pd(a, b)
#define VDFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VLO(v) lo4(v)
#define VHI(v) hi4(v)
#define VDHSUM(v) hsum4(v)
/* the float passes' tail by vector masks and vmaskmov (no mask registers before AVX-512) */
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)

#include "layernorm_simd.h"
