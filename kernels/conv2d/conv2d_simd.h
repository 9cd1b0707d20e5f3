/* The fwd / bwd_data correlation engine of the direct convolution and its few-output-channel tiles (ukr_pv*), written
 * once for both levels: conv2d_avx2.c (6 x 16 ymm tile, conv2d_ukr) and conv2d_avx512.c (8 x 32 zmm tile,
 * conv2d_ukr512) include their tile header, define their micro-kernels and the macros below, then #include this file
 * (never compiled on its own; not a *.c, so CMake does not glob it). The design is in conv2d_avx2.c's header comment.
 * The ukr_pv* tiles are AVX2 (ymm) code at both levels, up to MR runs.
 * Required: MR, NR (the tile), SFX(name) (name suffix), and
 *   CONV_TAP_CLASSES  1: border pixels skip the taps that fall in the zero padding (tap classes, conv2d_avx512.c says
 *                     why and what it gained); 0: every pixel reduces over every tap
 *   STORE_VEC_CH(nch), STORE_GROUPS(nch)  store_sliver: whether a sliver of nch channels takes the 8x8-transpose
 *                     stores, and how many groups of 8 channels it then has
 *   CONV_UKR(mr, nsub, kc, rows, tab, b, c, ldc, add)  the tile on nsub (1 at AVX2) vectors of the job's packed B;
 *                     with CONV_TAP_CLASSES also ukr512_bt, the tile with B rows addressed through a table
 */
/* The transposed tile for outputs with few channels: one output channel, 6 runs of 16 consecutive output pixels.
 * tile[u][0..16) = sum_{p < kc} w[p * 16] * runs[u][tab[p] + 0..16), u < nu: the input read as vectors (the runs are
 * contiguous in the padded copy when the input stride is 1), the weight broadcast, 12 accumulators as above. */
static inline __attribute__((always_inline)) void ukr_pv_t(const int nu, int64_t kc, const float *const *runs,
                                                           const int64_t *tab, const float *w, float *tile) {
    __m256 acc[MR][2];
    const float *rp[MR];
#pragma GCC unroll 6
    for (int u = 0; u < MR; u++) rp[u] = runs[u < nu ? u : 0];
#pragma GCC unroll 6
    for (int u = 0; u < nu; u++) acc[u][0] = acc[u][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const __m256 a = _mm256_broadcast_ss(w + p * NR);
#pragma GCC unroll 6
        for (int u = 0; u < nu; u++) {
            acc[u][0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(rp[u] + o), acc[u][0]);
            acc[u][1] = _mm256_fmadd_ps(a, _mm256_loadu_ps(rp[u] + o + 8), acc[u][1]);
        }
    }
#pragma GCC unroll 6
    for (int u = 0; u < nu; u++) {
        _mm256_storeu_ps(tile + u * NR, acc[u][0]);
        _mm256_storeu_ps(tile + u * NR + 8, acc[u][1]);
    }
}

/* ukr_pv_t for two output channels at once (w and w + 1): nu <= 3 runs x 2 channels x 2 vectors = 12 accumulators;
 * each input vector loaded once feeds both channels (the one-channel tile is load-bound: 2 loads per 2 FMAs).
 * Every accumulator performs the same FMAs in the same order as in ukr_pv_t, so the bits are the same. tile2 holds
 * channel 0's tile then channel 1's (MR * NR floats each). */
static inline __attribute__((always_inline)) void ukr_pv2_t(const int nu, int64_t kc, const float *const *runs,
                                                            const int64_t *tab, const float *w, float *tile2) {
    __m256 acc[3][2][2];
    const float *rp[3];
#pragma GCC unroll 3
    for (int u = 0; u < 3; u++) rp[u] = runs[u < nu ? u : 0];
#pragma GCC unroll 3
    for (int u = 0; u < nu; u++) acc[u][0][0] = acc[u][0][1] = acc[u][1][0] = acc[u][1][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const __m256 a0 = _mm256_broadcast_ss(w + p * NR), a1 = _mm256_broadcast_ss(w + p * NR + 1);
#pragma GCC unroll 3
        for (int u = 0; u < nu; u++) {
            const __m256 v0 = _mm256_loadu_ps(rp[u] + o), v1 = _mm256_loadu_ps(rp[u] + o + 8);
            acc[u][0][0] = _mm256_fmadd_ps(a0, v0, acc[u][0][0]);
            acc[u][0][1] = _mm256_fmadd_ps(a0, v1, acc[u][0][1]);
            acc[u][1][0] = _mm256_fmadd_ps(a1, v0, acc[u][1][0]);
            acc[u][1][1] = _mm256_fmadd_ps(a1, v1, acc[u][1][1]);
        }
    }
#pragma GCC unroll 3
    for (int u = 0; u < nu; u++)
        for (int c = 0; c < 2; c++) {
            _mm256_storeu_ps(tile2 + c * MR * NR + u * NR, acc[u][c][0]);
            _mm256_storeu_ps(tile2 + c * MR * NR + u * NR + 8, acc[u][c][1]);
        }
}

static void ukr_pv2(int nu, int64_t kc, const float *const *runs, const int64_t *tab, const float *w, float *tile2) {
    switch (nu) {
    case 3: ukr_pv2_t(3, kc, runs, tab, w, tile2); break;
    case 2: ukr_pv2_t(2, kc, runs, tab, w, tile2); break;
    default: ukr_pv2_t(1, kc, runs, tab, w, tile2); break;
    }
}

