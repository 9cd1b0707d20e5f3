/* Reference affine coupling, one image: the definitions of latent.h in double, rounded once per output.
 * Backward, with e = exp(s), s = tanh(h0) scale (1 - b), th = tanh(h0):
 *   dy = dy' (b + (1 - b) e),   ds = (dy' y e + dlogdet) (1 - b),   dh0 = ds scale (1 - th^2),
 *   dh1 = dy' (1 - b),          dscale += sum ds th. */
#include <math.h>

#include "coupling.h"

double coupling_fwd_ref(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out) {
    double ld = 0;
    for (int64_t j = 0; j < hw; j++) {
        double m = 1.0 - b[j], s = tanh((double)h0[j]) * scale * m, t = (double)h1[j] * m;
        out[j] = (float)(b[j] * (double)y[j] + m * ((double)y[j] * exp(s) + t));
        ld += s;
    }
    return ld;
}

void coupling_inv_ref(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y) {
    for (int64_t j = 0; j < hw; j++) {
        double m = 1.0 - b[j], s = tanh((double)h0[j]) * scale * m, t = (double)h1[j] * m;
        y[j] = (float)(b[j] * (double)yp[j] + m * (((double)yp[j] - t) * exp(-s)));
    }
}

double coupling_bwd_ref(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                        const float *dout, double dld, float *dy, float *dh0, float *dh1) {
    double dscale = 0;
    for (int64_t j = 0; j < hw; j++) {
        double m = 1.0 - b[j], th = tanh((double)h0[j]), s = th * scale * m, e = exp(s), g = dout[j];
        dy[j] = (float)(g * (b[j] + m * e));
        double ds = (g * (double)y[j] * e + dld) * m;
        dh0[j] = (float)(ds * scale * (1.0 - th * th));
        dh1[j] = (float)(g * m);
        dscale += ds * th;
    }
    return dscale;
}
