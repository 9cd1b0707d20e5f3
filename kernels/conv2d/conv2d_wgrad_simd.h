/* The body of the convolution weight gradient (bwd_weight), written once for both levels: conv2d_wgrad_avx2.c and
 * conv2d_wgrad_avx512.c include their tile header (conv2d_avx2.h: 6 x 16 ymm tile; conv2d_avx512.h: 8 x 32 zmm),
 * define the macros below, then #include this file (never compiled on its own; not a *.c, so CMake does not glob it).
 * The design is in conv2d_avx2.c's header comment.
 *
 * Required: MR, NR (the tile, from the tile header), SFX(name) (name suffix), and
 * WG_UKR(x, s, mr, np, rows, tab, bs, c, ldc, add): the tile micro-kernel on sliver s of dy^T (the two levels
 * differ: AVX-512 runs a last sliver of at most 16 channels one vector wide). */
#include <string.h>

/* the unroll of the loops over the mr <= MR rows of the few-output-channel variant (#pragma GCC unroll takes a C
 * constant, not a macro) */
enum { WG_UNROLL = MR };

/* ---- bwd_weight -------------------------------------------------------------------------------------------- */

typedef struct {
    const lt_conv2d_desc *d;
    const float *x, *dy;
    float *dw, *db;
    int accumulate;
    int64_t rows, nch, step_rows, seg_rows, maxseg; /* output rows N*OH, chunks, rows per step, per segment */
    int64_t hb, wb, slotsz, crs, kp, nsl;
    int64_t *rowoff; /* (CRS): offset of (c, r, s) in a segment's padded copy */
    float *part;     /* (nch, CRS, kp) partial dW^T per chunk */
    float *dbpart;   /* (nch, kp) */
    slots sl;        /* per worker: [maxseg * slotsz padded x | kp * steppix dy^T | steppix int64 tab] */
    int64_t steppix;
    int small;       /* few output channels: ukw instead of the 16-channel tile */
} wctx;

/* bwd_weight for few output channels (K < 8, unit stride along rows): the 16-channel tile would pad K to 16 lanes
 * (a coupling net's 64 -> 2 conv ran at 10% of peak), so the pixels go across the vector instead. For mr reduction
 * indices (c, r, s) (row pointers xr into the padded copy) and nk <= 2 channels: acc[m][k] += x(m, pixel run) *
 * dy(k, pixel run), 8 pixels of one output row per vector (the row tail masked, x and dy alike), over every row
 * of a step; then each accumulator is summed across its lanes (fixed order) into part. 2 dy + mr x loads per
 * 2 mr FMAs. The order of every sum depends on the shape alone. */
static inline __attribute__((always_inline)) void ukw_t(const int mr, const int nk, const float *const *xr,
                                                        int64_t nrow, const int64_t *xoff, const float *const *dyr,
                                                        int64_t kstride, int64_t ow, float *part, int64_t kp,
                                                        int first) {
    __m256 acc[MR][2];
#pragma GCC unroll WG_UNROLL
    for (int m = 0; m < mr; m++) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    static const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256i tail = _mm256_loadu_si256((const __m256i *)(lanes + 8 - (ow & 7)));
    for (int64_t row = 0; row < nrow; row++) {
        const float *d0 = dyr[row], *d1 = d0 + kstride;
        const int64_t xo = xoff[row];
        int64_t j = 0;
        for (; j + 8 <= ow; j += 8) {
            const __m256 dv0 = _mm256_loadu_ps(d0 + j), dv1 = nk > 1 ? _mm256_loadu_ps(d1 + j) : dv0;
#pragma GCC unroll WG_UNROLL
            for (int m = 0; m < mr; m++) {
                const __m256 xv = _mm256_loadu_ps(xr[m] + xo + j);
                acc[m][0] = _mm256_fmadd_ps(xv, dv0, acc[m][0]);
                if (nk > 1) acc[m][1] = _mm256_fmadd_ps(xv, dv1, acc[m][1]);
            }
        }
        if (j < ow) {
            const __m256 dv0 = _mm256_maskload_ps(d0 + j, tail), dv1 = nk > 1 ? _mm256_maskload_ps(d1 + j, tail) : dv0;
#pragma GCC unroll WG_UNROLL
            for (int m = 0; m < mr; m++) {
                const __m256 xv = _mm256_maskload_ps(xr[m] + xo + j, tail);
                acc[m][0] = _mm256_fmadd_ps(xv, dv0, acc[m][0]);
                if (nk > 1) acc[m][1] = _mm256_fmadd_ps(xv, dv1, acc[m][1]);
            }
        }
    }
#pragma GCC unroll WG_UNROLL
    for (int m = 0; m < mr; m++)
        for (int k = 0; k < nk; k++) {
            const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[m][k]), _mm256_extractf128_ps(acc[m][k], 1));
            const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
            const float v = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
            float *o = part + m * kp + k;
            *o = first ? v : *o + v;
        }
}

