/* The SIMD attention, FlashAttention-2 tiling (Dao, 2023) on the CPU: the T x T scores only ever exist as
 * small tiles in L1, and every softmax statistic is a vector of 8 lanes, so no horizontal reduction is needed.
 *
 *   q, k, v, o, dout, dq, dk, dv: (B, NH, T, HS) contiguous     lse: (B, NH, T)
 *   math as in attention_ref.c: s_ij = scale q_i . k_j (j <= i if causal), o_i = softmax_j(s_ij) v_j,
 *   lse_i = log sum_j exp(s_ij); backward from lse: P = exp(S - lse), D_i = dout_i . o_i, dP = dout V^T,
 *   dS = P (dP - D), dV = P^T dout, dQ = scale dS K, dK = scale dS^T Q.
 *
 * Forward. Unit = one (b, h) and one tile of L = 24 queries, which are the 24 lanes (3 ymm) of everything
 * (a task takes a whole (b, h) when there are 8 or more per worker, else a group of its tiles):
 * Q^T is packed once per tile, pre-multiplied by scale * log2(e) so exp becomes exp2 with no extra multiply.
 * Keys go by in chunks of FWD_BC = 128: S^T = K Q^T by a 4-key x 24-query register block (12 accumulators;
 * per head dim 4 broadcasts of K, 3 loads of Q^T, 12 FMAs), the causal mask on the chunk holding the
 * diagonal, the running max m and sum l per query lane (online softmax: O^T and l rescaled by
 * alpha = exp2(m_old - m_new) when the max moves), P^T = exp2(S^T - m) in place, then O^T = alpha O^T + V^T P^T
 * by a 4-head-dim x 24-query block. At the end O = (O^T)^T / l and lse = m ln 2 + ln l. Causal: keys past the
 * tile's last query are never touched, and above the diagonal whole lane vectors are skipped (a key past
 * query q0 + 8u + 7 cannot be seen by lanes 8u .. 8u + 7). Tiles are aligned to the end of the sequence so
 * the partial tile, if any, is the one that meets the fewest keys.
 * Backward (FA2). Task = one (b, h): D and lse * log2(e) per row; key tiles of L = 24 keys (the lanes) outer,
 * K^T * scale * log2(e) and V^T * scale packed once per key tile; query tiles of BWD_BR = 48 rows inner, from
 * the diagonal on: P by 4 queries x 24 keys with exp2 in the epilogue, scale * dS the same way (the scale rides
 * on the packed V^T and on D), dV^T += dout^T P and dK^T += Q^T (scale dS) by 4 head dims x 24 keys, dQ += (scale
 * dS) K by 6 queries x 16 head dims, accumulated in place in dq in key-tile order. Above the diagonal whole
 * lane vectors are skipped as in the forward. When there are fewer (b, h) than workers, the backward splits
 * instead into dK, dV per key tile and then dQ per query tile (recomputing P and dS: 7 matmuls for 5), with
 * the same per-element arithmetic and order, hence the same bits.
 * Head sizes 32, 64 and 128 get their own instantiations (constant trip counts); any HS >= 1 goes through the
 * generic one (head-dim blocks with 1-3 row tails, dq's 16-wide column tail by masked loads and stores over
 * zero-padded K rows). Any T >= 1: lanes past the sequence are zero (queries) or masked (keys).
 *
 * Determinism: every output element belongs to one task and is accumulated in a fixed order inside it (dq in
 * key-tile order, dk and dv in query order), so 1 and 2 threads give the same bits (attention_test.c checks).
 * Memory: per worker (2 HS + 128) x 24 floats (forward) or (4 HS + 96) x 24 + 24 x roundup(HS, 16) floats
 * (backward), plus 2 x B x NH x T floats of row statistics; never T x T.
 * Accuracy: exp2_ps below is within 0.95 ulp (measured); the tolerances and their reasons are in
 * attention_test.c, which checks this file against a double-precision reference (LATENT_MAX_ISA=avx2).
 * Run: attention_test, attention_test --bench.
 * Measured (attention_test --bench, Zen 5, W2 = B 8, NH 6, T 256, HS 64, causal, FLOPs = the useful causal
 * half, quiet machine): 2 threads fwd 2.88 ms (140 GFLOP/s, 66% of the 212 GFLOP/s lt_peak_fma of that run),
 * fwd+bwd 9.29 ms (152 GFLOP/s, 72%); 1 thread 5.32 ms / 17.4 ms (73% / 78% of 104). T = 1024: 80% / 85%.
 * Tuning (A/B in one process, 1 thread unless said): FWD_BC 128 vs 64 is 1-3% faster (32 and 256 no better);
 * BWD_BR 24 and 96 no better than 48 (96 is 8% slower at HS 128); skipping the lane vectors above the
 * diagonal took the backward from 12.07 to 11.58 ms and, with end-aligned query tiles, the forward from
 * about 5.9 to 5.5 ms; a whole (b, h) per forward task is 9% faster on 2 threads than one tile per task.
 *
 * This header is that body written once for both levels (the description above is the AVX2 one, 8-float ymm,
 * L = 24; attention_avx512.c says what changes at 16-float zmm, L = 48): attention_avx2.c and attention_avx512.c
 * define the vector type and operations, then #include it (never compiled on its own; not a *.c, so CMake does not
 * glob it). Required:
 *   V, VI, VL          float vector, int32 vector, lanes
 *   VLOAD, VSTORE (unaligned), VZERO(), VSET1(x), VBCAST(ptr), VADD, VSUB, VMUL, VMAX, VMIN, VFMA(a, b, c) = a b + c,
 *   VSET1I(i), VADDI, VSLLI(v, n), VCAST_I / VCAST_F (bit casts), VIOTA() = (0, 1, .., VL - 1)
 *   VMASK, VMASKLOAD(p, m), VMASKSTORE(p, m, v)   the dQ head-size tail (masked lanes read as 0, left unwritten)
 *   hide_ninf(p, lim, iota, ninf)  store -inf into the lanes of p where lim > iota (the causal mask)
 *   keep_below(v, n, iota0)        v with lanes >= n zeroed
 *   DQ_MASK0(rem), DQ_MASK1(rem)   the masks of the first rem of DQW head dims, one per vector
 *   L, FWD_BC, FWD_R (forward register block: 4 or 8 key rows / head dims), DQW (dQ block width: 2 VL), SFX(name)
 * pack_t, unpack_t and bwd_stats (Q^T / K^T / V^T packing with 8 x 8 transposes, D = dout . o) are AVX2 code at
 * both levels: not hot. */
