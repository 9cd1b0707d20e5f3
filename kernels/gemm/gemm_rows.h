/* lt_gemm_rows internals (gemm_rows.c validates and dispatches; one file per ISA computes tiles).
 * A tile is C[0..mr)[0..nr) = alpha * A[0..mr) . B[0..nr)^T + beta * C (beta == 0: C write-only), A rows of k floats
 * at stride lda, B rows of k floats at stride ldb (B is (N, K): a Linear layer's weight), mr and nr up to the ISA's
 * tile. Every element is one accumulator over k in chunks of the ISA's vector width, in k order, then one fixed
 * horizontal sum: its bits do not depend on mr, nr or where the tile falls. */
#ifndef LT_GEMM_ROWS_H
#define LT_GEMM_ROWS_H

#include "lt_internal.h"

#define GEMM_ROWS_MR 4 /* the largest tile any ISA uses */
#define GEMM_ROWS_NR 4

LT_HIDDEN void gemm_rows_tile_ref(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                                  float *c, int64_t ldc, float alpha, float beta);
LT_HIDDEN void gemm_rows_tile_avx2(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                                   float *c, int64_t ldc, float alpha, float beta);
LT_HIDDEN void gemm_rows_tile_avx512(int64_t mr, int64_t nr, int64_t k, const float *a, int64_t lda, const float *b,
                                     int64_t ldb, float *c, int64_t ldc, float alpha, float beta);

#endif
