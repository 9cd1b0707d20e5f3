/* lt_softmax_xent test: every case goes through the exported symbol, so one binary checks the avx2 or the ref
 * implementation depending on LATENT_MAX_ISA (ctest runs both), against a double-precision reference here.
 *
 *   softmax_xent_test              the checks; prints "N passed, N failed" last
 *   softmax_xent_test --bench [reps]   N=2048 with V=65 and V=50257, loss only and loss + in-place gradient,
 *                                  1 and 2 threads: ms, GB/s (logits read + dlogits written + targets/losses)
 *                                  and % of the STREAM triad measured in the same run
 *   softmax_xent_test --bench reps n v   one shape of your choice, same report
 *
 * Tolerances (written once, in loss_tol and grad_tol), u = 2^-24:
 *   loss:   |got - want| <= u (48 + |want|). The float exp errs by ~1 ulp per term, the blocked float sums of
 *           positive terms by at most ~(512/16 + 3) u relative (the ref sums in double), the rounding of
 *           x - M by u |x - M| on terms that exp then makes small; log S moves the loss by the relative error
 *           of S; the final rounding adds u |loss|. 48 covers that sum; a lost or doubled term moves the loss
 *           by p_j, far above it unless p_j < 48u, which is why the shapes also check gradients.
 *   grad_j: |got - want| <= u |dscale| ((48 + |x_j - M|) p_j + 2 [j == t]) + 1e-37 |dscale|: the same relative
 *           error on p_j, plus the subtraction of dscale at the target (p_t - 1 is computed, not re-derived);
 *           the absolute floor is the flush of p_j < FLT_MIN to zero.
 * Gradient checks: central differences of the double loss in double (h = 1e-6) against the kernel's float
 * gradient with dscale = 1, |diff| <= 2e-6 + 1e-5 |num| (float gradient ~1e-7, difference quotient ~1e-9). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static double loss_tol(double want) { return U * (48.0 + fabs(want)); }
static double grad_tol(double p, double y, int is_t, double dscale) {
    return U * fabs(dscale) * ((p > 0 ? (48.0 + fabs(y)) * p : 0.0) + 2.0 * is_t) + 1e-37 * fabs(dscale); /* p = 0 at y = -inf */
}

/* Double reference for one row: loss, and p_j (softmax) into p when given. Returns M. */
static double ref_row(const float *x, int64_t v, int32_t t, double *loss, double *p) {
    double m = -INFINITY;
    for (int64_t j = 0; j < v; j++) if (x[j] > m) m = x[j];
    double s = 0;
    for (int64_t j = 0; j < v; j++) s += exp((double)x[j] - m);
    *loss = m + log(s) - x[t];
    if (p) for (int64_t j = 0; j < v; j++) p[j] = exp((double)x[j] - m) / s;
    return m;
}


typedef struct { int64_t n, v; float scale, shift; int ignore_every, with_grad, in_place, ninf_every; float dscale; } scase;

