/* conv1d internals shared by conv1d.c (validation, padding, weight packing, dispatch) and its implementations.
 * Not exported. Shapes (latent.h): x (N, Cin, T), w (Cout, Cin, K), bias (Cout), y (N, Cout, T); dilation d;
 * causal: y[n, o, t] = bias[o] + sum_{i, j} w[o, i, j] x[n, i, t - (K-1-j) d], x = 0 at negative times.
 *
 * Taps whose shift (K-1-j) d is >= T never reach a sample: only the kk = min(K, (T-1)/d + 1) last taps (j >= K-kk)
 * take part, so the padding is at most T-1 whatever the dilation (conv1d.c). */
#ifndef LT_CONV1D_H
#define LT_CONV1D_H

#include "lt_internal.h"

#define CONV1D_COB 4 /* output rows per packed weight block (both SIMD levels) */

/* Plain loops, float accumulation in a fixed order, one task per output row ((n, o), (n, i), o): the fallback at
 * ISA ref and the readable oracle (conv1d_ref.c). Arguments validated by conv1d.c. */
LT_HIDDEN void conv1d_fwd_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d, const float *x,
                              const float *w, const float *bias, float *y);
LT_HIDDEN void conv1d_bwd_data_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d,
                                   const float *dy, const float *w, float *dx);
LT_HIDDEN void conv1d_bwd_weight_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d,
                                     const float *x, const float *dy, float *dw, float *db, int accumulate);

/* The SIMD core shared by the forward and the backward-data pass, a correlation with taps at offsets jj d:
 *   out[b, o, t] = bias[o] (or 0) + sum_{i < ni, jj < kk} wp[o / 4][i][jj][o % 4] in[b, i, t + jj d],  t < T
 * in: (N, ni, len) rows already padded with zeros (conv1d.c): len >= (kk-1) d + T + 128, so a whole register tile
 * past T still reads inside the row. wp: weights packed in blocks of CONV1D_COB rows, zero past `no`.
 * Tasks: (b, block of time); each owns its outputs, sums over i then jj in order: the same bits on any thread count. */
typedef struct {
    int64_t n, no, ni, t, kk, d, len;
    const float *in, *wp, *bias;
    float *out;
} conv1d_corr;
/* The weight gradient: dw[o, i, j0 + jj] (+)= sum_{b, t < tr} dy[b, o, t] xp[b, i, t + jj d] for jj < kk, and
 * db[o] (+)= sum dy[b, o, t] when db != NULL. dy: (N, no, tr), zero past T, tr a multiple of 64; xp: (N, ni, len) with
 * the causal left padding (kk-1) d. One task per block of 4 output rows; per-lane partial sums in fixed order
 * (batch, time chunks) in `scratch` (worker-indexed, scratch_stride floats each), then lanes added in order. */
typedef struct {
    int64_t n, no, ni, tr, k, kk, d, len;
    const float *xp, *dy;
    float *dw, *db;
    int accumulate;
    float *scratch;
    int64_t scratch_stride;
} conv1d_wgrad;

LT_HIDDEN void conv1d_corr_avx2(const conv1d_corr *c);
LT_HIDDEN void conv1d_wgrad_avx2(const conv1d_wgrad *c);
LT_HIDDEN int64_t conv1d_wgrad_scratch_avx2(int64_t ni, int64_t kk); /* floats per worker */
LT_HIDDEN void conv1d_corr_avx512(const conv1d_corr *c);
LT_HIDDEN void conv1d_wgrad_avx512(const conv1d_wgrad *c);
LT_HIDDEN int64_t conv1d_wgrad_scratch_avx512(int64_t ni, int64_t kk);

#endif