/* Runs of 8 pixels (rows of 8..15 pixels, e.g. a stride-2 conv^T phase of a 28-pixel row): nu <= 6 runs x nc <= 2
 * channels, one accumulator each; tile[c * MR * NR + u * NR + 0..8). Same FMA order per output as ukr_pv_t. */
static inline __attribute__((always_inline)) void ukr_pv8_t(const int nu, const int nc, int64_t kc,
                                                            const float *const *runs, const int64_t *tab,
                                                            const float *w, float *tile) {
    __m256 acc[MR][2];
    const float *rp[MR];
#pragma GCC unroll 6
    for (int u = 0; u < MR; u++) rp[u] = runs[u < nu ? u : 0];
#pragma GCC unroll 6
    for (int u = 0; u < nu; u++) acc[u][0] = acc[u][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const __m256 a0 = _mm256_broadcast_ss(w + p * NR), a1 = nc > 1 ? _mm256_broadcast_ss(w + p * NR + 1) : a0;
#pragma GCC unroll 6
        for (int u = 0; u < nu; u++) {
            const __m256 v = _mm256_loadu_ps(rp[u] + o);
            acc[u][0] = _mm256_fmadd_ps(a0, v, acc[u][0]);
            if (nc > 1) acc[u][1] = _mm256_fmadd_ps(a1, v, acc[u][1]);
        }
    }
#pragma GCC unroll 6
    for (int u = 0; u < nu; u++)
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(tile + c * MR * NR + u * NR, acc[u][c]);
}

static void ukr_pv8(int nu, int nc, int64_t kc, const float *const *runs, const int64_t *tab, const float *w,
                    float *tile) {
#define PV8(U)                                                        \
    case U:                                                           \
        if (nc > 1) ukr_pv8_t(U, 2, kc, runs, tab, w, tile);          \
        else ukr_pv8_t(U, 1, kc, runs, tab, w, tile);                 \
        break;
    switch (nu) {
#if MR > 6
    PV8(8) PV8(7)
#endif
    PV8(6) PV8(5) PV8(4) PV8(3) PV8(2)
    default: PV8(1)
    }
#undef PV8
}

static void ukr_pv(int nu, int64_t kc, const float *const *runs, const int64_t *tab, const float *w, float *tile) {
    switch (nu) {
#if MR > 6
    case 8: ukr_pv_t(8, kc, runs, tab, w, tile); break;
    case 7: ukr_pv_t(7, kc, runs, tab, w, tile); break;
#endif
    case 6: ukr_pv_t(6, kc, runs, tab, w, tile); break;
    case 5: ukr_pv_t(5, kc, runs, tab, w, tile); break;
    case 4: ukr_pv_t(4, kc, runs, tab, w, tile); break;
    case 3: ukr_pv_t(3, kc, runs, tab, w, tile); break;
    case 2: ukr_pv_t(2, kc, runs, tab, w, tile); break;
    default: ukr_pv_t(1, kc, runs, tab, w, tile); break;
    }
}

/* ---- fwd and bwd_data: one correlation engine ------------------------------------------------------------
 * A job computes out[n][co][oa + osh*i][ob + osw*j] = bias[co] + sum_{ci, t, u} in[n][ci][i*ish + offh + t]
 * [j*isw + offw + u] * B[co][ci, t, u] for i < ni, j < nj (zero outside the input). fwd is one job; bwd_data is
 * one job per stride phase. */
#if CONV_TAP_CLASSES
#define MAXCL 6 /* row (column) tap classes per job at most; more and the job keeps every tap */

/* Valid tap range [*t0, *t1) of a window starting at input index base (taps 0 .. nt - 1, input 0 .. n - 1). */
static inline void tap_range(int64_t base, int64_t nt, int64_t n, int64_t *t0, int64_t *t1) {
    *t0 = min64(nt, max64(0, -base));
    *t1 = max64(*t0, min64(nt, n - base));
}

/* Index of the class with range (t0, t1) in cl[0 .. ncl), or -1. */
static inline int64_t class_of(const int64_t (*cl)[2], int64_t ncl, int64_t t0, int64_t t1) {
    for (int64_t k = 0; k < ncl; k++)
        if (cl[k][0] == t0 && cl[k][1] == t1) return k;
    return -1;
}
#endif

typedef struct {
    const float *in;  /* (N, cin, hin, win) */
    int64_t cin, hin, win;
    float *out;       /* (N, cout, hout, wout) */
    int64_t cout, hout, wout;
    int64_t ni, nj, oa, ob, osh, osw;
    int64_t ish, isw, offh, offw;
    int64_t rt, st, kc; /* taps and reduction length cin*rt*st (0: the output is the bias alone) */
    const float *bias;  /* (cout) or NULL */
    float *bp;          /* packed B: (ceil(cout/16), kc, 16) */
    int64_t *tab;       /* (kc): offset of (ci, t, u) in the task's padded copy */
    int64_t rb, ntb;    /* output rows per task, row blocks per image (the same for every job of a call) */
    int64_t ng, gmax;   /* image groups (tasks cover a group of small images whole when rb >= ni), largest group */
    /* weight source for packing: B[co][ci, t, u] = w[wsrc(co, ci, t, u)] */
    const float *w;
    int64_t w_co, w_ci, w_r, r0, rstep, s0, sstep, rflip, sflip;
#if CONV_TAP_CLASSES
    /* Tap classes (run_jobs): output rows whose window keeps taps [rcl[a][0], rcl[a][1]) inside the input, columns
     * likewise; class (a, b) reduces over only those taps (ctab / cbt: x and B offsets, kc per class), so border
     * pixels skip the products with the zero padding. ncls 0: one class, every tap. */
    int64_t nrc, ncc, ncls, rcl[MAXCL][2], ccl[MAXCL][2];
    int64_t *ctab, *cbt;
#endif
} cjob;

