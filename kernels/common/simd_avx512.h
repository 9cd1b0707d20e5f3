/* The AVX-512 (16-lane) spelling of the vector macros the *_simd.h kernel bodies are written in, shared by every
 * *_avx512.c that instantiates one: include it, add the macros particular to that kernel (masks, tails, vmath's
 * functions), then include the body. simd_avx2.h is the 8-lane twin; a body sees the same names at both widths. */
#ifndef LATENT_SIMD_AVX512_H
#define LATENT_SIMD_AVX512_H

#include <immintrin.h>

#define V __m512
#define VL 16
#define VSET1(x) _mm512_set1_ps(x)
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VFMSUB(a, b, c) _mm512_fmsub_ps(a, b, c)
#define VBCAST(p) _mm512_set1_ps(*(p)) /* folds into the FMA as a {1to16} memory operand */
#define VMASKLOAD(p, k) _mm512_maskz_loadu_ps(k, p)   /* k: an __mmask16 */
#define VMASKSTORE(p, k, v) _mm512_mask_storeu_ps(p, k, v)
#define VD __m512d
#define VDZERO() _mm512_setzero_pd()
#define VDADD(a, b) _mm512_add_pd(a, b)
#define SFX(name) name##_avx512

#endif
