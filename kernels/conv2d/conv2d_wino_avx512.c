/* AVX-512 Winograd F(2x2, 3x3) (fwd, bwd_data) and F(3x3, 2x2) (bwd_weight): conv2d_wino_simd.h's algorithm, layouts
 * and fixed reduction order (the same bits for any thread count), with its 16 small GEMMs on the 8 x 32 zmm tile
 * (conv2d_avx512.h): two 16-tile slivers of V side by side (fwd, bwd_data) and two 16-channel slivers of DY
 * (bwd_weight) per tile, 8 output (resp. input) channels per panel; an odd last sliver runs one vector wide. The
 * transforms are the AVX2 ones. The body is conv2d_wino_simd.h, shared with conv2d_wino_avx2.c, where the shape gates
 * (conv2d_wino_ok / conv2d_wino_wgrad_ok) live. */
#include "conv2d_avx512.h"

#define SFX(name) name##_avx512
/* the 8 x 32 zmm tile takes two 16-wide slivers side by side (an odd last one runs one vector wide) */
#define WINO_SUB 2
#define WINO_UKR(mr, nsub, kc, rows, tab, b, boff, c, ldc, add) \
    conv2d_ukr512(mr, nsub, kc, rows, tab, b, 16, boff, c, ldc, add)

#include "conv2d_wino_simd.h"
