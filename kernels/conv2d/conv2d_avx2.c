/* Convolution as tiled im2col + GEMM (the fast path at ISA avx2).
 *
 * Design (a measured choice; numbers in BENCHMARKS.md and below): all the arithmetic runs in our packed AVX2 GEMM
 * (kernels/gemm), called single-threaded from inside pool tasks (a nested lt_parallel_for runs inline), one tile
 * per task. A tile is a set of output columns small enough that its im2col block stays in the worker's L2:
 * either several whole images (when OH OW is small: W3b has 49 columns per image) or a block of one image's
 * columns (W3a: 1024 columns per image, blocks of ~220). Per tile, in per-worker scratch:
 *   forward     col = im2col(x)  (C R S, cols);  tmp = W (K, C R S) col;  y[.., k, cols] = tmp + bias[k]
 *   bwd-data    dyT = dy (K, cols); col = W^T dyT; col2im into dx (+ bias[c]); tiles hold whole images, so no
 *               two tasks write the same dx pixel
 *   bwd-weight  partial[g] += dyT col^T over the tiles of group g, then dW = sum of the partials in g order
 * A first version built the im2col matrix of 16 MB chunks of images and ran one big multi-threaded GEMM per chunk:
 * W3a forward reached only 45% of peak, limited by writing and re-reading the 16 MB col from memory; tiles in L2
 * remove that traffic.
 * Determinism: tiles and groups depend only on the shape (never on the thread count); each tile writes its own
 * outputs; col2im sums in a fixed order; the group partials are added in a fixed order; db is summed per channel
 * in double in (n, position) order. So the bits never depend on the thread count.
 * Next step if this trails oneDNN: pack B straight from x inside the GEMM (true implicit GEMM, no col at all), or
 * a direct nChw8c kernel for 3x3 stride 1. */
#include <string.h>

#include "conv2d.h"

#define TILE_FLOATS (96 * 1024)  /* im2col block per tile: 384 KB, inside a 1 MB L2 with the packed panels ... */
#define MIN_COLS 256             /* ... but at least 256 columns, so packing W (K x CRS) per tile stays small next to
                                    the tile's 2 K CRS cols FLOPs when CRS is large (DCGAN's 4x4 layers: CRS = 2048) */
#define MIN_PARALLEL_TILES 8     /* fewer tiles: run them in order on the caller and let each GEMM use the pool */
#define MAX_GROUPS 4             /* bwd-weight partial sums (each K x CRS, reduced at the end) */

typedef struct {
    const lt_conv2d_desc *d;
    const float *x, *w, *dy, *bias;
    float *out, *db;
    float **col, **tmp;          /* per worker */
    float *part;                 /* bwd-weight: MAX_GROUPS x K x CRS */
    int64_t crs, P, imgs, cols;  /* tile: `imgs` whole images (cols = imgs P) or, when imgs == 0, `cols` columns of one image */
    int64_t ntiles, tiles_per_img, ngroups;
    int accumulate, width;
    lt_status st;                /* first GEMM failure (cannot happen for validated shapes; kept for safety) */
} job;

/* Tile t: images [n0, n0 + m), columns [p0, p0 + len) of each (whole images: p0 = 0, len = P). */
static void tile_of(const job *j, int64_t t, int64_t *n0, int64_t *m, int64_t *p0, int64_t *len) {
    if (j->imgs > 0) {
        *n0 = t * j->imgs;
        *m = j->d->n - *n0 < j->imgs ? j->d->n - *n0 : j->imgs;
        *p0 = 0;
        *len = j->P;
    } else {
        *n0 = t / j->tiles_per_img;
        *m = 1;
        *p0 = (t % j->tiles_per_img) * j->cols;
        *len = j->P - *p0 < j->cols ? j->P - *p0 : j->cols;
    }
}

/* col (CRS, ld) columns [i * len ..) <- im2col of image n, output positions [p0, p0 + len) */
/* A kernel that covers the whole unpadded input (DCGAN's 4x4 -> 1x1 layers): one output position, and the col
 * column of image n is x[n] itself, flattened. */
