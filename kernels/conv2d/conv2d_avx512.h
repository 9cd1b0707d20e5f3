/* Internals shared by the AVX-512 convolution files (conv2d_avx512.c: fwd, bwd_data; conv2d_wgrad_avx512.c:
 * bwd_weight; conv2d_wino_avx512.c: Winograd). Include from *_avx512.c files only. They reuse the AVX2 files'
 * scratch, slots and padded copy (conv2d_avx2.h) and differ in the tile: 8 rows x 32 columns (two zmm vectors per
 * row, 16 zmm accumulators) instead of 6 x 16 (two ymm). Not exported. */
#ifndef LT_CONV2D_AVX512_H
#define LT_CONV2D_AVX512_H

#include "conv2d_avx2.h"

#undef MR
#undef NR
#define MR 8  /* tile rows (broadcast side) */
#define NR 32 /* tile columns: 2 zmm vectors; B and the tile are laid out 32 wide in the direct engine */
#ifndef KCB512
#define KCB512 128 /* reduction rows per fwd/bwd_data block: the B block stays KCB512 * 128 bytes = 16 KB as in AVX2 */
#endif
#undef KCB
#define KCB KCB512

/* c[i][0..16*nsub) (=, or += when add) sum_{p < kc} rows[i][tab[p]] * B[p][0..16*nsub), i < mr <= MR, nsub 1 or
 * 2, where B[p][0..16) = b[p * bstep + 0..16) and B[p][16..32) = b[p * bstep + boff + 0..16): two 16-wide slivers
 * read side by side (the direct engine packs them 32 wide: bstep 32, boff 16; Winograd keeps 16-wide slivers
 * bstep 16 apart per reduction step, boff a whole sliver). Each accumulator sums its products in increasing p, one
 * FMA each. */
LT_HIDDEN void conv2d_ukr512(int mr, int nsub, int64_t kc, const float *const *rows, const int64_t *tab,
                             const float *b, int64_t bstep, int64_t boff, float *c, int64_t ldc, int add);

#endif
