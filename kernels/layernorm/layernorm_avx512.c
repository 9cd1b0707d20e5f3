/* AVX-512 LayerNorm forward and backward: layernorm_simd.h's passes, the body shared with layernorm_avx2.c (double
 * row statistics around the double mean, then the float elementwise pass), 16 floats per step: the double sums take 8 doubles per zmm (so their
 * order differs from the AVX2 path's; both within layernorm_test's bounds of the double reference), the float
 * passes end in opmask-masked loads and stores, the double passes in the same scalar tail as AVX2 (C % 16).
 * Deterministic: fixed order inside a row and, for dw / db, inside the chunk (layernorm.c).
 * Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>

#include "layernorm.h"

static inline __m512d lo8(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d hi8(__m512 v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
/* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline double hsum8(__m512d v) {
    const __m256d a = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}
static inline __mmask16 tail16(int64_t rem) { return (__mmask16)((1u << rem) - 1); } /* 0 < rem < 16 */

#include "../common/simd_avx512.h"
#define VDSET1(x) _mm512_set1_pd(x)
#define VDSUB(a, b) _mm512_sub_pd(a, b)
#define VDFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VLO(v) lo8(v)
#define VHI(v) hi8(v)
#define VDHSUM(v) hsum8(v)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)

#include "layernorm_simd.h"
