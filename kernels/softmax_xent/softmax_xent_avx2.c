/* AVX2+FMA softmax + cross-entropy (8 floats per ymm): softmax_xent_simd.h's blocked online softmax (its header comment
 * has the design, error bounds and measurements). Row tails by vector masks: vmaskmov loads / stores and a blend or an
 * AND (AVX2 has no mask registers; softmax_xent_avx512.c uses opmasks). Compiled with -mavx2 -mfma only. */
#include <math.h>

#include "softmax_xent.h"
#include "../common/vmath_avx2.h"

#define V __m256
#define VL 8
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VEXP(y) vexp(y)
#define VHMAX(v) vhmax(v)
#define VHSUM_D(v) vhsum_d(v)
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)
#define VMASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define VMASKZERO(m, v) _mm256_and_ps(v, _mm256_castsi256_ps(m))
#define SFX(name) name##_avx2

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
