/* lt_act_fwd / lt_act_bwd / lt_bce_logits through the exported symbols (avx512, avx2 or ref by LATENT_MAX_ISA), against
 * double formulas here: random data and tails (n = 0, 1, 7, 8, 9, 1023, 100003), a sweep of [-30, 30], extreme and
 * special inputs (+-100, +-inf, NaN), in place and out of place with NaN-prefilled outputs, 1 vs 2 threads
 * bit-identical, avx512 bit-identical to avx2, bad arguments refused with a message.
 *   activation_test            the checks; prints "N passed, N failed" last
 *   activation_test --bench    n = 64*128*16*16 (a DCGAN activation): fwd and bwd, 1 and 2 threads, GB/s
 * Tolerances in u = 2^-24 relative: ReLU / LeakyReLU exact; Tanh and Sigmoid 8 u (+1e-37 absolute for flushed
 * tails); backward 4 u (two roundings of a product). BCE loss: 1e-12 relative on the double sum (it is computed in
 * double at every ISA), dlogits 4 u of max(sigmoid, |t|) * dscale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

#define U (1.0 / 16777216.0)

static double sigm(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

static double want_fwd(int kind, float alpha, double v) {
    switch (kind) {
    case LT_ACT_RELU: return v != v ? v : v > 0 ? v : 0;
    case LT_ACT_LEAKY_RELU: return v != v ? v : v > 0 ? v : (double)(float)(alpha * v);
    case LT_ACT_TANH: return tanh(v);
    default: return sigm(v);
    }
}

static double tol_fwd(int kind, double w) { return kind <= LT_ACT_LEAKY_RELU ? 0 : 8 * U * fabs(w) + 1e-37; }

static const char *names[] = {"relu", "leaky_relu", "tanh", "sigmoid"};

static void check_kind(int kind, const float *x, int64_t n, uint64_t *rng, const char *what) {
    float alpha = 0.2f;
    float *y = malloc((n + 1) * 4), *dy = malloc((n + 1) * 4), *dx = malloc((n + 1) * 4), *y2 = malloc((n + 1) * 4);
    lt_t_fill(dy, n, rng);
    lt_t_nan(y, n);
    lt_t_nan(dx, n);
    CHECK(lt_act_fwd(kind, n, alpha, x, y) == LT_OK, "%s %s fwd: %s", names[kind], what, lt_last_error());
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = want_fwd(kind, alpha, x[i]);
        if (!lt_t_agree(y[i], w, tol_fwd(kind, w)) && bad++ < 3) fprintf(stderr, "  %s(%.9g) got %.9g want %.9g\n", names[kind], x[i], y[i], w);
    }
    CHECK(bad == 0, "%s %s n=%lld: %lld fwd outside tolerance", names[kind], what, (long long)n, (long long)bad);
    const float *in = kind <= LT_ACT_LEAKY_RELU ? x : y;
    CHECK(lt_act_bwd(kind, n, alpha, in, dy, dx) == LT_OK, "%s %s bwd: %s", names[kind], what, lt_last_error());
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = in[i], g = dy[i], w;
        if (kind == LT_ACT_RELU) w = v != v ? v : v > 0 ? g : 0;
        else if (kind == LT_ACT_LEAKY_RELU) w = v != v ? v : v > 0 ? g : g * alpha;
        else if (kind == LT_ACT_TANH) w = g * (1 - v * v);
        else w = g * v * (1 - v);
        double tol = kind == LT_ACT_LEAKY_RELU ? U * fabs(w) : 4 * U * fabs(g) * (kind == LT_ACT_TANH ? 1 + v * v : fabs(v) * (1 + fabs(v))) + 1e-37;
        if (!lt_t_agree(dx[i], w, tol) && bad++ < 3) fprintf(stderr, "  %s'(%.9g) got %.9g want %.9g\n", names[kind], v, dx[i], w);
    }
    CHECK(bad == 0, "%s %s n=%lld: %lld bwd outside tolerance", names[kind], what, (long long)n, (long long)bad);
    /* in place */
    memcpy(y2, x, n * 4);
    CHECK(lt_act_fwd(kind, n, alpha, y2, y2) == LT_OK && (n == 0 || memcmp(y2, y, n * 4) == 0), "%s %s: in place differs", names[kind], what);
    free(y); free(dy); free(dx); free(y2);
}

