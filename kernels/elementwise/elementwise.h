/* Internal: the elementwise kernels' ISA variants. */
#ifndef LT_ELEMENTWISE_H
#define LT_ELEMENTWISE_H
#include "lt_internal.h"
LT_HIDDEN void axpby_ref(int64_t n, float a, const float *x, float b, float *y);
LT_HIDDEN void axpby_avx2(int64_t n, float a, const float *x, float b, float *y);
LT_HIDDEN void mul_ref(int64_t n, const float *x, const float *z, float *y);
LT_HIDDEN void mul_avx2(int64_t n, const float *x, const float *z, float *y);
LT_HIDDEN void add_rows_ref(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y);
LT_HIDDEN void add_rows_avx2(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y);
/* out[0:width] += x[i * row_stride + 0:width] for i = 0..rows-1, in order (one task of lt_sum_rows). */
LT_HIDDEN void sum_rows_chunk_ref(int64_t rows, int64_t width, int64_t row_stride, const float *x, float *out);
LT_HIDDEN void sum_rows_chunk_avx2(int64_t rows, int64_t width, int64_t row_stride, const float *x, float *out);
#endif
