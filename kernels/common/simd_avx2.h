/* The AVX2 (8-lane) spelling of the vector macros the *_simd.h kernel bodies are written in, shared by every
 * *_avx2.c that instantiates one: include it, add the macros particular to that kernel (masks, tails, vmath's
 * functions), then include the body. simd_avx512.h is the 16-lane twin; a body sees the same names at both widths. */
#ifndef LATENT_SIMD_AVX2_H
#define LATENT_SIMD_AVX2_H

#include <immintrin.h>

#define V __m256
#define VL 8
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VFMSUB(a, b, c) _mm256_fmsub_ps(a, b, c)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VMASKLOAD(p, k) _mm256_maskload_ps(p, k)      /* k: an __m256i lane mask */
#define VMASKSTORE(p, k, v) _mm256_maskstore_ps(p, k, v)
#define VD __m256d
#define VDZERO() _mm256_setzero_pd()
#define VDADD(a, b) _mm256_add_pd(a, b)
#define SFX(name) name##_avx2

#endif
