/* lt_conv2d_fwd_bf16 / lt_conv2d_bwd_data_bf16 / lt_conv2d_bwd_weight_bf16: the conv2d passes with bf16 (RNE)
 * operands and fp32 sums, lowered to the bf16 GEMM (gemm_avx512_bf16.c, vdpbf16ps). latent.h has the contract.
 *
 * Lowering. A block of nb images (nb fixed by the shape alone, never by the thread count) is unfolded into
 * col (C R S, nb P), P = OH OW: row (c, r, s), column (image j, output pixel p) holds x[j, c, oh*sh - ph + r,
 * ow*sw - pw + s] or 0 in the padding. Then, with W the (K, CRS) matrix of w and Y the (K, nb P) gather of y:
 *   fwd        Y   = W col            then scattered into y (+ bias[k])
 *   bwd_data   col = W^T Y            (Y gathered from dy) then folded back into dx (col2im, + bias[c])
 *   bwd_weight dW (+)= Y col^T        beta = 1 after the first block, so blocks add in increasing order
 * Every product is one of the bf16 GEMM's (both operands rounded RNE, fp32 sums), so the arithmetic is what
 * "bf16 operands, fp32 accumulation" says and nothing else is rounded: bias, db (fp32 sums in increasing n, p)
 * and the col2im additions stay fp32. Fully connected shapes (conv2d_is_fc) skip the unfold: x is already the
 * (N, CRS) matrix, and conv2d_fc_avx2.c's lowering (conv2d_fc_*) runs them on the bf16 GEMM; its db is the sum
 * below's (p = 1), in the same order.
 * Scratch: col and Y for one block, at most about BLOCK_FLOATS floats each unless one image alone is larger.
 * Determinism: the GEMM's bits do not depend on the thread count; unfold, gather, scatter and col2im give each
 * output element to one task (col2im: one task per (image, channel) plane, its (r, s) taps added in a fixed order).
 * This is the simple, correct path (issue 15), not a tuned one: the fp32 direct/Winograd kernels read x in place,
 * this one writes and reads a C R S-times larger col; BENCHMARKS.md has the comparison. */
#include <string.h>

#include "conv2d.h"
#include "../gemm/gemm.h"

/* Columns per block: enough for the GEMM's 64-wide tiles on small feature maps (DCGAN's 4 x 4, 8 x 8). */
#define TARGET_COLS 1024
/* Floats of col per block (32 MiB); one image is never split. */
#define BLOCK_FLOATS ((int64_t)8 << 20)

static lt_status refuse(const char *op) {
    if (!lt_cpu_bf16() || lt_isa_level() < LT_ISA_AVX512)
        return lt_fail(LT_ERR_UNSUPPORTED, "%s: bf16 conv2d needs AVX512_BF16 at ISA avx512 (CPU %s AVX512_BF16, "
                       "level in use: %s)", op, lt_cpu_bf16() ? "has" : "lacks",
                       lt_isa_level() == LT_ISA_AVX512 ? "avx512" : lt_isa_level() == LT_ISA_AVX2 ? "avx2" : "ref");
    return LT_OK;
}

/* Images per block: a function of the shape only. */
static int64_t block_images(const lt_conv2d_desc *d) {
    const int64_t p = d->oh * d->ow, crs = d->c * d->r * d->s;
    int64_t nb = (TARGET_COLS + p - 1) / p;
    if (nb > d->n) nb = d->n;
    while (nb > 1 && (crs * nb * p > BLOCK_FLOATS || d->k * nb * p > BLOCK_FLOATS)) nb--;
    return nb;
}

/* ---- unfold / fold / gather / scatter on the pool --------------------------------------------------- */

typedef struct {
    const lt_conv2d_desc *d;
    const float *src;   /* x or dy of the block's first image, or bias */
    float *dst;         /* col, Y, y or dx of the block's first image */
    const float *bias;
    int64_t nb;         /* images in this block */
} job;