#include <math.h>
#include <string.h>

#include "../common/transpose_avx2.h"
#include "attention_base.h"

#ifndef BWD_BR
#define BWD_BR 48 /* queries per inner step of the backward (multiple of 12) */
#endif

/* dst (HS, L) = mul * transpose of src (n rows of HS, row stride ld); lanes >= n are zero. */
AI void pack_t(const int64_t HS, const float *src, int64_t ld, int64_t n, float mul, float *dst) {
    const __m256 mv = _mm256_set1_ps(mul);
    const int64_t hfull = HS / 8 * 8;
    for (int64_t c0 = 0; c0 < hfull; c0 += 8)
        for (int g = 0; g < L / 8; g++) {
            __m256 r[8];
            for (int t = 0; t < 8; t++)
                r[t] = 8 * g + t < n ? _mm256_loadu_ps(src + (8 * g + t) * ld + c0) : _mm256_setzero_ps();
            tr8x8(r);
            for (int t = 0; t < 8; t++) _mm256_storeu_ps(dst + (c0 + t) * L + 8 * g, _mm256_mul_ps(r[t], mv));
        }
    for (int64_t c = hfull; c < HS; c++)
        for (int64_t i = 0; i < L; i++) dst[c * L + i] = i < n ? src[i * ld + c] * mul : 0.0f;
}

/* dst (n rows of HS, row stride ld) = transpose of src (HS, L), row i times mul[i]. */
AI void unpack_t(const int64_t HS, const float *src, const float *mul, int64_t n, float *dst, int64_t ld) {
    const int64_t hfull = HS / 8 * 8;
    for (int64_t c0 = 0; c0 < hfull; c0 += 8)
        for (int g = 0; g < L / 8 && 8 * g < n; g++) {
            __m256 r[8];
            for (int t = 0; t < 8; t++) r[t] = _mm256_loadu_ps(src + (c0 + t) * L + 8 * g);
            tr8x8(r);
            for (int t = 0; t < 8; t++)
                if (8 * g + t < n)
                    _mm256_storeu_ps(dst + (8 * g + t) * ld + c0, _mm256_mul_ps(r[t], _mm256_broadcast_ss(mul + 8 * g + t)));
        }
    for (int64_t c = hfull; c < HS; c++)
        for (int64_t i = 0; i < n; i++) dst[i * ld + c] = src[c * L + i] * mul[i];
}

typedef struct {
    const lt_attention_desc *d;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv;
    float *scratch;    /* (workers, ws) */
    int64_t ws;        /* floats of scratch per worker */
    int64_t nqt, grp;  /* forward: query tiles per (b, h), tiles per task */
    float *dd, *lse2;  /* backward: (B, NH, T) scale * D_i and lse_i * log2(e) */
} actx;

/* ---- forward ------------------------------------------------------------------------------------------ */

/* S^T rows for R keys: st[r][i] = sum_c k[r][c] qt[c][i] for the lane vectors u >= U0 (the ones below are
 * wholly above the causal diagonal for these keys: left unwritten, the mask pass fills them with -inf).
 * k: (R, HS) rows of K; qt: (HS, L); st: (R, L). */
