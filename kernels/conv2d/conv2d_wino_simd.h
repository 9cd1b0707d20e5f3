/* Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with enough channels (fwd, and bwd_data, which is the same
 * correlation of dy with the flipped, transposed kernel). Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks" (2016): each 2x2 output tile is A^T [ (G g G^T) .* (B^T d B) ] A over a 4x4 input tile d, so the
 * 36 multiplies of a tile per (input, output) channel pair become 16, 2.25x fewer: the direct engine already runs
 * these shapes at 85-90% of the AVX2 FMA peak (RealNVP's 64 -> 64 at 28x28), so only fewer multiplies make them
 * faster.
 *
 *   U[xi][o][i] = (G g_oi G^T)[xi]              weights, once per call (xi = one of the 16 tile positions)
 *   V[xi][s][i][l] = (B^T d B)[xi]               input tiles, 16 tiles per sliver s (lane l), per task
 *   M[xi][o][t] = sum_i U[xi][o][i] V[xi][i][t]  16 small GEMMs on the conv's micro-kernel (WINO_UKR)
 *   y tile = A^T M A (+ bias[o])
 * A task is one image's block of `rows` tile rows (as many as keep V near WG_BYTES, split evenly); each tile row is padded to a multiple of 16 tiles (the vector
 * lanes: 8 tiles per ymm through even/odd deinterleaves of the input rows, read in place). The sum over input channels runs
 * in increasing i inside the micro-kernel, every transform is a fixed sequence of adds, and no tile's arithmetic
 * depends on the task split: the bits are the same for any thread count. Numerically F(2x2, 3x3) adds a few ulps
 * of rounding in the transforms (the 1/2 factors of G are exact); conv2d_test checks it against the double
 * reference at the same tolerance as the direct engine.
 *
 * This is the body written once for both levels: conv2d_wino_avx2.c (the 6 x 16 ymm tile, conv2d_ukr) and
 * conv2d_wino_avx512.c (the 8 x 32 zmm tile, conv2d_ukr512) include their tile header, define the macros below, then
 * #include this file (never compiled on its own; not a *.c, so CMake does not glob it). The transforms are AVX2 (ymm,
 * 8 tiles per vector) at both levels. The shape gates (conv2d_wino_ok, conv2d_wino_wgrad_ok) are in
 * conv2d_wino_avx2.c only.
 * Required: MR (tile rows), SFX(name) (name suffix), WINO_SUB (16-wide slivers per micro-kernel tile: 1 or 2) and
 * WINO_UKR(mr, nsub, kc, rows, tab, b, boff, c, ldc, add): the micro-kernel on nsub (<= WINO_SUB) slivers 16 wide,
 * each reduction step 16 floats apart in b, the second sliver boff floats after the first. */
#include <stdlib.h>
#include <string.h>

#ifndef WG_BYTES
#define WG_BYTES (512 << 10) /* V (and M) bytes per task: 7 tile rows at E4 (14 rows of 16 tiles x 64 channels) */
#endif

typedef struct {
    const float *in, *bias;
    float *out;
    int64_t n, ci, hi, wi, co, ho, wo, pad;
    int64_t th, tw, nslr, nt;   /* tile rows / columns, slivers per tile row, tiles per task (padded) */
    int64_t rows;               /* tile rows per task (the last group may have fewer) */
    int64_t ngrp;               /* tile-row groups per image */
    const float *u;             /* (16, co, ci) */
    int64_t *tab;               /* (ci): identity offsets for the micro-kernel */
    slots sl;                   /* per worker: [16 * vplane V | 16 * mplane M] */
    int64_t vsz, msz;
    int64_t vplane, mplane;     /* floats between xi planes of V and M: not a multiple of 4 KB (see wino_run) */
} wino;

