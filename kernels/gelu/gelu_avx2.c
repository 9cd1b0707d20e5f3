/* AVX2+FMA exact GELU (8 floats per ymm): gelu_simd.h's normal CDF through the upper tail (its header comment has the
 * method, the error measurements and the costs). Compiled with -mavx2 -mfma only. */
#include <math.h>

#include "gelu.h"
#include "../common/vmath_avx2.h"

#define V __m256
#define VL 8
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VANDNOT(a, b) _mm256_andnot_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFMSUB(a, b, c) _mm256_fmsub_ps(a, b, c)
#define VFNMADD(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VEXP(y) vexp(y)
#define SFX(name) name##_avx2
/* BLENDVPS selects by each lane's sign bit directly (AVX-512 has no BLENDVPS on zmm: an opmask from the sign bits) */
#define SIGN_SELECT(x, neg, pos) _mm256_blendv_ps(pos, neg, x)
/* tails by vector masks and vmaskmov (no mask registers before AVX-512) */
#define VMASK __m256i
#define VTAIL(rem) vtail_mask((rem) < 8 ? (rem) : 8)
#define VMASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)

#include "gelu_simd.h"

/* gelu_test's hook into vexp and ncdf (8 lanes; the AVX-512 level has the same operations) */
void gelu_vmath_avx2(int which, int64_t n, const float *in, float *out) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = vtail_mask(n - i < 8 ? n - i : 8);
        __m256 v = _mm256_maskload_ps(in + i, m), r, pdf;
        if (which == 0) r = vexp(v);
        else {
            r = ncdf(v, &pdf);
            if (which == 2) r = pdf;
        }
        _mm256_maskstore_ps(out + i, m, r);
    }
}