typedef struct {
    cjob *jobs;
    int njobs;
    int64_t n;
    slots sl;
    /* One padded copy of the input rows of a task serves every job (the phases of conv^T read the same dy at
     * offsets a few rows apart): rows from i0*ish + offh0, columns from offw0, (cin, hb, wb) per image, hext rows
     * beyond the task's last output row; each job's offset (offh - offh0, offw - offw0) is baked into its tab. */
    int64_t offh0, offw0, hb, wb, hext, xsz;
    int64_t stage;  /* > 0: tasks own whole images and write them into a private copy at this offset of their slot */
} cctx;

/* Pack B of job j, sliver s: bp[s][(ci, t, u)][jj] = weight of output channel s*16 + jj (0 past cout). */
static void pack_task(void *p, int64_t t, int worker) {
    cctx *x = p;
    int j = 0;
    int64_t s = t;
    while (s >= cdiv(x->jobs[j].cout, NR)) s -= cdiv(x->jobs[j++].cout, NR);
    const cjob *jb = &x->jobs[j];
    float *o = jb->bp + s * jb->kc * NR;
    for (int64_t ci = 0, p = 0; ci < jb->cin; ci++)
        for (int64_t tt = 0; tt < jb->rt; tt++)
            for (int64_t uu = 0; uu < jb->st; uu++, p++) {
                const int64_t r = jb->r0 + jb->rstep * (jb->rflip ? jb->rt - 1 - tt : tt);
                const int64_t sc = jb->s0 + jb->sstep * (jb->sflip ? jb->st - 1 - uu : uu);
                for (int64_t jj = 0; jj < NR; jj++) {
                    const int64_t co = s * NR + jj;
                    o[p * NR + jj] = co < jb->cout ? jb->w[co * jb->w_co + ci * jb->w_ci + r * jb->w_r + sc] : 0.0f;
                }
            }
}

/* out[pixel q + channel (s*16 + ch) * plane] = cbuf[q][ch] (+ bias) for the np pixels of a task (pos[q]: offset of
 * pixel q in its image's first plane, relative to out). Runs of up to 8 pixels along an output row go through an
 * 8x8 transpose and vector stores: unit output stride (fwd, stride-1 conv^T) or stride 2 (the column phases of a
 * stride-2 conv^T). A full run of 8 at unit stride is a plain store. Anything else is a blend into the lines that
 * hold the run: read, replace the run's lanes, write back. Straight into the output that is only safe where the
 * lanes we rewrite belong to this task: lanes 0..14 of a full stride-2 run (the odd ones are the other column
 * phase of the same row, which this task writes too; lane 15 is masked). A `staged` task writes into its private
 * copy of whole images instead, where any run may be blended (the copy has 16 floats of slack), and copies it out
 * whole afterwards. The rest goes element by element. Every path does the same single add, so the bits do not
 * depend on it. */
static void store_sliver(const cjob *jb, float *out, const float *cbuf, const int64_t *pos, int64_t np, int64_t s,
                         int64_t plane, int staged) {
    const int64_t nch = min64(NR, jb->cout - s * NR), osw = jb->osw;
    out += s * NR * plane;
    const float *bias = jb->bias ? jb->bias + s * NR : NULL;
    const __m256i lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    const __m256i m7 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
    /* lane -> pixel of the run it holds (99: none), for the blend masks */
    const __m256i id1 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i id2a = _mm256_setr_epi32(0, 99, 1, 99, 2, 99, 3, 99), id2b = _mm256_setr_epi32(4, 99, 5, 99, 6, 99, 7, 99);
    for (int64_t q = 0; q < np;) {
        int64_t L = 1;
        while (L < 8 && q + L < np && pos[q + L] == pos[q] + osw * L) L++;
        const int vec = STORE_VEC_CH(nch) && (osw == 1 || osw == 2) && (L == 8 || (staged && L >= 3));
        if (!vec) {
            for (int64_t ch = 0; ch < nch; ch++)
                out[ch * plane + pos[q]] = bias ? cbuf[q * NR + ch] + bias[ch] : cbuf[q * NR + ch];
            q++;
            continue;
        }
        const __m256i vl = _mm256_set1_epi32((int)L);
        const __m256 k1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vl, id1));
        const __m256 k2a = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vl, id2a));
        const __m256 k2b = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vl, id2b));
        for (int h = 0; h < STORE_GROUPS(nch); h++) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(cbuf + (q + i) * NR + 8 * h); /* rows past np: slack */
            tr8x8(r); /* r[j] = channel 8h + j of pixels q .. q+7 */
            for (int j = 0; j < 8; j++) {
                if (bias) r[j] = _mm256_add_ps(r[j], _mm256_set1_ps(bias[8 * h + j]));
                float *o = out + (8 * h + j) * plane + pos[q];
                if (osw == 1) {
                    _mm256_storeu_ps(o, L == 8 ? r[j] : _mm256_blendv_ps(_mm256_loadu_ps(o), r[j], k1));
                } else if (staged) {
                    _mm256_storeu_ps(o, _mm256_blendv_ps(_mm256_loadu_ps(o), _mm256_permutevar8x32_ps(r[j], lo), k2a));
                    _mm256_storeu_ps(o + 8,
                                     _mm256_blendv_ps(_mm256_loadu_ps(o + 8), _mm256_permutevar8x32_ps(r[j], hi), k2b));
                } else {
                    __m256 e0 = _mm256_loadu_ps(o), e1 = _mm256_maskload_ps(o + 8, m7);
                    _mm256_storeu_ps(o, _mm256_blend_ps(_mm256_permutevar8x32_ps(r[j], lo), e0, 0xAA));
                    _mm256_maskstore_ps(o + 8, m7, _mm256_blend_ps(_mm256_permutevar8x32_ps(r[j], hi), e1, 0xAA));
                }
            }
        }
        q += L;
    }
}

