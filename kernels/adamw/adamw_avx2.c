/* AVX2+FMA AdamW: adamw_simd.h's step on 8 parameters at a time (vmaskmov tail).
 * 28 bytes per parameter (4 reads, 3 writes) against one sqrt and two divisions per 8: memory-bound from DRAM on this
 * machine, divider-bound when the arrays sit in L2. Measured numbers and the AVX-512 comparison: BENCHMARKS.md
 * ("Memory-bound ops at AVX-512, measured", issue 15). Checked by adamw_test.c. */
#include <immintrin.h>

#include "adamw.h"
#include "../common/vmath_avx2.h"

#include "../common/simd_avx2.h"
#define VSQRT(a) _mm256_sqrt_ps(a)
#define VMASK __m256i
#define VTAIL(rem) vtail_mask(rem)

#include "adamw_simd.h"