/* U = G g G^T for one 3x3 kernel g (row-major), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. */
static void wino_weight(const float g[9], float u[16]) {
    float t[4][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) { /* (G g) G^T */
        u[i * 4 + 0] = t[i][0];
        u[i * 4 + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[i * 4 + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[i * 4 + 3] = t[i][2];
    }
}

/* Lanes [0, n) on, n <= 8. */
static inline __m256i tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Columns [c0, c0 + 16) of a row of w floats, zero outside [0, w): plain loads inside, masked loads at the edges
 * (masked-off lanes are not read, so a row's neighbours and the space before the tensor are never touched). This
 * replaced a zero-padded copy of every input row (10% of a RealNVP step: each 12.8 MB activation went through
 * memory twice). */
static inline void load16(const float *row, int64_t c0, int64_t w, __m256 *a, __m256 *b) {
    if (c0 >= 0 && c0 + 16 <= w) {
        *a = _mm256_loadu_ps(row + c0);
        *b = _mm256_loadu_ps(row + c0 + 8);
        return;
    }
    const __m256i cols = _mm256_add_epi32(_mm256_set1_epi32((int)c0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i cols8 = _mm256_add_epi32(cols, _mm256_set1_epi32(8)), lo = _mm256_set1_epi32(-1),
                  hi = _mm256_set1_epi32((int)w);
    const __m256i m0 = _mm256_and_si256(_mm256_cmpgt_epi32(cols, lo), _mm256_cmpgt_epi32(hi, cols));
    const __m256i m1 = _mm256_and_si256(_mm256_cmpgt_epi32(cols8, lo), _mm256_cmpgt_epi32(hi, cols8));
    *a = _mm256_maskload_ps(row + c0, m0);
    *b = _mm256_maskload_ps(row + c0 + 8, m1);
}

/* Even and odd lanes of the 16 floats (a, b): even[l] = element 2l, odd[l] = element 2l + 1. */
static inline void deinterleave(__m256 a, __m256 b, __m256 *even, __m256 *odd) {
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* V[xi][s][c][16] = B^T d B for the tiles of image n, tile rows r0 .. r0 + nr (every padded tile of each row),
 * 8 tiles per vector, read in place from the input (zero outside it). */
static void in_transform(const wino *x, int64_t n, int64_t r0, int64_t nr, float *v) {
    const int64_t ci = x->ci, hi = x->hi, wi = x->wi;
    const float *xn = x->in + n * ci * hi * wi;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t c = 0; c < ci; c++)
        for (int64_t tr = 0; tr < nr; tr++)
            for (int64_t g = 0; g < 2 * x->nslr; g++) {
                const int64_t c0 = 16 * g - x->pad;
                __m256 d[4][4];
                for (int i = 0; i < 4; i++) {
                    const int64_t ih = 2 * (r0 + tr) - x->pad + i;
                    if (ih < 0 || ih >= hi) {
                        d[i][0] = d[i][1] = d[i][2] = d[i][3] = zero;
                        continue;
                    }
                    const float *row = xn + (c * hi + ih) * wi;
                    __m256 a, b;
                    load16(row, c0, wi, &a, &b);
                    deinterleave(a, b, &d[i][0], &d[i][1]);
                    load16(row, c0 + 2, wi, &a, &b);
                    deinterleave(a, b, &d[i][2], &d[i][3]);
                }
                __m256 b[4][4]; /* B^T d */
                for (int j = 0; j < 4; j++) {
                    b[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
                    b[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
                    b[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
                    b[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
                }
                const int64_t s = tr * x->nslr + g / 2;
                float *o = v + (s * ci + c) * 16 + (g & 1) * 8;
                const int64_t xs = x->vplane;
                for (int i = 0; i < 4; i++) { /* (B^T d) B */
                    _mm256_store_ps(o + (4 * i + 0) * xs, _mm256_sub_ps(b[i][0], b[i][2]));
                    _mm256_store_ps(o + (4 * i + 1) * xs, _mm256_add_ps(b[i][1], b[i][2]));
                    _mm256_store_ps(o + (4 * i + 2) * xs, _mm256_sub_ps(b[i][2], b[i][1]));
                    _mm256_store_ps(o + (4 * i + 3) * xs, _mm256_sub_ps(b[i][1], b[i][3]));
                }
            }
}

static void wino_task(void *p, int64_t t, int worker) {
    const wino *x = p;
    float *own, *buf = conv2d_slot_of((slots *)&x->sl, worker, &own);
    if (!buf) return;
    float *v = buf, *m = v + x->vsz;
    const int64_t n = t / x->ngrp, r0 = (t % x->ngrp) * x->rows, r1 = min64(x->th, r0 + x->rows), nr = r1 - r0;
    const int64_t ci = x->ci, co = x->co, nt = x->nt;
    const int64_t nsl = nr * x->nslr; /* slivers of this task (nt may be larger for the last group) */
    in_transform(x, n, r0, nr, v);
    /* 16 GEMMs: M[xi][o][s*16 + l] = sum_c U[xi][o][c] V[xi][s][c][l] */
    for (int xi = 0; xi < 16; xi++)
        for (int64_t s = 0; s < nsl; s += WINO_SUB) { /* WINO_SUB slivers (16 tiles each) per tile of the micro-kernel */
            const float *bs = v + xi * x->vplane + s * 16 * ci;
            const int nsub = WINO_SUB > 1 && s + 1 < nsl ? 2 : 1;
            for (int64_t o0 = 0; o0 < co; o0 += MR) {
                const int mr = (int)min64(MR, co - o0);
                const float *rows[MR];
                for (int i = 0; i < mr; i++) rows[i] = x->u + (xi * co + o0 + i) * ci;
                WINO_UKR(mr, nsub, ci, rows, x->tab, bs, 16 * ci, m + xi * x->mplane + o0 * nt + s * 16, nt, 0);
            }
        }
    /* output transform, 8 tiles at a time: y[2 tr + a][2 tc + b] */
    for (int64_t o = 0; o < co; o++) {
        const __m256 bias = _mm256_set1_ps(x->bias ? x->bias[o] : 0.0f);
        float *yo = x->out + (n * co + o) * x->ho * x->wo;
        for (int64_t tr = 0; tr < nr; tr++)
            for (int64_t g = 0; g < 2 * x->nslr; g++) {
                const int64_t tc0 = 8 * g;
                if (tc0 >= x->tw) break;
                const float *mp = m + o * nt + tr * x->nslr * 16 + tc0;
                __m256 mm[4][4];
                for (int xi = 0; xi < 16; xi++) mm[xi / 4][xi % 4] = _mm256_load_ps(mp + xi * x->mplane);
                __m256 u[2][4]; /* A^T m */
                for (int j = 0; j < 4; j++) {
                    u[0][j] = _mm256_add_ps(_mm256_add_ps(mm[0][j], mm[1][j]), mm[2][j]);
                    u[1][j] = _mm256_sub_ps(_mm256_sub_ps(mm[1][j], mm[2][j]), mm[3][j]);
                }
                const int64_t h0 = 2 * (r0 + tr), w0 = 2 * tc0, cols = min64(16, x->wo - w0);
                for (int a = 0; a < 2; a++) {
                    if (h0 + a >= x->ho) break;
                    const __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(u[a][0], u[a][1]), u[a][2]), bias);
                    const __m256 y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(u[a][1], u[a][2]), u[a][3]), bias);
                    const __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
                    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
                    float *yr = yo + (h0 + a) * x->wo + w0;
                    if (cols >= 8) { /* the row's tail through a masked store, not a memcpy call per row */
                        _mm256_storeu_ps(yr, first);
                        if (cols == 16) _mm256_storeu_ps(yr + 8, second);
                        else _mm256_maskstore_ps(yr + 8, tail_mask(cols - 8), second);
                    } else {
                        _mm256_maskstore_ps(yr, tail_mask(cols), first);
                    }
                }
            }
    }
    lt_free(own);
}

/* Tiles of the correlation in (n, ci, hi, wi) padded by pad -> (n, co, ho, wo), and the V layout. */
static void geometry(wino *x, const float *in, int64_t n, int64_t ci, int64_t hi, int64_t wi, int64_t co, int64_t ho,
                     int64_t wo, int64_t pad) {
    memset(x, 0, sizeof *x);
    x->in = in;
    x->n = n; x->ci = ci; x->hi = hi; x->wi = wi; x->co = co; x->ho = ho; x->wo = wo; x->pad = pad;
    x->th = cdiv(ho, 2); x->tw = cdiv(wo, 2);
    x->nslr = cdiv(x->tw, 16);
    /* tile rows per task: V of about WG_BYTES (measured at E4: 7 rows 5% faster than 4, 2 rows no better), the
     * groups of an image evened out */
    const int64_t per_row = 16 * x->nslr * 16 * (ci > co ? ci : co) * (int64_t)sizeof(float);
    x->ngrp = cdiv(x->th, max64(1, min64(x->th, WG_BYTES / per_row)));
    x->rows = cdiv(x->th, x->ngrp);
    x->nt = x->rows * x->nslr * 16;
    /* The 16 xi planes of V (and M, and DY) are written and read 16 at a time, one vector from each: at a plane
     * stride that is a multiple of 4 KB (64 tiles x 64 channels = 16 KB) all 16 fall in one L1 set and evict each
     * other (the transforms took as long as the GEMMs). One extra cache line per plane spreads them. */
    x->vplane = x->nt * ci + 16;
    x->vsz = 16 * x->vplane;
}

/* out (n, co, ho, wo) = the 3x3 correlation of in (n, ci, hi, wi) padded by pad with kernels g(o, i) taken from w:
 * fwd: w (co, ci, 3, 3) as is; flip: w (ci, co, 3, 3) flipped (bwd_data). */
static lt_status wino_run(const char *op, const float *in, int64_t n, int64_t ci, int64_t hi, int64_t wi,
                          const float *w, int flip, const float *bias, float *out, int64_t co, int64_t ho, int64_t wo,
                          int64_t pad) {
    wino x;
    geometry(&x, in, n, ci, hi, wi, co, ho, wo, pad);
    x.bias = bias; x.out = out;
    x.mplane = co * x.nt + 16;
    x.msz = 16 * x.mplane;
    const int width = lt_pool_width();
    const int64_t slot = x.vsz + x.msz;
    const size_t ubytes = (size_t)(16 * co * ci) * sizeof(float), tbytes = (size_t)ci * sizeof(int64_t);
    const size_t bytes = ubytes + tbytes + (size_t)width * (size_t)slot * sizeof(float);
    float *scratch = conv2d_scratch_get(bytes);
    if (!scratch) return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: Winograd scratch of %zu bytes", op, bytes);
    float *u = scratch;
    x.tab = (int64_t *)(scratch + 16 * co * ci);
    x.sl.base = (float *)(x.tab + ci);
    x.sl.base = (float *)(((uintptr_t)x.sl.base + 63) & ~(uintptr_t)63);
    x.sl.slot = slot;
    x.sl.nw = width;
    for (int64_t i = 0; i < ci; i++) x.tab[i] = i;
    for (int64_t o = 0; o < co; o++)
        for (int64_t i = 0; i < ci; i++) {
            float g[9], uu[16];
            for (int r = 0; r < 9; r++)
                g[r] = flip ? w[(i * co + o) * 9 + 8 - r] : w[(o * ci + i) * 9 + r];
            wino_weight(g, uu);
            for (int xi = 0; xi < 16; xi++) u[(xi * co + o) * ci + i] = uu[xi];
        }
    x.u = u;
    lt_parallel_for(n * x.ngrp, wino_task, &x);
    conv2d_scratch_put(scratch);
    if (atomic_load(&x.sl.oom)) return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: Winograd per-worker scratch", op);
    return LT_OK;
}

lt_status SFX(conv2d_wino_fwd)(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    return wino_run("lt_conv2d_fwd", x, d->n, d->c, d->h, d->w, w, 0, bias, y, d->k, d->oh, d->ow, d->pad_h);
}

lt_status SFX(conv2d_wino_bwd_data)(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                    float *dx) {
    return wino_run("lt_conv2d_bwd_data", dy, d->n, d->k, d->oh, d->ow, w, 1, bias, dx, d->c, d->h, d->w, 2 - d->pad_h);
}

/* ---- bwd_weight: F(3x3, 2x2) ---------------------------------------------------------------------------------
 * dw[k][c] (3x3) = sum over the 2x2 dy tiles t of the correlation of x with dy, which in Winograd form (the
 * transpose of F(2x2, 3x3): the same trilinear form with the roles of output and kernel swapped) is
 *   dw[k][c] = G^T [ sum_t (A dy_t A^T) .* (B^T x_t B) ] G,   A = (A^T)^T (4 x 2), the same B and G as above.
 * P[xi][c][k] = sum_t X[xi][c][t] DY[xi][t][k] is 16 GEMMs reduced over tiles, on the micro-kernel with the tiles as
 * its reduction index (rows: X of 6 channels through an offset table over the tile slivers; B: DY, 16 k per
 * sliver). Tiles are cut into fixed chunks of (image, tile-row group) units, by shape only; each chunk sums its
 * units in order into its own partial P, and the partials are added in chunk order before the G^T P G transform:
 * the same bits for any thread count. */
typedef struct {
    wino g;                /* tiles of the conv (in = x, co = K, ho x wo = OH x OW) and the V layout */
    const float *dy;
    float *dw, *db;
    int accumulate;
    int64_t kp, nunits, nch, units_per;
    int64_t dplane;        /* floats between the xi planes of DY (per worker: V, then DY) */
    float *part;           /* (nch, 16, pplane) partial P[xi][c][kp] */
    int64_t pplane;
    const int64_t *tabx;   /* (nt): offset of tile p in a V row: (p / 16) * ci * 16 + p % 16 */
} wgrad;

/* DY[xi][ks][t][16] = A dy_t A^T for the tiles of image n, tile rows r0 .. r0 + nr, 8 tiles x 8 channels at a time
 * (transformed with the tiles across the lanes, then an 8x8 transpose puts the channels there). */
static void dy_transform(const wgrad *w, int64_t n, int64_t r0, int64_t nr, float *dyt) {
    const wino *x = &w->g;
    const int64_t K = x->co, nt = x->nt, ho = x->ho, wo = x->wo;
    const float *dyn = w->dy + n * K * ho * wo;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t k0 = 0; k0 < w->kp; k0 += 8)
        for (int64_t tr = 0; tr < nr; tr++)
            for (int64_t g = 0; g < 2 * x->nslr; g++) {
                __m256 t[16][8];
                for (int kk = 0; kk < 8; kk++) {
                    if (k0 + kk >= K) {
                        for (int xi = 0; xi < 16; xi++) t[xi][kk] = zero;
                        continue;
                    }
                    const int64_t h0 = 2 * (r0 + tr);
                    const float *row = dyn + ((k0 + kk) * ho + h0) * wo;
                    __m256 e0, e1, f0 = zero, f1 = zero, a, b; /* dy tile rows 0 and 1, columns 0 and 1 */
                    load16(row, 16 * g, wo, &a, &b);
                    deinterleave(a, b, &e0, &e1);
                    if (h0 + 1 < ho) {
                        load16(row + wo, 16 * g, wo, &a, &b);
                        deinterleave(a, b, &f0, &f1);
                    }
                    const __m256 q[4][2] = {{e0, e1},
                                            {_mm256_add_ps(e0, f0), _mm256_add_ps(e1, f1)},
                                            {_mm256_sub_ps(e0, f0), _mm256_sub_ps(e1, f1)},
                                            {_mm256_sub_ps(zero, f0), _mm256_sub_ps(zero, f1)}}; /* A dy */
                    for (int i = 0; i < 4; i++) { /* (A dy) A^T */
                        t[4 * i + 0][kk] = q[i][0];
                        t[4 * i + 1][kk] = _mm256_add_ps(q[i][0], q[i][1]);
                        t[4 * i + 2][kk] = _mm256_sub_ps(q[i][0], q[i][1]);
                        t[4 * i + 3][kk] = _mm256_sub_ps(zero, q[i][1]);
                    }
                }
                const int64_t t0 = tr * x->nslr * 16 + 8 * g;
                float *o = dyt + ((k0 / 16) * nt + t0) * 16 + k0 % 16;
                for (int xi = 0; xi < 16; xi++) {
                    tr8x8(t[xi]); /* t[xi][l] = 8 channels of tile t0 + l */
                    for (int l = 0; l < 8; l++) _mm256_store_ps(o + xi * w->dplane + l * 16, t[xi][l]);
                }
            }
}

static void wgrad_task(void *p, int64_t ch, int worker) {
    const wgrad *w = p;
    const wino *x = &w->g;
    float *own, *buf = conv2d_slot_of((slots *)&x->sl, worker, &own);
    if (!buf) return;
    float *v = buf, *dyt = v + x->vsz;
    float *part = w->part + ch * 16 * w->pplane;
    const int64_t ci = x->ci, kp = w->kp;
    const int64_t u0 = ch * w->units_per, u1 = min64(w->nunits, u0 + w->units_per);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t n = u / x->ngrp, r0 = (u % x->ngrp) * x->rows, nr = min64(x->th, r0 + x->rows) - r0;
        in_transform(x, n, r0, nr, v);
        dy_transform(w, n, r0, nr, dyt);
        const int64_t kc = nr * x->nslr * 16; /* this unit's tiles */
        for (int xi = 0; xi < 16; xi++)
            for (int64_t c0 = 0; c0 < ci; c0 += MR) {
                const int mr = (int)min64(MR, ci - c0);
                const float *rows[MR];
                for (int i = 0; i < mr; i++) rows[i] = v + xi * x->vplane + (c0 + i) * 16;
                for (int64_t ks = 0; ks < kp / 16; ks += WINO_SUB) /* WINO_SUB 16-channel slivers of DY per tile */
                    WINO_UKR(mr, ks + 1 < kp / 16 ? 2 : 1, kc, rows, w->tabx, dyt + xi * w->dplane + ks * x->nt * 16,
                             x->nt * 16, part + xi * w->pplane + c0 * kp + ks * 16, kp, u > u0);
            }
    }
    lt_free(own);
}

/* dw[k][c] (+)= G^T (sum over chunks of P[xi][c][k]) G for channel c = the task, every k; and db[k = the task]. */
static void wgrad_finish(void *p, int64_t c, int worker) {
    (void)worker;
    const wgrad *w = p;
    const int64_t C = w->g.ci, K = w->g.co, kp = w->kp;
    for (int64_t k = 0; k < K && c < C; k++) {
        float P[16];
        for (int xi = 0; xi < 16; xi++) {
            float s = w->part[xi * w->pplane + c * kp + k];
            for (int64_t ch = 1; ch < w->nch; ch++) s += w->part[(ch * 16 + xi) * w->pplane + c * kp + k];
            P[xi] = s;
        }
        float q[3][4]; /* G^T P */
        for (int j = 0; j < 4; j++) {
            q[0][j] = P[j] + 0.5f * (P[4 + j] + P[8 + j]);
            q[1][j] = 0.5f * (P[4 + j] - P[8 + j]);
            q[2][j] = 0.5f * (P[4 + j] + P[8 + j]) + P[12 + j];
        }
        float *o = w->dw + (k * C + c) * 9;
        for (int i = 0; i < 3; i++) { /* (G^T P) G */
            const float r[3] = {q[i][0] + 0.5f * (q[i][1] + q[i][2]), 0.5f * (q[i][1] - q[i][2]),
                                0.5f * (q[i][1] + q[i][2]) + q[i][3]};
            for (int j = 0; j < 3; j++) o[i * 3 + j] = w->accumulate ? o[i * 3 + j] + r[j] : r[j];
        }
    }
    if (w->db && c < K) { /* db[k = c]: sum of dy over images and pixels, 8 lanes then across them, in order */
        const int64_t hw = w->g.ho * w->g.wo;
        __m256 acc = _mm256_setzero_ps();
        float tail = 0.0f;
        for (int64_t n = 0; n < w->g.n; n++) {
            const float *d = w->dy + (n * K + c) * hw;
            int64_t i = 0;
            for (; i + 8 <= hw; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(d + i));
            for (; i < hw; i++) tail += d[i];
        }
        float l[8];
        _mm256_storeu_ps(l, acc);
        const float sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])) + tail;
        w->db[c] = w->accumulate ? w->db[c] + sum : sum;
    }
}