static void ukw(int mr, int nk, const float *const *xr, int64_t nrow, const int64_t *xoff, const float *const *dyr,
                int64_t kstride, int64_t ow, float *part, int64_t kp, int first) {
#define UKW(M)                                                                                    \
    case M:                                                                                       \
        if (nk > 1) ukw_t(M, 2, xr, nrow, xoff, dyr, kstride, ow, part, kp, first);               \
        else ukw_t(M, 1, xr, nrow, xoff, dyr, kstride, ow, part, kp, first);                      \
        break;
    switch (mr) {
#if MR > 6
    UKW(8) UKW(7)
#endif
    UKW(6) UKW(5) UKW(4) UKW(3) UKW(2)
    default: UKW(1)
    }
#undef UKW
}

static void wchunk_task(void *p, int64_t ch, int worker) {
    wctx *x = p;
    const lt_conv2d_desc *d = x->d;
    const int64_t C = d->c, K = d->k, OH = d->oh, OW = d->ow, sh = d->stride_h, sw = d->stride_w;
    float *own, *buf = conv2d_slot_of(&x->sl, worker, &own);
    if (!buf) return;
    float *xb = buf, *dyt = buf + rup(x->maxseg * x->slotsz, 16);
    int64_t *tab = (int64_t *)(dyt + x->kp * x->steppix);
    float *part = x->part + ch * x->crs * x->kp;
    float *dbp = x->dbpart + ch * x->kp;
    const int64_t g_lo = x->rows * ch / x->nch, g_hi = x->rows * (ch + 1) / x->nch;
    int64_t xoff[512];     /* small K: per output row of a step, its offset in xb ... */
    const float *dyr[512]; /* ... and its dy row (channel 0) */
    for (int64_t g0 = g_lo; g0 < g_hi; g0 += x->step_rows) {
        const int64_t g1 = min64(g_hi, g0 + x->step_rows), np = (g1 - g0) * OW;
        const int first = g0 == g_lo;
        /* segments: runs of rows of one image, each copied padded into its slot */
        int64_t pix = 0, nrow = 0;
        for (int64_t g = g0, seg = 0; g < g1; seg++) {
            const int64_t n = g / OH, i0 = g % OH, i1 = min64(OH, i0 + (g1 - g));
            conv2d_copy_padded(x->x + n * C * d->h * d->w, C, d->h, d->w, i0 * sh - d->pad_h, (i1 - 1 - i0) * sh + d->r,
                        -d->pad_w, xb + seg * x->slotsz, x->hb, x->wb);
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = 0; j < OW; j++) tab[pix + (i - i0) * OW + j] = seg * x->slotsz + (i - i0) * sh * x->wb + j * sw;
            /* dy^T: dyt[s][p][jj] = dy[n][s*16 + jj][pixel p] */
            const float *dyn = x->dy + n * K * OH * OW + i0 * OW; // (K, OH*OW) from row i0
            const int64_t cnt = (i1 - i0) * OW;
            if (x->small) { /* ukw reads dy in place, row by row */
                for (int64_t i = i0; i < i1; i++, nrow++) {
                    xoff[nrow] = seg * x->slotsz + (i - i0) * sh * x->wb;
                    dyr[nrow] = dyn + (i - i0) * OW;
                }
                pix += cnt;
                g += i1 - i0;
                continue;
            }
            for (int64_t k0 = 0; k0 < x->kp; k0 += 8) {
                float *o = dyt + (k0 / NR * np + pix) * NR + k0 % NR; /* 8 channels k0.., pixel q at o[q * NR] */
                int64_t q = 0;
                if (k0 + 8 <= K) /* 8 channel rows, 8 pixels at a time through an 8x8 transpose */
                    for (; q + 8 <= cnt; q += 8) {
                        __m256 r[8];
                        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(dyn + (k0 + i) * OH * OW + q);
                        tr8x8(r);
                        for (int i = 0; i < 8; i++) _mm256_store_ps(o + (q + i) * NR, r[i]);
                    }
                for (int64_t k = k0; k < k0 + 8; k++)
                    for (int64_t qq = q; qq < cnt; qq++) o[qq * NR + k - k0] = k < K ? dyn[k * OH * OW + qq] : 0.0f;
            }
            pix += cnt;
            g += i1 - i0;
        }
        if (x->small) {
            if (x->db)
                for (int64_t k = 0; k < K; k++) {
                    float sum = 0.0f;
                    for (int64_t r = 0; r < nrow; r++)
                        for (int64_t j = 0; j < OW; j++) sum += dyr[r][k * OH * OW + j];
                    dbp[k] = first ? sum : dbp[k] + sum;
                }
            for (int64_t m0 = 0; m0 < x->crs; m0 += MR) {
                const int mr = (int)min64(MR, x->crs - m0);
                const float *xr[MR];
                for (int m = 0; m < mr; m++) xr[m] = xb + x->rowoff[m0 + m];
                for (int64_t k0 = 0; k0 < K; k0 += 2) {
                    const float *dk[512];
                    const float *const *dyk = dyr;
                    if (k0) { /* the same rows, channel k0 */
                        for (int64_t r = 0; r < nrow; r++) dk[r] = dyr[r] + k0 * OH * OW;
                        dyk = dk;
                    }
                    ukw(mr, (int)min64(2, K - k0), xr, nrow, xoff, dyk, OH * OW, OW, part + m0 * x->kp + k0, x->kp,
                        first);
                }
            }
            continue;
        }
        if (x->db)
            for (int64_t k = 0; k < K; k++) {
                const float *o = dyt + (k / NR * np) * NR + k % NR;
                float sum = 0.0f;
                for (int64_t q = 0; q < np; q++) sum += o[q * NR];
                dbp[k] = first ? sum : dbp[k] + sum;
            }
        for (int64_t s = 0; s < x->nsl; s++) {
            const float *bs = dyt + s * np * NR;
            for (int64_t m0 = 0; m0 < x->crs; m0 += MR) {
                const int mr = (int)min64(MR, x->crs - m0);
                const float *rows[MR];
                for (int m = 0; m < mr; m++) rows[m] = xb + x->rowoff[m0 + m];
                WG_UKR(x, s, mr, np, rows, tab, bs, part + m0 * x->kp + s * NR, x->kp, !first);
            }
        }
    }
    lt_free(own);
}