static void run_case(const scase *c, uint64_t *rng) {
    int64_t n = c->n, v = c->v;
    float *x = malloc((n * v + 1) * sizeof(float)), *x0 = malloc((n * v + 1) * sizeof(float));
    float *dl = malloc((n * v + 1) * sizeof(float)), *loss = malloc(n * sizeof(float));
    int32_t *t = malloc(n * sizeof(int32_t));
    double *p = malloc((v + 1) * sizeof(double));
    for (int64_t i = 0; i < n * v; i++) x[i] = lt_t_uniform(rng) * c->scale + c->shift;
    if (c->ninf_every)
        for (int64_t i = 0; i < n * v; i += c->ninf_every) x[i] = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        t[i] = (int32_t)(lt_t_next(rng) % (uint64_t)v);
        if (c->ignore_every && i % c->ignore_every == 1) t[i] = i % 2 ? -1 : -100;
        if (c->ninf_every && t[i] >= 0 && x[i * v + t[i]] == -INFINITY) t[i] = (t[i] + 1) % (int32_t)v;
    }
    if (n > 0 && v > 1) t[n - 1] = (int32_t)(v - 1); /* the last column as a target */
    memcpy(x0, x, n * v * sizeof(float));
    lt_t_nan(loss, n);
    lt_t_nan(dl, n * v);
    float *g = c->with_grad ? (c->in_place ? x : dl) : NULL;
    lt_status st = lt_softmax_xent(n, v, x, t, loss, g, c->dscale);
    char what[160];
    snprintf(what, sizeof what, "n=%lld v=%lld scale=%g shift=%g ignore=%d grad=%d inplace=%d ninf=%d dscale=%g",
             (long long)n, (long long)v, c->scale, c->shift, c->ignore_every, c->with_grad, c->in_place,
             c->ninf_every, c->dscale);
    CHECK(st == LT_OK, "%s: status %d (%s)", what, st, lt_last_error());
    int64_t bad_loss = 0, bad_grad = 0, first = -1;
    for (int64_t i = 0; i < n && st == LT_OK; i++) {
        const float *xr = x0 + i * v;
        if (t[i] < 0) {
            if (loss[i] != 0.0f) { bad_loss++; if (first < 0) first = i; }
            if (g) for (int64_t j = 0; j < v; j++) if (g[i * v + j] != 0.0f) { bad_grad++; if (first < 0) first = i; }
            continue;
        }
        double want, m = ref_row(xr, v, t[i], &want, g ? p : NULL);
        if (!lt_t_agree(loss[i], want, loss_tol(want))) {
            if (bad_loss++ < 3) fprintf(stderr, "  %s: loss[%lld] got %.9g want %.9g\n", what, (long long)i, loss[i], want);
        }
        if (!g) continue;
        for (int64_t j = 0; j < v; j++) {
            double w = (p[j] - (j == t[i])) * c->dscale;
            if (!lt_t_agree(g[i * v + j], w, grad_tol(p[j], (double)xr[j] - m, j == t[i], c->dscale))) {
                if (bad_grad++ < 3)
                    fprintf(stderr, "  %s: dlogits[%lld][%lld] got %.9g want %.9g (x %g, M %g)\n", what, (long long)i,
                            (long long)j, g[i * v + j], w, xr[j], m);
            }
        }
    }
    CHECK(bad_loss == 0 && bad_grad == 0, "%s: %lld losses, %lld gradients wrong (first ignored-row miss %lld)", what,
          (long long)bad_loss, (long long)bad_grad, (long long)first);
    if (c->with_grad && !c->in_place)
        CHECK(!memcmp(x, x0, n * v * sizeof(float)), "%s: logits changed without in-place", what);
    free(x); free(x0); free(dl); free(loss); free(t); free(p);
}

static void test_shapes(void) {
    uint64_t rng = 0x5EED5EEDull;
    static const int64_t vs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 47, 63, 64, 65, 385, 511, 512, 513, 1000, 1031, 4099, 50257};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        int64_t v = vs[k], n = v > 4000 ? 3 : v > 300 ? 9 : 37;
        scase a = {n, v, 1.0f, 0.0f, 0, 1, 0, 0, 1.0f / n};
        run_case(&a, &rng);
        scase b = {n, v, 8.0f, 0.0f, 5, 1, 1, 0, -0.5f};   /* in place, ignored rows, a negative dscale */
        run_case(&b, &rng);
        scase c = {n, v, 88.0f, 0.0f, 0, 1, 0, 0, 1.0f};   /* logits in [-88, 88]: exp would overflow unshifted */
        run_case(&c, &rng);
        scase d = {n, v, 3.0f, -60.0f, 3, 1, 0, 0, 2.0f};  /* all negative rows */
        run_case(&d, &rng);
        scase e = {n, v, 2.0f, 0.0f, 0, 0, 0, 0, 1.0f};    /* loss only */
        run_case(&e, &rng);
        if (v > 2) {
            scase f = {n, v, 1.0f, 0.0f, 4, 1, 1, 3, 1.0f}; /* -inf entries, in place */
            run_case(&f, &rng);
        }
        scase h = {n, v, 0.0f, 5.0f, 0, 1, 0, 0, 1.0f};    /* ties: every logit equal */
        run_case(&h, &rng);
    }
    scase big = {2, 140001, 20.0f, -3.0f, 0, 1, 1, 0, 1.0f}; /* over 256 blocks of 512: blocks of 552 */
    run_case(&big, &rng);
    scase huge = {300, 65, 88.0f, -88.0f, 7, 1, 0, 0, 1.0f / 300}; /* many rows per task, several tasks */
    run_case(&huge, &rng);
}