lt_status SFX(conv2d_wino_bwd_weight)(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                      int accumulate) {
    wgrad w;
    memset(&w, 0, sizeof w);
    geometry(&w.g, x, d->n, d->c, d->h, d->w, d->k, d->oh, d->ow, d->pad_h);
    w.dy = dy; w.dw = dw; w.db = db; w.accumulate = accumulate;
    w.kp = rup(d->k, 16);
    w.nunits = d->n * w.g.ngrp;
    w.nch = min64(8, w.nunits);
    w.units_per = cdiv(w.nunits, w.nch);
    w.nch = cdiv(w.nunits, w.units_per);
    w.dplane = w.kp * w.g.nt + 16;
    w.pplane = d->c * w.kp + 16;
    const int width = lt_pool_width();
    const int64_t slot = w.g.vsz + 16 * w.dplane;
    const size_t bytes = ((size_t)(w.nch * 16 * w.pplane) + (size_t)width * (size_t)slot + 16) * sizeof(float) +
                         (size_t)w.g.nt * sizeof(int64_t);
    float *scratch = conv2d_scratch_get(bytes);
    if (!scratch) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_weight: Winograd scratch of %zu bytes", bytes);
    w.part = scratch;
    w.g.sl.base = (float *)(((uintptr_t)(w.part + w.nch * 16 * w.pplane) + 63) & ~(uintptr_t)63);
    w.g.sl.slot = slot;
    w.g.sl.nw = width;
    int64_t *tabx = (int64_t *)(w.g.sl.base + (int64_t)width * slot);
    for (int64_t p = 0; p < w.g.nt; p++) tabx[p] = (p / 16) * d->c * 16 + p % 16;
    w.tabx = tabx;
    lt_parallel_for(w.nch, wgrad_task, &w);
    if (!atomic_load(&w.g.sl.oom)) lt_parallel_for(d->c > d->k ? d->c : d->k, wgrad_finish, &w);
    conv2d_scratch_put(scratch);
    if (atomic_load(&w.g.sl.oom)) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_weight: Winograd per-worker scratch");
    return LT_OK;
}