/* Software prefetch of the input rows the next task will copy, a few lines per micro-kernel call, so the copy at
 * the start of a task finds them in cache instead of waiting on DRAM (the copy was ~6% of a W3a call). Tasks are
 * claimed about in order, so "next" is t + 1; a wrong guess costs only the prefetches. */
typedef struct {
    const char *base;         /* first chunk */
    int64_t per_img, per_ch;  /* byte strides between images, channels */
    int64_t cin, lpc, nimg;   /* channels, lines per chunk, images */
    int64_t n, c, l;          /* cursor: image, channel, line (no divisions on the way) */
} pfq;

static inline void pf_some(pfq *q, int k) {
    for (; k > 0 && q->n < q->nimg; k--) {
        _mm_prefetch(q->base + q->n * q->per_img + q->c * q->per_ch + q->l * 64, _MM_HINT_T0);
        if (++q->l == q->lpc) {
            q->l = 0;
            if (++q->c == q->cin) { q->c = 0; q->n++; }
        }
    }
}

/* Job jb on images [n0, n1), output rows [i0, i1), in the worker's scratch buf. */
static void job_block(const cctx *x, const cjob *jb, int64_t n0, int64_t n1, int64_t i0, int64_t i1, float *buf,
                      float *stage, pfq *pq) {
    const int64_t plane = jb->hout * jb->wout;
    float *out = stage ? stage : jb->out + n0 * jb->cout * plane; /* images from n0 */
    if (jb->kc == 0) { /* no tap reaches these positions: the bias alone */
        for (int64_t n = n0; n < n1; n++)
            for (int64_t co = 0; co < jb->cout; co++)
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t jj = 0; jj < jb->nj; jj++)
                        out[((n - n0) * jb->cout + co) * plane + (jb->oa + jb->osh * i) * jb->wout + jb->ob + jb->osw * jj] =
                            jb->bias ? jb->bias[co] : 0.0f;
        return;
    }
    const float *xin = buf;                                  /* (images, cin, hb, wb): conv_task's padded copy */
    /* Fewer than PV_COUT output channels (a generator's RGB layer; conv^T into 1 channel): the 16-channel tile would
     * waste most of its lanes (4 GFLOP/s for DCGAN's last layer), so full runs of 16 pixels along a row go through
     * ukr_pv, one channel at a time, when the input is read at unit stride; the row tails take the general path.
     * Which path an element takes depends on the shape alone. */
    /* Rows of at least 16 pixels are covered by cdiv(nj, 16) runs, the last one starting at nj - 16 (overlapping its
     * neighbour: those pixels are computed twice, by the same FMAs, and stored twice with the same value), so no
     * pixel of such a row falls to the 16-channel tile (28-pixel rows: 12 of 28 did, at 1/16 of its lanes). With
     * two or more output channels, channel pairs go through ukr_pv2 (3 runs x 2 channels). Rows of 8..15 pixels
     * take runs of 8 the same way (ukr_pv8, up to 6 runs x 2 channels). */
    const int64_t pw = jb->cout < PV_COUT && jb->isw == 1 ? (jb->nj >= 16 ? 16 : jb->nj >= 8 ? 8 : 0) : 0;
    const int64_t pvr = pw ? cdiv(jb->nj, pw) : 0; /* runs per row */
    if (pvr) {
        float tile[2 * MR * NR];
        const float *runs[MR];
        int64_t opos[MR];
        int nu = 0;
        const int64_t nrun = (n1 - n0) * (i1 - i0) * pvr;
        const int pair = jb->cout >= 2, numax = pw == 16 && pair ? 3 : MR;
        for (int64_t r = 0; r < nrun; r++) {
            const int64_t n = n0 + r / ((i1 - i0) * pvr), i = r / pvr % (i1 - i0), j = min64(r % pvr * pw, jb->nj - pw);
            runs[nu] = xin + (n - n0) * x->xsz + i * jb->ish * x->wb + j;
            opos[nu++] = (n - n0) * jb->cout * plane + (jb->oa + jb->osh * (i0 + i)) * jb->wout + jb->ob + jb->osw * j;
            if (nu < numax && r + 1 < nrun) continue;
            for (int64_t co = 0; co < jb->cout;) {
                const int two = co + 1 < jb->cout;
                if (pw == 8) ukr_pv8(nu, 1 + two, jb->kc, runs, jb->tab, jb->bp + co, tile);
                else if (two) ukr_pv2(nu, jb->kc, runs, jb->tab, jb->bp + co, tile);
                else ukr_pv(nu, jb->kc, runs, jb->tab, jb->bp + co, tile);
                for (int c = 0; c <= two; c++, co++) {
                    const float bv = jb->bias ? jb->bias[co] : 0.0f, *tc = tile + c * MR * NR;
                    for (int u = 0; u < nu; u++) {
                        float *o = out + co * plane + opos[u];
                        for (int k = 0; k < pw; k++) o[k * jb->osw] = jb->bias ? tc[u * NR + k] + bv : tc[u * NR + k];
                    }
                }
            }
            nu = 0;
            pf_some(pq, 16);
        }
    }
    const int64_t jlo = pvr ? jb->nj : 0; /* columns [jlo, nj) of each row for the general path */
    const int64_t npi = (i1 - i0) * (jb->nj - jlo), np = (n1 - n0) * npi, nsl = cdiv(jb->cout, NR);
    if (np == 0) return;
    float *cbuf = buf + rup(x->xsz * jb->gmax, 16);          /* (rup(np, MR) + 8, NR): one sliver's output tiles */
    const float **rows = (const float **)(cbuf + (rup(np, MR) + 8) * NR); /* (np): pixel -> its corner in xin */
    int64_t *pos = (int64_t *)(rows + rup(np, 8));           /* (np): pixel -> offset of (n - n0, 0, h, w) in out */
