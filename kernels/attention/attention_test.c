/* lt_attention_fwd / lt_attention_bwd test: every case goes through the exported symbols, so the same binary
 * checks attention_avx512.c, attention_avx2.c or attention_ref.c depending on LATENT_MAX_ISA (ctest runs it at
 * all three), against a
 * double-precision reference written here.
 *
 *   attention_test                          the checks below; prints "N passed, N failed" last
 *   attention_test --bench [reps]           W2 (B=8 NH=6 T=256 HS=64 causal), then T=1024, then HS=128, on 2
 *                                           and 1 threads: ms of fwd and of fwd+bwd, GFLOP/s, % of lt_peak_fma
 *   attention_test --bench reps b nh t hs causal    one shape of your choice, same report
 *   attention_test --bench-bf16 [reps [b nh t hs causal]]   fp32 and bf16 entry points alternately (W2 by default),
 *                                           2 then 1 threads, medians, % of lt_peak_fma / lt_peak_bf16
 *
 * FLOPs counted in the benchmark: the forward's two matmuls over the full square are 4*B*NH*T*T*HS; causal
 * counts the useful half of that (2*B*NH*T*T*HS), the backward 2.5x the forward (five matmuls for two), so
 * fwd+bwd = 3.5x the forward. Diagonal tiles computed and masked, softmax and exp are not counted.
 *
 * Tolerance, per element, written once in row_eps(): every output is a sum of terms that each carry a
 * relative error eps_i from row i of the scores, so the reference also sums the magnitudes |term| and the
 * test allows |got - want| <= eps_i-weighted sum of |term| (the tol_* arrays). Why eps_i =
 * u * (2 sqrt(HS) (smag_i + 1) + 2 sqrt(T) + 8), u = 2^-24: a float score s_ij = scale q_i . k_j errs by about
 * u sqrt(HS) sum_c |scale q_ic k_jc| (probabilistic bound for a dot product, Higham & Mary 2019; smag_i is
 * the largest such sum on the row), and exp turns that absolute error of s into the same relative error of
 * p_ij; sums over up to T keys or queries add u sqrt(T) relative to the sum of |terms|; the 8 covers the
 * handful of single roundings (exp ~2 ulp, the division by l, the log). The factors of 2 are the margin for
 * the probabilistic bound. This tracks the large-logit cases (scores of +-80 make smag ~ 100 and errors
 * ~1e-4 relative) without letting a real bug through: a lost key, a wrong mask, a missed rescale or a
 * wrong scale factor moves an output by a whole term, orders of magnitude above u sqrt(HS) smag. The
 * backward's magnitudes include |dP_ij| + |D_i| so the cancellation in dS = P (dP - D) is accounted for.
 * bf16 (lt_attention_fwd_bf16 / _bwd_bf16, run by the same binary after the fp32 checks when lt_cpu_bf16() and the
 * level is avx512; below that the test checks they are refused): every matmul operand is rounded to bf16 (RNE, 8
 * significant bits: unit roundoff u = 2^-8, relative error <= 2^-8 each) and products are summed in fp32. So a score
 * s_ij errs by at most (2u + u^2) smag_i = (2^-7 + 2^-16) smag_i more (two rounded factors per product); p_ij = exp(s_ij - lse_i) then errs relatively by that twice
 * (its own score and the lse's); P, V, dout, dS and K/Q rounded again as the second matmul's operands add 2^-7 + 2^-16 per
 * term. Hence eps_i(bf16) = eps_i(fp32) + (2^-7 + 2^-16) (2 smag_i + 3): the first-order worst case, not a probabilistic
 * bound (bf16 rounding errors are not small enough to average out over a handful of terms), with the +1 on the 2
 * for the dS = P (dP - D) chain; dP's magnitude is already sum_c |dout_c v_jc|, so cancellation is covered. A
 * kernel that forgot to round would pass (tighter); test_bf16_rounds() checks that the results do differ from the
 * fp32 kernel's, and that they sit well inside the tolerance is printed ("largest |err|/tol").
 * Zero-trust: outputs are NaN-prefilled, and guard zones before and after each output must come back
 * bit-identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0) /* unit roundoff of float, 2^-24 */
#define GUARD 64             /* floats of canary before and after every output array */

static int g_bf16; /* 1: the cases run lt_attention_*_bf16 and get the bf16 tolerance (see the header) */
#define UBF (1.0 / 128.0 + 1.0 / 65536.0) /* 2u + u^2, u = 2^-8: two bf16 roundings (RNE, 8 significant bits) per product */

static double row_eps(double smag, int64_t hs, int64_t t) {
    const double e = U * (2.0 * sqrt((double)hs) * (smag + 1.0) + 2.0 * sqrt((double)t) + 8.0);
    return g_bf16 ? e + UBF * (2.0 * smag + 3.0) : e;
}

static lt_status FWD(const lt_attention_desc *d, const float *q, const float *k, const float *v, float *o, float *lse) {
    return g_bf16 ? lt_attention_fwd_bf16(d, q, k, v, o, lse) : lt_attention_fwd(d, q, k, v, o, lse);
}
static lt_status BWD(const lt_attention_desc *d, const float *q, const float *k, const float *v, const float *o,
                     const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    return g_bf16 ? lt_attention_bwd_bf16(d, q, k, v, o, lse, dout, dq, dk, dv)
                  : lt_attention_bwd(d, q, k, v, o, lse, dout, dq, dk, dv);
}