/* dw[k][m] (+)= sum over chunks in order of part[ch][m][k], for a block of 64 reduction indices m: 8 m x 8 k at a
 * time summed as vectors over k, transposed, stored as rows of dw (the same adds in the same order as the scalar
 * tail, so the bits do not depend on the path). */
static void wreduce_task(void *p, int64_t t, int worker) {
    wctx *x = p;
    const int64_t K = x->d->k, m0 = t * 64, m1 = min64(x->crs, m0 + 64), cs = x->crs * x->kp;
    int64_t m = m0;
    for (; m + 8 <= m1; m += 8) {
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *src = x->part + (m + i) * x->kp + k;
                r[i] = _mm256_load_ps(src);
                for (int64_t ch = 1; ch < x->nch; ch++) r[i] = _mm256_add_ps(r[i], _mm256_load_ps(src + ch * cs));
            }
            tr8x8(r); /* r[j] = k + j, m .. m+7 */
            for (int j = 0; j < 8; j++) {
                float *o = x->dw + (k + j) * x->crs + m;
                _mm256_storeu_ps(o, x->accumulate ? _mm256_add_ps(_mm256_loadu_ps(o), r[j]) : r[j]);
            }
        }
        for (; k < K; k++)
            for (int64_t mm = m; mm < m + 8; mm++) {
                float s = x->part[mm * x->kp + k];
                for (int64_t ch = 1; ch < x->nch; ch++) s += x->part[ch * cs + mm * x->kp + k];
                float *o = &x->dw[k * x->crs + mm];
                *o = x->accumulate ? *o + s : s;
            }
    }
    for (; m < m1; m++)
        for (int64_t k = 0; k < K; k++) {
            float s = x->part[m * x->kp + k];
            for (int64_t ch = 1; ch < x->nch; ch++) s += x->part[ch * cs + m * x->kp + k];
            float *o = &x->dw[k * x->crs + m];
            *o = x->accumulate ? *o + s : s;
        }
}

