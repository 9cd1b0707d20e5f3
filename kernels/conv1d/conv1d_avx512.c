/* conv1d's SIMD kernels at ISA avx512 (16 floats per zmm): conv1d_simd.h with a 4 x 4-zmm correlation tile
 * (16 accumulators, 64 time steps) and a 4 x 4 weight-gradient tile. Compiled with the AVX-512 flags only
 * (cmake/LatentKernels.cmake); conv1d.c calls it only when the level in use is avx512. */
#include <immintrin.h>

#include "conv1d.h"

#include "../common/simd_avx512.h"
#define TV 4
#define CIB 4

#include "conv1d_simd.h"
