/* conv1d's SIMD kernels at ISA avx512 (16 floats per zmm): conv1d_simd.h with a 4 x 4-zmm correlation tile
 * (16 accumulators, 64 time steps) and a 4 x 4 weight-gradient tile. Compiled with the AVX-512 flags only
 * (cmake/LatentKernels.cmake); conv1d.c calls it only when the level in use is avx512. */
#include <immintrin.h>

#include "conv1d.h"

#define V __m512
#define VL 16
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define TV 4
#define CIB 4
#define SFX(name) name##_avx512

#include "conv1d_simd.h"
