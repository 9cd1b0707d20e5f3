/* AVX2+FMA activations: activation_simd.h's body at 8 lanes (compare-and-blend selects, vmath_avx2.h's vexp and
 * vtanh); the tail (n % 8) through the reference. */
#include <immintrin.h>
#include <math.h>

#include "activation.h"
#include "../common/vmath_avx2.h"

#define V __m256
#define VL 8
#define VMASK __m256
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define VLT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define VGT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define VUNORD(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define VSEL(a, b, k) _mm256_blendv_ps(a, b, k)
#define VAND0(a, k) _mm256_and_ps(a, k)
#define VEXP(x) vexp(x)
#define VTANH(x) vtanh(x)
#define TAILFN(name) name##_ref
#define SFX(name) name##_avx2

#include "activation_simd.h"
