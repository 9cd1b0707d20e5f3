/* AVX-512 exact GELU: gelu_simd.h's operations, the body shared with gelu_avx2.c (the same normal CDF through the
 * upper tail, the same vexp), 16 lanes per vector, in the same order, so y and dx have the AVX2 path's bits (gelu_test checks avx512 against avx2
 * bit for bit, and both against the double reference). The quadrant-free parts change only in form: the sign
 * select by an opmask from the sign bits (VPMOVD2M) instead of BLENDVPS, exp's underflow by zero-masking, and
 * the tail by masked loads and stores.
 * Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>

#include "gelu.h"
#include "../common/vmath_avx512.h"

#define V __m512
#define VL 16
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VANDNOT(a, b) _mm512_andnot_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VFMSUB(a, b, c) _mm512_fmsub_ps(a, b, c)
#define VFNMADD(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VEXP(y) vexp16(y)
#define SFX(name) name##_avx512
/* the sign bits of x as an opmask (VPMOVD2M), then a masked blend: BLENDVPS has no zmm form */
#define SIGN_SELECT(x, neg, pos) _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(x)), pos, neg)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)
#define VMASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)

#include "gelu_simd.h"
