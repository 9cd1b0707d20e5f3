/* lt_reparam_fwd / lt_reparam_bwd test, through the exported symbols (avx512, avx2 or ref by LATENT_MAX_ISA; the
 * bit-identity check switches with lt_set_isa).
 *
 *   reparam_test                     the checks; prints "N passed, N failed" last
 *   reparam_test --bench [reps] [n]  n = 2^24, 1 and 2 threads: fwd and bwd ms and GB/s (fwd 12 bytes per element:
 *                                    mu, logvar read, z written; bwd 20: mu, logvar, dz read, dmu, dlogvar written)
 *                                    and % of the STREAM triad of the same run
 *
 * The oracle runs its own philox4x32_10 and Box-Muller in double with glibc's log/sin/cos (eps_d), from the mapping
 * documented in latent.h (groups of 32 elements, lane j = block 8g + j). The library's eps is float arithmetic
 * (reparam_bm.h): within EPS_TOL u r of the oracle, r the Box-Muller radius (cos t and sin t carry absolute errors;
 * reparam_bm.h's own sweep measured 3.1). ref vs avx2 vs avx512 and 1 vs 2 threads: identical bits for every output.
 * Tolerances (u = 2^-24), written once:
 *   z:        4u (|mu| + s |eps|) + EPS_TOL u s r: eps error, exp (1.4u), the final rounding (0.5u), slack.
 *   dmu:      2u (|dz| + |k mu|);   dlogvar: 6u (|dz eps s / 2| + |k| (e^lv + 1) / 2) + EPS_TOL u |dz| r s / 2.
 *   kl:       1e-6 of sum |terms|: float terms (s^2 at 3u) and float sums of 4 terms per lane, then double.
 *   gradient by central differences (double, h = 1e-5): 1e-6 + 1e-5 relative, the O(h^2) term. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"
#include "philox.h"

#define U 0x1p-24
#define TWO_PI 6.283185307179586476925286766559

#define EPS_TOL 4.0
#define EPS_MAX 5.8872 /* sqrt(-2 ln 2^-25), the largest radius (latent.h) */

/* eps of element i, in double, from the documented mapping; *r = the Box-Muller radius. */
static double eps_dr(uint64_t seed, uint64_t stream, int64_t i, double *r) {
    const int64_t g = i >> 5, k = i & 31;
    const uint64_t b = (uint64_t)g * 8 + (uint64_t)(k & 7);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t w[4];
    philox4x32_10(ctr, key, w);
    const int j = (int)(k >> 4) * 2;
    const double u1 = philox_u01(w[j]), u2 = philox_u01(w[j + 1]);
    const double rr = sqrt(-2.0 * log(u1)), t = TWO_PI * u2;
    if (r) *r = rr;
    return ((k >> 3) & 1) ? rr * sin(t) : rr * cos(t);
}
static double eps_d(uint64_t seed, uint64_t stream, int64_t i) { return eps_dr(seed, stream, i, NULL); }

static double clampd(double x) { return x < -30 ? -30 : x > 30 ? 30 : x; }

static const char *isa_name(void) { return lt_t_isa_name(); }

/* eps as the library draws it: z with mu = 0, logvar = 0 is exactly eps (s = 1 at both ISAs). */
static void draw_eps(int64_t n, uint64_t seed, uint64_t stream, float *e) {
    float *zero = calloc(n + 1, 4);
    lt_t_nan(e, n);
    lt_reparam_fwd(n, zero, zero, seed, stream, e, NULL);
    free(zero);
}

static double eps_worst; /* largest |eps - eps_d| / (u r) seen */

