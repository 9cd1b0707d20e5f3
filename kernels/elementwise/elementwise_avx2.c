/* Elementwise kernels, AVX2: the same loops as elementwise_ref.c, compiled with -mavx2 -mfma; written so
 * gcc vectorizes them (checked with -fopt-info-vec). They are memory-bound: the point is full-width loads
 * and stores, not instruction tricks. Per-element arithmetic is the same as the reference (a*x + b*y is
 * contracted to an FMA here, so results may differ from ref in the last bit; tests allow 1 ulp). */
#include "elementwise.h"

void axpby_avx2(int64_t n, float a, const float *x, float b, float *y) {
    if (b == 0.0f) for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
    else for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
}

void mul_avx2(int64_t n, const float *x, const float *z, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * z[i];
}

void add_rows_avx2(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y) {
    for (int64_t i = 0; i < n; i++) {
        const float *r = rows + (i % period) * c;
        const float *xi = x + i * c;
        float *yi = y + i * c;
        for (int64_t j = 0; j < c; j++) yi[j] = xi[j] + r[j];
    }
}

void sum_rows_chunk_avx2(int64_t rows, int64_t width, int64_t row_stride, const float *x, float *out) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * row_stride;
        for (int64_t j = 0; j < width; j++) out[j] += xi[j];
    }
}
