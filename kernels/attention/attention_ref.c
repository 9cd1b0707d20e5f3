/* Reference attention, plain loops in the style of llm.c's train_gpt2.c (the ISA-ref fallback and the oracle).
 *
 *   q, k, v, o, dout, dq, dk, dv: (B, NH, T, HS) contiguous     lse: (B, NH, T)
 *   forward, per (b, h) and query row i, over the visible keys j (j <= i when causal, all j otherwise):
 *     s_j = scale * q_i . k_j,  m = max_j s_j,  p_j = exp(s_j - m),  l = sum_j p_j
 *     o_i = sum_j p_j v_j / l,  lse_i = m + log(l)
 *   backward (recomputes the probabilities from lse instead of storing them):
 *     P_ij = exp(scale * q_i . k_j - lse_i),  D_i = dout_i . o_i  (= sum_j P_ij dP_ij)
 *     dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - D_i)
 *     dv_j = sum_i P_ij dout_i,  dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i
 *
 * Float arithmetic, sums in increasing index order. The forward keeps one row of scores (T floats per
 * worker); the backward walks query rows in order and accumulates dk, dv, dq in place, so it needs no scratch.
 * Tasks are (b, h) pairs: each owns its slice of every output, so the bits do not depend on the thread count.
 * Checked by attention_test.c against a double-precision reference (LATENT_MAX_ISA=ref runs this file). */
#include <math.h>
#include <string.h>

#include "attention.h"

typedef struct {
    const lt_attention_desc *d;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv;
    float *scratch; /* forward: (workers, T) rows of scores */
} ref_ctx;

static void fwd_task(void *p, int64_t bh, int worker) {
    const ref_ctx *x = p;
    const int64_t T = x->d->t, HS = x->d->hs;
    const float scale = x->d->scale;
    const float *q = x->q + bh * T * HS; // (T, HS)
    const float *k = x->k + bh * T * HS; // (T, HS)
    const float *v = x->v + bh * T * HS; // (T, HS)
    float *o = x->out + bh * T * HS;     // (T, HS)
    float *lse = x->lse_out + bh * T;    // (T,)
    float *s = x->scratch + (int64_t)worker * T; // (T,) scores of one query row
    for (int64_t i = 0; i < T; i++) {
        const int64_t nk = x->d->causal ? i + 1 : T; /* keys 0 .. nk-1 are visible */
        float m = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            float dot = 0.0f;
            for (int64_t c = 0; c < HS; c++) dot += q[i * HS + c] * k[j * HS + c];
            s[j] = dot * scale;
            if (s[j] > m) m = s[j];
        }
        float l = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            s[j] = expf(s[j] - m);
            l += s[j];
        }
        float *oi = o + i * HS;
        for (int64_t c = 0; c < HS; c++) oi[c] = 0.0f;
        for (int64_t j = 0; j < nk; j++)
            for (int64_t c = 0; c < HS; c++) oi[c] += s[j] * v[j * HS + c];
        const float inv = 1.0f / l;
        for (int64_t c = 0; c < HS; c++) oi[c] *= inv;
        lse[i] = m + logf(l);
    }
}

static void bwd_task(void *p, int64_t bh, int worker) {
    const ref_ctx *x = p;
    const int64_t T = x->d->t, HS = x->d->hs;
    const float scale = x->d->scale;
    const float *q = x->q + bh * T * HS;       // (T, HS)
    const float *k = x->k + bh * T * HS;       // (T, HS)
    const float *v = x->v + bh * T * HS;       // (T, HS)
    const float *o = x->o + bh * T * HS;       // (T, HS)
    const float *dout = x->dout + bh * T * HS; // (T, HS)
    const float *lse = x->lse + bh * T;        // (T,)
    float *dq = x->dq + bh * T * HS;           // (T, HS)
    float *dk = x->dk + bh * T * HS;           // (T, HS)
    float *dv = x->dv + bh * T * HS;           // (T, HS)
    memset(dq, 0, (size_t)(T * HS) * sizeof(float));
    memset(dk, 0, (size_t)(T * HS) * sizeof(float));
    memset(dv, 0, (size_t)(T * HS) * sizeof(float));
    for (int64_t i = 0; i < T; i++) {
        const int64_t nk = x->d->causal ? i + 1 : T;
        const float *qi = q + i * HS, *doi = dout + i * HS;
        float di = 0.0f; /* D_i = dout_i . o_i */
        for (int64_t c = 0; c < HS; c++) di += doi[c] * o[i * HS + c];
        for (int64_t j = 0; j < nk; j++) {
            float dot = 0.0f, dp = 0.0f;
            for (int64_t c = 0; c < HS; c++) {
                dot += qi[c] * k[j * HS + c];
                dp += doi[c] * v[j * HS + c];
            }
            const float pij = expf(dot * scale - lse[i]);
            const float ds = pij * (dp - di) * scale; /* scale folded in: it multiplies both dq and dk */
            for (int64_t c = 0; c < HS; c++) {
                dv[j * HS + c] += pij * doi[c];
                dk[j * HS + c] += ds * qi[c];
                dq[i * HS + c] += ds * k[j * HS + c];
            }
        }
    }
}

lt_status attention_fwd_ref(const lt_attention_desc *d, const float *q, const float *k, const float *v, float *o,
                            float *lse) {
    const int width = lt_pool_width();
    float *scratch = lt_alloc((size_t)width * (size_t)d->t * sizeof(float));
    if (!scratch)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_attention_fwd: %d x %lld floats of score rows", width,
                       (long long)d->t);
    ref_ctx x = {.d = d, .q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch};
    lt_parallel_for(d->b * d->nh, fwd_task, &x);
    lt_free(scratch);
    return LT_OK;
}

lt_status attention_bwd_ref(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                            const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    ref_ctx x = {.d = d, .q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv};
    lt_parallel_for(d->b * d->nh, bwd_task, &x);
    return LT_OK;
}