/* Rows whose answer is not finite, and the order of the maximum within a row. */
static void test_special(void) {
    enum { V = 1100 }; /* three blocks */
    static float x[4 * V], g[4 * V], loss[4];
    int32_t t[4] = {5, 7, 2, 1099};
    for (int i = 0; i < 4 * V; i++) x[i] = -INFINITY;
    /* row 0: all -inf -> NaN loss and NaN gradient (PyTorch: -inf - -inf). */
    /* row 1: -inf everywhere but the last block, the target's logit is -inf -> loss +inf, gradient finite. */
    for (int j = 1030; j < V; j++) x[1 * V + j] = (float)(j % 7);
    /* row 2: a NaN in a block of -inf, then finite values -> NaN. */
    x[2 * V + 3] = NAN;
    for (int j = 600; j < V; j++) x[2 * V + j] = 1.0f;
    /* row 3: increasing logits, the maximum moves in every block; +88 at the end. */
    for (int j = 0; j < V; j++) x[3 * V + j] = -88.0f + 176.0f * j / (V - 1);
    lt_t_nan(loss, 4);
    lt_t_nan(g, 4 * V);
    lt_status st = lt_softmax_xent(4, V, x, t, loss, g, 1.0f);
    CHECK(st == LT_OK, "special rows: status %d (%s)", st, lt_last_error());
    int g0nan = 1, g1ok = 1, g2nan = 1;
    double s1 = 0;
    for (int j = 0; j < V; j++) {
        g0nan &= g[j] != g[j];
        g2nan &= g[2 * V + j] != g[2 * V + j];
        g1ok &= isfinite(g[V + j]) && (j >= 1030 || g[V + j] == (j == 7 ? -1.0f : 0.0f));
        if (j != 7) s1 += g[V + j];
    }
    CHECK(loss[0] != loss[0] && g0nan, "all -inf row: loss %g, gradient must be NaN", loss[0]);
    CHECK(loss[1] == INFINITY && g1ok && fabs(s1 - 1.0) < 1e-5, "-inf target logit: loss %g (want inf), sum p %g", loss[1], s1);
    CHECK(loss[2] != loss[2] && g2nan, "NaN in a leading -inf block: loss %g, gradient must be NaN", loss[2]);
    double want, p[V];
    double m = ref_row(x + 3 * V, V, t[3], &want, p);
    int ok3 = lt_t_agree(loss[3], want, loss_tol(want));
    for (int j = 0; j < V; j++) ok3 &= lt_t_agree(g[3 * V + j], p[j] - (j == t[3]), grad_tol(p[j], x[3 * V + j] - m, j == t[3], 1.0));
    CHECK(ok3, "increasing row up to +88: loss %.9g want %.9g", loss[3], want);
}

