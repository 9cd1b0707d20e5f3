/* Reference dilated causal 1-D convolution, plain loops (the ISA-ref fallback and the readable oracle).
 *
 *   x, dx: (N, Cin, T)   w, dw: (Cout, Cin, K)   y, dy: (N, Cout, T)   bias, db: (Cout)   dilation d
 *   shift of tap j: s_j = (K-1-j) d (the last tap sees the present sample, tap 0 the oldest)
 *   fwd:        y[n,o,t]   = bias[o] + sum_{i,j} w[o,i,j] x[n,i,t-s_j]          (x = 0 at negative times)
 *   bwd_data:   dx[n,i,t]  = sum_{o,j} w[o,i,j] dy[n,o,t+s_j]                   (dy = 0 at times >= T)
 *   bwd_weight: dw[o,i,j] (+)= sum_{n,t} dy[n,o,t] x[n,i,t-s_j],   db[o] (+)= sum_{n,t} dy[n,o,t]
 * Float arithmetic, sums in the order of the loops as written; bias (or the old dw) is added once at the end.
 * Tasks own whole output rows ((n, o), (n, i), o), so the bits never depend on the thread count.
 * Checked by conv1d_test.c against a double-precision reference (LATENT_MAX_ISA=ref runs this file). */
#include "conv1d.h"

typedef struct {
    int64_t n, ci, t, co, k, d;
    const float *a, *b, *bias; /* fwd: x, w; bwd_data: dy, w; bwd_weight: x, dy */
    float *out, *db;
    int accumulate;
} ref_ctx;

static void fwd_task(void *p, int64_t task, int worker) {
    const ref_ctx *c = p;
    const int64_t n = task / c->co, o = task % c->co, T = c->t, K = c->k;
    const float *xn = c->a + n * c->ci * T;  // (Cin, T)
    const float *wo = c->b + o * c->ci * K;  // (Cin, K)
    float *y = c->out + task * T;            // (T)
    for (int64_t t = 0; t < T; t++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < c->ci; i++)
            for (int64_t j = 0; j < K; j++) {
                int64_t s = (K - 1 - j) * c->d; /* < T checked before the multiply can matter: see below */
                if (s > t) continue;
                sum += wo[i * K + j] * xn[i * T + t - s];
            }
        y[t] = c->bias ? sum + c->bias[o] : sum;
    }
}

static void bwd_data_task(void *p, int64_t task, int worker) {
    const ref_ctx *c = p;
    const int64_t n = task / c->ci, i = task % c->ci, T = c->t, K = c->k;
    const float *dyn = c->a + n * c->co * T; // (Cout, T)
    float *dx = c->out + task * T;           // (T)
    for (int64_t t = 0; t < T; t++) {
        float sum = 0.0f;
        for (int64_t o = 0; o < c->co; o++)
            for (int64_t j = 0; j < K; j++) {
                int64_t s = (K - 1 - j) * c->d;
                if (s >= T - t) continue;
                sum += c->b[(o * c->ci + i) * K + j] * dyn[o * T + t + s];
            }
        dx[t] = sum;
    }
}

static void bwd_weight_task(void *p, int64_t o, int worker) {
    const ref_ctx *c = p;
    const int64_t T = c->t, K = c->k, CI = c->ci, CO = c->co;
    float *dw = c->out + o * CI * K;         // (Cin, K)
    for (int64_t i = 0; i < CI; i++)
        for (int64_t j = 0; j < K; j++) {
            int64_t s = (K - 1 - j) * c->d;
            float sum = 0.0f;
            for (int64_t n = 0; n < c->n; n++) {
                const float *xr = c->a + (n * CI + i) * T, *dyr = c->b + (n * CO + o) * T;
                for (int64_t t = s; t < T; t++) sum += dyr[t] * xr[t - s];
            }
            float *q = &dw[i * K + j];
            *q = c->accumulate ? *q + sum : sum;
        }
    if (c->db) {
        float sum = 0.0f;
        for (int64_t n = 0; n < c->n; n++)
            for (int64_t t = 0; t < T; t++) sum += c->b[(n * CO + o) * T + t];
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