AI void fwd_s(const int R, const int U0, const int64_t HS, const float *k, const float *qt, float *st) {
    V acc[FWD_R][3], b[3];
    for (int r = 0; r < R; r++)
        for (int u = U0; u < 3; u++) acc[r][u] = VZERO();
    for (int64_t c = 0; c < HS; c++) {
        for (int u = U0; u < 3; u++) b[u] = VLOAD(qt + c * L + VL * u);
        for (int r = 0; r < R; r++) {
            V a = VBCAST(k + r * HS + c);
            for (int u = U0; u < 3; u++) acc[r][u] = VFMA(a, b[u], acc[r][u]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = U0; u < 3; u++) VSTORE(st + r * L + VL * u, acc[r][u]);
}

/* acc[r][u] += sum_{j in [j0, j1)} v[j][r] pt[j][u-th vector], for u >= U0. */
#define PV_LOOP(U0)                                                                  \
    for (int64_t j = j0; j < j1; j++) {                                              \
        for (int u = U0; u < 3; u++) b[u] = VLOAD(pt + j * L + VL * u);     \
        for (int r = 0; r < R; r++) {                                                \
            V a = VBCAST(v + j * HS + r);                          \
            for (int u = U0; u < 3; u++) acc[r][u] = VFMA(a, b[u], acc[r][u]); \
        }                                                                            \
    }

/* O^T rows for R head dims: ot[r][i] = (first ? 0 : ot[r][i] * alpha[i]) + sum_j v[j][r] pt[j][i].
 * Keys j >= ja have lane vector 0 wholly masked (P = 0) and keys j >= jb vectors 0 and 1: skipped.
 * v: (nk, HS) rows of V from column d0; pt: (nk, L) P^T; ot: (R, L). */
AI void fwd_pv(const int R, const int64_t HS, int64_t nk, int64_t ja, int64_t jb, const float *v, const float *pt,
               float *ot, const V *alpha, int first) {
    V acc[FWD_R][3], b[3];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < 3; u++)
            acc[r][u] = first ? VZERO() : VMUL(VLOAD(ot + r * L + VL * u), alpha[u]);
    int64_t j0 = 0, j1 = ja;
    PV_LOOP(0)
    j0 = ja, j1 = jb;
    PV_LOOP(1)
    j0 = jb, j1 = nk;
    PV_LOOP(2)
    for (int r = 0; r < R; r++)
        for (int u = 0; u < 3; u++) VSTORE(ot + r * L + VL * u, acc[r][u]);
}
#undef PV_LOOP

/* One query tile [q0, q0 + nq) of one (b, h): every key chunk, online softmax, O and lse written. */
AI void fwd_tile(const actx *x, const int64_t HS, int64_t bh, int64_t q0, int64_t nq, float *ws) {
    const lt_attention_desc *d = x->d;
    const int64_t T = d->t;
    const int causal = d->causal;
    const float qscale = d->scale * LOG2E; /* scores in base 2: exp2(s' - m') = exp(s - m) */
    const float *q = x->q + (bh * T + q0) * HS; // (nq, HS)
    const float *k = x->k + bh * T * HS;        // (T, HS)
    const float *v = x->v + bh * T * HS;        // (T, HS)
    float *o = x->out + (bh * T + q0) * HS;     // (nq, HS)
    float *lse = x->lse_out + bh * T + q0;      // (nq,)
    float *qt = ws;                             // (HS, L) scaled Q^T, lanes past nq zero
    float *ot = qt + rup(HS * L, 16);           // (HS, L) O^T accumulators
    float *st = ot + rup(HS * L, 16);           // (FWD_BC, L) S^T, then P^T

    /* The tile's rows are one contiguous block, usually not cached yet: ask for all of it at once so the
     * misses overlap, instead of meeting them 8 rows at a time in the transposes. */
    for (int64_t e = 0; e < nq * HS; e += 16) _mm_prefetch((const char *)(q + e), _MM_HINT_T0);
    pack_t(HS, q, HS, nq, qscale, qt);

    const VI iota0 = VIOTA();
    const VI iota[3] = {iota0, VADDI(iota0, VSET1I(VL)), VADDI(iota0, VSET1I(2 * VL))};
    const V ninf = VSET1(-INFINITY);
    V m[3] = {ninf, ninf, ninf}, l[3] = {VZERO(), VZERO(), VZERO()};
    const int64_t kend = causal ? q0 + nq : T; /* keys past the diagonal are never touched */
    for (int64_t k0 = 0; k0 < kend; k0 += FWD_BC) {
        const int64_t nk = min64(FWD_BC, kend - k0);
        /* Causal: lane vector u (queries q0 + VL u ..) sees no key past q0 + VL u + VL - 1, so from chunk row
         * ja = q0 + VL - k0 on vector 0 is all masked, from jb = q0 + 2 VL - k0 on vectors 0 and 1. */
        const int64_t ja = causal ? min64(nk, max64(0, q0 + VL - k0)) : nk;
        const int64_t jb = causal ? min64(nk, max64(0, q0 + 2 * VL - k0)) : nk;
        int64_t j = 0;
        for (; j + FWD_R <= nk; j += FWD_R) {
            const float *kj = k + (k0 + j) * HS;
            if (j >= jb) fwd_s(FWD_R, 2, HS, kj, qt, st + j * L);
            else if (j >= ja) fwd_s(FWD_R, 1, HS, kj, qt, st + j * L);
            else fwd_s(FWD_R, 0, HS, kj, qt, st + j * L);
        }
        if (FWD_R > 4 && j + 4 <= nk) {
            const float *kj = k + (k0 + j) * HS;
            if (j >= jb) fwd_s(4, 2, HS, kj, qt, st + j * L);
            else if (j >= ja) fwd_s(4, 1, HS, kj, qt, st + j * L);
            else fwd_s(4, 0, HS, kj, qt, st + j * L);
            j += 4;
        }
        switch (nk - j) {
        case 3: fwd_s(3, 0, HS, k + (k0 + j) * HS, qt, st + j * L); break;
        case 2: fwd_s(2, 0, HS, k + (k0 + j) * HS, qt, st + j * L); break;
        case 1: fwd_s(1, 0, HS, k + (k0 + j) * HS, qt, st + j * L); break;
        }
        if (causal) /* key k0 + j is hidden from query lane i when k0 + j > q0 + i, i.e. i < k0 + j - q0 */
            for (j = max64(0, q0 + 1 - k0); j < nk; j++) {
                VI lim = VSET1I((int)(k0 + j - q0));
                for (int u = 0; u < 3; u++) hide_ninf(st + j * L + VL * u, lim, iota[u], ninf);
            }
        V mx[3] = {m[0], m[1], m[2]};
        for (j = 0; j < nk; j++)
            for (int u = 0; u < 3; u++) mx[u] = VMAX(mx[u], VLOAD(st + j * L + VL * u));
        V alpha[3], s[3] = {VZERO(), VZERO(), VZERO()};
        for (int u = 0; u < 3; u++) alpha[u] = exp2_ps(VSUB(m[u], mx[u]));
        for (j = 0; j < nk; j++)
            for (int u = 0; u < 3; u++) {
                V p = exp2_ps(VSUB(VLOAD(st + j * L + VL * u), mx[u]));
                VSTORE(st + j * L + VL * u, p);
                s[u] = VADD(s[u], p);
            }
        for (int u = 0; u < 3; u++) {
            l[u] = VFMA(l[u], alpha[u], s[u]);
            m[u] = mx[u];
        }
        const int first = k0 == 0;
        const float *vk = v + k0 * HS;
        int64_t c = 0;
        for (; c + FWD_R <= HS; c += FWD_R) fwd_pv(FWD_R, HS, nk, ja, jb, vk + c, st, ot + c * L, alpha, first);
        if (FWD_R > 4 && c + 4 <= HS) {
            fwd_pv(4, HS, nk, ja, jb, vk + c, st, ot + c * L, alpha, first);
            c += 4;
        }
        switch (HS - c) {
        case 3: fwd_pv(3, HS, nk, ja, jb, vk + c, st, ot + c * L, alpha, first); break;
        case 2: fwd_pv(2, HS, nk, ja, jb, vk + c, st, ot + c * L, alpha, first); break;
        case 1: fwd_pv(1, HS, nk, ja, jb, vk + c, st, ot + c * L, alpha, first); break;
        }
    }
    float mf[L], lf[L], inv[L];
    for (int u = 0; u < 3; u++) {
        VSTORE(mf + VL * u, m[u]);
        VSTORE(lf + VL * u, l[u]);
    }
    for (int64_t i = 0; i < nq; i++) {
        inv[i] = 1.0f / lf[i];
        lse[i] = mf[i] * LN2 + logf(lf[i]);
    }
    unpack_t(HS, ot, inv, nq, o, HS);
}

static void fwd_task(void *p, int64_t task, int worker) {
    const actx *x = p;
    const int64_t T = x->d->t, ng = (x->nqt + x->grp - 1) / x->grp, bh = task / ng;
    /* Task = tiles [t0, t1) of one (b, h), heaviest group first so the pool's dynamic claiming ends on light
     * ones. Tiles are aligned to the end of the sequence: the partial one (T % L queries) is the first, which
     * meets the fewest keys, so its idle lanes cost least. */
    const int64_t t0 = (ng - 1 - task % ng) * x->grp, t1 = min64(x->nqt, t0 + x->grp), r0 = T - (x->nqt - 1) * L;
    float *ws = x->scratch + worker * x->ws;
    for (int64_t t = t1 - 1; t >= t0; t--) {
        const int64_t q0 = t == 0 ? 0 : r0 + (t - 1) * L, nq = t == 0 ? r0 : L;
        switch (x->d->hs) { /* constant head sizes: fully known trip counts and offsets */
        case 32: fwd_tile(x, 32, bh, q0, nq, ws); break;
        case 64: fwd_tile(x, 64, bh, q0, nq, ws); break;
        case 128: fwd_tile(x, 128, bh, q0, nq, ws); break;
        default: fwd_tile(x, x->d->hs, bh, q0, nq, ws); break;
        }
    }
}

lt_status SFX(attention_fwd)(const lt_attention_desc *d, const float *q, const float *k, const float *v, float *o,
                              float *lse) {
    const int width = lt_pool_width();
    const int64_t ws = 2 * rup(d->hs * L, 16) + FWD_BC * L;
    float *scratch = lt_alloc((size_t)width * (size_t)ws * sizeof(float));
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_attention_fwd: %d x %lld floats of tile scratch", width, (long long)ws);
    const int64_t bh = d->b * d->nh, nqt = (d->t + L - 1) / L;
    /* A whole (b, h) per task when there are plenty (its K and V then stay in one core's L2: 8% faster at W2
     * on 2 threads than one tile per task), else enough tile groups for about 8 tasks per worker. The
     * grouping never changes the arithmetic of a tile, so it may depend on the pool size. */
    const int64_t grp = bh >= 8 * width ? nqt : max64(1, nqt * bh / (8 * width));
    actx x = {.d = d, .q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch, .ws = ws,
              .nqt = nqt, .grp = grp};
    lt_parallel_for(bh * ((nqt + grp - 1) / grp), fwd_task, &x);
    lt_free(scratch);
    return LT_OK;
}

/* ---- backward ----------------------------------------------------------------------------------------- */

/* P rows for R queries: p[r][j] = exp2(q[r] . kt[:, j] - lse2[r]), keys j > lim_r hidden (0), where
 * lim_r = min(diag + r, nk - 1): diag = i - k0 for the causal mask, large otherwise. Only the lane vectors
 * u < U are computed; the rest are wholly hidden for these rows and written as 0.
 * q: (R, HS) rows of Q; kt: (HS, L) K^T scaled by scale * log2(e); p: (R, L). */
AI void bwd_p(const int R, const int U, const int64_t HS, const float *q, const float *kt, const float *lse2,
              int64_t diag, int64_t nk, float *p) {
    V acc[4][3], b[3];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) acc[r][u] = VZERO();
    for (int64_t c = 0; c < HS; c++) {
        for (int u = 0; u < U; u++) b[u] = VLOAD(kt + c * L + VL * u);
        for (int r = 0; r < R; r++) {
            V a = VBCAST(q + r * HS + c);
            for (int u = 0; u < U; u++) acc[r][u] = VFMA(a, b[u], acc[r][u]);
        }
    }
    /* Raw scores to memory first: indexing the accumulators from the loop below would make GCC keep a
     * memory copy of them updated inside the contraction loop. */
    for (int r = 0; r < R; r++)
        for (int u = 0; u < 3; u++) VSTORE(p + r * L + VL * u, u < U ? acc[r][u] : VZERO());
    const VI iota0 = VIOTA();
    for (int r = 0; r < R; r++) {
        const V ls = VBCAST(lse2 + r);
        const int64_t lim = min64(diag + r, nk - 1);
        for (int u = 0; u < U; u++) {
            V pv = exp2_ps(VSUB(VLOAD(p + r * L + VL * u), ls));
            if (lim < L - 1) pv = keep_below(pv, (int)(lim + 1 - VL * u), iota0);
            VSTORE(p + r * L + VL * u, pv);
        }
    }
}

