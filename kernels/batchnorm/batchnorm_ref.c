/* Reference BatchNorm2d, one channel at a time: two-pass statistics in double (mean, then the biased variance of
 * the centred values), y = (x - mean) rstd gamma + beta rounded once; backward
 *   dx = rstd (gamma dy - mean(gamma dy) - xhat mean(gamma dy xhat)),  dgamma += sum(dy xhat),  dbeta += sum(dy).
 * Running statistics: r = (1 - momentum) r + momentum batch, with the unbiased variance (count / (count - 1)). */
#include <math.h>

#include "batchnorm.h"

#define AT(a, i, j) ((a)[((i) * c + ch) * hw + (j)])

void bn_train_ref(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double cnt = (double)n * hw, s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < hw; j++) s += AT(a->x, i, j);
    double mean = s / cnt;
    for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < hw; j++) { double d = AT(a->x, i, j) - mean; q += d * d; }
    double var = q / cnt, rstd = 1.0 / sqrt(var + a->eps);
    double g = a->gamma ? a->gamma[ch] : 1.0, b = a->beta ? a->beta[ch] : 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < hw; j++) AT(a->y, i, j) = (float)((AT(a->x, i, j) - mean) * rstd * g + b);
    a->mean[ch] = (float)mean;
    a->rstd[ch] = (float)rstd;
    if (a->rmean) a->rmean[ch] = (float)((1.0 - a->momentum) * a->rmean[ch] + a->momentum * mean);
    if (a->rvar) a->rvar[ch] = (float)((1.0 - a->momentum) * a->rvar[ch] + a->momentum * (cnt > 1 ? q / (cnt - 1) : var));
}

void bn_infer_ref(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double rstd = 1.0 / sqrt((double)a->var_in[ch] + a->eps), m = a->mean_in[ch];
    double g = a->gamma ? a->gamma[ch] : 1.0, b = a->beta ? a->beta[ch] : 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < hw; j++) AT(a->y, i, j) = (float)((AT(a->x, i, j) - m) * rstd * g + b);
}

void bn_bwd_ref(const bn_args *a, int64_t ch) {
    int64_t n = a->n, c = a->c, hw = a->hw;
    double cnt = (double)n * hw, m = a->mean[ch], rstd = a->rstd[ch], g = a->gamma ? a->gamma[ch] : 1.0;
    double sdy = 0, sdyx = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < hw; j++) {
            double dy = AT(a->dy, i, j), xh = (AT(a->x, i, j) - m) * rstd;
            sdy += dy;
            sdyx += dy * xh;
        }
    double k1 = g * sdy / cnt, k2 = g * sdyx / cnt;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < hw; j++) {
            double xh = (AT(a->x, i, j) - m) * rstd;
            AT(a->dx, i, j) = (float)(rstd * (g * AT(a->dy, i, j) - k1 - xh * k2));
        }
    if (a->dgamma) a->dgamma[ch] += (float)sdyx;
    if (a->dbeta) a->dbeta[ch] += (float)sdy;
}