static int whole_input(const lt_conv2d_desc *d) {
    return d->oh == 1 && d->ow == 1 && d->pad_h == 0 && d->pad_w == 0 && d->r == d->h && d->s == d->w;
}

static lt_status im2col(const lt_conv2d_desc *d, const float *x, int64_t n, int64_t p0, int64_t len, float *col, int64_t ld, int64_t off) {
    if (whole_input(d)) {
        const float *xn = x + n * d->c * d->h * d->w;
        for (int64_t e = 0, crs = d->c * d->r * d->s; e < crs; e++) col[e * ld + off] = xn[e];
        return LT_OK;
    }
    /* Source column of (s, ox) and source row of (r, oy), or -1 in the padding: computed once per call, so the
     * copy loops below do no division and no bounds arithmetic (DCGAN's 4 x 4 outputs made runs of 4 elements,
     * where the per-run arithmetic cost more than the copy). */
    int32_t xs_stack[512], ys_stack[512];
    int64_t nx = d->s * d->ow, ny = d->r * d->oh;
    int32_t *xs = nx <= 512 ? xs_stack : lt_alloc((size_t)nx * sizeof(int32_t));
    int32_t *ys = ny <= 512 ? ys_stack : lt_alloc((size_t)ny * sizeof(int32_t));
    if (!xs || !ys) {
        if (xs && xs != xs_stack) lt_free(xs);
        if (ys && ys != ys_stack) lt_free(ys);
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "conv2d: im2col index tables of %lld + %lld entries", (long long)nx, (long long)ny);
    }
    for (int64_t s = 0; s < d->s; s++)
        for (int64_t ox = 0; ox < d->ow; ox++) {
            int64_t ix = ox * d->stride_w - d->pad_w + s;
            xs[s * d->ow + ox] = ix >= 0 && ix < d->w ? (int32_t)ix : -1;
        }
    for (int64_t r = 0; r < d->r; r++)
        for (int64_t oy = 0; oy < d->oh; oy++) {
            int64_t iy = oy * d->stride_h - d->pad_h + r;
            ys[r * d->oh + oy] = iy >= 0 && iy < d->h ? (int32_t)iy : -1;
        }
    int64_t oy0 = p0 / d->ow, ox0 = p0 % d->ow, end = p0 + len;
    for (int64_t c = 0; c < d->c; c++) {
        const float *xc = x + (n * d->c + c) * d->h * d->w;
        for (int64_t r = 0; r < d->r; r++)
            for (int64_t s = 0; s < d->s; s++) {
                float *dst = col + ((c * d->r + r) * d->s + s) * ld + off;
                const int32_t *xt = xs + s * d->ow, *yt = ys + r * d->oh;
                int64_t p = p0, oy = oy0, ox = ox0;
                while (p < end) {
                    int64_t run = d->ow - ox < end - p ? d->ow - ox : end - p;
                    float *drow = dst + (p - p0);
                    int32_t iy = yt[oy];
                    if (iy < 0) {
                        memset(drow, 0, run * sizeof(float));
                    } else {
                        const float *srow = xc + (int64_t)iy * d->w;
                        for (int64_t q = 0; q < run; q++) {
                            int32_t ix = xt[ox + q];
                            drow[q] = ix >= 0 ? srow[ix] : 0.0f;
                        }
                    }
                    p += run;
                    oy++;
                    ox = 0;
                }
            }
    }
    if (xs != xs_stack) lt_free(xs);
    if (ys != ys_stack) lt_free(ys);
    return LT_OK;
}

/* A small cache of scratch blocks: a training step calls the convolutions hundreds of times with the same few
 * sizes, and fresh multi-megabyte blocks cost page faults (zeroed pages) on every call. */
#include <pthread.h>
#define CACHE_SLOTS 8
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { void *p; size_t bytes; } cache[CACHE_SLOTS];