/* dS rows for R queries: ds[r][j] = p[r][j] (dout[r] . vt[:, j] - dd[r]), lane vectors u < U (0 beyond).
 * vt: (HS, L) V^T scaled by scale, dd: scale * D, so ds is scale * dS. */
AI void bwd_ds(const int R, const int U, const int64_t HS, const float *dout, const float *vt, const float *dd,
               const float *p, float *ds) {
    V acc[4][3], b[3];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) acc[r][u] = VZERO();
    for (int64_t c = 0; c < HS; c++) {
        for (int u = 0; u < U; u++) b[u] = VLOAD(vt + c * L + VL * u);
        for (int r = 0; r < R; r++) {
            V a = VBCAST(dout + r * HS + c);
            for (int u = 0; u < U; u++) acc[r][u] = VFMA(a, b[u], acc[r][u]);
        }
    }
    for (int r = 0; r < R; r++) {
        const V dr = VBCAST(dd + r);
        for (int u = 0; u < 3; u++)
            VSTORE(ds + r * L + VL * u,
                             u < U ? VMUL(VLOAD(p + r * L + VL * u), VSUB(acc[r][u], dr))
                                   : VZERO());
    }
}

/* acc[r][u] += sum_{ii in [i0, i1)} a[ii][r] b[ii][u-th vector], u < U. */
#define ACCT_LOOP(U)                                                                       \
    for (int64_t ii = i0; ii < i1; ii++) {                                                 \
        for (int u = 0; u < U; u++) bv[u] = VLOAD(b + ii * L + VL * u);           \
        for (int r = 0; r < R; r++) {                                                      \
            V x = VBCAST(a + ii * HS + r);                               \
            for (int u = 0; u < U; u++) acc[r][u] = VFMA(x, bv[u], acc[r][u]);  \
        }                                                                                  \
    }

