/* Fully connected convolutions on the AVX2 GEMM: the kernel covers the whole unpadded input, so the output is
 * 1 x 1 (a DCGAN's last discriminator conv 256 -> 1 at 4 x 4, its generator's first conv^T 100 -> 256 from 1 x 1).
 * x (N, C, H, W) is then the matrix (N, CRS), w (K, C, R, S) is (K, CRS) and y (N, K, 1, 1) is (N, K):
 *   fwd        y  = x w^T (+ bias[k])
 *   bwd_data   dx = dy w (+ bias[c] at every (r, s): the conv^T's bias)
 *   bwd_weight dw (+)= dy^T x, db[k] (+)= sum over n of dy[n][k] in increasing n
 * The direct engine would correlate a 1 x 1 dy padded to R x S with the flipped kernel for bwd_data: 16 taps per
 * output pixel of which one is real, 5% of peak for the DCGAN conv^T (5.1 ms for 52 MFLOP on 2 threads). The GEMM's
 * bits do not depend on the thread count, so neither do these. The GEMM is a parameter (conv2d_fc_*): the
 * conv2d_fc_*_avx2 entries run gemm_avx2, and conv2d_bf16.c runs the same lowering on gemm_avx512_bf16. The reference (conv2d_ref.c) keeps its plain loops,
 * the independent oracle in conv2d_test. */
#include <string.h>

#include "conv2d.h"
#include "../gemm/gemm.h"

int conv2d_is_fc(const lt_conv2d_desc *d) {
    return d->oh == 1 && d->ow == 1 && d->pad_h == 0 && d->pad_w == 0 && d->r == d->h && d->s == d->w;
}

lt_gemm_desc conv2d_gemm_desc(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta, int64_t lda, int64_t ldb,
                              int64_t ldc) {
    lt_gemm_desc g;
    memset(&g, 0, sizeof g);
    g.trans_a = ta; g.trans_b = tb;
    g.m = m; g.n = n; g.k = k;
    g.alpha = 1.0f; g.beta = beta;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    g.batch = 1;
    return g;
}

lt_status conv2d_fc_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y,
                        conv2d_gemm_fn gemm) {
    const int64_t crs = d->c * d->r * d->s;
    lt_gemm_desc g = conv2d_gemm_desc(0, 1, d->n, d->k, crs, 0.0f, crs, crs, d->k);
    lt_status st = gemm(&g, x, w, y);
    if (st || !bias) return st;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++) y[n * d->k + k] += bias[k];
    return LT_OK;
}

lt_status conv2d_fc_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx,
                             conv2d_gemm_fn gemm) {
    const int64_t crs = d->c * d->r * d->s, rs = d->r * d->s;
    lt_gemm_desc g = conv2d_gemm_desc(0, 0, d->n, crs, d->k, 0.0f, d->k, crs, crs);
    lt_status st = gemm(&g, dy, w, dx);
    if (st || !bias) return st;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t p = 0; p < rs; p++) dx[n * crs + c * rs + p] += bias[c];
    return LT_OK;
}

lt_status conv2d_fc_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                               int accumulate, conv2d_gemm_fn gemm) {
    const int64_t crs = d->c * d->r * d->s;
    lt_gemm_desc g = conv2d_gemm_desc(1, 0, d->k, crs, d->n, accumulate ? 1.0f : 0.0f, d->k, crs, crs);
    lt_status st = gemm(&g, dy, x, dw);
    if (st || !db) return st;
    for (int64_t k = 0; k < d->k; k++) {
        float s = 0.0f;
        for (int64_t n = 0; n < d->n; n++) s += dy[n * d->k + k];
        db[k] = accumulate ? db[k] + s : s;
    }
    return LT_OK;
}

lt_status conv2d_fc_fwd_avx2(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    return conv2d_fc_fwd(d, x, w, bias, y, gemm_avx2);
}

lt_status conv2d_fc_bwd_data_avx2(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                  float *dx) {
    return conv2d_fc_bwd_data(d, dy, w, bias, dx, gemm_avx2);
}

lt_status conv2d_fc_bwd_weight_avx2(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                    int accumulate) {
    return conv2d_fc_bwd_weight(d, x, dy, dw, db, accumulate, gemm_avx2);
}
