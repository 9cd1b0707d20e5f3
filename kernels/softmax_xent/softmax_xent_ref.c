/* Reference softmax + cross-entropy, plain loops: the ISA-ref fallback and the readable oracle.
 *
 *   logits (rows, V), targets (rows), losses (rows), dlogits (rows, V) or NULL, dlogits may equal logits.
 *   M = max_j x[j];  S = sum_j exp(x[j] - M) (float exp, summed in double);  loss = M + log S - x[t]
 *   dlogits[j] = exp(x[j] - M) / S * dscale - (j == t) * dscale
 * target < 0: loss 0 and a zero gradient row, logits not read. Each dlogits[j] is written after x[j] is read
 * and x[t] is saved first, so in place works. A row with no finite maximum (all -inf) gives NaN, as PyTorch:
 * -inf - (-inf) is NaN. Checked by softmax_xent_test.c against a double reference (LATENT_MAX_ISA=ref). */
#include <math.h>

#include "softmax_xent.h"

void softmax_xent_rows_ref(int64_t rows, int64_t v, const float *logits, const int32_t *targets, float *losses,
                           float *dlogits, float dscale) {
    for (int64_t i = 0; i < rows; i++) {
        const float *x = logits + i * v;          // (V,)
        float *d = dlogits ? dlogits + i * v : NULL; // (V,) or NULL, may equal x
        const int32_t t = targets[i];
        if (t < 0) { /* ignored row */
            losses[i] = 0.0f;
            if (d)
                for (int64_t j = 0; j < v; j++) d[j] = 0.0f;
            continue;
        }
        float m = -INFINITY;
        for (int64_t j = 0; j < v; j++)
            if (x[j] > m) m = x[j];
        double s = 0;
        for (int64_t j = 0; j < v; j++) s += expf(x[j] - m);
        const float xt = x[t];
        losses[i] = (float)((double)m + log(s) - xt);
        if (!d) continue;
        const double inv = dscale / s;
        for (int64_t j = 0; j < v; j++) d[j] = (float)(expf(x[j] - m) * inv);
        d[t] -= dscale;
    }
}