/* ---- double-precision reference ---------------------------------------------------------------------- */

typedef struct {
    double *o, *lse, *dq, *dk, *dv;                /* values */
    double *tol_o, *tol_lse, *tol_dq, *tol_dk, *tol_dv; /* per-element tolerances, see the header */
} reference;

/* Forward and backward in double from double inputs, with the error magnitudes. dout may be NULL (forward
 * only; used by the finite-difference check). All arrays (B, NH, T, HS) or (B, NH, T). */
static void ref_run(const lt_attention_desc *d, const double *q, const double *k, const double *v,
                    const double *dout, reference *r) {
    const int64_t T = d->t, HS = d->hs, BH = d->b * d->nh;
    const double scale = d->scale;
    double *p = malloc(T * sizeof(double)), *sabs = malloc(T * sizeof(double));
    double *oabs = malloc(HS * sizeof(double));
    if (dout) {
        memset(r->dq, 0, BH * T * HS * sizeof(double));
        memset(r->dk, 0, BH * T * HS * sizeof(double));
        memset(r->dv, 0, BH * T * HS * sizeof(double));
        memset(r->tol_dq, 0, BH * T * HS * sizeof(double));
        memset(r->tol_dk, 0, BH * T * HS * sizeof(double));
        memset(r->tol_dv, 0, BH * T * HS * sizeof(double));
    }
    for (int64_t bh = 0; bh < BH; bh++) {
        const double *qb = q + bh * T * HS, *kb = k + bh * T * HS, *vb = v + bh * T * HS; // (T, HS)
        for (int64_t i = 0; i < T; i++) {
            const int64_t nk = d->causal ? i + 1 : T;
            double m = -INFINITY, smag = 0;
            for (int64_t j = 0; j < nk; j++) {
                double s = 0, sa = 0;
                for (int64_t c = 0; c < HS; c++) {
                    s += qb[i * HS + c] * kb[j * HS + c];
                    sa += fabs(qb[i * HS + c] * kb[j * HS + c]);
                }
                p[j] = s * scale;
                sabs[j] = sa * fabs(scale);
                if (p[j] > m) m = p[j];
                if (sabs[j] > smag) smag = sabs[j];
            }
            double l = 0;
            for (int64_t j = 0; j < nk; j++) l += (p[j] = exp(p[j] - m));
            for (int64_t j = 0; j < nk; j++) p[j] /= l;
            const double eps = row_eps(smag, HS, T);
            const int64_t row = bh * T + i;
            r->lse[row] = m + log(l);
            r->tol_lse[row] = eps * (1.0 + fabs(r->lse[row]));
            for (int64_t c = 0; c < HS; c++) {
                double s = 0, sa = 0;
                for (int64_t j = 0; j < nk; j++) {
                    s += p[j] * vb[j * HS + c];
                    sa += p[j] * fabs(vb[j * HS + c]);
                }
                r->o[row * HS + c] = s;
                r->tol_o[row * HS + c] = eps * sa;
                oabs[c] = sa;
            }
            if (!dout) continue;
            const double *doi = dout + row * HS, *oi = r->o + row * HS;
            double D = 0, Dabs = 0;
            for (int64_t c = 0; c < HS; c++) {
                D += doi[c] * oi[c];
                Dabs += fabs(doi[c]) * oabs[c];
            }
            for (int64_t j = 0; j < nk; j++) {
                double dp = 0, dpabs = 0;
                for (int64_t c = 0; c < HS; c++) {
                    dp += doi[c] * vb[j * HS + c];
                    dpabs += fabs(doi[c] * vb[j * HS + c]);
                }
                const double ds = p[j] * (dp - D), dsabs = p[j] * (dpabs + Dabs);
                double *dqi = r->dq + row * HS, *dkj = r->dk + (bh * T + j) * HS, *dvj = r->dv + (bh * T + j) * HS;
                double *tqi = r->tol_dq + row * HS, *tkj = r->tol_dk + (bh * T + j) * HS;
                double *tvj = r->tol_dv + (bh * T + j) * HS;
                for (int64_t c = 0; c < HS; c++) {
                    dvj[c] += p[j] * doi[c];
                    tvj[c] += eps * p[j] * fabs(doi[c]);
                    dqi[c] += scale * ds * kb[j * HS + c];
                    tqi[c] += eps * fabs(scale) * dsabs * fabs(kb[j * HS + c]);
                    dkj[c] += scale * ds * qb[i * HS + c];
                    tkj[c] += eps * fabs(scale) * dsabs * fabs(qb[i * HS + c]);
                }
            }
        }
    }
    free(p);
    free(sabs);
    free(oabs);
}

/* ---- comparison ---------------------------------------------------------------------------------------- */

static double worst_ratio_seen[5]; /* o, lse, dq, dk, dv: the largest |err| / tol over all cases, printed */

static int compare(const char *what, int which, const float *got, const double *want, const double *tol, int64_t n) {
    int64_t bad = 0, worst = -1;
    double worst_r = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - want[i]), lim = tol[i] + 1e-30;
        double r = diff / lim;
        if (!(diff <= lim)) {
            bad++;
            if (worst < 0 || !(r <= worst_r)) { worst = i; worst_r = r; }
        }
        if (r > worst_ratio_seen[which] || r != r) worst_ratio_seen[which] = r;
    }
    if (bad)
        fprintf(stderr, "  %s: %lld/%lld outside tolerance, worst [%lld] got %.9g want %.9g (tol %.3g, %.1fx)\n", what,
                (long long)bad, (long long)n, (long long)worst, got[worst], want[worst], tol[worst], worst_r);
    return bad == 0;
}

