/* Reference convolution: the definition, y[n,k,p,q] = b[k] + sum_{c,r,s} x[n,c,p sh - ph + r, q sw - pw + s] w[k,c,r,s]
 * (zero outside the image), in double, rounded once per output. The two backward passes walk the same index map:
 * bwd-data gathers, for each input pixel, the (k, r, s) taps whose output position lands on an integer grid point;
 * bwd-weight sums dy x over (n, p, q). Each output element is one sequential sum, so results are deterministic.
 * Parallel over images (fwd, bwd-data) or output channels (bwd-weight) on the pool. */
#include "conv2d.h"

typedef struct { const lt_conv2d_desc *d; const float *a, *b, *bias; float *out, *db; int acc; } ref_ctx;

static void fwd_task(void *p, int64_t n, int worker) {
    const ref_ctx *t = p;
    const lt_conv2d_desc *d = t->d;
    for (int64_t k = 0; k < d->k; k++)
        for (int64_t oy = 0; oy < d->oh; oy++)
            for (int64_t ox = 0; ox < d->ow; ox++) {
                double acc = t->bias ? t->bias[k] : 0.0;
                for (int64_t c = 0; c < d->c; c++)
                    for (int64_t r = 0; r < d->r; r++) {
                        int64_t iy = oy * d->stride_h - d->pad_h + r;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int64_t s = 0; s < d->s; s++) {
                            int64_t ix = ox * d->stride_w - d->pad_w + s;
                            if (ix < 0 || ix >= d->w) continue;
                            acc += (double)t->a[((n * d->c + c) * d->h + iy) * d->w + ix] * t->b[((k * d->c + c) * d->r + r) * d->s + s];
                        }
                    }
                t->out[((n * d->k + k) * d->oh + oy) * d->ow + ox] = (float)acc;
            }
}

static void bwd_data_task(void *p, int64_t n, int worker) {
    const ref_ctx *t = p;
    const lt_conv2d_desc *d = t->d;
    for (int64_t c = 0; c < d->c; c++)
        for (int64_t iy = 0; iy < d->h; iy++)
            for (int64_t ix = 0; ix < d->w; ix++) {
                double acc = t->bias ? t->bias[c] : 0.0;
                for (int64_t r = 0; r < d->r; r++) {
                    int64_t ty = iy + d->pad_h - r;                 /* = oy * stride_h */
                    if (ty < 0 || ty % d->stride_h) continue;
                    int64_t oy = ty / d->stride_h;
                    if (oy >= d->oh) continue;
                    for (int64_t s = 0; s < d->s; s++) {
                        int64_t tx = ix + d->pad_w - s;
                        if (tx < 0 || tx % d->stride_w) continue;
                        int64_t ox = tx / d->stride_w;
                        if (ox >= d->ow) continue;
                        for (int64_t k = 0; k < d->k; k++)
                            acc += (double)t->a[((n * d->k + k) * d->oh + oy) * d->ow + ox] * t->b[((k * d->c + c) * d->r + r) * d->s + s];
                    }
                }
                t->out[((n * d->c + c) * d->h + iy) * d->w + ix] = (float)acc;
            }
}

static void bwd_weight_task(void *p, int64_t k, int worker) {
    const ref_ctx *t = p;
    const lt_conv2d_desc *d = t->d;
    const float *x = t->a, *dy = t->b;
    for (int64_t c = 0; c < d->c; c++)
        for (int64_t r = 0; r < d->r; r++)
            for (int64_t s = 0; s < d->s; s++) {
                double acc = 0;
                for (int64_t n = 0; n < d->n; n++)
                    for (int64_t oy = 0; oy < d->oh; oy++) {
                        int64_t iy = oy * d->stride_h - d->pad_h + r;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int64_t ox = 0; ox < d->ow; ox++) {
                            int64_t ix = ox * d->stride_w - d->pad_w + s;
                            if (ix < 0 || ix >= d->w) continue;
                            acc += (double)dy[((n * d->k + k) * d->oh + oy) * d->ow + ox] * x[((n * d->c + c) * d->h + iy) * d->w + ix];
                        }
                    }
                float *o = &t->out[((k * d->c + c) * d->r + r) * d->s + s];
                *o = t->acc ? (float)(*o + acc) : (float)acc;
            }
    if (t->db) {
        double acc = 0;
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->oh * d->ow; i++) acc += dy[(n * d->k + k) * d->oh * d->ow + i];
        t->db[k] = t->acc ? (float)(t->db[k] + acc) : (float)acc;
    }
}

lt_status conv_fwd_ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    ref_ctx t = {d, x, w, bias, y, NULL, 0};
    lt_parallel_for(d->n, fwd_task, &t);
    return LT_OK;
}

lt_status conv_bwd_data_ref(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    ref_ctx t = {d, dy, w, bias, dx, NULL, 0};
    lt_parallel_for(d->n, bwd_data_task, &t);
    return LT_OK;
}

lt_status conv_bwd_weight_ref(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db, int accumulate) {
    ref_ctx t = {d, x, dy, NULL, dw, db, accumulate};
    lt_parallel_for(d->k, bwd_weight_task, &t);
    return LT_OK;
}
