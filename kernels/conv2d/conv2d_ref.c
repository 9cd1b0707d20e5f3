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
 * Float arithmetic, each sum started at 0 and taken in the order of the sums as written ((c, r, s), (k, r, s),
 * (n, oh, ow)); bias (or the old dw) is added once at the end.
 * Tasks own whole output planes ((n, k), (n, c), k; or blocks of CB of them), so the bits never depend on the
 * thread count.
 *
 * Loop order (the per-element sums above are unchanged by it, so the bits are those of the one-element-at-a-time
 * loops): fwd and bwd_data accumulate a whole output row at once, tap by tap, over the range of the row that the
 * tap keeps inside the input (tap_range), so the innermost loop has no branch and, at stride 1, is one the
 * compiler vectorises with the baseline ISA without reassociating anything; bwd_weight sums up to CB input
 * channels side by side (CB independent chains instead of one long dependent one, each still in (n, oh, ow)
 * order). Built without FMA contraction (baseline ISA), so a * b + c is rounded twice, as before.
 * With at least CB_MIN channels on the summed-into side (output channels in fwd, input channels in bwd_data), fwd
 * and bwd_data instead sum CB channels side by side: the weights are packed with the CB channels innermost, and
 * each output position keeps its CB sums in registers over its whole (c, r, s) or (k, r, s) reduction, the taps
 * in order (channel_taps: one tap row at a time); the vector runs across channels, so short rows and stride 2
 * vectorise too. Same orders, same bits.
 * Checked by conv2d_test.c against a double-precision reference (LATENT_MAX_ISA=ref runs this file). */
#include "conv2d.h"

#define CB 8     /* channels summed side by side: input channels in bwd_weight and bwd_data, output channels in fwd */
#define CB_MIN 4 /* fewer channels than this on the summed-into side: the row loops (most of a CB block would idle) */

/* On the channel-blocked tasks: gcc -O3 would otherwise vectorise channel_taps' tap loop (i) as an in-order
 * reduction (the same bits, but a transpose per tap: fwd no faster than the row loops); without it the CB lanes
 * (j) are the vector (SLP). A speed hint only, the sums' order is fixed by the source either way. */
#if defined(__GNUC__) && !defined(__clang__)
#define LANES_ACROSS_CHANNELS __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define LANES_ACROSS_CHANNELS
#endif

typedef struct {
    const lt_conv2d_desc *d;
    const float *a, *b, *bias; /* fwd: x, w; bwd_data: dy, w; bwd_weight: x, dy */
    float *out, *db;
    int accumulate;
    const float *wp; /* the channel-blocked loops' packed weights (pack_channels) */
} ref_ctx;

/* The outputs o in [*lo, *hi) whose input position o*stride - pad + tap lies in [0, len). */
static void tap_range(int64_t tap, int64_t pad, int64_t stride, int64_t len, int64_t out_len, int64_t *lo,
                      int64_t *hi) {
    const int64_t a = pad - tap, b = len - 1 + pad - tap; /* need a <= o*stride <= b */
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    *hi = b < 0 ? 0 : (b / stride + 1 < out_len ? b / stride + 1 : out_len);
}

/* w viewed as (A, B, Z), blocked along B: wp[bb, a, z, j] = w[a, bb*CB + j, z], zero past B. fwd packs (1, K, C*R*S),
 * bwd_data (K, C, R*S). NULL when out of memory (the caller then takes the row loops: the same bits). */
static float *pack_channels(const float *w, int64_t A, int64_t B, int64_t Z) {
    const int64_t nb = (B + CB - 1) / CB;
    float *wp = lt_alloc((size_t)(nb * A * Z * CB) * sizeof(float));
    if (!wp) return NULL;
    for (int64_t bb = 0; bb < nb; bb++)
        for (int64_t a = 0; a < A; a++)
            for (int64_t z = 0; z < Z; z++)
                for (int64_t j = 0; j < CB; j++) {
                    const int64_t b = bb * CB + j;
                    wp[((bb * A + a) * Z + z) * CB + j] = b < B ? w[(a * B + b) * Z + z] : 0.0f;
                }
    return wp;
}

/* acc[j] += v[i*vstep] * wp[i*wstep + j] for i = 0, 1, ..., n-1 in turn, j < CB: CB independent sums, each in i
 * order, held in registers (the j loop is the vector). */
