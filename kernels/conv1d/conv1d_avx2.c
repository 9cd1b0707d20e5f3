/* conv1d's SIMD kernels at ISA avx2 (AVX2 + FMA, 8 floats per ymm): conv1d_simd.h with a 4 x 3-ymm correlation tile
 * (12 accumulators, 24 time steps) and a 4 x 3 weight-gradient tile. Compiled with -mavx2 -mfma only. */
#include <immintrin.h>

#include "conv1d.h"

#include "../common/simd_avx2.h"
#define TV 3
#define CIB 3

#include "conv1d_simd.h"