static void check_case(int64_t n, uint64_t seed, uint64_t stream, float lv_scale, uint64_t *rng) {
    float *mu = malloc((n + 1) * 4), *lv = malloc((n + 1) * 4), *z = malloc((n + 1) * 4), *dz = malloc((n + 1) * 4);
    float *dmu = malloc((n + 1) * 4), *dlv = malloc((n + 1) * 4), *e = malloc((n + 1) * 4);
    lt_t_fill(mu, n, rng);
    lt_t_fill(lv, n, rng);
    lt_t_fill(dz, n, rng);
    for (int64_t i = 0; i < n; i++) lv[i] *= lv_scale;
    const float k = 0.37f;
    double kl = NAN;
    lt_t_nan(z, n); lt_t_nan(dmu, n); lt_t_nan(dlv, n);
    lt_status s1 = lt_reparam_fwd(n, mu, lv, seed, stream, z, &kl);
    lt_status s2 = lt_reparam_bwd(n, mu, lv, seed, stream, dz, k, dmu, dlv);
    draw_eps(n, seed, stream, e);
    int64_t bad_eps = 0, bad_z = 0, bad_dmu = 0, bad_dlv = 0, worst = -1;
    double klw = 0, klabs = 0;
    for (int64_t i = 0; i < n; i++) {
        double r;
        const double ed = eps_dr(seed, stream, i, &r), l = clampd(lv[i]), s = exp(0.5 * l), m = mu[i], g = dz[i];
        const double err = fabs(e[i] - ed) / (U * r + 1e-300);
        if (err > eps_worst) eps_worst = err;
        if (!(fabs(e[i] - ed) <= EPS_TOL * U * r + 1e-30)) { bad_eps++; worst = i; }
        const double zw = m + s * ed, dmw = g + k * m, dlw = g * ed * 0.5 * s + k * 0.5 * (exp(l) - 1);
        if (!(fabs(z[i] - zw) <= 4 * U * (fabs(m) + s * fabs(ed)) + EPS_TOL * U * s * r)) { bad_z++; worst = i; }
        if (!(fabs(dmu[i] - dmw) <= 2 * U * (fabs(g) + fabs(k * m)))) { bad_dmu++; worst = i; }
        if (!(fabs(dlv[i] - dlw) <= 6 * U * (fabs(g * ed * 0.5 * s) + fabs(k) * 0.5 * (exp(l) + 1)) + EPS_TOL * U * fabs(g) * r * 0.5 * s)) {
            bad_dlv++;
            worst = i;
        }
        klw += m * m + exp(l) - 1 - l;
        klabs += m * m + exp(l) + 1 + fabs(l);
    }
    klw *= 0.5; klabs *= 0.5;
    CHECK(s1 == LT_OK && s2 == LT_OK, "n=%lld: status %d %d", (long long)n, s1, s2);
    CHECK(bad_eps == 0, "n=%lld: %lld eps more than EPS_TOL u r from the libm oracle (e.g. [%lld] %.9g vs %.9g)", (long long)n,
          (long long)bad_eps, (long long)worst, worst >= 0 ? e[worst] : 0, worst >= 0 ? eps_d(seed, stream, worst) : 0);
    CHECK(bad_z == 0, "n=%lld lv*%g: %lld z outside tolerance (last [%lld])", (long long)n, lv_scale, (long long)bad_z, (long long)worst);
    CHECK(bad_dmu == 0, "n=%lld: %lld dmu outside tolerance", (long long)n, (long long)bad_dmu);
    CHECK(bad_dlv == 0, "n=%lld lv*%g: %lld dlogvar outside tolerance (last [%lld])", (long long)n, lv_scale,
          (long long)bad_dlv, (long long)worst);
    CHECK(fabs(kl - klw) <= 1e-6 * klabs + 1e-300, "n=%lld: kl %.17g want %.17g", (long long)n, kl, klw);
    free(mu); free(lv); free(z); free(dz); free(dmu); free(dlv); free(e);
}

static void test_sizes(void) {
    uint64_t rng = 77;
    static const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 97,
                                     1023, 4064, 4095, 4096, 4097, 8192 + 13, 70001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        check_case(sizes[i], 42, 7, 3.0f, &rng);
        check_case(sizes[i], 0xDEADBEEFCAFEF00Dull, 0x123456789ull, 40.0f, &rng); /* |lv| up to 40: clamp exercised */
    }
    printf("  eps vs glibc's double Box-Muller: largest error %.2f u r (tolerance %.0f)\n", eps_worst, EPS_TOL);
    /* a different stream and seed give different draws */
    float a[64], b[64], c[64];
    draw_eps(64, 1, 1, a); draw_eps(64, 1, 2, b); draw_eps(64, 2, 1, c);
    CHECK(memcmp(a, b, sizeof a) && memcmp(a, c, sizeof a), "streams or seeds give the same eps");
}