static void *scratch_get(size_t bytes) {
    pthread_mutex_lock(&cache_mu);
    int best = -1;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].p && cache[i].bytes >= bytes && cache[i].bytes <= 2 * bytes + 65536 && (best < 0 || cache[i].bytes < cache[best].bytes)) best = i;
    void *p = NULL;
    if (best >= 0) { p = cache[best].p; cache[best].p = NULL; }
    pthread_mutex_unlock(&cache_mu);
    if (p) return p;
    p = lt_alloc(bytes + 64);
    if (p) *(size_t *)p = bytes;
    return p ? (char *)p + 64 : NULL;
}

static void scratch_put(void *q) {
    if (!q) return;
    void *p = (char *)q - 64;
    size_t bytes = *(size_t *)p;
    pthread_mutex_lock(&cache_mu);
    int slot = -1;
    for (int i = 0; i < CACHE_SLOTS && slot < 0; i++) if (!cache[i].p) slot = i;
    if (slot < 0) {   /* full: evict the smallest if this one is larger */
        slot = 0;
        for (int i = 1; i < CACHE_SLOTS; i++) if (cache[i].bytes < cache[slot].bytes) slot = i;
        if (cache[slot].bytes >= bytes) { pthread_mutex_unlock(&cache_mu); lt_free(p); return; }
        lt_free((char *)cache[slot].p - 64);
    }
    cache[slot].p = q;
    cache[slot].bytes = bytes;
    pthread_mutex_unlock(&cache_mu);
}

/* Runs tasks [0, n): on the pool when there are enough of them, else in order on this thread (each GEMM inside
 * then uses the pool itself). The choice depends on the shape only, and neither changes any bit. */
static void run(int64_t n, lt_task_fn fn, void *ctx) {
    if (n >= MIN_PARALLEL_TILES) lt_parallel_for(n, fn, ctx);
    else for (int64_t t = 0; t < n; t++) fn(ctx, t, 0);
}

static lt_status gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                      float beta, float *c, int64_t ldc) {
    lt_gemm_desc g = {ta, tb, m, n, k, 1.0f, beta, lda, ldb, ldc, 1, 0, 0, 0};
    return lt_gemm(&g, a, b, c);
}

static void fail(job *j, lt_status s) { if (s != LT_OK && j->st == LT_OK) j->st = s; }

static void fwd_task(void *p, int64_t t, int worker) {
    job *j = p;
    const lt_conv2d_desc *d = j->d;
    int64_t n0, m, p0, len;
    tile_of(j, t, &n0, &m, &p0, &len);
    int64_t L = m * len;
    float *col = j->col[worker], *tmp = j->tmp[worker];
    for (int64_t i = 0; i < m; i++) fail(j, im2col(d, j->x, n0 + i, p0, len, col, L, i * len));
    fail(j, gemm(0, 0, d->k, L, j->crs, j->w, j->crs, col, L, 0.0f, tmp, L));
    for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < d->k; k++) {
            const float *src = tmp + k * L + i * len;
            float *dst = j->out + ((n0 + i) * d->k + k) * j->P + p0;
            if (j->bias) {
                float b = j->bias[k];
                for (int64_t q = 0; q < len; q++) dst[q] = src[q] + b;
            } else {
                memcpy(dst, src, len * sizeof(float));
            }
        }
}

