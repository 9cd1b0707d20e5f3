/* bf16 attention (lt_attention_fwd_bf16 / lt_attention_bwd_bf16): the math of attention_ref.c with every matmul's
 * operands rounded to bf16 (round to nearest even, vcvtneps2bf16) and their products summed in fp32 by AVX512_BF16
 * vdpbf16ps. Forward: S = Q K^T and O = P V; backward: S = Q K^T (P recomputed), dP = dout V^T, dQ = dS K,
 * dV = P^T dout, dK = dS^T Q. Softmax, the running statistics (max, sum, lse), exp, D = dout . o, dS = P (dP - D),
 * the scale and every accumulation stay fp32; P and dS are rounded to bf16 only as matmul operands (their fp32
 * values feed the sums l and the next steps). The layouts, causal rule and lse contract are lt_attention_fwd's.
 *
 * Layout. vdpbf16ps adds, per fp32 lane, the products of 2 bf16 pairs, so every matmul here is
 *   C (rows x lanes, fp32) (+)= A (rows x 2np, bf16, the reduction dimension contiguous: one 32-bit pair word per
 *   step, broadcast) times B (np pair words x lanes: word (p, lane) = (x[2p][lane] low half, x[2p+1][lane] high)),
 * one micro-kernel (mk below, up to 6 rows x 4 zmm = 24 accumulators) with opmask tails on the lanes. Odd
 * reduction lengths pad their last pair with 0. Packings, per (b, h) or per block of BR queries:
 *   forward:  KP  (HS pairs x T keys) from K        VP (T pairs x HS) from V          A: Q rows, P rows (bf16)
 *   backward: KP, VTP (HS pairs x T keys) from K, V; KJP (T pairs x HS) from K;        A: Q, dout, dS rows,
 *             and per query block PP, DSP (query pairs x keys) from P and dS; A: Q^T and dout^T (HS x BR).
 *   dV^T += dout^T P and dK^T += Q^T dS accumulate as (HS x T) fp32 and are transposed once at the end.
 * Unlike the fp32 kernels (FlashAttention-2, attention_simd.h), a block of BR = 48 queries sees its whole score
 * rows at once (plain, not online, softmax): scratch per worker is O((BR + HS) T) floats, never T x T. Causal:
 * each 6-row group of a block computes scores only up to its own last key, and the PV / dS K reductions stop there.
 *
 * Arithmetic. A product of two bf16 is exact in fp32; vdpbf16ps rounds each of its two additions to fp32 (RNE) and
 * treats denormal inputs and outputs as zero. Each rounding to bf16 errs by at most 2^-9 relative (8 significant
 * bits), so a score errs by at most about 2^-8 sum_c |scale q_ic k_jc| on top of the fp32 error; attention_test.c
 * derives its bf16 tolerance from this (see its header).
 * Determinism: every output element is written by one task in a fixed order (the forward's tasks are (b, h) or
 * (b, h, query block) with the same per-element arithmetic; the backward's are (b, h)), so 1 and 2 threads give the
 * same bits. The bits differ from the fp32 kernels' (that is the point).
 * Only called when lt_cpu_bf16() and the level in use is avx512 (attention.c refuses otherwise).
 * Speed: BENCHMARKS.md (W2 bf16). Test: attention_test (the bf16 section), attention_test --bench-bf16. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "../common/transpose_avx2.h"
#include "attention_avx512.h" /* the 16-lane vector macros exp2_ps is written in */
#include "attention_base.h"   /* min64, rup, LOG2E, LN2, exp2_ps: the fp32 body's own (attention_simd.h) */

#define BR 48 /* queries per block (multiple of 6, even) */

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }
static inline __mmask32 lanes32(int64_t n) { return n >= 32 ? (__mmask32)0xFFFFFFFFu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1); }

/* 16 floats to 16 bf16 (RNE). */
AI __m256i bf16x16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }
/* Pair words from 16 values of the even row (low halves) and 16 of the odd row (high halves): one vcvtne2ps2bf16
 * (lo in the low 256 bits, hi in the high) and one vpermw interleaving them (same RNE bits as bf16x16). */
AI __m512i pairs(__m512 lo, __m512 hi) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* ---- packing ------------------------------------------------------------------------------------------------ */