/* Output buffers with canaries: GUARD floats each side hold a pattern that must survive the call. */
static float *guarded(int64_t n) {
    float *p = malloc((n + 2 * GUARD) * sizeof(float));
    for (int64_t i = 0; i < n + 2 * GUARD; i++) p[i] = NAN;
    for (int i = 0; i < GUARD; i++) { p[i] = 1234.5f + i; p[n + GUARD + i] = -4321.5f - i; }
    return p + GUARD;
}
static int guards_ok(const float *p, int64_t n) {
    for (int i = 0; i < GUARD; i++)
        if (p[i - GUARD] != 1234.5f + i || p[n + i] != -4321.5f - i) return 0;
    return 1;
}
static void unguard(float *p) { free(p - GUARD); }

/* ---- the case runner -------------------------------------------------------------------------------------- */

enum { FILL_RANDOM, FILL_TIES_QK, FILL_ALL_EQUAL };

typedef struct {
    int64_t b, nh, t, hs;
    int causal;
    float scale;      /* 0 in the table means 1/sqrt(hs); use scale_set to force a literal 0 */
    int scale_set;
    double logit_max; /* > 0: rescale q and k so the largest |score| is about this */
    int fill;
} acase;

static void to_double(const float *x, double *y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = x[i]; }

static void run_case(const acase *a, uint64_t *rng) {
    lt_attention_desc d = {a->b, a->nh, a->t, a->hs, a->causal,
                           a->scale_set ? a->scale : 1.0f / sqrtf((float)a->hs)};
    const int64_t n = d.b * d.nh * d.t * d.hs, nr = d.b * d.nh * d.t;
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *dout = malloc(n * sizeof(float));
    lt_t_fill(q, n, rng);
    lt_t_fill(k, n, rng);
    lt_t_fill(v, n, rng);
    lt_t_fill(dout, n, rng);
    if (a->fill == FILL_TIES_QK || a->fill == FILL_ALL_EQUAL)
        for (int64_t i = 0; i < n; i++) q[i] = k[i] = 0.375f; /* every score of a row ties */
    if (a->fill == FILL_ALL_EQUAL)
        for (int64_t i = 0; i < n; i++) v[i] = dout[i] = -0.625f;
    if (a->logit_max > 0) { /* scale q and k by one factor so that max |score| ~ logit_max */
        double smax = 0;
        for (int64_t bh = 0; bh < d.b * d.nh; bh++)
            for (int64_t i = 0; i < d.t; i++)
                for (int64_t j = 0; j < d.t; j++) {
                    double s = 0;
                    for (int64_t c = 0; c < d.hs; c++)
                        s += (double)q[(bh * d.t + i) * d.hs + c] * k[(bh * d.t + j) * d.hs + c];
                    if (fabs(s * d.scale) > smax) smax = fabs(s * d.scale);
                }
        float f = (float)sqrt(a->logit_max / smax);
        for (int64_t i = 0; i < n; i++) { q[i] *= f; k[i] *= f; }
    }
    double *qd = malloc(n * sizeof(double)), *kd = malloc(n * sizeof(double)), *vd = malloc(n * sizeof(double));
    double *dod = malloc(n * sizeof(double));
    to_double(q, qd, n);
    to_double(k, kd, n);
    to_double(v, vd, n);
    to_double(dout, dod, n);
    reference r;
    double **arrs[] = {&r.o, &r.dq, &r.dk, &r.dv, &r.tol_o, &r.tol_dq, &r.tol_dk, &r.tol_dv};
    for (int i = 0; i < 8; i++) *arrs[i] = malloc(n * sizeof(double));
    r.lse = malloc(nr * sizeof(double));
    r.tol_lse = malloc(nr * sizeof(double));
    ref_run(&d, qd, kd, vd, dod, &r);

    char what[200];
    snprintf(what, sizeof what, "%sb=%lld nh=%lld t=%lld hs=%lld causal=%d scale=%g logits~%g fill=%d", g_bf16 ? "bf16 " : "", (long long)d.b,
             (long long)d.nh, (long long)d.t, (long long)d.hs, d.causal, d.scale, a->logit_max, a->fill);
    float *o = guarded(n), *lse = guarded(nr), *dq = guarded(n), *dk = guarded(n), *dv = guarded(n);
    lt_status st = FWD(&d, q, k, v, o, lse);
    CHECK(st == LT_OK, "%s: fwd status %d (%s)", what, st, lt_last_error());
    if (st == LT_OK) {
        char w2[240];
        snprintf(w2, sizeof w2, "%s o", what);
        CHECK(compare(w2, 0, o, r.o, r.tol_o, n), "%s: wrong o", what);
        snprintf(w2, sizeof w2, "%s lse", what);
        CHECK(compare(w2, 1, lse, r.lse, r.tol_lse, nr), "%s: wrong lse", what);
        CHECK(guards_ok(o, n) && guards_ok(lse, nr), "%s: fwd wrote outside o or lse", what);
        /* The backward gets the forward's own o and lse, as in training. */
        st = BWD(&d, q, k, v, o, lse, dout, dq, dk, dv);
        CHECK(st == LT_OK, "%s: bwd status %d (%s)", what, st, lt_last_error());
        if (st == LT_OK) {
            snprintf(w2, sizeof w2, "%s dq", what);
            CHECK(compare(w2, 2, dq, r.dq, r.tol_dq, n), "%s: wrong dq", what);
            snprintf(w2, sizeof w2, "%s dk", what);
            CHECK(compare(w2, 3, dk, r.dk, r.tol_dk, n), "%s: wrong dk", what);
            snprintf(w2, sizeof w2, "%s dv", what);
            CHECK(compare(w2, 4, dv, r.dv, r.tol_dv, n), "%s: wrong dv", what);
            CHECK(guards_ok(dq, n) && guards_ok(dk, n) && guards_ok(dv, n), "%s: bwd wrote outside dq, dk or dv",
                  what);
        }
    }
    unguard(o); unguard(lse); unguard(dq); unguard(dk); unguard(dv);
    for (int i = 0; i < 8; i++) free(*arrs[i]);
    free(r.lse); free(r.tol_lse);
    free(q); free(k); free(v); free(dout); free(qd); free(kd); free(vd); free(dod);
}

