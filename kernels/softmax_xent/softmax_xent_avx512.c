/* AVX-512 softmax + cross-entropy: softmax_xent_simd.h's blocked online softmax (same blocks, same two-pass
 * gradient, same special-row rules; the body shared with softmax_xent_avx2.c), 16 lanes per vector: two 16-lane
 * float accumulators per block (reduced to 8 lanes, then vmath_avx2.h's fixed double sum), vexp16 (vmath's vexp 16
 * wide, underflow by zero-masking), row tails by opmask loads and stores. Error bound as in softmax_xent_simd.h with
 * B/32 + 4 u for the block sums (softmax_xent_test.c's tolerance covers it). Speed: BENCHMARKS.md (memory-bound ops,
 * AVX-512). */
#include <immintrin.h>
#include <math.h>

#include "softmax_xent.h"
#include "../common/vmath_avx512.h"

#include "../common/simd_avx512.h"
#define VEXP(y) vexp16(y)
#define VHMAX(v) vhmax16(v)
#define VHSUM_D(v) vhsum16_d(v)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)
#define VMASKZERO(m, v) _mm512_maskz_mov_ps(m, v)

static inline __m512 load_tail_ninf(const float *p, int64_t rem) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail16(rem), p);
}
/* the tails by opmask stores: one for fill's < 16 elements, up to two for scale's < 32 */
static inline void fill_tail(float *d, int64_t j, int64_t len, __m512 z, float val) {
    (void)val;
    if (j < len) _mm512_mask_storeu_ps(d + j, tail16(len - j), z);
}
static inline void scale_tail(float *d, int64_t j, int64_t len, __m512 vf, float f) {
    (void)f;
    for (; j < len; j += 16) {
        const __mmask16 mk = tail16(len - j);
        _mm512_mask_storeu_ps(d + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, d + j), vf));
    }
}

#include "softmax_xent_simd.h"