/* Transposed accumulation for R head dims: acct[r][j] += sum_ii a[ii][r] b[ii][j], ii < nq. Rows ii < na
 * have b zero past lane vector 0, rows ii < nb past vector 1 (causal diagonal, short key tile): skipped.
 * a: (nq, HS) rows from column c0 (dout for dV, Q for dK); b: (nq, L) (P or dS); acct: (R, L). */
AI void bwd_acct(const int R, const int64_t HS, int64_t na, int64_t nb, int64_t nq, const float *a, const float *b,
                 float *acct) {
    V acc[4][3], bv[3];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < 3; u++) acc[r][u] = VLOAD(acct + r * L + VL * u);
    int64_t i0 = 0, i1 = na;
    ACCT_LOOP(1)
    i0 = na, i1 = nb;
    ACCT_LOOP(2)
    i0 = nb, i1 = nq;
    ACCT_LOOP(3)
    for (int r = 0; r < R; r++)
        for (int u = 0; u < 3; u++) VSTORE(acct + r * L + VL * u, acc[r][u]);
}
#undef ACCT_LOOP

/* dQ rows for R queries, DQW head dims from c0: dq[r][0..DQW) += sum_j ds[r][j] kp[j][0..DQW), j < nk.
 * kp: (nk, ldk) rows of K from column c0, readable (zero) up to DQW columns; masked: only the columns
 * selected by mk0/mk1 of dq exist (the head-size tail). */