/* dst[0 .. w) = bf16(src[0 .. n)), then zeros (w even, >= n). */
static void row_bf16(const float *src, int64_t n, uint16_t *dst, int64_t w) {
    for (int64_t i = 0; i < w; i += 16) {
        __m512 x = _mm512_maskz_loadu_ps(lanes(n - i), src + i);
        _mm256_mask_storeu_epi16(dst + i, (__mmask16)lanes(w - i), bf16x16(x));
    }
}

/* Pairs over rows: dst[p * ldd + l] = (x[2p][l], x[2p + 1][l]) for p < ceil(nrows / 2), l < n; x rows of stride ldx
 * (a missing odd row reads as 0). */
static void pack_rows(const float *x, int64_t ldx, int64_t nrows, int64_t n, uint32_t *dst, int64_t ldd) {
    for (int64_t p = 0; 2 * p < nrows; p++) {
        const float *r0 = x + 2 * p * ldx, *r1 = r0 + ldx;
        const int odd = 2 * p + 1 < nrows;
        for (int64_t l = 0; l < n; l += 16) {
            const __mmask16 m = lanes(n - l);
            __m512 lo = _mm512_maskz_loadu_ps(m, r0 + l);
            __m512 hi = odd ? _mm512_maskz_loadu_ps(m, r1 + l) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + p * ldd + l, m, pairs(lo, hi));
        }
    }
}

/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: 8 x 8 blocks through tr8x8, scalar edges. Pure data
 * movement, so it also moves 32-bit pair words bit for bit. */
