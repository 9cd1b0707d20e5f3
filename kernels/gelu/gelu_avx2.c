/* AVX2+FMA exact GELU (8 floats per ymm): gelu_simd.h's normal CDF through the upper tail (its header comment has the
 * method, the error measurements and the costs). Compiled with -mavx2 -mfma only. */
#include <math.h>

#include "gelu.h"
#include "../common/vmath_avx2.h"

#include "../common/simd_avx2.h"
#define VANDNOT(a, b) _mm256_andnot_ps(a, b)
#define VFNMADD(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VEXP(y) vexp(y)
/* BLENDVPS selects by each lane's sign bit directly (AVX-512 has no BLENDVPS on zmm: an opmask from the sign bits) */
#define SIGN_SELECT(x, neg, pos) _mm256_blendv_ps(pos, neg, x)
/* tails by vector masks and vmaskmov (no mask registers before AVX-512) */
#define VMASK __m256i
#define VTAIL(rem) vtail_mask((rem) < 8 ? (rem) : 8)

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