static inline void channel_taps(float *restrict acc, const float *v, int64_t vstep, const float *wp, int64_t wstep,
                                int64_t n) {
    float t[CB];
    for (int j = 0; j < CB; j++) t[j] = acc[j];
    for (int64_t i = 0; i < n; i++) {
        const float xv = v[i * vstep];
        for (int j = 0; j < CB; j++) t[j] += xv * wp[i * wstep + j];
    }
    for (int j = 0; j < CB; j++) acc[j] = t[j];
}

/* fwd, one task per (n, block of CB output channels): for each output position, its CB sums over (c, r, s) */
LANES_ACROSS_CHANNELS static void fwd_block_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t K = d->k, C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const int64_t nkb = (K + CB - 1) / CB, n = t / nkb, k0 = t % nkb * CB, nk = K - k0 < CB ? K - k0 : CB;
    const float *xn = x->a + n * C * H * W;            // (C, H, W)
    const float *wk = x->wp + k0 * C * R * S;          // (C, R, S, CB)
    float *y = x->out + (n * K + k0) * OH * OW;        // (nk, OH, OW)
    for (int64_t oh = 0; oh < OH; oh++) {
        const int64_t ih = oh * d->stride_h - d->pad_h; /* input row of tap r = 0: the taps [rlo, rhi) are inside */
        const int64_t rlo = ih < 0 ? -ih : 0, rhi = H - ih < R ? H - ih : R;
        for (int64_t ow = 0; ow < OW; ow++) {
            const int64_t iw = ow * d->stride_w - d->pad_w; /* likewise along the row: the taps [slo, shi) */
            const int64_t slo = iw < 0 ? -iw : 0, shi = W - iw < S ? W - iw : S;
            float acc[CB] = {0};
            for (int64_t c = 0; c < C; c++)
                for (int64_t r = rlo; r < rhi; r++)
                    channel_taps(acc, xn + (c * H + ih + r) * W + iw + slo, 1, wk + ((c * R + r) * S + slo) * CB, CB,
                                 shi - slo);
            for (int64_t j = 0; j < nk; j++)
                y[(j * OH + oh) * OW + ow] = x->bias ? acc[j] + x->bias[k0 + j] : acc[j];
        }
    }
}

/* bwd_data, one task per (n, block of CB input channels): for each input position, its CB sums over (k, r, s) */
LANES_ACROSS_CHANNELS static void bwd_data_block_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t K = d->k, C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const int64_t ncb = (C + CB - 1) / CB, n = t / ncb, c0 = t % ncb * CB, nc = C - c0 < CB ? C - c0 : CB;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const float *dyn = x->a + n * K * OH * OW;         // (K, OH, OW)
    const float *wc = x->wp + c0 * K * R * S;          // (K, R, S, CB)
    float *dx = x->out + (n * C + c0) * H * W;         // (nc, H, W)
    for (int64_t h = 0; h < H; h++) {
        /* dx[h] takes dy[oh] through the taps r = u - oh*sh, oh in [0, OH): r = u mod sh, then every sh-th */
        const int64_t u = h + d->pad_h, ulast = u - (OH - 1) * sh;
        const int64_t rlo = ulast > u % sh ? ulast : u % sh, rhi = u + 1 < R ? u + 1 : R;
        for (int64_t w = 0; w < W; w++) {
            const int64_t q = w + d->pad_w, qlast = q - (OW - 1) * sw; /* likewise the taps s = q - ow*sw */
            const int64_t slo = qlast > q % sw ? qlast : q % sw, shi = q + 1 < S ? q + 1 : S;
            const int64_t ns = slo < shi ? (shi - slo + sw - 1) / sw : 0;
            float acc[CB] = {0};
            for (int64_t k = 0; k < K; k++)
                for (int64_t r = rlo; r < rhi; r += sh) /* ow falls as s rises */
                    channel_taps(acc, dyn + (k * OH + (u - r) / sh) * OW + (q - slo) / sw, -1,
                                 wc + ((k * R + r) * S + slo) * CB, sw * CB, ns);
            for (int64_t j = 0; j < nc; j++)
                dx[(j * H + h) * W + w] = x->bias ? acc[j] + x->bias[c0 + j] : acc[j];
        }
    }
}