static void transpose(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst, int64_t ldd) {
    const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
        for (int64_t c0 = 0; c0 < c8; c0 += 8) {
            __m256 v[8];
            for (int t = 0; t < 8; t++) v[t] = _mm256_loadu_ps(src + (r0 + t) * lds + c0);
            tr8x8(v);
            for (int t = 0; t < 8; t++) _mm256_storeu_ps(dst + (c0 + t) * ldd + r0, v[t]);
        }
        for (int64_t r = r0; r < r0 + 8; r++)
            for (int64_t c = c8; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
    }
    for (int64_t r = r8; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/* Pairs over columns: dst[p * ldd + j] = (x[j][2p], x[j][2p + 1]) for j < nrows, p < ceil(hs / 2): the 32-bit
 * transpose of the bf16 rows (tmp: nrows x rup(hs, 2) bf16). */
static void pack_cols(const float *x, int64_t hs, int64_t nrows, uint16_t *tmp, uint32_t *dst, int64_t ldd) {
    const int64_t he = rup(hs, 2), np = he / 2;
    for (int64_t j = 0; j < nrows; j++) row_bf16(x + j * hs, hs, tmp + j * he, he);
    transpose((const float *)tmp, np, nrows, np, (float *)dst, ldd);
}

/* Transposed bf16 rows: dst[c * ldd + r] = bf16(x[r][c]) for c < hs, r < nr, and 0 for r in [nr, ldd) (ldd even);
 * tt: hs x BR floats of scratch. */
static void pack_t_bf16(const float *x, int64_t hs, int64_t nr, float *tt, uint16_t *dst, int64_t ldd) {
    transpose(x, hs, nr, hs, tt, BR);
    for (int64_t c = 0; c < hs; c++) row_bf16(tt + c * BR, nr, dst + c * ldd, ldd);
}

/* ---- the micro-kernel --------------------------------------------------------------------------------------- */

/* c[r][0 .. 16U) (+)= sum_{p < np} a[r][p] . b[p][0 .. 16U) for r < R, the last vector under mask ml. a: pair words,
 * row stride lda; b: pair words, row stride ldb; c: fp32, row stride ldc. */
AI void mk(const int R, const int U, int64_t np, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t ldb,
           float *c, int64_t ldc, __mmask16 ml, int accum) {
    __m512 acc[6][4];
    __mmask16 m[4];
    for (int u = 0; u < U; u++) m[u] = u == U - 1 ? ml : (__mmask16)0xFFFF;
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) acc[r][u] = accum ? _mm512_maskz_loadu_ps(m[u], c + r * ldc + 16 * u) : _mm512_setzero_ps();
    for (int64_t p = 0; p < np; p++) {
        __m512bh bv[4];
        for (int u = 0; u < U; u++) bv[u] = (__m512bh)_mm512_maskz_loadu_epi32(m[u], b + p * ldb + 16 * u);
        for (int r = 0; r < R; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * lda + p]);
            for (int u = 0; u < U; u++) acc[r][u] = _mm512_dpbf16_ps(acc[r][u], av, bv[u]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) _mm512_mask_storeu_ps(c + r * ldc + 16 * u, m[u], acc[r][u]);
}

#define MK_U(RR, UU) mk(RR, UU, np, a, lda, b + l0, ldb, c + l0, ldc, ml, accum)
#define MK_R(RR)                               \
    switch (U) {                               \
    case 4: MK_U(RR, 4); break;                \
    case 3: MK_U(RR, 3); break;                \
    case 2: MK_U(RR, 2); break;                \
    default: MK_U(RR, 1); break;               \
    }

/* One group of R <= 6 rows over lanes [0, n). */
static void mm_rows(int R, int64_t n, int64_t np, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t ldb,
                    float *c, int64_t ldc, int accum) {
    if (np <= 0 && !accum) { /* an empty sum */
        for (int r = 0; r < R; r++) memset(c + r * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t l0 = 0; l0 < n; l0 += 64) {
        const int64_t rem = n - l0;
        const int U = (int)min64(4, (rem + 15) / 16);
        const __mmask16 ml = lanes(rem - 16 * (U - 1));
        switch (R) {
        case 6: MK_R(6); break;
        case 5: MK_R(5); break;
        case 4: MK_R(4); break;
        case 3: MK_R(3); break;
        case 2: MK_R(2); break;
        default: MK_R(1); break;
        }
    }
}
#undef MK_R
#undef MK_U

/* C (nrows x n) (+)= A B. Causal trimming (lim >= 0): row group [r0, r0 + R) only needs lanes (lane_lim) or
 * reduction pairs (red_lim) up to key lim + r0 + R (the group's last query is lim + r0 + R - 1). */
enum { TRIM_NONE, TRIM_LANES, TRIM_RED };
static void mm(int64_t nrows, int64_t n, int64_t np, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t ldb,
               float *c, int64_t ldc, int accum, int trim, int64_t lim) {
    for (int64_t r0 = 0; r0 < nrows; r0 += 6) {
        const int R = (int)min64(6, nrows - r0);
        int64_t nn = n, pp = np;
        if (trim == TRIM_LANES) nn = min64(n, lim + r0 + R);
        if (trim == TRIM_RED) pp = min64(np, (lim + r0 + R + 1) / 2);
        mm_rows(R, nn, pp, a + r0 * lda, lda, b, ldb, c + r0 * ldc, ldc, accum);
    }
}

/* ---- forward ------------------------------------------------------------------------------------------------ */

typedef struct {
    const lt_attention_desc *d;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv;
    char *scratch;
    int64_t ws;      /* bytes of scratch per worker */
    int64_t nblk;    /* query blocks per (b, h) */
    int64_t per;     /* forward: blocks per task */
} bctx;

/* Scratch layout of the forward (all offsets 64-byte aligned). */
typedef struct { uint16_t *tmp; uint32_t *kp, *vp, *qa, *pa; float *s, *inv; } fwd_ws;
static int64_t a64(int64_t x) { return rup(x, 64); }
static int64_t fwd_bytes(int64_t T, int64_t HS, fwd_ws *w, char *base) {
    const int64_t he = rup(HS, 2), np = he / 2, tw = rup(T, 16), tp = rup(T, 2) / 2, hw = rup(HS, 16);
    int64_t off = 0;
#define TAKE(field, type, bytes) do { if (w) w->field = (type)(base + off); off += a64(bytes); } while (0)
    TAKE(tmp, uint16_t *, T * he * 2);
    TAKE(kp, uint32_t *, np * tw * 4);
    TAKE(vp, uint32_t *, tp * hw * 4);
    TAKE(qa, uint32_t *, BR * np * 4);
    TAKE(pa, uint32_t *, BR * (tw / 2) * 4);
    TAKE(s, float *, BR * tw * 4);
    TAKE(inv, float *, BR * 4);
#undef TAKE
    return off;
}

/* Queries [i0, i0 + nr) of one (b, h), whose K and V are packed in w (keys [0, kend) at least). */
static void fwd_block(const bctx *x, int64_t bh, int64_t i0, int64_t nr, const fwd_ws *w) {
    const lt_attention_desc *d = x->d;
    const int64_t T = d->t, HS = d->hs, he = rup(HS, 2), np = he / 2, tw = rup(T, 16), hw = rup(HS, 16);
    const int causal = d->causal;
    const int64_t kend = causal ? i0 + nr : T, kpe = rup(kend, 2);
    const float c2 = d->scale * LOG2E;
    const float *q = x->q + (bh * T + i0) * HS;
    float *o = x->out + (bh * T + i0) * HS, *lse = x->lse_out + bh * T + i0;
    for (int64_t r = 0; r < nr; r++) row_bf16(q + r * HS, HS, (uint16_t *)(w->qa + r * np), he);
    /* S = Q K^T (raw dot products; the scale rides on the exp2 argument, in fp32) */
    mm(nr, kend, np, w->qa, np, w->kp, tw, w->s, tw, 0, causal ? TRIM_LANES : TRIM_NONE, i0);
    const __m512 vc2 = _mm512_set1_ps(c2), ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t r = 0; r < nr; r++) {
        const int64_t n = causal ? i0 + r + 1 : T;
        float *s = w->s + r * tw;
        __m512 mx = ninf;
        for (int64_t j = 0; j < n; j += 16)
            mx = _mm512_mask_max_ps(mx, lanes(n - j), mx, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n - j), s + j), vc2));
        const float m = _mm512_reduce_max_ps(mx);
        const __m512 vm = _mm512_set1_ps(m);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < kpe; j += 16) { /* P = exp2(c2 s - m) for keys < n, 0 up to kpe */
            const __mmask16 mv = lanes(n - j);
            __m512 p = _mm512_maskz_mov_ps(mv, exp2_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mv, s + j), vc2), vm)));
            sum = _mm512_add_ps(sum, p);
            _mm256_mask_storeu_epi16((uint16_t *)(w->pa + r * (tw / 2)) + j, (__mmask16)lanes(kpe - j), bf16x16(p));
        }
        const float l = _mm512_reduce_add_ps(sum);
        w->inv[r] = 1.0f / l;
        lse[r] = m * LN2 + logf(l);
    }
    /* O = P V, then / l */
    mm(nr, HS, kpe / 2, w->pa, tw / 2, w->vp, hw, o, HS, 0, causal ? TRIM_RED : TRIM_NONE, i0);
    for (int64_t r = 0; r < nr; r++) {
        const __m512 iv = _mm512_set1_ps(w->inv[r]);
        for (int64_t c = 0; c < HS; c += 16) {
            const __mmask16 m = lanes(HS - c);
            _mm512_mask_storeu_ps(o + r * HS + c, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + r * HS + c), iv));
        }
    }
}

