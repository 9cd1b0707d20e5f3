/* AVX-512 AdamW: adamw_simd.h's step on 16 parameters at a time, the tail under an opmask; the same ops in the same
 * order as adamw_avx2.c, so the same bits. Dispatched at ISA avx512 (adamw.c). Whether it pays on the measured
 * Zen 4 (512-bit sqrt / div / FMA issue as two 256-bit halves): BENCHMARKS.md ("Memory-bound ops at AVX-512,
 * measured", issue 15). Checked by adamw_test.c. */
#include <immintrin.h>

#include "adamw.h"
#include "../common/vmath_avx512.h"

#include "../common/simd_avx512.h"
#define VSQRT(a) _mm512_sqrt_ps(a)
#define VMASK __mmask16
#define VTAIL(rem) tail16(rem)

#include "adamw_simd.h"