/* Central differences of the double loss against the kernel's gradient. */
static void test_gradcheck(void) {
    uint64_t rng = 99;
    static const int64_t vs[] = {1, 2, 5, 9, 17};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        int64_t v = vs[k], n = 3;
        float x[3 * 17], g[3 * 17], loss[3];
        int32_t t[3];
        for (int64_t i = 0; i < n * v; i++) x[i] = 3.0f * lt_t_uniform(&rng);
        for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(lt_t_next(&rng) % (uint64_t)v);
        lt_t_nan(g, n * v);
        CHECK(lt_softmax_xent(n, v, x, t, loss, g, 1.0f) == LT_OK, "gradcheck v=%lld: %s", (long long)v, lt_last_error());
        double worst = 0;
        int ok = 1;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < v; j++) {
                /* loss as a function of logit j in double, perturbed by +-h around the float value */
                double xd[17], lp, lm, h = 1e-6;
                for (int64_t q = 0; q < v; q++) xd[q] = x[i * v + q];
                double m = -INFINITY, s = 0;
                xd[j] += h;
                for (int64_t q = 0; q < v; q++) if (xd[q] > m) m = xd[q];
                for (int64_t q = 0; q < v; q++) s += exp(xd[q] - m);
                lp = m + log(s) - xd[t[i]];
                xd[j] -= 2 * h;
                m = -INFINITY; s = 0;
                for (int64_t q = 0; q < v; q++) if (xd[q] > m) m = xd[q];
                for (int64_t q = 0; q < v; q++) s += exp(xd[q] - m);
                lm = m + log(s) - xd[t[i]];
                double num = (lp - lm) / (2 * h), d = fabs(num - g[i * v + j]);
                if (!(d <= 2e-6 + 1e-5 * fabs(num))) ok = 0;
                if (d > worst || d != d) worst = d;
            }
        CHECK(ok, "gradcheck v=%lld: worst |numeric - kernel| %g", (long long)v, worst);
    }
}

static void test_invalid(void) {
    float x[64] = {0}, g[64], loss[8];
    int32_t t[4] = {0, 1, 2, 3};
    CHECK(lt_softmax_xent(4, 16, x, t, loss, g, 1.0f) == LT_OK, "valid base case: %s", lt_last_error());
    CHECK(lt_softmax_xent(0, 16, NULL, NULL, NULL, NULL, NAN) == LT_OK, "n == 0 with NULLs: %s", lt_last_error());
    int32_t tb[4] = {0, 1, 16, 3}, tneg[4] = {-1, -7, -100, -1};
    CHECK(lt_softmax_xent(4, 0, NULL, tneg, loss, NULL, 1.0f) == LT_OK && loss[0] == 0.0f,
          "v == 0 with ignored rows: %s", lt_last_error());
    struct { const char *want; lt_status st; } r[] = {
        {"n=-1", lt_softmax_xent(-1, 16, x, t, loss, g, 1.0f)},
        {"v=-16", lt_softmax_xent(4, -16, x, t, loss, g, 1.0f)},
        {"targets is NULL", lt_softmax_xent(4, 16, x, NULL, loss, g, 1.0f)},
        {"losses is NULL", lt_softmax_xent(4, 16, x, t, NULL, g, 1.0f)},
        {"logits is NULL", lt_softmax_xent(4, 16, NULL, t, loss, g, 1.0f)},
        {"dscale=nan", lt_softmax_xent(4, 16, x, t, loss, g, NAN)},
        {"dscale=inf", lt_softmax_xent(4, 16, x, t, loss, g, INFINITY)},
        {"targets[2]=16", lt_softmax_xent(4, 16, x, tb, loss, g, 1.0f)},
        {"overlaps logits", lt_softmax_xent(2, 16, x, t, loss, x + 3, 1.0f)},
        {"losses=", lt_softmax_xent(2, 16, x, t, x + 5, NULL, 1.0f)},
        {"overflow", lt_softmax_xent(1ll << 40, 1ll << 40, x, t, loss, NULL, 1.0f)},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        CHECK(r[i].st == LT_ERR_INVALID_ARGUMENT, "invalid case %zu (%s): status %d", i, r[i].want, r[i].st);
    /* The message names the argument; a bad target leaves the outputs untouched. */
    lt_t_nan(loss, 4);
    lt_t_nan(g, 64);
    lt_status st = lt_softmax_xent(4, 16, x, tb, loss, g, 1.0f);
    int untouched = 1;
    for (int i = 0; i < 4; i++) untouched &= loss[i] != loss[i];
    for (int i = 0; i < 64; i++) untouched &= g[i] != g[i];
    CHECK(st == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "targets[2]=16") && untouched,
          "bad target: status %d, message \"%s\", outputs untouched %d", st, lt_last_error(), untouched);
    CHECK(lt_softmax_xent(4, 16, x, t, loss, g, NAN) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "dscale"),
          "message \"%s\" names dscale", lt_last_error());
}

