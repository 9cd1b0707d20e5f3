/* AVX2+FMA convolution weight gradient (bwd_weight): the design is in conv2d_avx2.c's header comment (rows = 6
 * reduction indices (c, r, s), B = dy transposed, fixed pixel chunks with partial dWs added in chunk order), the
 * few-output-channel variant (ukw) in conv2d_wgrad_simd.h, the body shared with conv2d_wgrad_avx512.c. */
#include "conv2d_avx2.h"

#define SFX(name) name##_avx2
/* the 6 x 16 ymm tile over the whole 16-channel sliver of dy^T */
#define WG_UKR(x, s, mr, np, rows, tab, bs, c, ldc, add) conv2d_ukr(mr, np, rows, tab, bs, c, ldc, add)

#include "conv2d_wgrad_simd.h"