static void test_shapes(void) {
    uint64_t rng = 0x243F6A8885A308D3ull;
    static const int64_t ts[] = {1, 7, 64, 65, 257}, hss[] = {32, 48, 64, 128, 13};
    static const int64_t bnh[][2] = {{1, 1}, {2, 3}, {3, 1}, {1, 2}};
    int idx = 0;
    for (int it = 0; it < 5; it++)
        for (int ih = 0; ih < 5; ih++)
            for (int causal = 0; causal < 2; causal++, idx++) {
                acase a = {bnh[idx % 4][0], bnh[idx % 4][1], ts[it], hss[ih], causal, 0, 0, 0, FILL_RANDOM};
                if (ts[it] > 65) { a.b = 1; a.nh = 1 + causal; } /* keep the double reference quick */
                run_case(&a, &rng);
            }
    /* Large logits: scores up to +-80 (exp would overflow without the running max). */
    static const acase big[] = {
        {1, 2, 64, 64, 1, 0, 0, 80, FILL_RANDOM},  {2, 1, 65, 13, 0, 0, 0, 80, FILL_RANDOM},
        {1, 1, 257, 32, 1, 0, 0, 80, FILL_RANDOM}, {1, 1, 257, 128, 0, 0, 0, 80, FILL_RANDOM},
        {3, 1, 7, 128, 1, 0, 0, 80, FILL_RANDOM},  {1, 1, 100, 48, 1, 0, 0, 80, FILL_RANDOM},
        /* Ties: every score of a row equal (uniform attention), and every input equal. */
        {1, 2, 65, 64, 1, 0, 0, 0, FILL_TIES_QK},  {2, 1, 65, 64, 0, 0, 0, 0, FILL_TIES_QK},
        {1, 1, 257, 13, 1, 0, 0, 0, FILL_TIES_QK}, {1, 2, 64, 32, 1, 0, 0, 0, FILL_ALL_EQUAL},
        {1, 1, 65, 128, 0, 0, 0, 0, FILL_ALL_EQUAL},
        /* Any finite scale is valid: zero (uniform attention) and negative. */
        {1, 2, 33, 64, 1, 0.0f, 1, 0, FILL_RANDOM}, {2, 1, 40, 32, 0, -0.7f, 1, 0, FILL_RANDOM},
        /* Odd sizes around the tiles. */
        {1, 1, 23, 1, 1, 0, 0, 0, FILL_RANDOM},   {1, 1, 25, 2, 0, 0, 0, 0, FILL_RANDOM},
        {1, 2, 49, 8, 1, 0, 0, 0, FILL_RANDOM},   {1, 1, 97, 96, 1, 0, 0, 0, FILL_RANDOM},
        {1, 1, 130, 127, 0, 0, 0, 0, FILL_RANDOM}, {2, 2, 31, 33, 1, 0, 0, 0, FILL_RANDOM},
        /* Around the AVX-512 path's 16-lane vectors, 48-lane tiles and 32-column dQ blocks. */
        {1, 1, 15, 16, 1, 0, 0, 0, FILL_RANDOM},  {1, 2, 17, 31, 1, 0, 0, 0, FILL_RANDOM},
        {2, 1, 33, 17, 0, 0, 0, 0, FILL_RANDOM},  {1, 1, 47, 64, 1, 0, 0, 0, FILL_RANDOM},
        {1, 1, 48, 3, 1, 0, 0, 0, FILL_RANDOM},   {1, 2, 49, 37, 0, 0, 0, 0, FILL_RANDOM},
        {1, 1, 95, 96, 1, 0, 0, 0, FILL_RANDOM},  {1, 1, 145, 65, 1, 0, 0, 0, FILL_RANDOM},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_case(&big[i], &rng);
}

/* ---- finite differences ---------------------------------------------------------------------------------- */

/* loss = sum(o * w) in double for double inputs. */
static double fd_loss(const lt_attention_desc *d, const double *q, const double *k, const double *v,
                      const double *w, reference *r) {
    ref_run(d, q, k, v, NULL, r);
    const int64_t n = d->b * d->nh * d->t * d->hs;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += r->o[i] * w[i];
    return s;
}

/* The kernels' dq, dk, dv for dout = w must match central differences of sum(o * w) taken in double.
 * Tolerance 1e-5 + 1e-4 |g|: the kernel works in float (errors ~1e-6 here, inputs in (-1, 1)), the central
 * difference with h = 1e-4 in double errs by ~h^2 |f'''| ~ 1e-8; a wrong sign, factor or term is O(|g|). */
static void test_gradcheck(void) {
    uint64_t rng = 99;
    for (int causal = 0; causal < 2; causal++) {
        lt_attention_desc d = {1, 2, 5, 3, causal, 0.8f};
        const int64_t n = d.b * d.nh * d.t * d.hs, nr = d.b * d.nh * d.t;
        float q[30], k[30], v[30], w[30], o[30], lse[10], dq[30], dk[30], dv[30];
        lt_t_fill(q, n, &rng);
        lt_t_fill(k, n, &rng);
        lt_t_fill(v, n, &rng);
        lt_t_fill(w, n, &rng);
        for (int i = 0; i < n; i++) { q[i] *= 2; k[i] *= 2; } /* a less uniform softmax */
        lt_t_nan(dq, n); lt_t_nan(dk, n); lt_t_nan(dv, n);
        lt_status st = lt_attention_fwd(&d, q, k, v, o, lse);
        if (st == LT_OK) st = lt_attention_bwd(&d, q, k, v, o, lse, w, dq, dk, dv);
        CHECK(st == LT_OK, "gradcheck causal=%d: status %d (%s)", causal, st, lt_last_error());
        if (st) continue;
        double qd[30], kd[30], vd[30], wd[30], ro[30], rl[10];
        to_double(q, qd, n); to_double(k, kd, n); to_double(v, vd, n); to_double(w, wd, n);
        reference r = {.o = ro, .lse = rl, .tol_o = malloc(n * sizeof(double)), .tol_lse = malloc(nr * sizeof(double))};
        double *ins[3] = {qd, kd, vd};
        const float *grads[3] = {dq, dk, dv};
        const char *names[3] = {"dq", "dk", "dv"};
        for (int which = 0; which < 3; which++) {
            int bad = 0;
            double worst = 0, gw = 0, fw = 0;
            for (int64_t e = 0; e < n; e++) {
                const double h = 1e-4, x0 = ins[which][e];
                ins[which][e] = x0 + h;
                double lp = fd_loss(&d, qd, kd, vd, wd, &r);
                ins[which][e] = x0 - h;
                double lm = fd_loss(&d, qd, kd, vd, wd, &r);
                ins[which][e] = x0;
                double fd = (lp - lm) / (2 * h), g = grads[which][e], diff = fabs(g - fd);
                if (!(diff <= 1e-5 + 1e-4 * fabs(fd))) bad++;
                if (diff > worst || diff != diff) { worst = diff; gw = g; fw = fd; }
            }
            CHECK(!bad, "gradcheck causal=%d %s: %d of %lld elements off, worst got %.8g want %.8g", causal,
                  names[which], bad, (long long)n, gw, fw);
        }
        free(r.tol_o);
        free(r.tol_lse);
    }
}

/* ---- determinism, invalid arguments ------------------------------------------------------------------- */

/* Results must not depend on the pool size: 1 and 2 threads give the same bits. The single-(b, h) shapes
 * also take a different schedule of the backward on 2 threads (split by tiles, see attention_simd.h). */
static void test_determinism(void) {
    uint64_t rng = 42;
    static const int64_t shapes[][4] = {{2, 3, 203, 64}, {1, 1, 203, 64}, {1, 1, 150, 13}};
    for (int sh = 0; sh < 3; sh++)
    for (int causal = 0; causal < 2; causal++) {
        lt_attention_desc d = {shapes[sh][0], shapes[sh][1], shapes[sh][2], shapes[sh][3], causal, 0.125f};
        const int64_t n = d.b * d.nh * d.t * d.hs, nr = d.b * d.nh * d.t;
        float *in = malloc(4 * n * sizeof(float)), *out[2];
        lt_t_fill(in, 4 * n, &rng);
        const float *q = in, *k = in + n, *v = in + 2 * n, *dout = in + 3 * n;
        lt_status st[2];
        for (int r = 0; r < 2; r++) {
            lt_set_num_threads(r + 1);
            out[r] = malloc((4 * n + nr) * sizeof(float));
            float *o = out[r], *dq = o + n, *dk = o + 2 * n, *dv = o + 3 * n, *lse = o + 4 * n;
            st[r] = FWD(&d, q, k, v, o, lse);
            if (!st[r]) st[r] = BWD(&d, q, k, v, o, lse, dout, dq, dk, dv);
        }
        CHECK(!st[0] && !st[1], "determinism shape %d causal=%d: status %d %d (%s)", sh, causal, st[0], st[1],
              lt_last_error());
        CHECK(!memcmp(out[0] + 4 * n, out[1] + 4 * n, nr * sizeof(float)) && !memcmp(out[0], out[1], n * sizeof(float)),
              "determinism shape %d causal=%d: fwd o or lse differ between 1 and 2 threads", sh, causal);
        CHECK(!memcmp(out[0] + n, out[1] + n, 3 * n * sizeof(float)),
              "determinism shape %d causal=%d: bwd dq, dk or dv differ between 1 and 2 threads", sh, causal);
        free(in); free(out[0]); free(out[1]);
    }
    lt_set_num_threads(2);
}

static void test_invalid(void) {
    static float buf[8][64];
    float *q = buf[0], *k = buf[1], *v = buf[2], *o = buf[3], *lse = buf[4], *dout = buf[5], *dq = buf[6], *dk = buf[7];
    float dv[64];
    const lt_attention_desc ok = {1, 2, 4, 8, 1, 0.35f};
    CHECK(lt_attention_fwd(&ok, q, k, v, o, lse) == LT_OK, "valid fwd fails: %s", lt_last_error());
    CHECK(lt_attention_bwd(&ok, q, k, v, o, lse, dout, dq, dk, dv) == LT_OK, "valid bwd fails: %s", lt_last_error());
    struct { const char *field; lt_attention_desc d; } bad[] = {
        {"b=0", {0, 2, 4, 8, 1, 0.35f}},         {"nh=-1", {1, -1, 4, 8, 1, 0.35f}},
        {"t=0", {1, 2, 0, 8, 1, 0.35f}},         {"hs=0", {1, 2, 4, 0, 1, 0.35f}},
        {"causal=2", {1, 2, 4, 8, 2, 0.35f}},    {"scale=nan", {1, 2, 4, 8, 1, NAN}},
        {"scale=inf", {1, 2, 4, 8, 0, INFINITY}}, {"overflows", {1ll << 20, 1ll << 20, 1ll << 20, 8, 1, 0.35f}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_status s1 = lt_attention_fwd(&bad[i].d, q, k, v, o, lse);
        const char *m1 = lt_last_error();
        CHECK(s1 == LT_ERR_INVALID_ARGUMENT && strstr(m1, bad[i].field), "fwd invalid %s: status %d, \"%s\"",
              bad[i].field, s1, m1);
        lt_status s2 = lt_attention_bwd(&bad[i].d, q, k, v, o, lse, dout, dq, dk, dv);
        const char *m2 = lt_last_error();
        CHECK(s2 == LT_ERR_INVALID_ARGUMENT && strstr(m2, bad[i].field), "bwd invalid %s: status %d, \"%s\"",
              bad[i].field, s2, m2);
    }
    lt_status s = lt_attention_fwd(NULL, q, k, v, o, lse);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "fwd NULL descriptor: %d", s);
    s = lt_attention_bwd(NULL, q, k, v, o, lse, dout, dq, dk, dv);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "bwd NULL descriptor: %d", s);
    const float *fin[5] = {q, k, v, o, lse};
    static const char *fnames[5] = {"q is NULL", "k is NULL", "v is NULL", "o is NULL", "lse is NULL"};
    for (int p = 0; p < 5; p++) {
        const float *a[5];
        memcpy(a, fin, sizeof a);
        a[p] = NULL;
        s = lt_attention_fwd(&ok, a[0], a[1], a[2], (float *)a[3], (float *)a[4]);
        CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), fnames[p]), "fwd %s: %d \"%s\"", fnames[p], s,
              lt_last_error());
    }
    const float *bin[9] = {q, k, v, o, lse, dout, dq, dk, dv};
    static const char *bnames[9] = {"q is NULL",    "k is NULL",  "v is NULL",  "o is NULL", "lse is NULL",
                                    "dout is NULL", "dq is NULL", "dk is NULL", "dv is NULL"};
    for (int p = 0; p < 9; p++) {
        const float *a[9];
        memcpy(a, bin, sizeof a);
        a[p] = NULL;
        s = lt_attention_bwd(&ok, a[0], a[1], a[2], a[3], a[4], a[5], (float *)a[6], (float *)a[7], (float *)a[8]);
        CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), bnames[p]), "bwd %s: %d \"%s\"", bnames[p], s,
              lt_last_error());
    }
}