static void bwd_data_task(void *p, int64_t t, int worker) {
    job *j = p;
    const lt_conv2d_desc *d = j->d;
    int64_t n0, m, p0, len;
    tile_of(j, t, &n0, &m, &p0, &len);   /* whole images here */
    int64_t L = m * len, P = j->P, hw = d->h * d->w;
    float *col = j->col[worker], *tmp = j->tmp[worker];
    for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < d->k; k++) memcpy(tmp + k * L + i * P, j->dy + ((n0 + i) * d->k + k) * P, P * sizeof(float));
    fail(j, gemm(1, 0, j->crs, L, d->k, j->w, j->crs, tmp, L, 0.0f, col, L));
    if (whole_input(d)) {
        for (int64_t i = 0; i < m; i++) {
            float *dn = j->out + (n0 + i) * hw * d->c;
            for (int64_t e = 0; e < j->crs; e++) dn[e] = col[e * L + i] + (j->bias ? j->bias[e / hw] : 0.0f);
        }
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < d->c; c++) {
            float *dc = j->out + ((n0 + i) * d->c + c) * hw;
            float b = j->bias ? j->bias[c] : 0.0f;
            for (int64_t q = 0; q < hw; q++) dc[q] = b;
            for (int64_t r = 0; r < d->r; r++)
                for (int64_t s = 0; s < d->s; s++) {
                    const float *src = col + ((c * d->r + r) * d->s + s) * L + i * P;
                    int64_t ix0 = s - d->pad_w, sw = d->stride_w;
                    /* valid output columns [lo, hi) of this tap, once per (c, r, s): no division in the row loop */
                    int64_t lo = ix0 < 0 ? (-ix0 + sw - 1) / sw : 0, hi = d->w - 1 - ix0 >= 0 ? (d->w - 1 - ix0) / sw + 1 : 0;
                    if (hi > d->ow) hi = d->ow;
                    for (int64_t oy = 0; oy < d->oh; oy++) {
                        int64_t iy = oy * d->stride_h - d->pad_h + r;
                        if (iy < 0 || iy >= d->h) continue;
                        const float *srow = src + oy * d->ow;
                        float *dp = dc + iy * d->w + lo * sw + ix0;
                        if (sw == 1) for (int64_t ox = lo; ox < hi; ox++) dp[ox - lo] += srow[ox];
                        else for (int64_t ox = lo; ox < hi; ox++, dp += sw) *dp += srow[ox];
                    }
                }
        }
}

/* group g: tiles [g T / G, (g + 1) T / G) accumulated in order into part[g] */
static void bwd_weight_task(void *p, int64_t g, int worker) {
    job *j = p;
    const lt_conv2d_desc *d = j->d;
    float *part = j->part + g * d->k * j->crs, *col = j->col[worker], *tmp = j->tmp[worker];
    int64_t t0 = g * j->ntiles / j->ngroups, t1 = (g + 1) * j->ntiles / j->ngroups;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n0, m, p0, len;
        tile_of(j, t, &n0, &m, &p0, &len);
        int64_t L = m * len;
        for (int64_t i = 0; i < m; i++) {
            fail(j, im2col(d, j->x, n0 + i, p0, len, col, L, i * len));
            for (int64_t k = 0; k < d->k; k++) memcpy(tmp + k * L + i * len, j->dy + ((n0 + i) * d->k + k) * j->P + p0, len * sizeof(float));
        }
        fail(j, gemm(0, 1, d->k, j->crs, L, tmp, L, col, L, t == t0 ? 0.0f : 1.0f, part, j->crs));
    }
}

/* with several groups, tasks beyond ngroups are empty: run() only needs enough of them to use the pool */
static void bwd_weight_group_task(void *p, int64_t g, int worker) {
    job *j = p;
    if (g < j->ngroups) bwd_weight_task(p, g, worker);
}

/* dw[e] (+)= sum over groups of part[g][e], in g order; slices of 4096 elements per task */
static void reduce_task(void *p, int64_t t, int worker) {
    job *j = p;
    int64_t total = j->d->k * j->crs, lo = t * 4096, hi = lo + 4096 < total ? lo + 4096 : total;
    for (int64_t e = lo; e < hi; e++) {
        float s = j->accumulate ? j->out[e] : 0.0f;
        for (int64_t g = 0; g < j->ngroups; g++) s += j->part[g * total + e];
        j->out[e] = s;
    }
}

static void db_task(void *p, int64_t k, int worker) {
    job *j = p;
    const lt_conv2d_desc *d = j->d;
    double acc = 0;
    for (int64_t n = 0; n < d->n; n++) {
        const float *row = j->dy + (n * d->k + k) * j->P;
        for (int64_t q = 0; q < j->P; q++) acc += row[q];
    }
    j->db[k] = j->accumulate ? (float)(j->db[k] + acc) : (float)acc;
}

