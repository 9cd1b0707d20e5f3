/* lt_gemm_rows_packed internals (gemm_packed.c validates, packs A and dispatches; one file per ISA computes a task).
 * Operands as the kernels see them: at, A transposed in blocks of 16 rows, at[(blk * K + p) * 16 + i] = A[blk * 16 + i][p];
 * pk, B packed by lt_gemm_rows_pack into panels of 16 columns, pk[(q * K + p) * 16 + j] = B[q * 16 + j][p]. A task
 * computes C[0 .. m)[0 .. ncols) for np consecutive panels starting at pk (ncols <= 16 np; c and bias point at the
 * first column of the first panel). Every element is acc = fma(A[i][p], B[j][p], acc) for p = 0 .. K-1 from acc = 0,
 * then + bias[j]: the same arithmetic in every ISA and tile shape, so the bits depend on nothing but the operands. */
#ifndef LT_GEMM_PACKED_H
#define LT_GEMM_PACKED_H

#include "lt_internal.h"

#define GP_NR LT_GEMM_PACK_NR /* columns per panel */
#define GP_MB 16              /* rows per block of at */

#define GP_TASK_ARGS int64_t m, int64_t k, const float *at, const float *pk, int64_t np, int64_t ncols, const float *bias, float *c, int64_t ldc
LT_HIDDEN void gemm_packed_task_ref(GP_TASK_ARGS);
LT_HIDDEN void gemm_packed_task_avx2(GP_TASK_ARGS);
LT_HIDDEN void gemm_packed_task_avx512(GP_TASK_ARGS);

#endif