/* ---- bf16 ----------------------------------------------------------------------------------------------- */

/* The bf16 entry points round: on random inputs their o, dq, dk, dv differ from the fp32 kernel's (a kernel that
 * silently ran fp32 would pass the tolerance, which is looser), yet stay within a few bf16 ulps of them. */
static void test_bf16_rounds(void) {
    uint64_t rng = 7;
    lt_attention_desc d = {2, 2, 77, 40, 1, 1.0f / sqrtf(40.0f)};
    const int64_t n = d.b * d.nh * d.t * d.hs, nr = d.b * d.nh * d.t;
    float *in = malloc(4 * n * sizeof(float)), *out[2];
    lt_t_fill(in, 4 * n, &rng);
    const float *q = in, *k = in + n, *v = in + 2 * n, *dout = in + 3 * n;
    for (int r = 0; r < 2; r++) {
        g_bf16 = r;
        out[r] = malloc((4 * n + nr) * sizeof(float));
        float *o = out[r], *dq = o + n, *dk = o + 2 * n, *dv = o + 3 * n, *lse = o + 4 * n;
        lt_status st = FWD(&d, q, k, v, o, lse);
        if (!st) st = BWD(&d, q, k, v, o, lse, dout, dq, dk, dv);
        CHECK(st == LT_OK, "bf16 rounds: status %d (%s)", st, lt_last_error());
    }
    for (int a = 0; a < 4; a++) {
        int64_t differ = 0;
        double worst = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            differ += out[0][a * n + i] != out[1][a * n + i];
            worst = fmax(worst, fabs(out[0][a * n + i] - out[1][a * n + i]));
            mag = fmax(mag, fabs(out[0][a * n + i]));
        }
        static const char *names[4] = {"o", "dq", "dk", "dv"};
        CHECK(differ > n / 2, "bf16 %s: only %lld of %lld elements differ from fp32: operands not rounded?", names[a],
              (long long)differ, (long long)n);
        CHECK(worst < 0.05 * mag, "bf16 %s: max |bf16 - fp32| %g against max |fp32| %g", names[a], worst, mag);
    }
    g_bf16 = 1;
    free(in); free(out[0]); free(out[1]);
}