/* Tiling and per-worker scratch; whole = 1 forces tiles of whole images (bwd-data). */
static lt_status setup(job *j, const lt_conv2d_desc *d, int whole, const char *fn) {
    j->d = d;
    j->crs = d->c * d->r * d->s;
    j->P = d->oh * d->ow;
    int64_t cols = TILE_FLOATS / j->crs;
    if (cols < MIN_COLS) cols = MIN_COLS;
    if (j->P <= cols || whole) {
        j->imgs = j->P <= cols ? cols / j->P : 1;
        if (j->imgs > d->n) j->imgs = d->n;
        j->cols = j->imgs * j->P;
        j->ntiles = (d->n + j->imgs - 1) / j->imgs;
        j->tiles_per_img = 1;
    } else {
        j->imgs = 0;
        int64_t per = (j->P + cols - 1) / cols;            /* blocks per image, then even widths rounded to 8 */
        j->cols = ((j->P + per - 1) / per + 7) & ~(int64_t)7;
        j->tiles_per_img = (j->P + j->cols - 1) / j->cols;
        j->ntiles = d->n * j->tiles_per_img;
    }
    int width = j->ntiles >= MIN_PARALLEL_TILES ? lt_pool_width() : 1;
    j->width = width;
    j->col = lt_alloc((size_t)width * 2 * sizeof(float *));
    if (!j->col) return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: scratch table", fn);
    j->tmp = j->col + width;
    memset(j->col, 0, (size_t)width * 2 * sizeof(float *));
    for (int i = 0; i < width; i++) {
        j->col[i] = scratch_get((size_t)(j->crs * j->cols) * sizeof(float));
        j->tmp[i] = scratch_get((size_t)(d->k * j->cols) * sizeof(float));
        if (!j->col[i] || !j->tmp[i]) return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: %d x %lld floats of scratch", fn, width, (long long)((j->crs + d->k) * j->cols));
    }
    j->st = LT_OK;
    return LT_OK;
}

static void teardown(job *j) {
    if (!j->col) return;
    for (int i = 0; i < j->width; i++) { scratch_put(j->col[i]); scratch_put(j->tmp[i]); }
    lt_free(j->col);
    scratch_put(j->part);
}

lt_status conv_fwd_gemm(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    job j = {0};
    lt_status s = setup(&j, d, 0, "lt_conv2d_fwd");
    if (s == LT_OK) {
        j.x = x; j.w = w; j.bias = bias; j.out = y;
        run(j.ntiles, fwd_task, &j);
        s = j.st;
    }
    teardown(&j);
    return s;
}

lt_status conv_bwd_data_gemm(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    job j = {0};
    lt_status s = setup(&j, d, 1, "lt_conv2d_bwd_data");
    if (s == LT_OK) {
        j.dy = dy; j.w = w; j.bias = bias; j.out = dx;
        run(j.ntiles, bwd_data_task, &j);
        s = j.st;
    }
    teardown(&j);
    return s;
}

lt_status conv_bwd_weight_gemm(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db, int accumulate) {
    job j = {0};
    lt_status s = setup(&j, d, 0, "lt_conv2d_bwd_weight");
    if (s == LT_OK) {
        j.x = x; j.dy = dy; j.out = dw; j.db = db; j.accumulate = accumulate;
        j.ngroups = j.ntiles < MIN_PARALLEL_TILES ? 1 : MAX_GROUPS;
        j.part = scratch_get((size_t)(j.ngroups * d->k * j.crs) * sizeof(float));
        if (!j.part) s = lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_weight: %lld partial sums", (long long)(j.ngroups * d->k * j.crs));
        else {
            run(j.ngroups == 1 ? 1 : j.ngroups * MIN_PARALLEL_TILES, j.ngroups == 1 ? bwd_weight_task : bwd_weight_group_task, &j);
            s = j.st;
            if (s == LT_OK) lt_parallel_for((d->k * j.crs + 4095) / 4096, reduce_task, &j);
            if (s == LT_OK && db) lt_parallel_for(d->k, db_task, &j);
        }
    }
    teardown(&j);
    return s;
}
