/* The SIMD body of conv1d, written once for both levels: conv1d_avx2.c and conv1d_avx512.c define the vector type
 * and its operations, then #include this file (never compiled on its own; not a *.c, so CMake does not glob it).
 *
 * Required macros: V (vector type), VL (lanes), VLOAD, VSTORE (unaligned), VFMA(a, b, c) = a*b + c, VADD,
 * VBCAST(ptr),
 * VZERO(), TV (time vectors per register tile of the correlation), CIB (input rows per weight-gradient tile),
 * SFX(name) (name suffix).
 *
 * Correlation (forward and backward-data, conv1d.h's conv1d_corr): register tile CONV1D_COB output rows x TV
 * vectors of time; each broadcast weight meets TV loads. Task = (batch item, TBLK time steps), looping over every
 * block of output rows inside, so the input window (ni rows x (TBLK + (kk-1) d)) is read from cache by all of them.
 * Weight gradient (conv1d_wgrad): register tile CONV1D_COB output rows x CIB input rows, one vector of time each;
 * per (batch item, 256-step time chunk) the partial sums go to memory, so each chunk of dy (4 rows) stays in L1
 * while every input-row block and tap passes over it. Every reduction order is fixed by the shape alone. */
#include <string.h>

#define TW (TV * VL)   /* time steps per register tile */
#define TBLK (8 * TW)  /* time steps per correlation task */
#define TCH 256        /* time steps per weight-gradient chunk (a multiple of 64, so of VL) */

static void SFX(corr_task)(void *p, int64_t task, int worker) {
    const conv1d_corr *c = p;
    const int64_t nblk = (c->t + TBLK - 1) / TBLK, b = task / nblk, t0 = task % nblk * TBLK;
    const int64_t t1 = t0 + TBLK < c->t ? t0 + TBLK : c->t, NI = c->ni, KK = c->kk, D = c->d;
    const int64_t nob = (c->no + CONV1D_COB - 1) / CONV1D_COB;
    for (int64_t ob = 0; ob < nob; ob++) {
        const int64_t o0 = ob * CONV1D_COB, nr = c->no - o0 < CONV1D_COB ? c->no - o0 : CONV1D_COB;
        const float *wb = c->wp + ob * NI * KK * CONV1D_COB; // (ni, kk, COB)
        float bv[CONV1D_COB];
        for (int r = 0; r < CONV1D_COB; r++) bv[r] = c->bias && r < nr ? c->bias[o0 + r] : 0.0f;
        for (int64_t t = t0; t < t1; t += TW) {
            V acc[CONV1D_COB][TV];
#pragma GCC unroll 4
            for (int r = 0; r < CONV1D_COB; r++)
#pragma GCC unroll 4
                for (int v = 0; v < TV; v++) acc[r][v] = VBCAST(&bv[r]);
            const float *xb = c->in + b * NI * c->len + t; // row i at xb + i len
            for (int64_t i = 0; i < NI; i++) {
                const float *xr = xb + i * c->len, *wr = wb + i * KK * CONV1D_COB;
                for (int64_t jj = 0; jj < KK; jj++) {
                    const float *xp = xr + jj * D, *wj = wr + jj * CONV1D_COB;
                    V xv[TV];
#pragma GCC unroll 4
                    for (int v = 0; v < TV; v++) xv[v] = VLOAD(xp + v * VL);
#pragma GCC unroll 4
                    for (int r = 0; r < CONV1D_COB; r++) {
                        const V wv = VBCAST(wj + r);
#pragma GCC unroll 4
                        for (int v = 0; v < TV; v++) acc[r][v] = VFMA(wv, xv[v], acc[r][v]);
                    }
                }
            }
            /* constant bounds only (r < nr as a test inside): acc must stay scalar-replaceable, or the compiler keeps it
             * in memory and stores every accumulator after every FMA */
            float *ob_out = c->out + (b * c->no + o0) * c->t + t; // row r at ob_out + r T
            if (t + TW <= t1) {
#pragma GCC unroll 4
                for (int r = 0; r < CONV1D_COB; r++)
                    if (r < nr) {
#pragma GCC unroll 4
                        for (int v = 0; v < TV; v++) VSTORE(ob_out + r * c->t + v * VL, acc[r][v]);
                    }
            } else { /* the last, partial tile of the row: through a buffer, only t < t1 written */
                float tmp[CONV1D_COB][TW];
#pragma GCC unroll 4
                for (int r = 0; r < CONV1D_COB; r++)
#pragma GCC unroll 4
                    for (int v = 0; v < TV; v++) VSTORE(tmp[r] + v * VL, acc[r][v]);
                for (int r = 0; r < nr; r++) memcpy(ob_out + r * c->t, tmp[r], (size_t)(t1 - t) * sizeof(float));
            }
        }
    }
}

void SFX(conv1d_corr)(const conv1d_corr *c) {
    lt_parallel_for(c->n * ((c->t + TBLK - 1) / TBLK), SFX(corr_task), (void *)c);
}