/* Where the CPU or the level in use lacks AVX512_BF16 / avx512 the bf16 entry points refuse, naming why. */
static void test_bf16_refused(void) {
    static float buf[9][64];
    const lt_attention_desc ok = {1, 2, 4, 8, 1, 0.35f};
    lt_status s = lt_attention_fwd_bf16(&ok, buf[0], buf[1], buf[2], buf[3], buf[4]);
    CHECK(s == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"), "fwd_bf16 without bf16: %d \"%s\"", s,
          lt_last_error());
    s = lt_attention_bwd_bf16(&ok, buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8]);
    CHECK(s == LT_ERR_UNSUPPORTED && strstr(lt_last_error(), "AVX512_BF16"), "bwd_bf16 without bf16: %d \"%s\"", s,
          lt_last_error());
    lt_attention_desc bad = ok;
    bad.t = 0; /* the descriptor checks come first, as in the fp32 entry points */
    s = lt_attention_fwd_bf16(&bad, buf[0], buf[1], buf[2], buf[3], buf[4]);
    CHECK(s == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "t=0"), "fwd_bf16 t=0: %d \"%s\"", s, lt_last_error());
}

/* ---- --bench --------------------------------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* fp32 (lt_attention_*) and bf16 (lt_attention_*_bf16) alternately on the same inputs, medians of reps each. */
static void bench_bf16(int64_t b, int64_t nh, int64_t t, int64_t hs, int causal, int threads, int reps) {
    lt_set_num_threads(threads);
    double peak = 0, pbf = 0;
    for (int r = 0; r < 3; r++) {
        double g;
        if (lt_peak_fma(threads, 30000000, &g) == LT_OK && g > peak) peak = g;
        if (lt_peak_bf16(threads, 30000000, &g) == LT_OK && g > pbf) pbf = g;
    }
    lt_attention_desc d = {b, nh, t, hs, causal, 1.0f / sqrtf((float)hs)};
    const int64_t n = b * nh * t * hs, nr = b * nh * t;
    uint64_t rng = 1;
    float *buf = malloc((8 * n + nr) * sizeof(float));
    float *q = buf, *k = q + n, *v = k + n, *dout = v + n, *o = dout + n, *dq = o + n, *dk = dq + n, *dv = dk + n;
    float *lse = dv + n;
    lt_t_fill(q, 4 * n, &rng);
    double *tm[4];
    for (int i = 0; i < 4; i++) tm[i] = malloc(reps * sizeof(double));
    for (int r = -1; r < reps; r++) /* r = -1: warm-up */
        for (int bf = 0; bf < 2; bf++) {
            g_bf16 = bf;
            double t0 = lt_t_now();
            lt_status s1 = FWD(&d, q, k, v, o, lse);
            double t1 = lt_t_now();
            lt_status s2 = BWD(&d, q, k, v, o, lse, dout, dq, dk, dv);
            double t2 = lt_t_now();
            if (s1 || s2) { printf("bench-bf16: %s\n", lt_last_error()); g_bf16 = 0; return; }
            if (r >= 0) { tm[2 * bf][r] = t1 - t0; tm[2 * bf + 1][r] = t2 - t0; }
        }
    g_bf16 = 0;
    for (int i = 0; i < 4; i++) qsort(tm[i], reps, sizeof(double), cmp_double);
    const double ff = (causal ? 2.0 : 4.0) * b * nh * t * t * hs;
    printf("attention B=%lld NH=%lld T=%lld HS=%lld causal=%d %d thr medians | fp32 fwd %7.3f ms (%5.1f%% of FMA %.1f) "
           "fwd+bwd %7.3f ms | bf16 fwd %7.3f ms (%5.1f%% of bf16 dot %.1f) fwd+bwd %7.3f ms | bf16/fp32 speed-up %.2fx / %.2fx\n",
           (long long)b, (long long)nh, (long long)t, (long long)hs, causal, threads, tm[0][reps / 2] * 1e3,
           100 * ff / tm[0][reps / 2] / 1e9 / peak, peak, tm[1][reps / 2] * 1e3, tm[2][reps / 2] * 1e3,
           100 * ff / tm[2][reps / 2] / 1e9 / pbf, pbf, tm[3][reps / 2] * 1e3, tm[0][reps / 2] / tm[2][reps / 2],
           tm[1][reps / 2] / tm[3][reps / 2]);
    fflush(stdout);
    for (int i = 0; i < 4; i++) free(tm[i]);
    free(buf);
}