AI void bwd_dq(const int R, const int masked, int64_t nk, const float *ds, const float *kp, int64_t ldk, float *dq,
               int64_t HS, VMASK mk0, VMASK mk1) {
    V acc[6][2];
    for (int r = 0; r < R; r++) {
        acc[r][0] = masked ? VMASKLOAD(dq + r * HS, mk0) : VLOAD(dq + r * HS);
        acc[r][1] = masked ? VMASKLOAD(dq + r * HS + VL, mk1) : VLOAD(dq + r * HS + VL);
    }
    for (int64_t j = 0; j < nk; j++) {
        V b0 = VLOAD(kp + j * ldk), b1 = VLOAD(kp + j * ldk + VL);
        for (int r = 0; r < R; r++) {
            V a = VBCAST(ds + r * L + j);
            acc[r][0] = VFMA(a, b0, acc[r][0]);
            acc[r][1] = VFMA(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        if (masked) {
            VMASKSTORE(dq + r * HS, mk0, acc[r][0]);
            VMASKSTORE(dq + r * HS + VL, mk1, acc[r][1]);
        } else {
            VSTORE(dq + r * HS, acc[r][0]);
            VSTORE(dq + r * HS + VL, acc[r][1]);
        }
    }
}

/* One query tile [i0, i0 + nq) against one key tile [k0, k0 + nk) (packed in kt, vt, kp): P and dS rows,
 * then dV^T += dout^T P, dK^T += Q^T dS, dQ += dS K. Causal: i0 >= k0, and row i sees lane vector u only
 * from i >= k0 + VL u on, so the work above the diagonal is skipped a vector at a time. */
AI void bwd_pair(const int64_t HS, const float *q, const float *dout, const float *lse2, const float *dd, float *dq,
                 const float *kt, const float *vt, const float *kp, int64_t ldk, float *dvt, float *dkt, float *pb,
                 float *dsb, int64_t i0, int64_t nq, int64_t k0, int64_t nk, int causal, int do_kv, int do_q) {
    const int64_t big = 1 << 30, uk = (nk + VL - 1) / VL; /* lane vectors holding keys */
    int64_t ii = 0;
    for (; ii + 4 <= nq; ii += 4) {
        const int64_t i = i0 + ii, diag = causal ? i - k0 : big;
        const int64_t U = min64(uk, causal ? min64(3, (i + 3 - k0) / VL + 1) : 3);
        const float *qi = q + i * HS, *di = dout + i * HS;
        float *pr = pb + ii * L, *dr = dsb + ii * L;
        if (U == 1) {
            bwd_p(4, 1, HS, qi, kt, lse2 + i, diag, nk, pr);
            bwd_ds(4, 1, HS, di, vt, dd + i, pr, dr);
        } else if (U == 2) {
            bwd_p(4, 2, HS, qi, kt, lse2 + i, diag, nk, pr);
            bwd_ds(4, 2, HS, di, vt, dd + i, pr, dr);
        } else {
            bwd_p(4, 3, HS, qi, kt, lse2 + i, diag, nk, pr);
            bwd_ds(4, 3, HS, di, vt, dd + i, pr, dr);
        }
    }
    if (ii < nq) { /* the last 1-3 rows of the sequence: all vectors, the mask does the rest */
        const int64_t i = i0 + ii, diag = causal ? i - k0 : big;
        const float *qi = q + i * HS, *di = dout + i * HS;
        float *pr = pb + ii * L, *dr = dsb + ii * L;
        switch (nq - ii) {
        case 3: bwd_p(3, 3, HS, qi, kt, lse2 + i, diag, nk, pr); bwd_ds(3, 3, HS, di, vt, dd + i, pr, dr); break;
        case 2: bwd_p(2, 3, HS, qi, kt, lse2 + i, diag, nk, pr); bwd_ds(2, 3, HS, di, vt, dd + i, pr, dr); break;
        default: bwd_p(1, 3, HS, qi, kt, lse2 + i, diag, nk, pr); bwd_ds(1, 3, HS, di, vt, dd + i, pr, dr); break;
        }
    }
    /* dV^T += dout^T P, dK^T += Q^T dS (both scaled already where needed). */
    if (do_kv) {
        const int64_t na = uk <= 1 ? nq : causal ? min64(nq, max64(0, k0 + VL - i0)) : 0;
        const int64_t nb = uk <= 2 ? nq : causal ? min64(nq, max64(0, k0 + 2 * VL - i0)) : 0;
        const float *dor = dout + i0 * HS, *qr = q + i0 * HS;
        int64_t c = 0;
        for (; c + 4 <= HS; c += 4) {
            bwd_acct(4, HS, na, nb, nq, dor + c, pb, dvt + c * L);
            bwd_acct(4, HS, na, nb, nq, qr + c, dsb, dkt + c * L);
        }
        switch (HS - c) {
        case 3: bwd_acct(3, HS, na, nb, nq, dor + c, pb, dvt + c * L); bwd_acct(3, HS, na, nb, nq, qr + c, dsb, dkt + c * L); break;
        case 2: bwd_acct(2, HS, na, nb, nq, dor + c, pb, dvt + c * L); bwd_acct(2, HS, na, nb, nq, qr + c, dsb, dkt + c * L); break;
        case 1: bwd_acct(1, HS, na, nb, nq, dor + c, pb, dvt + c * L); bwd_acct(1, HS, na, nb, nq, qr + c, dsb, dkt + c * L); break;
        }
    }
    if (!do_q) return;
    /* dQ += dS K, 6 query rows x DQW head dims per block; the head-size tail through masks. Causal: rows up
     * to i see keys up to i only. */
    const int64_t hfull = HS / DQW * DQW, rem = HS - hfull;
    const VMASK mk0 = DQ_MASK0(rem), mk1 = DQ_MASK1(rem);
    for (ii = 0; ii < nq; ii += 6) {
        const int R = (int)min64(6, nq - ii);
        int64_t c;
        const int64_t nke = causal ? min64(nk, i0 + ii + R - k0) : nk;
        float *dqr = dq + (i0 + ii) * HS;
        const float *dsr = dsb + ii * L;
#define DQ_ROWS(RR)                                                                                   \
    do {                                                                                              \
        for (c = 0; c < hfull; c += DQW) bwd_dq(RR, 0, nke, dsr, kp + c, ldk, dqr + c, HS, mk0, mk1); \
        if (rem) bwd_dq(RR, 1, nke, dsr, kp + hfull, ldk, dqr + hfull, HS, mk0, mk1);                 \
    } while (0)
        switch (R) {
        case 6: DQ_ROWS(6); break;
        case 5: DQ_ROWS(5); break;
        case 4: DQ_ROWS(4); break;
        case 3: DQ_ROWS(3); break;
        case 2: DQ_ROWS(2); break;
        default: DQ_ROWS(1); break;
        }
#undef DQ_ROWS
    }
}

/* Per-row statistics of one (b, h): dd_i = scale * D_i with D_i = dout_i . o_i, lse2_i = lse_i * log2(e). */
AI void bwd_stats(const actx *x, const int64_t HS, int64_t bh) {
    const int64_t T = x->d->t;
    const float scale = x->d->scale;
    const float *o = x->o + bh * T * HS;       // (T, HS)
    const float *dout = x->dout + bh * T * HS; // (T, HS)
    const float *lse = x->lse + bh * T;        // (T,)
    float *dd = x->dd + bh * T, *lse2 = x->lse2 + bh * T;
    for (int64_t i = 0; i < T; i++) {
        __m256 acc = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 8 <= HS; c += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(dout + i * HS + c), _mm256_loadu_ps(o + i * HS + c), acc);
        float t8[8], s = 0.0f;
        _mm256_storeu_ps(t8, acc);
        for (int u = 0; u < 8; u++) s += t8[u];
        for (; c < HS; c++) s += dout[i * HS + c] * o[i * HS + c];
        dd[i] = s * scale;
        lse2[i] = lse[i] * LOG2E;
    }
}

/* Worker scratch of the backward, one key tile at a time. */
typedef struct {
    float *kt;    // (HS, L) K^T * scale * log2(e)
    float *vt;    // (HS, L) V^T * scale
    float *dvt;   // (HS, L) dV^T of the key tile
    float *dkt;   // (HS, L) dK^T of the key tile
    float *pb;    // (BWD_BR, L) P
    float *dsb;   // (BWD_BR, L) scale * dS
    float *kpack; // (L, rup(HS, DQW)) K rows zero-padded to DQW columns (head sizes not multiple of DQW)
    const float *kp;
    int64_t ldk;  // kp: the K rows bwd_dq reads, row stride ldk
} bwd_ws;

static inline int64_t bwd_ws_floats(int64_t HS) { return 4 * rup(HS * L, 16) + 2 * BWD_BR * L + L * rup(HS, DQW); }

AI bwd_ws bwd_ws_at(float *ws, int64_t HS) {
    const int64_t tl = rup(HS * L, 16);
    bwd_ws w = {ws, ws + tl, ws + 2 * tl, ws + 3 * tl, ws + 4 * tl, ws + 4 * tl + BWD_BR * L,
                ws + 4 * tl + 2 * BWD_BR * L, NULL, 0};
    return w;
}

/* Pack key tile [k0, k0 + nk) of one (b, h): K^T and V^T with their scale factors, and K rows for dQ. */
AI void bwd_pack_keys(const actx *x, const int64_t HS, int64_t bh, int64_t k0, int64_t nk, bwd_ws *w) {
    const int64_t T = x->d->t, hsp = rup(HS, DQW);
    const float *k = x->k + (bh * T + k0) * HS; // (nk, HS)
    const float *v = x->v + (bh * T + k0) * HS; // (nk, HS)
    pack_t(HS, k, HS, nk, x->d->scale * LOG2E, w->kt);
    pack_t(HS, v, HS, nk, x->d->scale, w->vt);
    w->kp = k;
    w->ldk = HS;
    if (HS % DQW) {
        for (int64_t j = 0; j < nk; j++)
            for (int64_t c = 0; c < hsp; c++) w->kpack[j * hsp + c] = c < HS ? k[j * HS + c] : 0.0f;
        w->kp = w->kpack;
        w->ldk = hsp;
    }
}

/* dK, dV rows of key tile [k0, k0 + nk): every query tile from the diagonal on (with dQ too when do_q). */
AI void bwd_key_tile(const actx *x, const int64_t HS, int64_t bh, int64_t k0, bwd_ws *w, int do_q) {
    const int64_t T = x->d->t, nk = min64(L, T - k0), base = bh * T * HS;
    const int causal = x->d->causal;
    static const float ones[L] = {[0 ... L - 1] = 1.0f};
    bwd_pack_keys(x, HS, bh, k0, nk, w);
    memset(w->dvt, 0, (size_t)(HS * L) * sizeof(float));
    memset(w->dkt, 0, (size_t)(HS * L) * sizeof(float));
    for (int64_t i0 = causal ? k0 : 0; i0 < T; i0 += BWD_BR)
        bwd_pair(HS, x->q + base, x->dout + base, x->lse2 + bh * T, x->dd + bh * T, x->dq + base, w->kt, w->vt,
                 w->kp, w->ldk, w->dvt, w->dkt, w->pb, w->dsb, i0, min64(BWD_BR, T - i0), k0, nk, causal, 1, do_q);
    unpack_t(HS, w->dvt, ones, nk, x->dv + base + k0 * HS, HS);
    unpack_t(HS, w->dkt, ones, nk, x->dk + base + k0 * HS, HS);
}

/* FlashAttention-2 order, one task per (b, h): key tiles outer, query tiles inner, dQ accumulated in place
 * in key-tile order. */
AI void bwd_bh(const actx *x, const int64_t HS, int64_t bh, float *ws) {
    const int64_t T = x->d->t;
    bwd_stats(x, HS, bh);
    memset(x->dq + bh * T * HS, 0, (size_t)(T * HS) * sizeof(float));
    bwd_ws w = bwd_ws_at(ws, HS);
    for (int64_t k0 = 0; k0 < T; k0 += L) bwd_key_tile(x, HS, bh, k0, &w, 1);
}

/* dQ rows of query tile [qa, qa + nq) (split order): every key tile up to the diagonal, in order, with the
 * same per-row arithmetic as bwd_bh, so the bits are the same as in the FlashAttention-2 order. */
AI void bwd_query_tile(const actx *x, const int64_t HS, int64_t bh, int64_t qa, bwd_ws *w) {
    const int64_t T = x->d->t, nq = min64(BWD_BR, T - qa), base = bh * T * HS;
    const int causal = x->d->causal;
    memset(x->dq + base + qa * HS, 0, (size_t)(nq * HS) * sizeof(float));
    const int64_t kend = causal ? qa + nq : T;
    for (int64_t k0 = 0; k0 < kend; k0 += L) {
        const int64_t nk = min64(L, T - k0), i0 = causal ? max64(qa, k0) : qa;
        bwd_pack_keys(x, HS, bh, k0, nk, w);
        bwd_pair(HS, x->q + base, x->dout + base, x->lse2 + bh * T, x->dd + bh * T, x->dq + base, w->kt, w->vt,
                 w->kp, w->ldk, w->dvt, w->dkt, w->pb, w->dsb, i0, qa + nq - i0, k0, nk, causal, 0, 1);
    }
}

#define HS_SWITCH(call_with_hs)                                                \
    switch (x->d->hs) { /* constant head sizes: known trip counts and offsets */ \
    case 32: call_with_hs(32); break;                                          \
    case 64: call_with_hs(64); break;                                          \
    case 128: call_with_hs(128); break;                                        \
    default: call_with_hs(x->d->hs); break;                                    \
    }

static void bwd_task(void *p, int64_t bh, int worker) {
    const actx *x = p;
    float *ws = x->scratch + worker * x->ws;
#define CALL(H) bwd_bh(x, H, bh, ws)
    HS_SWITCH(CALL)
#undef CALL
}

static void stats_task(void *p, int64_t bh, int worker) {
    const actx *x = p;
#define CALL(H) bwd_stats(x, H, bh)
    HS_SWITCH(CALL)
#undef CALL
}

static void kv_task(void *p, int64_t task, int worker) {
    const actx *x = p;
    const int64_t nkt = (x->d->t + L - 1) / L, bh = task / nkt, k0 = task % nkt * L; /* causal: heaviest first */
    bwd_ws w = bwd_ws_at(x->scratch + worker * x->ws, x->d->hs);
#define CALL(H) bwd_key_tile(x, H, bh, k0, &w, 0)
    HS_SWITCH(CALL)
#undef CALL
}

static void q_task(void *p, int64_t task, int worker) {
    const actx *x = p;
    const int64_t nqt = (x->d->t + BWD_BR - 1) / BWD_BR, bh = task / nqt, qa = (nqt - 1 - task % nqt) * BWD_BR;
    bwd_ws w = bwd_ws_at(x->scratch + worker * x->ws, x->d->hs);
#define CALL(H) bwd_query_tile(x, H, bh, qa, &w)
    HS_SWITCH(CALL)
#undef CALL
}

lt_status SFX(attention_bwd)(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                              const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    const int width = lt_pool_width();
    const int64_t bh = d->b * d->nh, ws = bwd_ws_floats(d->hs);
    float *scratch = lt_alloc(((size_t)width * (size_t)ws + 2 * (size_t)(bh * d->t)) * sizeof(float));
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_attention_bwd: %d x %lld floats of tile scratch and 2 x %lld of row "
                       "statistics", width, (long long)ws, (long long)(bh * d->t));
    actx x = {.d = d, .q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv,
              .scratch = scratch, .ws = ws};
    x.dd = scratch + (size_t)width * (size_t)ws;
    x.lse2 = x.dd + bh * d->t;
    if (bh >= width || d->t <= L) {
        lt_parallel_for(bh, bwd_task, &x);
    } else {
        /* Fewer (b, h) than workers: split by tiles instead, dK and dV per key tile, then dQ per query tile
         * (recomputing P and dS: 7 matmuls instead of 5). Same bits as bwd_task (see bwd_query_tile), so
         * the choice, which depends on the pool size, does not show in the results. */
        lt_parallel_for(bh, stats_task, &x);
        lt_parallel_for(bh * ((d->t + L - 1) / L), kv_task, &x);
        lt_parallel_for(bh * ((d->t + BWD_BR - 1) / BWD_BR), q_task, &x);
    }
    lt_free(scratch);
    return LT_OK;
}
