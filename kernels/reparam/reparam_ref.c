/* Reference reparameterization sampler, one chunk at a time (reparam.c drives the chunks), scalar. reparam_avx2.c
 * and reparam.cu compute the same bits (eps, z, dmu, dlogvar and the KL sum): same float operations, same order.
 *
 *   eps:  element i, in groups of 32: g = i >> 5, k = i & 31 -> Philox4x32-10 block b = 8g + (k & 7) (counter
 *         (lo32 b, hi32 b, lo32 stream, hi32 stream), key (lo32 seed, hi32 seed)), word pair p = k >> 4 (words 2p,
 *         2p + 1), Box-Muller of that pair (reparam_bm.h, float): eps = r cos t if (k >> 3) is even, r sin t if odd.
 *         So lane j of a 32-element group is block 8g + j, and its four elements are j, j + 8, j + 16, j + 24: one
 *         Philox call per 8-wide lane, no transposes in the vector code. |eps| <= 5.8872.
 *   fwd:  lv = clamp(logvar, -30, 30) (NaN stays NaN); s = rp_exp(0.5f lv); z = fmaf(s, eps, mu);
 *         term = fmaf(mu, mu, fmaf(s, s, -1)) - lv (float). KL order: per group g and lane j, the float sum
 *         ((term[j] + term[j + 8]) + term[j + 16]) + term[j + 24] (elements past the end count as +0), added in
 *         double to lane j's accumulator, groups in order; the chunk's sum is
 *         ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) (the AVX2 horizontal order).
 *   bwd:  dmu = fmaf(k, mu, dz); dlogvar = fmaf(k/2, fmaf(s, s, -1), (dz eps) (s/2)).
 * Shapes: every array (len) contiguous, already offset to element lo; lo is a multiple of 32 (reparam.c's chunks
 * are). Checked by reparam_test.c against a double oracle with its own Philox and glibc's log, sin, cos. */
#include "reparam.h"
#include "reparam_bm.h"

/* eps of the 32 elements of group g. */
static void group_eps(uint64_t seed, uint64_t stream, int64_t g, float eps[32]) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int j = 0; j < 8; j++) {
        const uint64_t b = (uint64_t)g * 8 + (uint64_t)j;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t w[4];
        float e[2];
        philox4x32_10(ctr, key, w);
        bm_pair(w[0], w[1], e);
        eps[j] = e[0];
        eps[j + 8] = e[1];
        bm_pair(w[2], w[3], e);
        eps[j + 16] = e[0];
        eps[j + 24] = e[1];
    }
}

static inline float clamp_lv(float x) { return x < REPARAM_LV_MIN ? REPARAM_LV_MIN : x > REPARAM_LV_MAX ? REPARAM_LV_MAX : x; }

double reparam_fwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                       float *z) {
    double acc[8] = {0};
    for (int64_t i0 = 0; i0 < len; i0 += 32) {
        float eps[32], t[32];
        group_eps(seed, stream, (lo + i0) >> 5, eps);
        for (int k = 0; k < 32; k++) {
            const int64_t i = i0 + k;
            if (i >= len) { t[k] = 0.0f; continue; }
            const float lv = clamp_lv(logvar[i]), m = mu[i], s = rp_exp(0.5f * lv);
            z[i] = fmaf(s, eps[k], m);
            t[k] = fmaf(m, m, fmaf(s, s, -1.0f)) - lv;
        }
        for (int j = 0; j < 8; j++) acc[j] += (double)(((t[j] + t[j + 8]) + t[j + 16]) + t[j + 24]);
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void reparam_bwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                     const float *dz, float kl_scale, float *dmu, float *dlogvar) {
    const float hk = 0.5f * kl_scale;
    for (int64_t i0 = 0; i0 < len; i0 += 32) {
        float eps[32];
        group_eps(seed, stream, (lo + i0) >> 5, eps);
        for (int k = 0; k < 32 && i0 + k < len; k++) {
            const int64_t i = i0 + k;
            const float lv = clamp_lv(logvar[i]), s = rp_exp(0.5f * lv), g = dz[i];
            dmu[i] = fmaf(kl_scale, mu[i], g);
            dlogvar[i] = fmaf(hk, fmaf(s, s, -1.0f), (g * eps[k]) * (0.5f * s));
        }
    }
}