static void bench_one(int64_t b, int64_t nh, int64_t t, int64_t hs, int causal, int threads, int reps) {
    lt_set_num_threads(threads);
    double peak = 0;
    for (int r = 0; r < 3; r++) { /* best of 3 short runs, right before the kernel */
        double g;
        if (lt_peak_fma(threads, 30000000, &g) == LT_OK && g > peak) peak = g;
    }
    lt_attention_desc d = {b, nh, t, hs, causal, 1.0f / sqrtf((float)hs)};
    const int64_t n = b * nh * t * hs, nr = b * nh * t;
    uint64_t rng = 1;
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *o = malloc(n * sizeof(float)), *lse = malloc(nr * sizeof(float)), *dout = malloc(n * sizeof(float));
    float *dq = malloc(n * sizeof(float)), *dk = malloc(n * sizeof(float)), *dv = malloc(n * sizeof(float));
    lt_t_fill(q, n, &rng);
    lt_t_fill(k, n, &rng);
    lt_t_fill(v, n, &rng);
    lt_t_fill(dout, n, &rng);
    lt_attention_fwd(&d, q, k, v, o, lse); /* warm-up: pool, page faults */
    lt_attention_bwd(&d, q, k, v, o, lse, dout, dq, dk, dv);
    double *tf = malloc(reps * sizeof(double)), *tfb = malloc(reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = lt_t_now();
        lt_attention_fwd(&d, q, k, v, o, lse);
        double t1 = lt_t_now();
        lt_attention_bwd(&d, q, k, v, o, lse, dout, dq, dk, dv);
        double t2 = lt_t_now();
        tf[r] = t1 - t0;
        tfb[r] = t2 - t0;
    }
    qsort(tf, reps, sizeof(double), cmp_double);
    qsort(tfb, reps, sizeof(double), cmp_double);
    const double fwd_flop = (causal ? 2.0 : 4.0) * b * nh * t * t * hs, fb_flop = 3.5 * fwd_flop;
    printf("attention B=%lld NH=%lld T=%lld HS=%lld causal=%d %d thr | fwd best %7.3f ms %6.1f GFLOP/s %5.1f%% "
           "median %7.3f ms | fwd+bwd best %7.3f ms %6.1f GFLOP/s %5.1f%% median %7.3f ms | peak %6.1f GFLOP/s\n",
           (long long)b, (long long)nh, (long long)t, (long long)hs, causal, threads, tf[0] * 1e3,
           fwd_flop / tf[0] / 1e9, 100 * fwd_flop / tf[0] / 1e9 / peak, tf[reps / 2] * 1e3, tfb[0] * 1e3,
           fb_flop / tfb[0] / 1e9, 100 * fb_flop / tfb[0] / 1e9 / peak, tfb[reps / 2] * 1e3, peak);
    fflush(stdout);
    free(tf); free(tfb); free(q); free(k); free(v); free(o); free(lse); free(dout); free(dq); free(dk); free(dv);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench-bf16")) {
        if (!lt_cpu_bf16() || lt_isa() < LT_ISA_AVX512) { printf("bench-bf16: needs AVX512_BF16 at ISA avx512\n"); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        if (reps < 1) reps = 1;
        printf("FLOPs: causal counts the useful half of the full square 4*B*NH*T*T*HS; fwd+bwd = 3.5x fwd\n");
        for (int th = 2; th >= 1; th--) {
            if (argc >= 8) bench_bf16(atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]), atoi(argv[7]), th, reps);
            else bench_bf16(8, 6, 256, 64, 1, th, reps);
        }
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_fma needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 20;
        if (reps < 1) reps = 1;
        printf("FLOPs: causal counts the useful half of the full square 4*B*NH*T*T*HS; fwd+bwd = 3.5x fwd\n");
        if (argc >= 8) {
            for (int th = 2; th >= 1; th--)
                bench_one(atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]), atoi(argv[7]), th, reps);
            return 0;
        }
        for (int th = 2; th >= 1; th--) {
            bench_one(8, 6, 256, 64, 1, th, reps);  /* W2 */
            bench_one(8, 6, 1024, 64, 1, th, reps > 4 ? reps / 4 : 1);
            bench_one(8, 6, 256, 128, 1, th, reps);
        }
        return 0;
    }
    printf("lt_attention at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_gradcheck();
    test_shapes();
    test_determinism();
    printf("largest |err|/tol seen (fp32): o %.3g, lse %.3g, dq %.3g, dk %.3g, dv %.3g\n", worst_ratio_seen[0],
           worst_ratio_seen[1], worst_ratio_seen[2], worst_ratio_seen[3], worst_ratio_seen[4]);
    if (lt_cpu_bf16() && lt_isa() >= LT_ISA_AVX512) {
        memset(worst_ratio_seen, 0, sizeof worst_ratio_seen);
        g_bf16 = 1;
        test_bf16_rounds(); /* (no finite-difference check: the double reference checks the gradients) */
        test_shapes();
        test_determinism();
        g_bf16 = 0;
        printf("bf16: ");
    } else {
        printf("bf16: skipped: %s; checked that lt_attention_*_bf16 refuse\n",
               lt_cpu_bf16() ? "level in use below avx512" : "no AVX512_BF16");
        test_bf16_refused();
    }
    printf("largest |err|/tol seen: o %.3g, lse %.3g, dq %.3g, dk %.3g, dv %.3g\n", worst_ratio_seen[0],
           worst_ratio_seen[1], worst_ratio_seen[2], worst_ratio_seen[3], worst_ratio_seen[4]);
    return lt_test_summary();
}
