/* AVX2+FMA AdamW: adamw_simd.h's step on 8 parameters at a time (vmaskmov tail).
 * 28 bytes per parameter (4 reads, 3 writes) against one sqrt and two divisions per 8: memory-bound from DRAM on this
 * machine, divider-bound when the arrays sit in L2. Measured numbers and the AVX-512 comparison: BENCHMARKS.md
 * ("Memory-bound ops at AVX-512, measured", issue 15). Checked by adamw_test.c. */
#include <immintrin.h>

#include "adamw.h"
#include "../common/vmath_avx2.h"

#define V __m256
#define VL 8
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VSQRT(a) _mm256_sqrt_ps(a)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VFNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)
#define VMASKLOAD(p, k) _mm256_maskload_ps(p, k)
#define VMASKSTORE(p, k, v) _mm256_maskstore_ps(p, k, v)
#define SFX(name) name##_avx2

#include "adamw_simd.h"
