/* Reference 2-D convolution, plain loops in the style of llm.c (the ISA-ref fallback and the oracle).
 *
 *   x: (N, C, H, W)   w: (K, C, R, S)   y, dy: (N, K, OH, OW)   bias: (K) fwd, (C) bwd_data   db: (K)
 *   input position of output (oh, ow) and tap (r, s): ih = oh*stride_h - pad_h + r, iw = ow*stride_w - pad_w + s,
 *   zero outside [0, H) x [0, W).
 *   fwd:        y[n,k,oh,ow]  = bias[k] + sum_{c,r,s} x[n,c,ih,iw] w[k,c,r,s]
 *   bwd_data:   dx[n,c,h,w]   = bias[c] + sum_{k,r,s} dy[n,k,oh,ow] w[k,c,r,s]   over the (r, s) with
 *               oh = (h + pad_h - r) / stride_h exact and in [0, OH) (likewise ow): the gather form of conv^T,
 *               so every dx element is one sum and no scatter-add is needed
 *   bwd_weight: dw[k,c,r,s] (+)= sum_{n,oh,ow} dy[n,k,oh,ow] x[n,c,ih,iw],   db[k] (+)= sum_{n,oh,ow} dy[n,k,oh,ow]
 * Float arithmetic, sums in the order of the loops as written; bias (or the old dw) is added once at the end.
 * Tasks own whole output planes ((n, k), (n, c), k), so the bits never depend on the thread count.
 * Checked by conv2d_test.c against a double-precision reference (LATENT_MAX_ISA=ref runs this file). */
#include "conv2d.h"

typedef struct {
    const lt_conv2d_desc *d;
    const float *a, *b, *bias; /* fwd: x, w; bwd_data: dy, w; bwd_weight: x, dy */
    float *out, *db;
    int accumulate;
} ref_ctx;

static void fwd_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t n = t / d->k, k = t % d->k, C = d->c, H = d->h, W = d->w, R = d->r, S = d->s;
    const float *xn = x->a + n * C * H * W;     // (C, H, W)
    const float *wk = x->b + k * C * R * S;     // (C, R, S)
    float *y = x->out + t * d->oh * d->ow;      // (OH, OW)
    for (int64_t oh = 0; oh < d->oh; oh++)
        for (int64_t ow = 0; ow < d->ow; ow++) {
            float sum = 0.0f;
            for (int64_t c = 0; c < C; c++)
                for (int64_t r = 0; r < R; r++) {
                    int64_t ih = oh * d->stride_h - d->pad_h + r;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t s = 0; s < S; s++) {
                        int64_t iw = ow * d->stride_w - d->pad_w + s;
                        if (iw < 0 || iw >= W) continue;
                        sum += xn[(c * H + ih) * W + iw] * wk[(c * R + r) * S + s];
                    }
                }
            y[oh * d->ow + ow] = x->bias ? sum + x->bias[k] : sum;
        }
}

static void bwd_data_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t n = t / d->c, c = t % d->c, K = d->k, C = d->c, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const float *dyn = x->a + n * K * OH * OW;  // (K, OH, OW)
    float *dx = x->out + t * d->h * d->w;       // (H, W)
    for (int64_t h = 0; h < d->h; h++)
        for (int64_t w = 0; w < d->w; w++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++)
                for (int64_t r = 0; r < R; r++) {
                    int64_t th = h + d->pad_h - r; /* = oh * stride_h */
                    if (th < 0 || th % d->stride_h || th / d->stride_h >= OH) continue;
                    for (int64_t s = 0; s < S; s++) {
                        int64_t tw = w + d->pad_w - s;
                        if (tw < 0 || tw % d->stride_w || tw / d->stride_w >= OW) continue;
                        sum += dyn[(k * OH + th / d->stride_h) * OW + tw / d->stride_w] *
                               x->b[((k * C + c) * R + r) * S + s];
                    }
                }
            dx[h * d->w + w] = x->bias ? sum + x->bias[c] : sum;
        }
}

static void bwd_weight_task(void *p, int64_t k, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow, K = d->k;
    float *dw = x->out + k * C * R * S;         // (C, R, S)
    for (int64_t c = 0; c < C; c++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                float sum = 0.0f;
                for (int64_t n = 0; n < d->n; n++) {
                    const float *xn = x->a + (n * C + c) * H * W;     // (H, W)
                    const float *dyn = x->b + (n * K + k) * OH * OW;  // (OH, OW)
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * d->stride_h - d->pad_h + r;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t iw = ow * d->stride_w - d->pad_w + s;
                            if (iw < 0 || iw >= W) continue;
                            sum += dyn[oh * OW + ow] * xn[ih * W + iw];
                        }
                    }
                }
                float *o = &dw[(c * R + r) * S + s];
                *o = x->accumulate ? *o + sum : sum;
            }
    if (x->db) {
        float sum = 0.0f;
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t i = 0; i < OH * OW; i++) sum += x->b[(n * K + k) * OH * OW + i];
        x->db[k] = x->accumulate ? x->db[k] + sum : sum;
    }
}

lt_status conv2d_fwd_ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    ref_ctx c = {d, x, w, bias, y, NULL, 0};
    lt_parallel_for(d->n * d->k, fwd_task, &c);
    return LT_OK;
}

lt_status conv2d_bwd_data_ref(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    ref_ctx c = {d, dy, w, bias, dx, NULL, 0};
    lt_parallel_for(d->n * d->c, bwd_data_task, &c);
    return LT_OK;
}

lt_status conv2d_bwd_weight_ref(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                int accumulate) {
    ref_ctx c = {d, x, dy, NULL, dw, db, accumulate};
    lt_parallel_for(d->k, bwd_weight_task, &c);
    return LT_OK;
}
