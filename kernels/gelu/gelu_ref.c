/* Reference GELU, plain loops in double: the ISA-ref fallback and the readable oracle.
 *
 *   x, y, dy, dx: (n) contiguous.   Phi(x) = erfc(-x / sqrt 2) / 2,   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *   fwd: y = x Phi(x)                        bwd: dx = dy (Phi(x) + x phi(x))
 * Computed in double and rounded once, so within 1 ulp wherever the result is a normal float. Phi through
 * erfc rather than 1 + erf keeps the relative accuracy for negative x, where 1 + erf(x/sqrt2) cancels.
 * Limits: y(-inf) = -0, y(+inf) = +inf, dx(+-inf) = dy * (1 or 0); NaN stays NaN. x is clamped to [-40, 40]
 * where it multiplies a density or a CDF that has already underflowed, so inf * 0 never makes a NaN. */
#include <math.h>

#include "gelu.h"

static double cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }
static double pdf(double x) { return exp(-0.5 * x * x) * 0.39894228040143267794; }
static double clamp40(double x) { return x < -40.0 ? -40.0 : x > 40.0 ? 40.0 : x; } /* NaN stays NaN */

void gelu_fwd_ref(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i];
        y[i] = (float)(clamp40(xi) == 40.0 ? xi : clamp40(xi) * cdf(xi)); /* +inf * 1, -inf -> -40 * 0 = -0 */
    }
}

void gelu_bwd_ref(int64_t n, const float *x, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i];
        dx[i] = (float)(dy[i] * (cdf(xi) + clamp40(xi) * pdf(xi)));
    }
}
