/* AVX-512 AdamW: adamw_simd.h's step on 16 parameters at a time, the tail under an opmask; the same ops in the same
 * order as adamw_avx2.c, so the same bits. Dispatched at ISA avx512 (adamw.c). Whether it pays on the measured
 * Zen 4 (512-bit sqrt / div / FMA issue as two 256-bit halves): BENCHMARKS.md ("Memory-bound ops at AVX-512,
 * measured", issue 15). Checked by adamw_test.c. */
#include <immintrin.h>

#include "adamw.h"
#include "../common/vmath_avx512.h"

#define V __m512
#define VL 16
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VSQRT(a) _mm512_sqrt_ps(a)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)
#define VMASKLOAD(p, k) _mm512_maskz_loadu_ps(k, p)
#define VMASKSTORE(p, k, v) _mm512_mask_storeu_ps(p, k, v)
#define SFX(name) name##_avx512

#include "adamw_simd.h"