static void test_determinism(void) {
    static const int64_t shapes[][2] = {{2048, 65}, {40, 50257}, {257, 1031}};
    for (int k = 0; k < 3; k++) {
        int64_t n = shapes[k][0], v = shapes[k][1];
        uint64_t rng = 1234 + k;
        float *x = malloc(n * v * sizeof(float)), *g1 = malloc(n * v * sizeof(float)), *g2 = malloc(n * v * sizeof(float));
        float *l1 = malloc(n * sizeof(float)), *l2 = malloc(n * sizeof(float));
        int32_t *t = malloc(n * sizeof(int32_t));
        for (int64_t i = 0; i < n * v; i++) x[i] = 6.0f * lt_t_uniform(&rng);
        for (int64_t i = 0; i < n; i++) t[i] = i % 11 == 3 ? -1 : (int32_t)(lt_t_next(&rng) % (uint64_t)v);
        lt_set_num_threads(1);
        lt_status s1 = lt_softmax_xent(n, v, x, t, l1, g1, 1.0f / n);
        lt_set_num_threads(2);
        lt_status s2 = lt_softmax_xent(n, v, x, t, l2, g2, 1.0f / n);
        CHECK(s1 == LT_OK && s2 == LT_OK && !memcmp(l1, l2, n * sizeof(float)) && !memcmp(g1, g2, n * v * sizeof(float)),
              "n=%lld v=%lld: 1 and 2 threads differ", (long long)n, (long long)v);
        free(x); free(g1); free(g2); free(l1); free(l2); free(t);
    }
}

/* ---- --bench ------------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int64_t v, int grad, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    float *x = malloc(n * v * sizeof(float)), *loss = malloc(n * sizeof(float));
    int32_t *t = malloc(n * sizeof(int32_t));
    uint64_t rng = 5;
    for (int64_t i = 0; i < n * v; i++) x[i] = 4.0f * lt_t_uniform(&rng);
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(lt_t_next(&rng) % (uint64_t)v);
    lt_softmax_xent(n, v, x, t, loss, grad ? x : NULL, 1.0f / n); /* warm-up (in place: the logits become gradients, same cost) */
    double *tm = malloc(reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = lt_t_now();
        lt_softmax_xent(n, v, x, t, loss, grad ? x : NULL, 1.0f / n);
        tm[r] = lt_t_now() - t0;
    }
    qsort(tm, reps, sizeof(double), cmp_double);
    double bytes = (double)n * v * 4 * (grad ? 2 : 1) + n * 8.0, best = tm[0], med = tm[reps / 2];
    printf("softmax_xent N=%lld V=%-6lld %-11s %d thr: best %8.3f ms %6.1f GB/s %5.1f%% | median %8.3f ms %6.1f GB/s | "
           "triad %5.1f GB/s\n", (long long)n, (long long)v, grad ? "loss+dlogits" : "loss only", threads, best * 1e3,
           bytes / best / 1e9, 100 * bytes / best / 1e9 / triad, med * 1e3, bytes / med / 1e9, triad);
    fflush(stdout);
    free(x); free(loss); free(t); free(tm);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 10;
        if (argc >= 5) { /* --bench reps n v: one shape of your choice */
            for (int th = 1; th <= 2; th++)
                for (int grad = 0; grad < 2; grad++) bench(atoll(argv[3]), atoll(argv[4]), grad, th, reps);
            return 0;
        }
        for (int th = 1; th <= 2; th++)
            for (int grad = 0; grad < 2; grad++) {
                bench(2048, 65, grad, th, reps * 10);
                bench(2048, 50257, grad, th, reps);
            }
        return 0;
    }
    printf("lt_softmax_xent at ISA %s%s%s\n", lt_t_isa_name(), *lt_isa_reason() ? ": " : "",
           lt_isa_reason());
    test_invalid();
    test_special();
    test_gradcheck();
    test_shapes();
    test_determinism();
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