/* Task = (image j, channel c): rows (c, r, s) of col, columns of image j. */
static void unfold_task(void *ctx, int64_t t, int worker) {
    const job *jb = ctx;
    const lt_conv2d_desc *d = jb->d;
    const int64_t j = t / d->c, c = t % d->c, p = d->oh * d->ow, ld = jb->nb * p;
    const float *xc = jb->src + (j * d->c + c) * d->h * d->w;
    for (int64_t r = 0; r < d->r; r++)
        for (int64_t s = 0; s < d->s; s++) {
            float *row = jb->dst + ((c * d->r + r) * d->s + s) * ld + j * p;
            for (int64_t oh = 0; oh < d->oh; oh++) {
                const int64_t ih = oh * d->stride_h - d->pad_h + r;
                float *o = row + oh * d->ow;
                if (ih < 0 || ih >= d->h) {
                    memset(o, 0, (size_t)d->ow * sizeof(float));
                    continue;
                }
                const float *xr = xc + ih * d->w;
                if (d->stride_w == 1) {
                    /* iw = ow - pad_w + s: the valid ow form one range, copied at once. */
                    const int64_t off = s - d->pad_w;
                    int64_t lo = off < 0 ? -off : 0, hi = d->w - off;
                    if (hi > d->ow) hi = d->ow;
                    if (hi < lo) hi = lo;
                    for (int64_t q = 0; q < lo; q++) o[q] = 0.0f;
                    if (hi > lo) memcpy(o + lo, xr + lo + off, (size_t)(hi - lo) * sizeof(float));
                    for (int64_t q = hi; q < d->ow; q++) o[q] = 0.0f;
                } else {
                    for (int64_t q = 0; q < d->ow; q++) {
                        const int64_t iw = q * d->stride_w - d->pad_w + s;
                        o[q] = iw >= 0 && iw < d->w ? xr[iw] : 0.0f;
                    }
                }
            }
        }
}

/* Task = (image j, channel c): dx plane (j, c) = bias[c] + the sum of its col entries, taps (r, s) in increasing
 * order, each added to the zeroed plane (so each dx element sums its contributions in one fixed order). */
static void fold_task(void *ctx, int64_t t, int worker) {
    const job *jb = ctx;
    const lt_conv2d_desc *d = jb->d;
    const int64_t j = t / d->c, c = t % d->c, p = d->oh * d->ow, ld = jb->nb * p;
    float *xc = jb->dst + (j * d->c + c) * d->h * d->w;
    memset(xc, 0, (size_t)(d->h * d->w) * sizeof(float));
    for (int64_t r = 0; r < d->r; r++)
        for (int64_t s = 0; s < d->s; s++) {
            const float *row = jb->src + ((c * d->r + r) * d->s + s) * ld + j * p;
            for (int64_t oh = 0; oh < d->oh; oh++) {
                const int64_t ih = oh * d->stride_h - d->pad_h + r;
                if (ih < 0 || ih >= d->h) continue;
                float *xr = xc + ih * d->w;
                const float *o = row + oh * d->ow;
                for (int64_t q = 0; q < d->ow; q++) {
                    const int64_t iw = q * d->stride_w - d->pad_w + s;
                    if (iw >= 0 && iw < d->w) xr[iw] += o[q];
                }
            }
        }
    if (jb->bias) {
        const float b = jb->bias[c];
        for (int64_t i = 0; i < d->h * d->w; i++) xc[i] += b;
    }
}

/* Task = (image j, channel k): Y[k, j P ..] <-> plane (j, k) of y / dy. */
static void gather_task(void *ctx, int64_t t, int worker) {
    const job *jb = ctx;
    const lt_conv2d_desc *d = jb->d;
    const int64_t j = t / d->k, k = t % d->k, p = d->oh * d->ow;
    memcpy(jb->dst + k * jb->nb * p + j * p, jb->src + (j * d->k + k) * p, (size_t)p * sizeof(float));
}
static void scatter_task(void *ctx, int64_t t, int worker) {
    const job *jb = ctx;
    const lt_conv2d_desc *d = jb->d;
    const int64_t j = t / d->k, k = t % d->k, p = d->oh * d->ow;
    const float *src = jb->src + k * jb->nb * p + j * p;
    float *dst = jb->dst + (j * d->k + k) * p;
    const float b = jb->bias ? jb->bias[k] : 0.0f;
    if (jb->bias)
        for (int64_t i = 0; i < p; i++) dst[i] = src[i] + b;
    else
        memcpy(dst, src, (size_t)p * sizeof(float));
}

/* ---- the three passes ------------------------------------------------------------------------------- */

lt_status conv2d_fwd_bf16(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    lt_status st = refuse("lt_conv2d_fwd_bf16");
    if (st) return st;
    if (conv2d_is_fc(d)) return conv2d_fc_fwd(d, x, w, bias, y, gemm_avx512_bf16);
    const int64_t p = d->oh * d->ow, crs = d->c * d->r * d->s, nb0 = block_images(d);
    float *col = lt_alloc((size_t)(crs * nb0 * p) * sizeof(float));
    float *ybuf = lt_alloc((size_t)(d->k * nb0 * p) * sizeof(float));
    if (!col || !ybuf) {
        lt_free(col); lt_free(ybuf);
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_fwd_bf16: no memory for %lld + %lld floats of scratch",
                       (long long)(crs * nb0 * p), (long long)(d->k * nb0 * p));
    }
    for (int64_t n0 = 0; n0 < d->n && !st; n0 += nb0) {
        const int64_t nb = d->n - n0 < nb0 ? d->n - n0 : nb0;
        job u = {d, x + n0 * d->c * d->h * d->w, col, NULL, nb};
        lt_parallel_for(nb * d->c, unfold_task, &u);
        lt_gemm_desc g = conv2d_gemm_desc(0, 0, d->k, nb * p, crs, 0.0f, crs, nb * p, nb * p);
        st = gemm_avx512_bf16(&g, w, col, ybuf);
        if (st) break;
        job s = {d, ybuf, y + n0 * d->k * p, bias, nb};
        lt_parallel_for(nb * d->k, scatter_task, &s);
    }
    lt_free(col); lt_free(ybuf);
    return st;
}