static void check_bce(const float *x, int64_t n, uint64_t *rng, const char *what) {
    float *t = malloc((n + 1) * 4), *d = malloc((n + 1) * 4);
    for (int64_t i = 0; i < n; i++) t[i] = (lt_t_uniform(rng) + 1) * 0.5f;
    for (int use_t = 0; use_t < 2; use_t++) {
        double loss = NAN, want = 0;
        float tc = 1.0f, ds = 0.5f;
        lt_t_nan(d, n);
        CHECK(lt_bce_logits(n, x, use_t ? t : NULL, tc, &loss, d, ds) == LT_OK, "bce %s: %s", what, lt_last_error());
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = x[i], tt = use_t ? t[i] : tc;
            want += (v > 0 ? v : 0) - v * tt + log1p(exp(-fabs(v)));
            double wd = (sigm(v) - tt) * ds;
            if (!lt_t_agree(d[i], wd, 4 * U * ds * (sigm(v) + fabs(tt)) + 1e-37) && bad++ < 3)
                fprintf(stderr, "  bce'(%.9g) got %.9g want %.9g\n", v, d[i], wd);
        }
        CHECK(bad == 0, "bce %s n=%lld: %lld gradients outside tolerance", what, (long long)n, (long long)bad);
        CHECK(fabs(loss - want) <= 1e-12 * (fabs(want) + 1) || (want != want && loss != loss), "bce %s: loss %.17g want %.17g", what, loss, want);
    }
    free(t); free(d);
}

/* activation_avx512.c runs activation_avx2.c's forward operations lane for lane (one body, activation_simd.h), tails
 * through the AVX2 function: forward bit-identical to AVX2 for each kind, on a sweep of [-30, 30], specials and
 * 16-lane tails (the backward, act_bwd_avx2 at both levels, is compared too). Runs only where the CPU has AVX-512 (noted otherwise). */
static void avx512_bits(void) {
    if (lt_isa_supported() < LT_ISA_AVX512) { printf("  note: no AVX-512 on this CPU: avx512-vs-avx2 bits not checked\n"); return; }
    const int32_t isa0 = lt_isa();
    const int64_t n = 60013;
    float *x = malloc(n * 4), *dy = malloc(n * 4), *o[2][2];
    uint64_t rng = 4242;
    for (int64_t i = 0; i < n; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
    const float special[] = {INFINITY, -INFINITY, NAN, 100.0f, -100.0f, 0.0f, -0.0f, 0.4f, -0.4f, 1e-40f, -88.0f};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) x[1000 + 7 * k] = special[k];
    lt_t_fill(dy, n, &rng);
    static const int64_t lens[] = {1, 9, 15, 16, 17, 31, 33, 60013};
    for (int kind = 0; kind < 4; kind++) {
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            for (int r = 0; r < 2; r++) {
                lt_set_isa(r ? LT_ISA_AVX512 : LT_ISA_AVX2);
                o[r][0] = malloc(n * 4); o[r][1] = malloc(n * 4);
                lt_t_nan(o[r][0], n); lt_t_nan(o[r][1], n);
                lt_act_fwd(kind, lens[l], 0.2f, x, o[r][0]);
                lt_act_bwd(kind, lens[l], 0.2f, kind <= 1 ? x : o[r][0], dy, o[r][1]);
            }
            CHECK(!memcmp(o[0][0], o[1][0], n * 4) && !memcmp(o[0][1], o[1][1], n * 4),
                  "kind %d n=%lld: avx512 differs from avx2 (or wrote past n)", kind, (long long)lens[l]);
            for (int r = 0; r < 2; r++) { free(o[r][0]); free(o[r][1]); }
        }
    }
    lt_set_isa(isa0);
    free(x); free(dy);
}

