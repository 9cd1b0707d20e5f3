/* AVX-512 convolution weight gradient (bwd_weight): conv2d_wgrad_avx2.c's design (rows = reduction indices (c, r, s),
 * B = dy transposed, fixed pixel chunks with partial dWs added in chunk order, so the bits do not depend on the thread
 * count) on the 8 x 32 zmm tile (conv2d_avx512.h): dy^T and the partials are 32 channels wide, a last sliver of at most
 * 16 channels runs one vector wide. The few-output-channel variant (ukw) is the AVX2 one with up to 8 rows. The body
 * is conv2d_wgrad_simd.h, shared with conv2d_wgrad_avx2.c. */
#include "conv2d_avx512.h"

#define SFX(name) name##_avx512
/* the 8 x 32 zmm tile; the sliver's channel count picks one or two vectors (a last sliver of <= 16 channels would
 * waste half the FMAs on zero padding), where the AVX2 tile is always its full 16 channels */
#define WG_UKR(x, s, mr, np, rows, tab, bs, c, ldc, add) \
    conv2d_ukr512(mr, (x)->d->k - (s) * NR > 16 ? 2 : 1, np, rows, tab, bs, NR, 16, c, ldc, add)

#include "conv2d_wgrad_simd.h"