static void fwd_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t n = t / d->k, k = t % d->k, C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OW = d->ow;
    const int64_t sw = d->stride_w, pw = d->pad_w;
    const float *xn = x->a + n * C * H * W;     // (C, H, W)
    const float *wk = x->b + k * C * R * S;     // (C, R, S)
    float *y = x->out + t * d->oh * OW;         // (OH, OW)
    for (int64_t oh = 0; oh < d->oh; oh++) {
        float *yr = y + oh * OW;                // (OW): the row's sums
        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = 0.0f;
        for (int64_t c = 0; c < C; c++)
            for (int64_t r = 0; r < R; r++) {
                int64_t ih = oh * d->stride_h - d->pad_h + r;
                if (ih < 0 || ih >= H) continue;
                const float *xr = xn + (c * H + ih) * W; // (W)
                for (int64_t s = 0; s < S; s++) {
                    const float wv = wk[(c * R + r) * S + s];
                    int64_t lo, hi;
                    tap_range(s, pw, sw, W, OW, &lo, &hi);
                    if (sw == 1)
                        for (int64_t ow = lo; ow < hi; ow++) yr[ow] += xr[ow - pw + s] * wv;
                    else
                        for (int64_t ow = lo; ow < hi; ow++) yr[ow] += xr[ow * sw - pw + s] * wv;
                }
            }
        if (x->bias)
            for (int64_t ow = 0; ow < OW; ow++) yr[ow] += x->bias[k];
    }
}

static void bwd_data_task(void *p, int64_t t, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t n = t / d->c, c = t % d->c, K = d->k, C = d->c, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const int64_t W = d->w, sw = d->stride_w, pw = d->pad_w;
    const float *dyn = x->a + n * K * OH * OW;  // (K, OH, OW)
    float *dx = x->out + t * d->h * W;          // (H, W)
    for (int64_t h = 0; h < d->h; h++) {
        float *dr = dx + h * W;                 // (W): the row's sums
        for (int64_t w = 0; w < W; w++) dr[w] = 0.0f;
        for (int64_t k = 0; k < K; k++)
            for (int64_t r = 0; r < R; r++) {
                int64_t th = h + d->pad_h - r; /* = oh * stride_h */
                if (th < 0 || th % d->stride_h || th / d->stride_h >= OH) continue;
                const float *dyr = dyn + (k * OH + th / d->stride_h) * OW; // (OW)
                for (int64_t s = 0; s < S; s++) {
                    /* dx[w] takes dy[ow] for w = ow*stride_w - pad_w + s: each (k, r, s) at most once per w */
                    const float wv = x->b[((k * C + c) * R + r) * S + s];
                    int64_t lo, hi;
                    tap_range(s, pw, sw, W, OW, &lo, &hi);
                    if (sw == 1)
                        for (int64_t ow = lo; ow < hi; ow++) dr[ow - pw + s] += dyr[ow] * wv;
                    else
                        for (int64_t ow = lo; ow < hi; ow++) dr[ow * sw - pw + s] += dyr[ow] * wv;
                }
            }
        if (x->bias)
            for (int64_t w = 0; w < W; w++) dr[w] += x->bias[c];
    }
}

/* db[k] (+)= the sum of dy's plane k over (n, oh, ow) in order (when db is given) */
static void bias_grad(const ref_ctx *x, int64_t k) {
    const lt_conv2d_desc *d = x->d;
    const int64_t P = d->oh * d->ow;
    if (!x->db) return;
    float sum = 0.0f;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t i = 0; i < P; i++) sum += x->b[(n * d->k + k) * P + i];
    x->db[k] = x->accumulate ? x->db[k] + sum : sum;
}

/* bwd_weight with x packed channel-last by blocks of CB (x->wp: (C/CB, N, H, W, CB)): the CB sums of a block are
 * one vector, each still over (n, oh, ow) in order */
