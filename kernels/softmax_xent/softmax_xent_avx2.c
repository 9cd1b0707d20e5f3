/* AVX2+FMA softmax + cross-entropy (8 floats per ymm): softmax_xent_simd.h's blocked online softmax (its header comment
 * has the design, error bounds and measurements). Row tails by vector masks: vmaskmov loads / stores and a blend or an
 * AND (AVX2 has no mask registers; softmax_xent_avx512.c uses opmasks). Compiled with -mavx2 -mfma only. */
#include <math.h>

#include "softmax_xent.h"
#include "../common/vmath_avx2.h"

#include "../common/simd_avx2.h"
#define VEXP(y) vexp(y)
#define VHMAX(v) vhmax(v)
#define VHSUM_D(v) vhsum_d(v)
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)
#define VMASKZERO(m, v) _mm256_and_ps(v, _mm256_castsi256_ps(m))

static inline __m256 load_tail_ninf(const float *p, int64_t rem) {
    __m256i mask = vtail_mask(rem);
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
}
/* the last < 8 (fill) and < 16 (scale) elements one by one */
static inline void fill_tail(float *d, int64_t j, int64_t len, __m256 z, float val) {
    (void)z;
    for (; j < len; j++) d[j] = val;
}
static inline void scale_tail(float *d, int64_t j, int64_t len, __m256 vf, float f) {
    (void)vf;
    for (; j < len; j++) d[j] *= f;
}

#include "softmax_xent_simd.h"
