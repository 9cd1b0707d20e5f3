/* Reference activations: double precision, rounded once. LeakyReLU's derivative at 0 is alpha (x > 0 selects 1),
 * ReLU's is 0, as PyTorch. NaN inputs give NaN outputs (the comparisons are false, so the x * alpha / 0 branch
 * propagates NaN for leaky; for ReLU max(x, 0) with NaN x returns NaN, as torch.relu). */
#include <math.h>

#include "activation.h"

static double sigm(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

void act_fwd_ref(int kind, int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        switch (kind) {
        case LT_ACT_RELU: y[i] = v > 0 ? v : v != v ? v : 0.0f; break;
        case LT_ACT_LEAKY_RELU: y[i] = v > 0 ? v : (float)((double)alpha * v); break;
        case LT_ACT_TANH: y[i] = (float)tanh((double)v); break;
        default: y[i] = (float)sigm((double)v); break;
        }
    }
}

void act_bwd_ref(int kind, int64_t n, float alpha, const float *in, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        double v = in[i], g = dy[i];
        switch (kind) {
        case LT_ACT_RELU: dx[i] = v > 0 ? (float)g : v != v ? (float)v : 0.0f; break;
        case LT_ACT_LEAKY_RELU: dx[i] = v > 0 ? (float)g : v != v ? (float)v : (float)(g * alpha); break;
        case LT_ACT_TANH: dx[i] = (float)(g * (1.0 - v * v)); break;
        default: dx[i] = (float)(g * v * (1.0 - v)); break;
        }
    }
}

double bce_chunk(int64_t n, const float *x, const float *t, float tc, float *dx, float dscale) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], tt = t ? t[i] : tc;
        s += (v > 0 ? v : 0) - v * tt + log1p(exp(-fabs(v)));
        if (dx) dx[i] = (float)((sigm(v) - tt) * dscale);
    }
    return s;
}