static void fwd_task(void *p, int64_t task, int worker) {
    const bctx *x = p;
    const lt_attention_desc *d = x->d;
    const int64_t T = d->t, HS = d->hs, tw = rup(T, 16), hw = rup(HS, 16);
    const int64_t groups = x->nblk / x->per, bh = task / groups, b0 = task % groups * x->per;
    fwd_ws w;
    fwd_bytes(T, HS, &w, x->scratch + worker * x->ws);
    /* keys the task's last block can see */
    const int64_t kend = d->causal ? min64(T, (b0 + x->per) * BR) : T;
    pack_cols(x->k + bh * T * HS, HS, kend, w.tmp, w.kp, tw);
    pack_rows(x->v + bh * T * HS, HS, kend, HS, w.vp, hw);
    for (int64_t blk = b0; blk < b0 + x->per; blk++)
        fwd_block(x, bh, blk * BR, min64(BR, T - blk * BR), &w);
}

lt_status attention_fwd_avx512_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                    float *o, float *lse) {
    const int width = lt_pool_width();
    const int64_t ws = fwd_bytes(d->t, d->hs, NULL, NULL), bh = d->b * d->nh, nblk = (d->t + BR - 1) / BR;
    char *scratch = lt_alloc((size_t)width * (size_t)ws);
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_attention_fwd_bf16: %d x %lld bytes of scratch", width, (long long)ws);
    bctx x = {.d = d, .q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch, .ws = ws, .nblk = nblk};
    /* a whole (b, h) per task when there are enough; else one query block per task (same arithmetic per element) */
    x.per = bh >= width ? nblk : 1;
    lt_parallel_for(bh * (nblk / x.per), fwd_task, &x);
    lt_free(scratch);
    return LT_OK;
}

/* ---- backward ----------------------------------------------------------------------------------------------- */

