/* Elementwise kernels, reference: plain loops (the oracle and the ISA-ref fallback).
 * Shapes: n elements; rows are (N, C) row-major; `period` rows of a broadcast table. */
#include "elementwise.h"

void axpby_ref(int64_t n, float a, const float *x, float b, float *y) {
    if (b == 0.0f) for (int64_t i = 0; i < n; i++) y[i] = a * x[i];   /* y write-only: NaN in y must not leak */
    else for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
}

void mul_ref(int64_t n, const float *x, const float *z, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * z[i];
}

void add_rows_ref(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y) {
    for (int64_t i = 0; i < n; i++) {
        const float *r = rows + (i % period) * c;
        for (int64_t j = 0; j < c; j++) y[i * c + j] = x[i * c + j] + r[j];
    }
}

void sum_rows_chunk_ref(int64_t rows, int64_t width, int64_t row_stride, const float *x, float *out) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * row_stride;
        for (int64_t j = 0; j < width; j++) out[j] += xi[j];
    }
}