lt_status conv2d_bwd_data_bf16(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                               float *dx) {
    lt_status st = refuse("lt_conv2d_bwd_data_bf16");
    if (st) return st;
    if (conv2d_is_fc(d)) return conv2d_fc_bwd_data(d, dy, w, bias, dx, gemm_avx512_bf16);
    const int64_t p = d->oh * d->ow, crs = d->c * d->r * d->s, nb0 = block_images(d);
    float *col = lt_alloc((size_t)(crs * nb0 * p) * sizeof(float));
    float *ybuf = lt_alloc((size_t)(d->k * nb0 * p) * sizeof(float));
    if (!col || !ybuf) {
        lt_free(col); lt_free(ybuf);
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_data_bf16: no memory for %lld + %lld floats of scratch",
                       (long long)(crs * nb0 * p), (long long)(d->k * nb0 * p));
    }
    for (int64_t n0 = 0; n0 < d->n && !st; n0 += nb0) {
        const int64_t nb = d->n - n0 < nb0 ? d->n - n0 : nb0;
        job gth = {d, dy + n0 * d->k * p, ybuf, NULL, nb};
        lt_parallel_for(nb * d->k, gather_task, &gth);
        lt_gemm_desc g = conv2d_gemm_desc(1, 0, crs, nb * p, d->k, 0.0f, crs, nb * p, nb * p);
        st = gemm_avx512_bf16(&g, w, ybuf, col);
        if (st) break;
        job f = {d, col, dx + n0 * d->c * d->h * d->w, bias, nb};
        lt_parallel_for(nb * d->c, fold_task, &f);
    }
    lt_free(col); lt_free(ybuf);
    return st;
}

lt_status conv2d_bwd_weight_bf16(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                 int accumulate) {
    lt_status st = refuse("lt_conv2d_bwd_weight_bf16");
    if (st) return st;
    if (conv2d_is_fc(d)) return conv2d_fc_bwd_weight(d, x, dy, dw, db, accumulate, gemm_avx512_bf16);
    const int64_t p = d->oh * d->ow, crs = d->c * d->r * d->s;
    const int64_t nb0 = block_images(d);
    float *col = lt_alloc((size_t)(crs * nb0 * p) * sizeof(float));
    float *ybuf = lt_alloc((size_t)(d->k * nb0 * p) * sizeof(float));
    if (!col || !ybuf) {
        lt_free(col); lt_free(ybuf);
        return lt_fail(LT_ERR_OUT_OF_MEMORY,
                       "lt_conv2d_bwd_weight_bf16: no memory for %lld + %lld floats of scratch",
                       (long long)(crs * nb0 * p), (long long)(d->k * nb0 * p));
    }
    for (int64_t n0 = 0; n0 < d->n && !st; n0 += nb0) {
        const int64_t nb = d->n - n0 < nb0 ? d->n - n0 : nb0;
        job u = {d, x + n0 * d->c * d->h * d->w, col, NULL, nb};
        lt_parallel_for(nb * d->c, unfold_task, &u);
        job gth = {d, dy + n0 * d->k * p, ybuf, NULL, nb};
        lt_parallel_for(nb * d->k, gather_task, &gth);
        lt_gemm_desc g = conv2d_gemm_desc(0, 1, d->k, crs, nb * p, accumulate || n0 > 0 ? 1.0f : 0.0f, nb * p, nb * p, crs);
        st = gemm_avx512_bf16(&g, ybuf, col, dw);
    }
    lt_free(col); lt_free(ybuf);
    if (st || !db) return st;
    /* db[k] (+)= the sum of dy[n, k, :] in increasing n, then p, in fp32. */
    for (int64_t k = 0; k < d->k; k++) {
        float s = 0.0f;
        for (int64_t n = 0; n < d->n; n++) {
            const float *row = dy + (n * d->k + k) * p;
            for (int64_t i = 0; i < p; i++) s += row[i];
        }
        db[k] = accumulate ? db[k] + s : s;
    }
    return LT_OK;
}
