/* Reference chunk sum of squares: x (len) -> sum x[i]^2 in double, i = 0, 1, ... in order (the ISA-ref fallback
 * and the readable oracle; sumsq.c adds the chunks). Checked by sumsq_test.c. */
#include "sumsq.h"

double sumsq_chunk_ref(const float *x, int64_t len) {
    double s = 0;
    for (int64_t i = 0; i < len; i++) s += (double)x[i] * x[i];
    return s;
}