#if CONV_TAP_CLASSES
    /* Pixels in class order (every class's pixels in (n, i, j) order; one class without ncls), class k's pixels at
     * [cst[k], cst[k + 1]): panels never mix classes. */
    const int64_t ncls = jb->ncls ? jb->ncls : 1;
    int64_t cst[MAXCL * MAXCL + 1], fill[MAXCL * MAXCL];
    for (int64_t k = 0; k <= ncls; k++) cst[k] = 0;
    int64_t rcls[64], *rc = rcls; /* row class of each local row */
    if (jb->ncls && i1 - i0 > 64) rc = NULL;
    for (int pass = jb->ncls ? 0 : 1; pass < 2; pass++) {
        if (pass == 1)
            for (int64_t k = 0; k < ncls; k++) fill[k] = k ? fill[k - 1] + cst[k - 1] : 0;
        for (int64_t n = n0; n < n1; n++) {
            const float *xn = xin + (n - n0) * x->xsz;
            for (int64_t i = 0; i < i1 - i0; i++) {
                int64_t a = 0;
                if (jb->ncls) {
                    if (rc && n > n0) a = rc[i];
                    else {
                        int64_t t0, t1;
                        tap_range((i0 + i) * jb->ish + jb->offh, jb->rt, jb->hin, &t0, &t1);
                        a = class_of(jb->rcl, jb->nrc, t0, t1);
                        if (rc) rc[i] = a;
                    }
                }
                for (int64_t jj = jlo; jj < jb->nj; jj++) {
                    int64_t k = 0;
                    if (jb->ncls) {
                        int64_t u0, u1;
                        tap_range(jj * jb->isw + jb->offw, jb->st, jb->win, &u0, &u1);
                        k = a * jb->ncc + class_of(jb->ccl, jb->ncc, u0, u1);
                    }
                    if (pass == 0) { cst[k]++; continue; }
                    const int64_t q = fill[k]++;
                    rows[q] = xn + i * jb->ish * x->wb + jj * jb->isw;
                    pos[q] = (n - n0) * jb->cout * plane + (jb->oa + jb->osh * (i0 + i)) * jb->wout + jb->ob + jb->osw * jj;
                }
            }
        }
    }
    if (jb->ncls) { /* counts -> starts */
        int64_t acc = 0;
        for (int64_t k = 0; k < ncls; k++) { const int64_t c = cst[k]; cst[k] = acc; acc += c; }
        cst[ncls] = acc;
    } else {
        cst[0] = 0;
        cst[1] = np;
    }
#else
    for (int64_t n = n0, q = 0; n < n1; n++) {
        const float *xn = xin + (n - n0) * x->xsz;
        for (int64_t i = 0; i < i1 - i0; i++)
            for (int64_t jj = jlo; jj < jb->nj; jj++, q++) {
                rows[q] = xn + i * jb->ish * x->wb + jj * jb->isw;
                pos[q] = (n - n0) * jb->cout * plane + (jb->oa + jb->osh * (i0 + i)) * jb->wout + jb->ob + jb->osw * jj;
            }
    }
