/* conv1d's SIMD kernels at ISA avx2 (AVX2 + FMA, 8 floats per ymm): conv1d_simd.h with a 4 x 3-ymm correlation tile
 * (12 accumulators, 24 time steps) and a 4 x 3 weight-gradient tile. Compiled with -mavx2 -mfma only. */
#include <immintrin.h>

#include "conv1d.h"

#define V __m256
#define VL 8
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define TV 3
#define CIB 3
#define SFX(name) name##_avx2

#include "conv1d_simd.h"