/* Central differences of L(mu, lv) = sum z w + k kl in double with the oracle eps, against the library's bwd. */
static double loss(int n, const double *mu, const double *lv, const double *w, const double *e, double k) {
    double s = 0, kl = 0;
    for (int i = 0; i < n; i++) {
        const double l = clampd(lv[i]);
        s += (mu[i] + exp(0.5 * l) * e[i]) * w[i];
        kl += mu[i] * mu[i] + exp(l) - 1 - l;
    }
    return s + k * 0.5 * kl;
}

static void test_gradcheck(void) {
    enum { N = 11 };
    uint64_t rng = 5;
    float mu[N], lv[N], w[N], dmu[N], dlv[N];
    double md[N], ld[N], wd[N], e[N];
    const float k = 0.8f;
    lt_t_fill(mu, N, &rng); lt_t_fill(lv, N, &rng); lt_t_fill(w, N, &rng);
    for (int i = 0; i < N; i++) {
        lv[i] *= 2.5f;
        md[i] = mu[i]; ld[i] = lv[i]; wd[i] = w[i]; e[i] = eps_d(9, 3, i);
    }
    lt_t_nan(dmu, N); lt_t_nan(dlv, N);
    CHECK(lt_reparam_bwd(N, mu, lv, 9, 3, w, k, dmu, dlv) == LT_OK, "gradcheck bwd: %s", lt_last_error());
    const double h = 1e-5;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double *v[2] = {md, ld};
        const float *got[2] = {dmu, dlv};
        for (int which = 0; which < 2; which++) {
            const double x = v[which][i];
            v[which][i] = x + h; const double lp = loss(N, md, ld, wd, e, k);
            v[which][i] = x - h; const double lm = loss(N, md, ld, wd, e, k);
            v[which][i] = x;
            const double num = (lp - lm) / (2 * h);
            if (!(fabs(got[which][i] - num) <= 1e-6 + 1e-5 * fabs(num))) {
                bad++;
                fprintf(stderr, "  gradcheck d%s[%d]: got %.9g, central difference %.9g\n", which ? "logvar" : "mu", i,
                        got[which][i], num);
            }
        }
    }
    CHECK(bad == 0, "gradcheck: %d of %d partials off", bad, 2 * N);
}

static void test_extremes(void) {
    enum { N = 37 };
    static const float vals[] = {-30.0f, 30.0f, -1000.0f, 1000.0f, -31.0f, 31.0f, -INFINITY, INFINITY, -3e38f, 3e38f};
    float mu[N], lv[N], z[N], dz[N], dmu[N], dlv[N], z30[N], dmu30[N], dlv30[N], lv30[N];
    for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
        for (int i = 0; i < N; i++) { mu[i] = i % 3 - 1.0f; lv[i] = vals[v]; dz[i] = 1.0f - (i % 5) * 0.5f; }
        for (int i = 0; i < N; i++) lv30[i] = vals[v] < 0 ? -30.0f : 30.0f;
        double kl = NAN, kl30 = NAN;
        lt_t_nan(z, N); lt_t_nan(dmu, N); lt_t_nan(dlv, N);
        lt_status st = lt_reparam_fwd(N, mu, lv, 11, 0, z, &kl) | lt_reparam_bwd(N, mu, lv, 11, 0, dz, 0.5f, dmu, dlv);
        lt_reparam_fwd(N, mu, lv30, 11, 0, z30, &kl30);
        lt_reparam_bwd(N, mu, lv30, 11, 0, dz, 0.5f, dmu30, dlv30);
        int finite = isfinite(kl), same = !memcmp(&kl, &kl30, 8) && !memcmp(z, z30, sizeof z) && !memcmp(dmu, dmu30, sizeof z) &&
                                         !memcmp(dlv, dlv30, sizeof z);
        for (int i = 0; i < N; i++) finite &= isfinite(z[i]) && isfinite(dmu[i]) && isfinite(dlv[i]);
        CHECK(st == LT_OK && finite, "logvar=%g: non-finite output (kl %g, z[0] %g, dlogvar[0] %g)", vals[v], kl, z[0], dlv[0]);
        CHECK(same, "logvar=%g: outputs differ from those of the clamped value %g", vals[v], lv30[0]);
    }
    /* NaN logvar propagates (the clamp does not hide it) */
    for (int i = 0; i < N; i++) { mu[i] = 0; lv[i] = i == 5 ? NAN : 0; }
    double kl;
    lt_reparam_fwd(N, mu, lv, 1, 1, z, &kl);
    CHECK(isnan(z[5]) && isnan(kl) && !isnan(z[4]), "NaN logvar: z[5] %g kl %g", z[5], kl);
}

