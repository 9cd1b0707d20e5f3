/* Reference reparameterization sampler, one chunk at a time (reparam.c drives the chunks), and reparam_eps, the
 * scalar eps generator (the AVX2 file has a vector copy of it, bit-identical, checked by reparam_test).
 *
 *   eps:  element i -> Philox4x32-10 block b = i >> 2 (counter (lo32 b, hi32 b, lo32 stream, hi32 stream), key
 *         (lo32 seed, hi32 seed)), word pair j = i & 2: u1 = u01(w[j]), u2 = u01(w[j + 1]) (philox_u01, in (0, 1]),
 *         r = sqrt(-2 ln u1), eps = r cos(2 pi u2) (i even) or r sin(2 pi u2) (i odd), in double with the exact-op
 *         log and sincos of reparam_bm.h (this file has no -mfma: nothing is fused), rounded to float.
 *         u1 >= 2^-25, so |eps| <= 5.9: always finite. The bits depend on IEEE arithmetic only, not on libm.
 *   fwd:  lv = clamp(logvar, -30, 30) (NaN stays NaN); s = exp(lv / 2); z = mu + s eps, in double, rounded once;
 *         returns sum (mu^2 + exp(lv) - 1 - lv) in double, in element order.
 *   bwd:  dmu = dz + kl_scale mu; dlogvar = dz eps s / 2 + kl_scale (exp(lv) - 1) / 2, in double, rounded once.
 * Shapes: every array (len) contiguous, already offset to element lo. Checked by reparam_test.c against a double
 * oracle that runs its own Philox and by central differences. */
#include <math.h>

#include "reparam.h"
#include "reparam_bm.h"

void reparam_eps(uint64_t seed, uint64_t stream, int64_t lo, int64_t len, float *eps) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const int64_t end = lo + len;
    for (int64_t b = lo >> 2; b * 4 < end; b++) {
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)((uint64_t)b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t w[4];
        float e[4];
        philox4x32_10(ctr, key, w);
        const int64_t first = b * 4 < lo ? lo : b * 4, last = b * 4 + 4 < end ? b * 4 + 4 : end;
        if (first < b * 4 + 2) bm_pair_scalar(w[0], w[1], e);       /* pair 0: elements 4b, 4b+1 */
        if (last > b * 4 + 2) bm_pair_scalar(w[2], w[3], e + 2);    /* pair 1: elements 4b+2, 4b+3 */
        for (int64_t i = first; i < last; i++) eps[i - lo] = e[i - b * 4];
    }
}

static inline float clamp_lv(float x) { return x < REPARAM_LV_MIN ? REPARAM_LV_MIN : x > REPARAM_LV_MAX ? REPARAM_LV_MAX : x; }

double reparam_fwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                       float *z) {
    float eps[REPARAM_CHUNK];
    reparam_eps(seed, stream, lo, len, eps);
    double kl = 0;
    for (int64_t i = 0; i < len; i++) {
        const double lv = clamp_lv(logvar[i]), m = mu[i], s = exp(0.5 * lv);
        z[i] = (float)(m + s * eps[i]);
        kl += m * m + exp(lv) - 1.0 - lv;
    }
    return kl;
}

void reparam_bwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                     const float *dz, float kl_scale, float *dmu, float *dlogvar) {
    float eps[REPARAM_CHUNK];
    reparam_eps(seed, stream, lo, len, eps);
    const double k = kl_scale;
    for (int64_t i = 0; i < len; i++) {
        const double lv = clamp_lv(logvar[i]), s = exp(0.5 * lv), g = dz[i];
        dmu[i] = (float)(g + k * mu[i]);
        dlogvar[i] = (float)(g * eps[i] * 0.5 * s + k * 0.5 * (exp(lv) - 1.0));
    }
}