typedef struct {
    uint16_t *tmp;
    uint32_t *kp, *vtp, *kjp, *qa, *da, *dsa, *pp, *dsp, *qt, *dot;
    float *s, *dp, *dvt, *dkt, *stat, *tt;
} bwd_ws;
static int64_t bwd_bytes(int64_t T, int64_t HS, bwd_ws *w, char *base) {
    const int64_t he = rup(HS, 2), np = he / 2, tw = rup(T, 16), tp = rup(T, 2) / 2, hw = rup(HS, 16);
    int64_t off = 0;
#define TAKE(field, type, bytes) do { if (w) w->field = (type)(base + off); off += a64(bytes); } while (0)
    TAKE(tmp, uint16_t *, T * he * 2);
    TAKE(kp, uint32_t *, np * tw * 4);
    TAKE(vtp, uint32_t *, np * tw * 4);
    TAKE(kjp, uint32_t *, tp * hw * 4);
    TAKE(qa, uint32_t *, BR * np * 4);
    TAKE(da, uint32_t *, BR * np * 4);
    TAKE(dsa, uint32_t *, BR * (tw / 2) * 4);
    TAKE(pp, uint32_t *, (BR / 2) * tw * 4);
    TAKE(dsp, uint32_t *, (BR / 2) * tw * 4);
    TAKE(qt, uint32_t *, HS * (BR / 2) * 4);
    TAKE(dot, uint32_t *, HS * (BR / 2) * 4);
    TAKE(s, float *, BR * tw * 4);
    TAKE(dp, float *, BR * tw * 4);
    TAKE(dvt, float *, HS * tw * 4);
    TAKE(dkt, float *, HS * tw * 4);
    TAKE(stat, float *, 2 * T * 4);
    TAKE(tt, float *, HS * BR * 4);
#undef TAKE
    return off;
}