/* Every output (z, kl, dmu, dlogvar) at ISA ref, avx2 and avx512, each at 1 and 2 threads: six runs, identical bits.
 * eps itself (z with mu = 0, logvar = 0) over 4M draws the same way. An ISA the CPU lacks falls back (noted). */
static void test_bits(void) {
    const int64_t n = 300007; /* 74 chunks, 5 tasks: both threads get work; a partial last group */
    enum { RUNS = 6 };
    static const int32_t want[3] = {LT_ISA_REF, LT_ISA_AVX2, LT_ISA_AVX512};
    uint64_t rng = 99;
    float *mu = malloc(n * 4), *lv = malloc(n * 4), *dz = malloc(n * 4), *out[RUNS][3], *e[RUNS];
    lt_t_fill(mu, n, &rng); lt_t_fill(lv, n, &rng); lt_t_fill(dz, n, &rng);
    for (int64_t i = 0; i < n; i++) lv[i] *= 3.0f;
    double kl[RUNS];
    const int64_t ne = 4000037;
    const int32_t isa0 = lt_isa(), th0 = lt_num_threads();
    int32_t got[RUNS];
    for (int r = 0; r < RUNS; r++) {
        got[r] = lt_set_isa(want[r % 3]);
        lt_set_num_threads(r < 3 ? 1 : 2);
        e[r] = malloc(ne * 4);
        draw_eps(ne, 1234, 5, e[r]);
        for (int j = 0; j < 3; j++) { out[r][j] = malloc(n * 4); lt_t_nan(out[r][j], n); }
        lt_reparam_fwd(n, mu, lv, 1234, 5, out[r][0], &kl[r]);
        lt_reparam_bwd(n, mu, lv, 1234, 5, dz, 0.25f, out[r][1], out[r][2]);
    }
    lt_set_isa(isa0);
    lt_set_num_threads(th0);
    for (int r = 1; r < 3; r++)
        if (got[r] != want[r]) printf("  note: ISA %d not available (%s): run %d compares ISA %d instead\n", want[r], lt_isa_reason(), r, got[r]);
    for (int r = 1; r < RUNS; r++) {
        CHECK(!memcmp(e[0], e[r], ne * 4), "eps: run %d (ISA %d, %d threads) differs from ISA ref, 1 thread", r, got[r], r < 3 ? 1 : 2);
        CHECK(!memcmp(out[0][0], out[r][0], n * 4) && !memcmp(&kl[0], &kl[r], 8), "fwd: run %d (ISA %d) differs (kl %.17g vs %.17g)", r,
              got[r], kl[r], kl[0]);
        CHECK(!memcmp(out[0][1], out[r][1], n * 4) && !memcmp(out[0][2], out[r][2], n * 4), "bwd: run %d (ISA %d) differs", r, got[r]);
    }
    for (int r = 0; r < RUNS; r++) {
        free(e[r]);
        for (int j = 0; j < 3; j++) free(out[r][j]);
    }
    free(mu); free(lv); free(dz);
}