lt_status SFX(conv2d_bwd_weight)(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                 int accumulate) {
    wctx c;
    memset(&c, 0, sizeof c);
    c.d = d; c.x = x; c.dy = dy; c.dw = dw; c.db = db; c.accumulate = accumulate;
    const int width = lt_pool_width();
    c.rows = d->n * d->oh;
    /* Chunks: NCHUNK, fewer (a power of two, so 2, 4 or 8 threads stay balanced) when there are under ~768 pixels
     * per chunk: each chunk costs a partial dW that the final reduction reads back (4 MB for W3b at 8 chunks, 7% of
     * the call). By shape only, never by the thread count. */
    c.nch = NCHUNK;
    const int64_t pix = d->n * d->oh * d->ow;
    while (c.nch > 1 && pix / c.nch < 768) c.nch /= 2;
    /* Big dW from few pixels (a DCGAN's 128 -> 256 at 8 -> 4: 1024 pixels, a 256 x 2048 dW, 1.1 GFLOP) would be one
     * chunk, one task, one thread (40% of the 2-thread peak): up to 4 chunks of >= 256 pixels there, their partial
     * dWs (2 MB each) cheap beside the FLOPs. Still by shape only. */
    while (c.nch < 4 && pix / (2 * c.nch) >= 256 && 2.0 * (double)pix * (double)(d->c * d->r * d->s) * (double)d->k >= 2e8)
        c.nch *= 2;
    c.nch = min64(c.nch, c.rows);
    c.step_rows = max64(1, STEP_PIX / d->ow); /* <= 512 rows (the small-K row tables in wchunk_task) */
    c.small = d->k < PV_COUT && d->stride_w == 1 && d->ow >= 8;
    c.seg_rows = min64(c.step_rows, d->oh);
    c.maxseg = min64(d->n, min64(c.step_rows, c.step_rows / d->oh + 2));
    c.steppix = c.step_rows * d->ow;
    c.hb = (c.seg_rows - 1) * d->stride_h + d->r;
    c.wb = (d->ow - 1) * d->stride_w + d->s;
    c.slotsz = d->c * c.hb * c.wb;
    c.crs = d->c * d->r * d->s;
    c.kp = rup(d->k, NR);
    c.nsl = c.kp / NR;
    const int64_t xbsz = rup(c.maxseg * c.slotsz, 16); /* keeps dy^T 64-byte aligned */
    int64_t slot = rup(xbsz + c.kp * c.steppix + 2 * c.steppix, 16);
    size_t bytes = ((size_t)c.nch * (size_t)(c.crs + 1) * (size_t)c.kp + (size_t)width * (size_t)slot) * sizeof(float) +
                   (size_t)c.crs * 8;
    float *scratch = conv2d_scratch_get(bytes);
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_weight: scratch of %zu bytes", bytes);
    c.part = scratch;
    c.dbpart = c.part + c.nch * c.crs * c.kp;
    c.sl.base = c.dbpart + c.nch * c.kp;
    c.sl.slot = slot;
    c.sl.nw = width;
    c.rowoff = (int64_t *)(c.sl.base + (int64_t)width * slot);
    for (int64_t ci = 0, m = 0; ci < d->c; ci++)
        for (int64_t r = 0; r < d->r; r++)
            for (int64_t s = 0; s < d->s; s++) c.rowoff[m++] = (ci * c.hb + r) * c.wb + s;
    lt_parallel_for(c.nch, wchunk_task, &c);
    if (!atomic_load(&c.sl.oom)) {
        lt_parallel_for(cdiv(c.crs, 64), wreduce_task, &c);
        if (db)
            for (int64_t k = 0; k < d->k; k++) {
                float s = c.dbpart[k];
                for (int64_t ch = 1; ch < c.nch; ch++) s += c.dbpart[ch * c.kp + k];
                db[k] = accumulate ? db[k] + s : s;
            }
    }
    conv2d_scratch_put(scratch);
    if (atomic_load(&c.sl.oom))
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_weight: per-worker scratch of %lld floats", (long long)slot);
    return LT_OK;
}
