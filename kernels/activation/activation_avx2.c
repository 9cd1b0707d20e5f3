/* AVX2+FMA activations: activation_simd.h's body at 8 lanes (compare-and-blend selects, vmath_avx2.h's vexp and
 * vtanh); the tail (n % 8) through the reference. */
#include <immintrin.h>
#include <math.h>

#include "activation.h"
#include "../common/vmath_avx2.h"

#include "../common/simd_avx2.h"
#define VMASK __m256
#define VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define VLT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define VGT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define VUNORD(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define VSEL(a, b, k) _mm256_blendv_ps(a, b, k)
#define VAND0(a, k) _mm256_and_ps(a, k)
#define VEXP(x) vexp(x)
#define VTANH(x) vtanh(x)
#define TAILFN(name) name##_ref

#include "activation_simd.h"