#endif
    /* The reduction is cut into nblk blocks of whole input channels (about KCB rows each, by shape only, so the bits
     * do not depend on the task split): a block of B (KCB x 64 bytes) and the input lines a panel reads stay in L1
     * while the panels of the task go by; the tiles wait in cbuf between blocks. */
    const int64_t taps = jb->rt * jb->st, nblk = cdiv(jb->cin, max64(1, KCB / taps));
    for (int64_t s = 0; s < nsl; s++) {
        const float *bs = jb->bp + s * jb->kc * NR;
#if CONV_TAP_CLASSES
        const int nsub = jb->cout - s * NR > 16 ? 2 : 1; /* a last sliver of <= 16 channels: one vector wide */
#else
        const int nsub = 1;
#endif
        for (int64_t b = 0; b < nblk; b++) {
            const int64_t p_lo = jb->cin * b / nblk * taps, p_hi = jb->cin * (b + 1) / nblk * taps;
#if CONV_TAP_CLASSES
            if (!jb->ncls) { /* no tap classes: every pixel over every tap */
#endif
                for (int64_t p0 = 0; p0 < np; p0 += MR) {
                    CONV_UKR((int)min64(MR, np - p0), nsub, p_hi - p_lo, rows + p0, jb->tab + p_lo, bs + p_lo * NR,
                             cbuf + p0 * NR, NR, b > 0);
                    pf_some(pq, 4);
                }
#if CONV_TAP_CLASSES
                continue;
            }
            const int64_t c_lo = jb->cin * b / nblk, c_hi = jb->cin * (b + 1) / nblk;
            for (int64_t k = 0; k < ncls; k++) {
                const int64_t *rg = jb->rcl[k / jb->ncc], *cg = jb->ccl[k % jb->ncc];
                const int64_t per = (rg[1] - rg[0]) * (cg[1] - cg[0]); /* taps per channel in class k */
                const int64_t *ct = jb->ctab + k * jb->kc + c_lo * per, *cb = jb->cbt + k * jb->kc + c_lo * per;
                for (int64_t p0 = cst[k]; p0 < cst[k + 1]; p0 += MR) {
                    if (per == jb->rt * jb->st) /* an interior class: every tap, B in order */
                        CONV_UKR((int)min64(MR, cst[k + 1] - p0), nsub, p_hi - p_lo, rows + p0, jb->tab + p_lo,
                                 bs + p_lo * NR, cbuf + p0 * NR, NR, b > 0);
                    else
                        ukr512_bt((int)min64(MR, cst[k + 1] - p0), nsub, (c_hi - c_lo) * per, rows + p0, ct, cb, bs,
                                  cbuf + p0 * NR, NR, b > 0);
                    pf_some(pq, 4);
                }
            }
#endif
        }
        store_sliver(jb, out, cbuf, pos, np, s, plane, stage != NULL);
    }
}

/* Task t = (image group, row block), every job (stride phase) of it in turn: the phases of conv^T interleave their
 * outputs, so doing them together writes each output line while it is in cache instead of once per phase. */
static void conv_task(void *p, int64_t t, int worker) {
    cctx *x = p;
    const cjob *j0 = &x->jobs[0];
    const int64_t gi = t / j0->ntb, i0 = t % j0->ntb * j0->rb;
    const int64_t n0 = x->n * gi / j0->ng, n1 = x->n * (gi + 1) / j0->ng;
    float *own, *buf = conv2d_slot_of(&x->sl, worker, &own);
    if (!buf) return;
    pfq pq = {0};
    if (x->xsz && t + 1 < j0->ng * j0->ntb) { /* the input rows task t + 1 copies */
        const int64_t g2 = (t + 1) / j0->ntb, r0 = (t + 1) % j0->ntb * j0->rb, r1 = min64(j0->ntb * j0->rb, r0 + j0->rb);
        const int64_t m0 = x->n * g2 / j0->ng, m1 = x->n * (g2 + 1) / j0->ng;
        const int64_t ha = max64(0, r0 * j0->ish + x->offh0), hz = min64(j0->hin, (r1 - 1) * j0->ish + x->offh0 + x->hext);
        if (ha < hz) {
            pq.base = (const char *)(j0->in + (m0 * j0->cin * j0->hin + ha) * j0->win);
            pq.per_ch = j0->hin * j0->win * 4;
            pq.per_img = j0->cin * pq.per_ch;
            pq.cin = j0->cin;
            pq.lpc = cdiv((hz - ha) * j0->win * 4, 64) + 1;
            pq.nimg = m1 - m0;
        }
    }
    if (x->xsz) {
        const int64_t i1 = min64(j0->ntb * j0->rb, i0 + j0->rb); /* the largest row range of any job */
        for (int64_t n = n0; n < n1; n++)
            conv2d_copy_padded(j0->in + n * j0->cin * j0->hin * j0->win, j0->cin, j0->hin, j0->win, i0 * j0->ish + x->offh0,
                        (i1 - 1 - i0) * j0->ish + x->hext, x->offw0, buf + (n - n0) * x->xsz, x->hb, x->wb);
    }
    float *stage = x->stage ? buf + x->stage : NULL; /* whole images n0 .. n1 of the output, copied out at the end */
    for (int j = 0; j < x->njobs; j++) {
        const cjob *jb = &x->jobs[j];
        if (i0 < jb->ni) job_block(x, jb, n0, n1, i0, min64(jb->ni, i0 + jb->rb), buf, stage, &pq);
    }
    if (stage) {
        const int64_t len = (n1 - n0) * j0->cout * j0->hout * j0->wout;
        memcpy(j0->out + n0 * j0->cout * j0->hout * j0->wout, stage, (size_t)len * sizeof(float));
    }
    lt_free(own);
}

