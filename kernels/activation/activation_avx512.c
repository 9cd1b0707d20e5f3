/* AVX-512 activations, forward only (the backward measured no consistent gain and stays act_bwd_avx2):
 * activation_simd.h's body at 16 lanes (opmask selects, vmath_avx512.h's vexp16 / vtanh16, which
 * are vexp / vtanh lane for lane); the tail (n % 16) goes to act_*_avx2 (8 lanes, then the reference), so every
 * element has activation_avx2.c's bits. Dispatched at ISA avx512 (activation.c). Speed: BENCHMARKS.md
 * ("Memory-bound ops at AVX-512, measured", issue 15). */
#include <immintrin.h>
#include <math.h>

#include "activation.h"
#include "../common/vmath_avx512.h"

#include "../common/simd_avx512.h"
#define VMASK __mmask16
#define VABS(a) _mm512_abs_ps(a)
#define VLT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define VGT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define VUNORD(a) _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)
#define VSEL(a, b, k) _mm512_mask_blend_ps(k, a, b)
#define VAND0(a, k) _mm512_maskz_mov_ps(k, a)
#define VEXP(x) vexp16(x)
#define VTANH(x) vtanh16(x)
#define TAILFN(name) name##_avx2
#define FWD_ONLY /* the backward stays AVX2: activation_simd.h */

#include "activation_simd.h"