static void bench(void) {
    int64_t n = 64LL * 128 * 16 * 16;
    float *x = malloc(n * 4), *y = malloc(n * 4), *d = malloc(n * 4);
    uint64_t rng = 7;
    lt_t_fill(x, n, &rng);
    lt_t_fill(d, n, &rng);
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        for (int kind = 0; kind < 4; kind++) {
            double best = 1e9, bestb = 1e9;
            for (int r = 0; r < 20; r++) {
                double t0 = lt_t_now();
                lt_act_fwd(kind, n, 0.2f, x, y);
                double t1 = lt_t_now();
                lt_act_bwd(kind, n, 0.2f, kind <= 1 ? x : y, d, y);
                double t2 = lt_t_now();
                if (t1 - t0 < best) best = t1 - t0;
                if (t2 - t1 < bestb) bestb = t2 - t1;
            }
            printf("%-10s %d thr: fwd %.3f ms (%.1f GB/s), bwd %.3f ms (%.1f GB/s)\n", names[kind], th, best * 1e3, 8.0 * n / best / 1e9,
                   bestb * 1e3, 12.0 * n / bestb / 1e9);
        }
    }
    free(x); free(y); free(d);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(); return 0; }
    uint64_t rng = 12345;
    int64_t sizes[] = {0, 1, 7, 8, 9, 1023, 100003};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t n = sizes[si];
        float *x = malloc((n + 1) * 4);
        for (int64_t i = 0; i < n; i++) x[i] = lt_t_uniform(&rng) * 6;
        char what[32];
        snprintf(what, sizeof what, "random n=%lld", (long long)n);
        for (int k = 0; k < 4; k++) check_kind(k, x, n, &rng, what);
        check_bce(x, n, &rng, what);
        free(x);
    }
    /* sweep of [-30, 30] and specials */
    int64_t n = 600001 + 8;
    float *x = malloc(n * 4);
    for (int64_t i = 0; i < 600001; i++) x[i] = -30.0f + 60.0f * (float)i / 600000.0f;
    float sp[8] = {100.0f, -100.0f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-30f};
    memcpy(x + 600001, sp, sizeof sp);
    for (int k = 0; k < 4; k++) check_kind(k, x, n, &rng, "sweep+specials");
    check_bce(x, 600001 + 2, &rng, "sweep+100");
    /* threads: bit-identical */
    float *a = malloc(n * 4), *b = malloc(n * 4);
    double la, lb;
    for (int k = 0; k < 4; k++) {
        lt_set_num_threads(1);
        lt_act_fwd(k, n, 0.2f, x, a);
        lt_set_num_threads(2);
        lt_act_fwd(k, n, 0.2f, x, b);
        CHECK(memcmp(a, b, n * 4) == 0, "%s: 1 vs 2 threads differ", names[k]);
    }
    lt_set_num_threads(1);
    lt_bce_logits(600001, x, NULL, 0.3f, &la, a, 1.0f);
    lt_set_num_threads(2);
    lt_bce_logits(600001, x, NULL, 0.3f, &lb, b, 1.0f);
    CHECK(la == lb && memcmp(a, b, 600001 * 4) == 0, "bce: 1 vs 2 threads differ");
    /* errors */
    CHECK(lt_act_fwd(7, 4, 0, x, a) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "kind"), "bad kind accepted");
    CHECK(lt_act_fwd(0, -1, 0, x, a) == LT_ERR_INVALID_ARGUMENT, "negative n accepted");
    CHECK(lt_act_fwd(0, 4, 0, NULL, a) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "NULL"), "NULL accepted");
    CHECK(lt_act_fwd(0, 16, 0, x, x + 1) == LT_ERR_INVALID_ARGUMENT, "shifted overlap accepted");
    CHECK(lt_act_bwd(0, 16, 0, x, a, x + 1) == LT_ERR_INVALID_ARGUMENT, "bwd shifted overlap accepted");
    CHECK(lt_bce_logits(-1, x, NULL, 0, NULL, NULL, 1) == LT_ERR_INVALID_ARGUMENT, "bce negative n accepted");
    CHECK(lt_bce_logits(4, NULL, NULL, 0, NULL, NULL, 1) == LT_ERR_INVALID_ARGUMENT, "bce NULL logits accepted");
    free(x); free(a); free(b);
    avx512_bits();
    return lt_test_summary();
}