/* Run the jobs: pack every B, then the tasks (job, image, row block). */
static lt_status run_jobs(const char *op, cjob *jobs, int njobs, int64_t n) {
    const int width = lt_pool_width();
    /* Tasks: about TASK_PIX output pixels each (all jobs together). Large images are cut into blocks of rb rows
     * (the same for every job, so a task covers one region of the output); small ones are taken whole, several per
     * task (ng groups, a multiple of the pool width so the threads end together), so the 6-pixel panels run across
     * image boundaries instead of leaving a ragged panel per image. The split only decides who computes what:
     * every element's sum is the same. */
    int64_t pix = 0, nimax = 0, njsum = 0;
    for (int j = 0; j < njobs; j++) {
        pix += jobs[j].ni * jobs[j].nj;
        nimax = max64(nimax, jobs[j].ni);
        njsum += jobs[j].nj;
    }
    /* TASK_PIX counts pixels of 16 channels: with fewer output channels a task takes more pixels for the same work */
    const int64_t tpix = TASK_PIX * (jobs[0].cout < 16 ? 16 / jobs[0].cout : 1);
    int64_t rb, ng;
    if (2 * pix >= tpix || n == 1) {
        ng = n;
        rb = max64(1, min64(nimax, tpix / max64(1, njsum)));
        while (rb > 1 && n * cdiv(nimax, rb) < 4 * width) rb = cdiv(rb, 2);
    } else {
        rb = max64(1, nimax);
        ng = min64(n, rup(cdiv(n * pix, tpix), width));
    }
    const int64_t ntasks = ng * cdiv(nimax, rb);
    /* the shared padded copy (see cctx) */
    int64_t offh0 = INT64_MAX, offw0 = INT64_MAX, hend = INT64_MIN, wend = INT64_MIN, njmax = 0;
    for (int j = 0; j < njobs; j++) {
        cjob *jb = &jobs[j];
        jb->kc = jb->cin * jb->rt * jb->st;
        if (!jb->kc) continue;
        offh0 = min64(offh0, jb->offh); offw0 = min64(offw0, jb->offw);
        hend = max64(hend, jb->offh + jb->rt); wend = max64(wend, jb->offw + jb->st);
        njmax = max64(njmax, jb->nj);
    }
    const int64_t hext = hend > INT64_MIN ? hend - offh0 : 0;
    const int64_t hb = hext ? (rb - 1) * jobs[0].ish + hext : 0;
    const int64_t wb = hext ? (njmax - 1) * jobs[0].isw + wend - offw0 : 0;
    const int64_t xsz = jobs[0].cin * hb * wb, gmax = cdiv(n, ng);
    int64_t bp_floats = 0, tab_len = 0, slot = 0;
    for (int j = 0; j < njobs; j++) {
        cjob *jb = &jobs[j];
        jb->rb = rb;
        jb->ng = ng;
        jb->gmax = gmax;
        jb->ntb = cdiv(nimax, rb);
        bp_floats += rup(cdiv(jb->cout, NR) * jb->kc * NR, 16);
#if CONV_TAP_CLASSES
        /* tap classes of this job's rows and columns (by shape only) */
        jb->nrc = jb->ncc = jb->ncls = 0;
        int64_t ok = jb->kc > 0;
        for (int64_t i = 0; ok && i < jb->ni; i++) {
            int64_t t0, t1;
            tap_range(i * jb->ish + jb->offh, jb->rt, jb->hin, &t0, &t1);
            if (class_of(jb->rcl, jb->nrc, t0, t1) >= 0) continue;
            if (jb->nrc == MAXCL) { ok = 0; break; }
            jb->rcl[jb->nrc][0] = t0; jb->rcl[jb->nrc++][1] = t1;
        }
        for (int64_t j = 0; ok && j < jb->nj; j++) {
            int64_t u0, u1;
            tap_range(j * jb->isw + jb->offw, jb->st, jb->win, &u0, &u1);
            if (class_of(jb->ccl, jb->ncc, u0, u1) >= 0) continue;
            if (jb->ncc == MAXCL) { ok = 0; break; }
            jb->ccl[jb->ncc][0] = u0; jb->ccl[jb->ncc++][1] = u1;
        }
        /* worth it only where some class drops taps; rows of > 64 output rows per task keep every tap (job_block's
         * row-class cache) -- they have few border pixels anyway */
        if (ok && jb->nrc * jb->ncc > 1 && jb->rb <= 64) jb->ncls = jb->nrc * jb->ncc;
        tab_len += jb->kc + 2 * jb->ncls * jb->kc;
#else
        tab_len += jb->kc;
#endif
        const int64_t np = gmax * rb * jb->nj; /* xin + cbuf + rows + pos, as job_block lays them out */
        slot = max64(slot, rup(rup(gmax * xsz, 16) + (rup(np, MR) + 8) * NR + 4 * rup(np, 8), 16));
    }
    /* Stage the output when tasks own whole images and the output is written at a stride (stride-2 conv^T on small
     * images, whose rows are too short for full 8-pixel runs): the scalar scatter was ~10% of a W3b bwd_data. */
    const int64_t stage = cdiv(nimax, rb) == 1 && jobs[0].osw > 1 ? slot : 0;
    if (stage) slot += rup(gmax * jobs[0].cout * jobs[0].hout * jobs[0].wout + 16, 16);
    size_t bytes = ((size_t)bp_floats + (size_t)width * (size_t)slot) * sizeof(float) + (size_t)tab_len * 8;
    float *scratch = conv2d_scratch_get(bytes);
    if (!scratch) goto oom;
    cctx x = {jobs, njobs, n, {scratch + bp_floats, slot, width, 0}, offh0, offw0, hb, wb, hext, xsz, stage};
    int64_t *tab = (int64_t *)(scratch + bp_floats + (int64_t)width * slot);
    float *bp = scratch;
    for (int j = 0; j < njobs; j++) {
        cjob *jb = &jobs[j];
        jb->bp = bp;
        jb->tab = tab;
        bp += rup(cdiv(jb->cout, NR) * jb->kc * NR, 16);
        tab += jb->kc;
        for (int64_t ci = 0, p = 0; ci < jb->cin; ci++)
            for (int64_t tt = 0; tt < jb->rt; tt++)
                for (int64_t uu = 0; uu < jb->st; uu++)
                    jb->tab[p++] = (ci * hb + tt + jb->offh - offh0) * wb + uu + jb->offw - offw0;
#if CONV_TAP_CLASSES
        if (jb->ncls) {
            jb->ctab = tab;
            jb->cbt = tab + jb->ncls * jb->kc;
            tab += 2 * jb->ncls * jb->kc;
            for (int64_t k = 0; k < jb->ncls; k++) {
                const int64_t *rg = jb->rcl[k / jb->ncc], *cg = jb->ccl[k % jb->ncc];
                int64_t q = k * jb->kc;
                for (int64_t ci = 0; ci < jb->cin; ci++)
                    for (int64_t tt = rg[0]; tt < rg[1]; tt++)
                        for (int64_t uu = cg[0]; uu < cg[1]; uu++, q++) {
                            const int64_t p = (ci * jb->rt + tt) * jb->st + uu;
                            jb->ctab[q] = jb->tab[p];
                            jb->cbt[q] = p * NR;
                        }
            }
        }
#endif
    }
    /* pack_task walks the slivers of every job in order (a job without taps packs nothing) */
    int64_t allsl = 0;
    for (int j = 0; j < njobs; j++) allsl += cdiv(jobs[j].cout, NR);
    lt_parallel_for(allsl, pack_task, &x);
    lt_parallel_for(ntasks, conv_task, &x);
    conv2d_scratch_put(scratch);
    if (atomic_load(&x.sl.oom)) goto oom;
    return LT_OK;
oom:
    return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: scratch of %zu bytes", op, bytes);
}