int64_t SFX(conv1d_wgrad_scratch)(int64_t ni, int64_t kk) {
    /* (ni blocks, kk, COB, CIB) vectors of dw partial sums, then COB vectors of db */
    return ((ni + CIB - 1) / CIB * kk * CONV1D_COB * CIB + CONV1D_COB) * VL;
}

static void SFX(wgrad_task)(void *p, int64_t ob, int worker) {
    const conv1d_wgrad *c = p;
    const int64_t NI = c->ni, KK = c->kk, D = c->d, TR = c->tr, nib = (NI + CIB - 1) / CIB;
    const int64_t o0 = ob * CONV1D_COB, nr = c->no - o0 < CONV1D_COB ? c->no - o0 : CONV1D_COB;
    float *acc = c->scratch + (int64_t)worker * c->scratch_stride; // (nib, kk, COB, CIB, VL) then (COB, VL)
    float *accb = acc + nib * KK * CONV1D_COB * CIB * VL;
    memset(acc, 0, (size_t)SFX(conv1d_wgrad_scratch)(NI, KK) * sizeof(float));
    for (int64_t b = 0; b < c->n; b++) {
        const float *dyr[CONV1D_COB]; /* rows past `no` repeat the last one: computed, never stored */
        for (int r = 0; r < CONV1D_COB; r++) dyr[r] = c->dy + (b * c->no + (r < nr ? o0 + r : o0 + nr - 1)) * TR;
        for (int64_t tc = 0; tc < TR; tc += TCH) {
            const int64_t te = tc + TCH < TR ? tc + TCH : TR;
            if (c->db) {
                V s[CONV1D_COB];
                for (int r = 0; r < CONV1D_COB; r++) s[r] = VLOAD(accb + r * VL);
                for (int64_t t = tc; t < te; t += VL)
#pragma GCC unroll 4
                    for (int r = 0; r < CONV1D_COB; r++) s[r] = VADD(s[r], VLOAD(dyr[r] + t));
                for (int r = 0; r < CONV1D_COB; r++) VSTORE(accb + r * VL, s[r]);
            }
            for (int64_t ib = 0; ib < nib; ib++) {
                const int64_t i0 = ib * CIB, nc = NI - i0 < CIB ? NI - i0 : CIB;
                const float *xr[CIB];
                for (int q = 0; q < CIB; q++) xr[q] = c->xp + (b * NI + (q < nc ? i0 + q : i0 + nc - 1)) * c->len;
                for (int64_t jj = 0; jj < KK; jj++) {
                    float *a = acc + ((ib * KK + jj) * CONV1D_COB) * CIB * VL;
                    V s[CONV1D_COB][CIB];
#pragma GCC unroll 4
                    for (int r = 0; r < CONV1D_COB; r++)
#pragma GCC unroll 4
                        for (int q = 0; q < CIB; q++) s[r][q] = VLOAD(a + (r * CIB + q) * VL);
                    const int64_t off = jj * D;
                    for (int64_t t = tc; t < te; t += VL) {
                        V xv[CIB];
#pragma GCC unroll 4
                        for (int q = 0; q < CIB; q++) xv[q] = VLOAD(xr[q] + off + t);
#pragma GCC unroll 4
                        for (int r = 0; r < CONV1D_COB; r++) {
                            const V g = VLOAD(dyr[r] + t);
#pragma GCC unroll 4
                            for (int q = 0; q < CIB; q++) s[r][q] = VFMA(g, xv[q], s[r][q]);
                        }
                    }
#pragma GCC unroll 4
                    for (int r = 0; r < CONV1D_COB; r++)
#pragma GCC unroll 4
                        for (int q = 0; q < CIB; q++) VSTORE(a + (r * CIB + q) * VL, s[r][q]);
                }
            }
        }
    }
    /* lanes added in order; dw[o, i, j0 + jj], j0 = K - kk (the taps before j0 never see a sample: 0) */
    const int64_t K = c->k, j0 = K - KK;
    for (int r = 0; r < nr; r++) {
        float *dwo = c->dw + (o0 + r) * NI * K;
        for (int64_t i = 0; i < NI; i++) {
            const int64_t ib = i / CIB, q = i % CIB;
            for (int64_t j = 0; j < K; j++) {
                float s = 0.0f;
                if (j >= j0) {
                    const float *a = acc + (((ib * KK + (j - j0)) * CONV1D_COB + r) * CIB + q) * VL;
                    for (int l = 0; l < VL; l++) s += a[l];
                }
                dwo[i * K + j] = c->accumulate ? dwo[i * K + j] + s : s;
            }
        }
        if (c->db) {
            float s = 0.0f;
            for (int l = 0; l < VL; l++) s += accb[r * VL + l];
            c->db[o0 + r] = c->accumulate ? c->db[o0 + r] + s : s;
        }
    }
}

void SFX(conv1d_wgrad)(const conv1d_wgrad *c) {
    lt_parallel_for((c->no + CONV1D_COB - 1) / CONV1D_COB, SFX(wgrad_task), (void *)c);
}

#undef TW
#undef TBLK
#undef TCH