static void bwd_task(void *p, int64_t bh, int worker) {
    const bctx *x = p;
    const lt_attention_desc *d = x->d;
    const int64_t T = d->t, HS = d->hs, he = rup(HS, 2), np = he / 2, tw = rup(T, 16), hw = rup(HS, 16);
    const int causal = d->causal;
    const float scale = d->scale, c2 = scale * LOG2E;
    const int64_t base = bh * T * HS;
    const float *q = x->q + base, *k = x->k + base, *v = x->v + base, *o = x->o + base, *dout = x->dout + base;
    const float *lse = x->lse + bh * T;
    bwd_ws w;
    bwd_bytes(T, HS, &w, x->scratch + worker * x->ws);
    float *dd = w.stat, *lse2 = w.stat + T;
    for (int64_t i = 0; i < T; i++) { /* D_i = dout_i . o_i and lse_i log2(e), fp32 */
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < HS; c += 16) {
            const __mmask16 m = lanes(HS - c);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, dout + i * HS + c), _mm512_maskz_loadu_ps(m, o + i * HS + c), acc);
        }
        dd[i] = _mm512_reduce_add_ps(acc);
        lse2[i] = lse[i] * LOG2E;
    }
    pack_cols(k, HS, T, w.tmp, w.kp, tw);
    pack_cols(v, HS, T, w.tmp, w.vtp, tw);
    pack_rows(k, HS, T, HS, w.kjp, hw);
    int64_t kdone = 0; /* keys whose dV^T / dK^T columns hold a partial sum (the rest are written, not added) */
    const __m512 vc2 = _mm512_set1_ps(c2), vsc = _mm512_set1_ps(scale);
    for (int64_t i0 = 0; i0 < T; i0 += BR) {
        const int64_t nr = min64(BR, T - i0), kend = causal ? i0 + nr : T, kpe = rup(kend, 2), npr = (nr + 1) / 2;
        const int t1 = causal ? TRIM_LANES : TRIM_NONE, t2 = causal ? TRIM_RED : TRIM_NONE;
        for (int64_t r = 0; r < nr; r++) {
            row_bf16(q + (i0 + r) * HS, HS, (uint16_t *)(w.qa + r * np), he);
            row_bf16(dout + (i0 + r) * HS, HS, (uint16_t *)(w.da + r * np), he);
        }
        mm(nr, kend, np, w.qa, np, w.kp, tw, w.s, tw, 0, t1, i0);  /* S = Q K^T */
        mm(nr, kend, np, w.da, np, w.vtp, tw, w.dp, tw, 0, t1, i0); /* dP = dout V^T */
        /* Two query rows at a time: P = exp2(c2 s - lse2) (0 past the row's keys) and scale dS = scale P (dP - D) in
         * fp32, written straight as the bf16 operands: dS rows (for dQ) and the pair words of P and dS over the two
         * rows (for dV^T, dK^T; an odd last row pairs with zeros). */
        for (int64_t r0 = 0; r0 < nr; r0 += 2) {
            const int two = r0 + 1 < nr;
            const int64_t n0 = causal ? i0 + r0 + 1 : T, n1 = two ? (causal ? i0 + r0 + 2 : T) : 0;
            const float *s0 = w.s + r0 * tw, *s1 = s0 + tw, *p0 = w.dp + r0 * tw, *p1 = p0 + tw;
            const __m512 l20 = _mm512_set1_ps(lse2[i0 + r0]), d0 = _mm512_set1_ps(dd[i0 + r0]);
            const __m512 l21 = _mm512_set1_ps(two ? lse2[i0 + r0 + 1] : 0.0f), d1 = _mm512_set1_ps(two ? dd[i0 + r0 + 1] : 0.0f);
            uint16_t *a0 = (uint16_t *)(w.dsa + r0 * (tw / 2)), *a1 = a0 + tw;
            uint32_t *ppr = w.pp + (r0 / 2) * tw, *dspr = w.dsp + (r0 / 2) * tw;
            for (int64_t j = 0; j < kpe; j += 16) {
                const __mmask16 m0 = lanes(n0 - j), m1 = lanes(n1 - j), mk = lanes(kpe - j), mp = lanes(kend - j);
                __m512 pv0 = _mm512_maskz_mov_ps(m0, exp2_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m0, s0 + j), vc2), l20)));
                __m512 ds0 = _mm512_mul_ps(vsc, _mm512_mul_ps(pv0, _mm512_sub_ps(_mm512_maskz_loadu_ps(m0, p0 + j), d0)));
                __m512 pv1 = _mm512_maskz_mov_ps(m1, exp2_ps(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m1, s1 + j), vc2), l21)));
                __m512 ds1 = _mm512_mul_ps(vsc, _mm512_mul_ps(pv1, _mm512_sub_ps(_mm512_maskz_loadu_ps(m1, p1 + j), d1)));
                _mm256_mask_storeu_epi16(a0 + j, (__mmask16)mk, bf16x16(ds0));
                if (two) _mm256_mask_storeu_epi16(a1 + j, (__mmask16)mk, bf16x16(ds1));
                _mm512_mask_storeu_epi32(ppr + j, mp, pairs(pv0, pv1));
                _mm512_mask_storeu_epi32(dspr + j, mp, pairs(ds0, ds1));
            }
        }
        /* dQ = (scale dS) K, every key of the row in one go: written, not accumulated */
        mm(nr, HS, kpe / 2, w.dsa, tw / 2, w.kjp, hw, x->dq + base + i0 * HS, HS, 0, t2, i0);
        /* dV^T += dout^T P, dK^T += Q^T (scale dS): pairs over the block's queries (packed above) */
        pack_t_bf16(dout + i0 * HS, HS, nr, w.tt, (uint16_t *)w.dot, 2 * npr);
        pack_t_bf16(q + i0 * HS, HS, nr, w.tt, (uint16_t *)w.qt, 2 * npr);
        /* columns [0, kdone) accumulate; [kdone, kend) are first reached by this block: written (no memset) */
        if (kdone > 0) {
            mm(HS, kdone, npr, w.dot, npr, w.pp, tw, w.dvt, tw, 1, TRIM_NONE, 0);
            mm(HS, kdone, npr, w.qt, npr, w.dsp, tw, w.dkt, tw, 1, TRIM_NONE, 0);
        }
        if (kend > kdone) {
            mm(HS, kend - kdone, npr, w.dot, npr, w.pp + kdone, tw, w.dvt + kdone, tw, 0, TRIM_NONE, 0);
            mm(HS, kend - kdone, npr, w.qt, npr, w.dsp + kdone, tw, w.dkt + kdone, tw, 0, TRIM_NONE, 0);
            kdone = kend;
        }
    }
    transpose(w.dvt, tw, HS, T, x->dv + base, HS);
    transpose(w.dkt, tw, HS, T, x->dk + base, HS);
}

lt_status attention_bwd_avx512_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                    const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                    float *dv) {
    const int width = lt_pool_width();
    const int64_t ws = bwd_bytes(d->t, d->hs, NULL, NULL), bh = d->b * d->nh;
    char *scratch = lt_alloc((size_t)width * (size_t)ws);
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_attention_bwd_bf16: %d x %lld bytes of scratch", width, (long long)ws);
    bctx x = {.d = d, .q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv,
              .scratch = scratch, .ws = ws};
    lt_parallel_for(bh, bwd_task, &x);
    lt_free(scratch);
    return LT_OK;
}
