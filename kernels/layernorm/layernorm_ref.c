/* Reference LayerNorm, plain loops (llm.c style): the ISA-ref fallback and the readable oracle.
 *
 * Forward, per row of C (PyTorch nn.LayerNorm: biased variance, eps inside the square root):
 *   mean = sum_j x_j / C                  (double)           saved as float
 *   var  = sum_j (x_j - mean)^2 / C       (double, two-pass: no E[x^2] - E[x]^2 cancellation)
 *   rstd = 1 / sqrt(var + eps)            (double)           saved as float
 *   y_j  = (x_j - mean) * rstd * w_j + b_j  (float, with the saved mean and rstd, as the backward recomputes it)
 * Backward, per row, with xhat_j = (x_j - mean) * rstd and dn_j = dy_j * w_j (float):
 *   A = sum_j dn_j / C,  B = sum_j dn_j xhat_j / C   (double)
 *   dx_j = rstd * (dn_j - A - xhat_j * B)
 *   dw_part_j = sum over the rows, in order, of dy_j xhat_j;  db_part_j = sum of dy_j   (float)
 * Shapes: x, y, dy, dx (rows, C); w, b, dw_part, db_part (C); mean, rstd (rows).
 * In place: y_j (dx_j) is written after the last read of x_j (dy_j) in the row, so y = x (dx = dy) works.
 * Checked by layernorm_test.c against a double reference and central differences (LATENT_MAX_ISA=ref). */
#include <math.h>

#include "layernorm.h"

/* the rest of a row after the sum s of its C values x: mean, the two-pass variance, y (shared by both forwards) */
static void fwd_rest_ref(int64_t c, float eps, double s, const float *xr, const float *w, const float *b, float *yr,
                         float *mean, float *rstd) {
    const double m = s / c;
    double v = 0;
    for (int64_t j = 0; j < c; j++) v += ((double)xr[j] - m) * ((double)xr[j] - m);
    const float mf = (float)m, rf = (float)(1.0 / sqrt(v / c + eps));
    for (int64_t j = 0; j < c; j++) yr[j] = (xr[j] - mf) * rf * w[j] + b[j];
    *mean = mf;
    *rstd = rf;
}

void layernorm_fwd_ref(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b, float *y,
                       float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c; // (C,)
        double s = 0;
        for (int64_t j = 0; j < c; j++) s += xr[j];
        fwd_rest_ref(c, eps, s, xr, w, b, y + i * c, mean + i, rstd + i);
    }
}

/* lt_layernorm_residual_fwd's rows: s = x + a formed, stored and summed in one loop, then the same rest on s. */
void layernorm_residual_fwd_ref(int64_t rows, int64_t c, float eps, const float *x, const float *a, float *s,
                                const float *w, const float *b, float *y, float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c, *ar = a + i * c;
        float *sr = s + i * c;
        double sum = 0;
        for (int64_t j = 0; j < c; j++) {
            const float v = xr[j] + ar[j];
            sr[j] = v;
            sum += v;
        }
        fwd_rest_ref(c, eps, sum, sr, w, b, y + i * c, mean + i, rstd + i);
    }
}

void layernorm_bwd_ref(int64_t rows, int64_t c, const float *x, const float *w, const float *mean, const float *rstd,
                       const float *dy, float *dx, float *dw_part, float *db_part) {
    for (int64_t j = 0; j < c; j++) dw_part[j] = db_part[j] = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c, *dyr = dy + i * c; // (C,)
        float *dxr = dx + i * c;                        // (C,), may equal dyr
        const float m = mean[i], r = rstd[i];
        double sa = 0, sb = 0;
        for (int64_t j = 0; j < c; j++) {
            float dn = dyr[j] * w[j], xh = (xr[j] - m) * r;
            sa += dn;
            sb += dn * xh;
        }
        const float a = (float)(sa / c), bb = (float)(sb / c);
        for (int64_t j = 0; j < c; j++) {
            float g = dyr[j], xh = (xr[j] - m) * r;
            dw_part[j] += g * xh;
            db_part[j] += g;
            dxr[j] = r * (g * w[j] - a - xh * bb);
        }
    }
}

void layernorm_add_ref(int64_t n, const float *x, const float *a, float *s) {
    for (int64_t j = 0; j < n; j++) s[j] = x[j] + a[j];
}