/* Arrays that start off a 32-byte (and 16-byte) boundary give the same bits as aligned ones. */
static void test_unaligned(void) {
    const int64_t n = 1000;
    uint64_t rng = 17;
    float *buf = malloc((8 * n + 64) * 4);
    float *mu = aligned_alloc(64, 4096), *lv = aligned_alloc(64, 4096), *dz = aligned_alloc(64, 4096);
    float *z = aligned_alloc(64, 4096), *dmu = aligned_alloc(64, 4096), *dlv = aligned_alloc(64, 4096);
    lt_t_fill(mu, n, &rng); lt_t_fill(lv, n, &rng); lt_t_fill(dz, n, &rng);
    double kl, kl2;
    lt_reparam_fwd(n, mu, lv, 3, 4, z, &kl);
    lt_reparam_bwd(n, mu, lv, 3, 4, dz, 0.7f, dmu, dlv);
    for (int off = 1; off < 8; off += 2) {
        float *m2 = buf + off, *l2 = m2 + n + 3, *d2 = l2 + n + 5, *z2 = d2 + n + 1, *dm2 = z2 + n + 2, *dl2 = dm2 + n + 1;
        memcpy(m2, mu, n * 4); memcpy(l2, lv, n * 4); memcpy(d2, dz, n * 4);
        lt_t_nan(z2, n); lt_t_nan(dm2, n); lt_t_nan(dl2, n);
        lt_reparam_fwd(n, m2, l2, 3, 4, z2, &kl2);
        lt_reparam_bwd(n, m2, l2, 3, 4, d2, 0.7f, dm2, dl2);
        CHECK(!memcmp(z, z2, n * 4) && !memcmp(&kl, &kl2, 8) && !memcmp(dmu, dm2, n * 4) && !memcmp(dlv, dl2, n * 4),
              "offset %d floats: outputs differ from the aligned run", off);
    }
    free(buf); free(mu); free(lv); free(dz);
    free(z); free(dmu); free(dlv);
}

/* 10^7 draws: mean, variance, the two-sided 3-sigma tail, and the bound |eps| <= EPS_MAX. */
static void test_stats(void) {
    const int64_t n = 10000000;
    float *e = malloc(n * 4);
    draw_eps(n, 2026, 1, e);
    double s = 0, s2 = 0, mx = 0;
    int64_t tail = 0;
    for (int64_t i = 0; i < n; i++) {
        s += e[i];
        s2 += (double)e[i] * e[i];
        tail += fabsf(e[i]) > 3.0f;
        if (fabs(e[i]) > mx) mx = fabs(e[i]);
    }
    const double mean = s / n, var = s2 / n - mean * mean, p3 = 0.0026997960632601866, pt = (double)tail / n;
    /* sd of the sample mean 1/sqrt(n); of the sample variance sqrt(2/n) for a normal; of a frequency sqrt(p(1-p)/n) */
    CHECK(fabs(mean) <= 4 / sqrt((double)n), "eps mean %.3e over %lld draws, 4 sigma = %.3e", mean, (long long)n, 4 / sqrt((double)n));
    CHECK(fabs(var - 1) <= 4 * sqrt(2.0 / n), "eps variance %.6f over %lld draws, 4 sigma = %.3e", var, (long long)n, 4 * sqrt(2.0 / n));
    CHECK(fabs(pt - p3) <= 4 * sqrt(p3 * (1 - p3) / n), "P(|eps| > 3) = %.6f, want %.6f", pt, p3);
    CHECK(mx <= EPS_MAX, "max |eps| %.6f > %.4f", mx, EPS_MAX);
    printf("  %lld draws: mean %.2e, variance %.6f, P(|eps| > 3) %.6f (normal %.6f), max |eps| %.4f\n", (long long)n, mean,
           var, pt, p3, mx);
    free(e);
}

