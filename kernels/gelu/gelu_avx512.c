/* AVX-512 exact GELU: gelu_simd.h's operations, the body shared with gelu_avx2.c (the same normal CDF through the
 * upper tail, the same vexp), 16 lanes per vector, in the same order, so y and dx have the AVX2 path's bits (gelu_test checks avx512 against avx2
 * bit for bit, and both against the double reference). The quadrant-free parts change only in form: the sign
 * select by an opmask from the sign bits (VPMOVD2M) instead of BLENDVPS, exp's underflow by zero-masking, and
 * the tail by masked loads and stores.
 * Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>

#include "gelu.h"
#include "../common/vmath_avx512.h"

#include "../common/simd_avx512.h"
#define VANDNOT(a, b) _mm512_andnot_ps(a, b)
#define VFNMADD(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VEXP(y) vexp16(y)
/* the sign bits of x as an opmask (VPMOVD2M), then a masked blend: BLENDVPS has no zmm form */
#define SIGN_SELECT(x, neg, pos) _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(x)), pos, neg)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)

#include "gelu_simd.h"