LANES_ACROSS_CHANNELS static void bwd_weight_block_task(void *p, int64_t k, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t N = d->n, C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow, K = d->k;
    const int64_t sw = d->stride_w, pw = d->pad_w;
    float *dw = x->out + k * C * R * S;         // (C, R, S)
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t nc = C - c0 < CB ? C - c0 : CB;
        const float *xb = x->wp + c0 * N * H * W; // (N, H, W, CB)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                float sum[CB] = {0}; /* sum[cc]: dw[k, c0 + cc, r, s] */
                int64_t lo, hi;
                tap_range(s, pw, sw, W, OW, &lo, &hi);
                for (int64_t n = 0; n < N; n++)
                    for (int64_t oh = 0; oh < OH; oh++) {
                        const int64_t ih = oh * d->stride_h - d->pad_h + r;
                        if (ih < 0 || ih >= H) continue;
                        const float *dyr = x->b + ((n * K + k) * OH + oh) * OW;
                        const float *xr = xb + ((n * H + ih) * W - pw + s) * CB; // + ow*sw*CB: x at iw
                        for (int64_t ow = lo; ow < hi; ow++) {
                            const float g = dyr[ow], *xv = xr + ow * sw * CB;
                            for (int cc = 0; cc < CB; cc++) sum[cc] += g * xv[cc];
                        }
                    }
                for (int64_t cc = 0; cc < nc; cc++) {
                    float *o = &dw[((c0 + cc) * R + r) * S + s];
                    *o = x->accumulate ? *o + sum[cc] : sum[cc];
                }
            }
    }
    bias_grad(x, k);
}

static void bwd_weight_task(void *p, int64_t k, int worker) {
    const ref_ctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t C = d->c, H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow, K = d->k;
    const int64_t sw = d->stride_w, pw = d->pad_w;
    float *dw = x->out + k * C * R * S;         // (C, R, S)
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t nc = C - c0 < CB ? C - c0 : CB;
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++) {
                float sum[CB] = {0}; /* sum[cc]: dw[k, c0 + cc, r, s] */
                int64_t lo, hi;
                tap_range(s, pw, sw, W, OW, &lo, &hi);
                for (int64_t n = 0; n < d->n; n++) {
                    const float *xn = x->a + (n * C + c0) * H * W;     // (nc, H, W)
                    const float *dyn = x->b + (n * K + k) * OH * OW;  // (OH, OW)
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * d->stride_h - d->pad_h + r;
                        if (ih < 0 || ih >= H) continue;
                        const float *dyr = dyn + oh * OW, *xr = xn + ih * W; // xr[ow*sw - pw + s]: x at iw
                        if (nc == CB)
                            for (int64_t ow = lo; ow < hi; ow++) {
                                const float g = dyr[ow];
                                for (int cc = 0; cc < CB; cc++) sum[cc] += g * xr[cc * H * W + ow * sw - pw + s];
                            }
                        else /* the last < CB channels one at a time, each sum in a register */
                            for (int64_t cc = 0; cc < nc; cc++) {
                                const float *xc = xr + cc * H * W;
                                float t = sum[cc];
                                for (int64_t ow = lo; ow < hi; ow++) t += dyr[ow] * xc[ow * sw - pw + s];
                                sum[cc] = t;
                            }
                    }
                }
                for (int64_t cc = 0; cc < nc; cc++) {
                    float *o = &dw[((c0 + cc) * R + r) * S + s];
                    *o = x->accumulate ? *o + sum[cc] : sum[cc];
                }
            }
    }
    bias_grad(x, k);
}
lt_status conv2d_fwd_ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    ref_ctx c = {d, x, w, bias, y, NULL, 0, NULL};
    if (d->k >= CB_MIN && (c.wp = pack_channels(w, 1, d->k, d->c * d->r * d->s))) {
        lt_parallel_for(d->n * ((d->k + CB - 1) / CB), fwd_block_task, &c);
        lt_free((void *)c.wp);
    } else
        lt_parallel_for(d->n * d->k, fwd_task, &c);
    return LT_OK;
}

lt_status conv2d_bwd_data_ref(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    ref_ctx c = {d, dy, w, bias, dx, NULL, 0, NULL};
    if (d->c >= CB_MIN && (c.wp = pack_channels(w, d->k, d->c, d->r * d->s))) {
        lt_parallel_for(d->n * ((d->c + CB - 1) / CB), bwd_data_block_task, &c);
        lt_free((void *)c.wp);
    } else
        lt_parallel_for(d->n * d->c, bwd_data_task, &c);
    return LT_OK;
}

lt_status conv2d_bwd_weight_ref(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                int accumulate) {
    ref_ctx c = {d, x, dy, NULL, dw, db, accumulate, NULL};
    if (d->c >= CB_MIN && (c.wp = pack_channels(x, d->n, d->c, d->h * d->w))) {
        lt_parallel_for(d->k, bwd_weight_block_task, &c);
        lt_free((void *)c.wp);
    } else
        lt_parallel_for(d->k, bwd_weight_task, &c);
    return LT_OK;
}