lt_status SFX(conv2d_fwd)(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    cjob jb;
    memset(&jb, 0, sizeof jb);
    jb.in = x; jb.cin = d->c; jb.hin = d->h; jb.win = d->w;
    jb.out = y; jb.cout = d->k; jb.hout = d->oh; jb.wout = d->ow;
    jb.ni = d->oh; jb.nj = d->ow; jb.osh = jb.osw = 1;
    jb.ish = d->stride_h; jb.isw = d->stride_w; jb.offh = -d->pad_h; jb.offw = -d->pad_w;
    jb.rt = d->r; jb.st = d->s; jb.bias = bias;
    jb.w = w; jb.w_co = d->c * d->r * d->s; jb.w_ci = d->r * d->s; jb.w_r = d->s;
    jb.rstep = jb.sstep = 1;
    return run_jobs("lt_conv2d_fwd", &jb, 1, d->n);
}

/* Phase (a, b) of conv^T: output rows h = a + sh i. Taps reaching it: r = r0 + sh t, r0 = (a + ph) mod sh; the dy
 * row of tap t is (h + ph - r) / sh = i + e - t, e = (a + ph - r0) / sh. Flipping t' = rt - 1 - t makes it a
 * correlation: dy row i + (e - rt + 1) + t'. */
lt_status SFX(conv2d_bwd_data)(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                               float *dx) {
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int64_t pa = min64(sh, d->h), pb = min64(sw, d->w); /* phases with at least one output row / column */
    cjob stack[16], *jobs = pa * pb <= 16 ? stack : lt_alloc((size_t)(pa * pb) * sizeof(cjob));
    if (!jobs) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_conv2d_bwd_data: %lld phase descriptors", (long long)(pa * pb));
    int nj = 0;
    for (int64_t a = 0; a < pa; a++)
        for (int64_t b = 0; b < pb; b++) {
            cjob *jb = &jobs[nj++];
            memset(jb, 0, sizeof *jb);
            jb->in = dy; jb->cin = d->k; jb->hin = d->oh; jb->win = d->ow;
            jb->out = dx; jb->cout = d->c; jb->hout = d->h; jb->wout = d->w;
            jb->ni = cdiv(d->h - a, sh); jb->nj = cdiv(d->w - b, sw);
            jb->oa = a; jb->ob = b; jb->osh = sh; jb->osw = sw;
            const int64_t r0 = (a + d->pad_h) % sh, s0 = (b + d->pad_w) % sw;
            jb->rt = r0 < d->r ? cdiv(d->r - r0, sh) : 0;
            jb->st = s0 < d->s ? cdiv(d->s - s0, sw) : 0;
            jb->ish = jb->isw = 1;
            jb->offh = (a + d->pad_h - r0) / sh - jb->rt + 1;
            jb->offw = (b + d->pad_w - s0) / sw - jb->st + 1;
            jb->bias = bias;
            /* B[c][(k, t', u')] = w[k][c][r0 + sh (rt-1-t')][s0 + sw (st-1-u')] */
            jb->w = w; jb->w_co = d->r * d->s; jb->w_ci = d->c * d->r * d->s; jb->w_r = d->s;
            jb->r0 = r0; jb->rstep = sh; jb->s0 = s0; jb->sstep = sw; jb->rflip = jb->sflip = 1;
        }
    lt_status st = run_jobs("lt_conv2d_bwd_data", jobs, nj, d->n);
    if (jobs != stack) lt_free(jobs);
    return st;
}