static void test_invalid(void) {
    float a[4] = {0}, b[4] = {0}, c[4], d[4], f[4];
    double kl = 5;
#define INV(call, text) CHECK((call) == LT_ERR_INVALID_ARGUMENT && *lt_last_error() && strstr(lt_last_error(), text), \
                              "%s: \"%s\"", #call, lt_last_error())
    INV(lt_reparam_fwd(-1, a, b, 0, 0, c, &kl), "n=-1");
    INV(lt_reparam_fwd(4, NULL, b, 0, 0, c, &kl), "mu is NULL");
    INV(lt_reparam_fwd(4, a, NULL, 0, 0, c, &kl), "logvar is NULL");
    INV(lt_reparam_fwd(4, a, b, 0, 0, NULL, &kl), "z is NULL");
    INV(lt_reparam_bwd(-3, a, b, 0, 0, c, 1, d, f), "n=-3");
    INV(lt_reparam_bwd(4, NULL, b, 0, 0, c, 1, d, f), "mu is NULL");
    INV(lt_reparam_bwd(4, a, NULL, 0, 0, c, 1, d, f), "logvar is NULL");
    INV(lt_reparam_bwd(4, a, b, 0, 0, NULL, 1, d, f), "dz is NULL");
    INV(lt_reparam_bwd(4, a, b, 0, 0, c, 1, NULL, f), "dmu is NULL");
    INV(lt_reparam_bwd(4, a, b, 0, 0, c, 1, d, NULL), "dlogvar is NULL");
    INV(lt_reparam_bwd(4, a, b, 0, 0, c, NAN, d, f), "kl_scale");
#undef INV
    CHECK(lt_reparam_fwd(0, NULL, NULL, 0, 0, NULL, &kl) == LT_OK && kl == 0.0, "n=0 fwd: kl %g", kl);
    CHECK(lt_reparam_bwd(0, NULL, NULL, 0, 0, NULL, 1, NULL, NULL) == LT_OK, "n=0 bwd");
    CHECK(lt_reparam_fwd(4, a, b, 0, 0, c, NULL) == LT_OK, "kl NULL is allowed: %s", lt_last_error());
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench(int64_t n, int threads, int reps) {
    lt_set_num_threads(threads);
    double triad = 0, kl;
    lt_peak_triad(threads, 1 << 24, 5, &triad);
    float *mu = malloc(n * 4), *lv = malloc(n * 4), *z = malloc(n * 4), *dz = malloc(n * 4), *dmu = malloc(n * 4), *dlv = malloc(n * 4);
    uint64_t rng = 3;
    lt_t_fill(mu, n, &rng); lt_t_fill(lv, n, &rng); lt_t_fill(dz, n, &rng);
    memset(z, 0, n * 4); memset(dmu, 0, n * 4); memset(dlv, 0, n * 4);
    double *tm = malloc(reps * sizeof(double));
    for (int pass = 0; pass < 2; pass++) {
        for (int r = -1; r < reps; r++) {
            double t0 = lt_t_now();
            if (pass == 0) lt_reparam_fwd(n, mu, lv, 1, 2, z, &kl);
            else lt_reparam_bwd(n, mu, lv, 1, 2, dz, 0.5f, dmu, dlv);
            if (r >= 0) tm[r] = lt_t_now() - t0;
        }
        qsort(tm, reps, sizeof(double), cmp_double);
        const double bytes = (pass ? 20.0 : 12.0) * n, best = tm[0], med = tm[reps / 2];
        printf("reparam %s n=%lld %d thr: best %8.3f ms %6.2f GB/s %5.1f%% of triad | median %8.3f ms %6.2f GB/s | triad %5.1f GB/s\n",
               pass ? "bwd" : "fwd", (long long)n, threads, best * 1e3, bytes / best / 1e9, 100 * bytes / best / 1e9 / triad,
               med * 1e3, bytes / med / 1e9, triad);
        fflush(stdout);
    }
    free(mu); free(lv); free(z); free(dz); free(dmu); free(dlv); free(tm);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        if (lt_isa() < LT_ISA_AVX2) { printf("bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
        int reps = argc > 2 ? atoi(argv[2]) : 10;
        int64_t n = argc > 3 ? atoll(argv[3]) : (int64_t)1 << 24;
        for (int th = 1; th <= 2; th++) bench(n, th, reps);
        return 0;
    }
    printf("lt_reparam at ISA %s%s%s\n", isa_name(), *lt_isa_reason() ? ": " : "", lt_isa_reason());
    test_invalid();
    test_sizes();
    test_gradcheck();
    test_extremes();
    test_bits();
    test_unaligned();
    test_stats();
    return lt_test_summary();
}
