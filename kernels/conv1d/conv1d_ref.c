/* Reference dilated causal 1-D convolution, plain loops (the ISA-ref fallback and the readable oracle).
 *
 *   x, dx: (N, Cin, T)   w, dw: (Cout, Cin, K)   y, dy: (N, Cout, T)   bias, db: (Cout)   dilation d
 *   shift of tap j: s_j = (K-1-j) d (the last tap sees the present sample, tap 0 the oldest)
 *   fwd:        y[n,o,t]   = bias[o] + sum_{i,j} w[o,i,j] x[n,i,t-s_j]          (x = 0 at negative times)
 *   bwd_data:   dx[n,i,t]  = sum_{o,j} w[o,i,j] dy[n,o,t+s_j]                   (dy = 0 at times >= T)
 *   bwd_weight: dw[o,i,j] (+)= sum_{n,t} dy[n,o,t] x[n,i,t-s_j],   db[o] (+)= sum_{n,t} dy[n,o,t]
 * Float arithmetic. fwd and bwd_data add the terms of each output in (i, j) / (o, j) order, bias last; bwd_weight
 * sums each weight's (n, t) pairs in 8 interleaved partial sums (dot8) added in order, then the old dw once.
 * Tasks own whole output rows ((n, o), (n, i), o), so the bits never depend on the thread count.
 * Checked by conv1d_test.c against a double-precision reference (LATENT_MAX_ISA=ref runs this file). */
#include "conv1d.h"

typedef struct {
    int64_t n, ci, t, co, k, d;
    const float *a, *b, *bias; /* fwd: x, w; bwd_data: dy, w; bwd_weight: x, dy */
    float *out, *db;
    int accumulate;
} ref_ctx;

/* Each output row is accumulated tap by tap, (i, j) in order, over the whole row at once: every y[t] still adds its
 * terms in (i, j) order (the same bits as the per-element loop), and the inner loop over t is one the compiler can
 * vectorize without reassociating anything. */
static void fwd_task(void *p, int64_t task, int worker) {
    const ref_ctx *c = p;
    const int64_t n = task / c->co, o = task % c->co, T = c->t, K = c->k;
    const float *xn = c->a + n * c->ci * T;  // (Cin, T)
    const float *wo = c->b + o * c->ci * K;  // (Cin, K)
    float *y = c->out + task * T;            // (T)
    for (int64_t t = 0; t < T; t++) y[t] = 0.0f;
    for (int64_t i = 0; i < c->ci; i++)
        for (int64_t j = 0; j < K; j++) {
            const int64_t s = (K - 1 - j) * c->d; /* y[t] reads x[t - s]: t >= s only */
            if (s >= T) continue;
            const float wv = wo[i * K + j], *xr = xn + i * T - s;
            for (int64_t t = s; t < T; t++) y[t] += wv * xr[t];
        }
    if (c->bias)
        for (int64_t t = 0; t < T; t++) y[t] += c->bias[o];
}

static void bwd_data_task(void *p, int64_t task, int worker) {
    const ref_ctx *c = p;
    const int64_t n = task / c->ci, i = task % c->ci, T = c->t, K = c->k;
    const float *dyn = c->a + n * c->co * T; // (Cout, T)
    float *dx = c->out + task * T;           // (T)
    for (int64_t t = 0; t < T; t++) dx[t] = 0.0f;
    for (int64_t o = 0; o < c->co; o++)
        for (int64_t j = 0; j < K; j++) {
            const int64_t s = (K - 1 - j) * c->d; /* dx[t] reads dy[t + s]: t < T - s only */
            if (s >= T) continue;
            const float wv = c->b[(o * c->ci + i) * K + j], *dr = dyn + o * T + s;
            for (int64_t t = 0; t < T - s; t++) dx[t] += wv * dr[t];
        }
}

/* A dot product of length m in 8 interleaved partial sums (element e goes to sum e % 8), added in order at the end:
 * a fixed order, and 8 independent chains instead of one long dependent one. */
static void dot8(const float *a, const float *b, int64_t m, float part[8]) {
    int64_t e = 0;
    for (; e + 8 <= m; e += 8)
        for (int l = 0; l < 8; l++) part[l] += a[e + l] * b[e + l];
    for (int l = 0; e < m; e++, l++) part[l] += a[e] * b[e];
}

static void bwd_weight_task(void *p, int64_t o, int worker) {
    const ref_ctx *c = p;
    const int64_t T = c->t, K = c->k, CI = c->ci, CO = c->co;
    float *dw = c->out + o * CI * K;         // (Cin, K)
    for (int64_t i = 0; i < CI; i++)
        for (int64_t j = 0; j < K; j++) {
            const int64_t s = (K - 1 - j) * c->d;
            float part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = 0.0f;
            if (s < T)
                for (int64_t n = 0; n < c->n; n++) /* the pairs (dy[t], x[t - s]) for t in [s, T), batch item by item */
                    dot8(c->b + (n * CO + o) * T + s, c->a + (n * CI + i) * T, T - s, part);
            for (int l = 0; l < 8; l++) sum += part[l];
            float *q = &dw[i * K + j];
            *q = c->accumulate ? *q + sum : sum;
        }
    if (c->db) {
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = 0.0f;
        for (int64_t n = 0; n < c->n; n++) {
            const float *r = c->b + (n * CO + o) * T;
            int64_t e = 0;
            for (; e + 8 <= T; e += 8)
                for (int l = 0; l < 8; l++) part[l] += r[e + l];
            for (int l = 0; e < T; e++, l++) part[l] += r[e];
        }
        for (int l = 0; l < 8; l++) sum += part[l];
        c->db[o] = c->accumulate ? c->db[o] + sum : sum;
    }
}

/* conv1d.c guarantees (K-1) d does not overflow int64 (it checks K-1 <= INT64_MAX / d), so the shifts above are exact. */
void conv1d_fwd_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d, const float *x,
                    const float *w, const float *bias, float *y) {
    ref_ctx c = {n, ci, t, co, k, d, x, w, bias, y, NULL, 0};
    lt_parallel_for(n * co, fwd_task, &c);
}

void conv1d_bwd_data_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d, const float *dy,
                         const float *w, float *dx) {
    ref_ctx c = {n, ci, t, co, k, d, dy, w, NULL, dx, NULL, 0};
    lt_parallel_for(n * ci, bwd_data_task, &c);
}

void conv1d_bwd_weight_ref(int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d, const float *x,
                           const float *dy, float *dw, float *db, int accumulate) {
    ref_ctx c = {n, ci, t, co, k, d, x, dy, NULL, dw, db, accumulate};
    lt_parallel_for(co, bwd_weight_task, &c);
}
