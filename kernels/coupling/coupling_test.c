/* lt_coupling_* through the exported symbols against double formulas here, on random shapes (hw = 1, 7, 8, 9, 784,
 * 1023; n = 1, 3, 64), checkerboard and random masks, NaN-prefilled outputs; inverse(forward(y)) == y; logdet
 * equal to the sum of s; the backward against central differences of a scalar in double; 1 vs 2 threads
 * bit-identical; avx512 element outputs bit-identical to avx2's (sums to summation order); bad arguments refused with a message.
 *   coupling_test           the checks; "N passed, N failed" last
 *   coupling_test --bench   n = 64, hw = 784 (RealNVP's batch): fwd and bwd, 1 and 2 threads
 * Tolerances: outputs 1e-5 relative to the sum of |terms| (vexp / vtanh are a few ulp; exp(s) multiplies y). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

static void check(int64_t n, int64_t hw, int checker, uint64_t *rng) {
    float *b = malloc(hw * 4), *y = malloc(n * hw * 4), *h = malloc(2 * n * hw * 4), *out = malloc(n * hw * 4), *back = malloc(n * hw * 4);
    float *g = malloc(n * hw * 4), *dy = malloc(n * hw * 4), *dh = malloc(2 * n * hw * 4);
    double *ld = malloc(n * 8), *dld = malloc(n * 8);
    for (int64_t j = 0; j < hw; j++) b[j] = checker ? (float)(j % 2) : (lt_t_uniform(rng) > 0 ? 1.0f : 0.0f);
    lt_t_fill(y, n * hw, rng); lt_t_fill(h, 2 * n * hw, rng); lt_t_fill(g, n * hw, rng);
    for (int64_t i = 0; i < 2 * n * hw; i++) h[i] *= 2;
    for (int64_t i = 0; i < n; i++) dld[i] = lt_t_uniform(rng);
    float scale = 0.8f;
    lt_t_nan(out, n * hw); lt_t_nan(back, n * hw); lt_t_nan(dy, n * hw); lt_t_nan(dh, 2 * n * hw);
    char what[64];
    snprintf(what, sizeof what, "n=%lld hw=%lld %s", (long long)n, (long long)hw, checker ? "checker" : "random mask");
    CHECK(lt_coupling_fwd(n, hw, b, y, h, scale, out, ld) == LT_OK, "fwd %s: %s", what, lt_last_error());
    CHECK(lt_coupling_inv(n, hw, b, out, h, scale, back) == LT_OK, "inv %s: %s", what, lt_last_error());
    double dscale = 0.25;
    CHECK(lt_coupling_bwd(n, hw, b, y, h, scale, g, dld, dy, dh, &dscale) == LT_OK, "bwd %s: %s", what, lt_last_error());
    int64_t bad = 0;
    double want_ds = 0.25;
    for (int64_t i = 0; i < n; i++) {
        double lsum = 0;
        for (int64_t j = 0; j < hw; j++) {
            int64_t k = i * hw + j;
            double m = 1 - b[j], th = tanh(h[2 * i * hw + j]), s = th * scale * m, t = h[2 * i * hw + hw + j] * m, e = exp(s);
            double w = b[j] * y[k] + m * (y[k] * e + t), mag = fabs(b[j] * y[k]) + m * (fabs(y[k] * e) + fabs(t));
            if (!(fabs(out[k] - w) <= 1e-5 * mag + 1e-7) && bad++ < 3) fprintf(stderr, "  fwd %s [%lld]: %.9g vs %.9g\n", what, (long long)k, out[k], w);
            if (!(fabs(back[k] - y[k]) <= 1e-5 * (fabs(y[k]) + mag) + 1e-7) && bad++ < 3) fprintf(stderr, "  inv %s [%lld]: %.9g vs %.9g\n", what, (long long)k, back[k], y[k]);
            double gd = g[k], wdy = gd * (b[j] + m * e), ds = (gd * y[k] * e + dld[i]) * m;
            double wh0 = ds * scale * (1 - th * th), wh1 = gd * m;
            if (!(fabs(dy[k] - wdy) <= 1e-5 * fabs(gd) * (1 + e)) && bad++ < 3) fprintf(stderr, "  dy %s [%lld]: %.9g vs %.9g\n", what, (long long)k, dy[k], wdy);
            if (!(fabs(dh[2 * i * hw + j] - wh0) <= 1e-5 * (fabs(gd * y[k] * e) + fabs(dld[i])) * fabs(scale) + 1e-7) && bad++ < 3)
                fprintf(stderr, "  dh0 %s [%lld]: %.9g vs %.9g\n", what, (long long)k, dh[2 * i * hw + j], wh0);
            if (!(fabs(dh[2 * i * hw + hw + j] - wh1) <= 1e-7 * fabs(gd)) && bad++ < 3) fprintf(stderr, "  dh1 %s\n", what);
            lsum += s;
            want_ds += ds * th;
        }
        if (!(fabs(ld[i] - lsum) <= 1e-5 * (hw * fabs(scale)) ) && bad++ < 3) fprintf(stderr, "  logdet %s [%lld]: %.9g vs %.9g\n", what, (long long)i, ld[i], lsum);
    }
    CHECK(bad == 0, "%s: %lld values outside tolerance", what, (long long)bad);
    CHECK(fabs(dscale - want_ds) <= 1e-5 * (fabs(want_ds) + n * hw), "dscale %s: %.9g vs %.9g", what, dscale, want_ds);
    /* threads */
    float *o1 = malloc(n * hw * 4), *d1 = malloc(2 * n * hw * 4);
    double s1 = 0, s2 = 0;
    lt_set_num_threads(1);
    lt_coupling_fwd(n, hw, b, y, h, scale, o1, ld);
    lt_coupling_bwd(n, hw, b, y, h, scale, g, dld, dy, d1, &s1);
    lt_set_num_threads(2);
    lt_coupling_fwd(n, hw, b, y, h, scale, out, ld);
    lt_coupling_bwd(n, hw, b, y, h, scale, g, dld, dy, dh, &s2);
    CHECK(!memcmp(o1, out, n * hw * 4) && !memcmp(d1, dh, 2 * n * hw * 4) && s1 == s2, "1 vs 2 threads differ %s", what);
    free(b); free(y); free(h); free(out); free(back); free(g); free(dy); free(dh); free(ld); free(dld); free(o1); free(d1);
}

static void fd_check(uint64_t *rng) {
    /* L = sum(c * y') + sum(dld * logdet): its derivative in h0 and scale by central differences in double */
    int64_t n = 2, hw = 9;
    float b[9], y[18], h[36], out[18], c[18], dy[18], dh[36];
    double ld[2], dld[2] = {0.7, -0.4};
    for (int j = 0; j < 9; j++) b[j] = (float)(j % 2);
    lt_t_fill(y, 18, rng); lt_t_fill(h, 36, rng); lt_t_fill(c, 18, rng);
    float scale = 1.1f;
    double ds = 0;
    lt_coupling_bwd(n, hw, b, y, h, scale, c, dld, dy, dh, &ds);
    int bad = 0;
    for (int k = 0; k < 36; k += 5) {
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            float keep = h[k];
            h[k] = keep + (sgn ? -1e-3f : 1e-3f);
            lt_coupling_fwd(n, hw, b, y, h, scale, out, ld);
            double acc = 0;
            for (int i = 0; i < 18; i++) acc += (double)c[i] * out[i];
            acc += dld[0] * ld[0] + dld[1] * ld[1];
            L[sgn] = acc;
            h[k] = keep;
        }
        double fd = (L[0] - L[1]) / 2e-3 * (1.0 / (double)(((h[k] + 1e-3f) - (h[k] - 1e-3f)) / 2e-3f));
        if (fabs(fd - dh[k]) > 2e-3 * (1 + fabs(fd))) { bad++; fprintf(stderr, "  dh[%d] %.6g vs fd %.6g\n", k, dh[k], fd); }
    }
    CHECK(bad == 0, "coupling backward vs central differences");
}

/* coupling_avx512.c runs coupling_avx2.c's per-element operations (one body, coupling_simd.h; vexp16 / vtanh16 lane
 * for lane as vexp / vtanh): out, the inverse, dy and dh bit-identical; logdet and dscale (sums in another order)
 * within 1e-12 relative of |terms|. Runs only where the CPU has AVX-512 (noted otherwise). */
static void avx512_bits(uint64_t *rng) {
    if (lt_isa_supported() < LT_ISA_AVX512) { printf("  note: no AVX-512 on this CPU: avx512-vs-avx2 bits not checked\n"); return; }
    const int32_t isa0 = lt_isa();
    static const int64_t hws[] = {16, 17, 31, 784, 1023};
    for (size_t a = 0; a < sizeof hws / sizeof hws[0]; a++) {
        const int64_t n = 3, hw = hws[a], t = n * hw;
        float *b = malloc(hw * 4), *y = malloc(t * 4), *h = malloc(2 * t * 4), *g = malloc(t * 4);
        float *o[2], *inv[2], *dy[2], *dh[2];
        double ld[2][3], dld[3] = {0.3, -1.0, 2.0}, ds[2] = {0, 0};
        for (int64_t j = 0; j < hw; j++) b[j] = (float)(j % 2);
        lt_t_fill(y, t, rng); lt_t_fill(h, 2 * t, rng); lt_t_fill(g, t, rng);
        for (int64_t j = 0; j < 2 * t; j++) h[j] *= 3.0f; /* tanh's both branches */
        for (int r = 0; r < 2; r++) {
            lt_set_isa(r ? LT_ISA_AVX512 : LT_ISA_AVX2);
            o[r] = malloc(t * 4); inv[r] = malloc(t * 4); dy[r] = malloc(t * 4); dh[r] = malloc(2 * t * 4);
            lt_coupling_fwd(n, hw, b, y, h, 1.5f, o[r], ld[r]);
            lt_coupling_inv(n, hw, b, o[r], h, 1.5f, inv[r]);
            lt_coupling_bwd(n, hw, b, y, h, 1.5f, g, dld, dy[r], dh[r], &ds[r]);
        }
        CHECK(!memcmp(o[0], o[1], t * 4) && !memcmp(inv[0], inv[1], t * 4) && !memcmp(dy[0], dy[1], t * 4) &&
              !memcmp(dh[0], dh[1], 2 * t * 4), "hw=%lld: avx512 outputs differ from avx2", (long long)hw);
        int close = fabs(ds[0] - ds[1]) <= 1e-12 * (fabs(ds[0]) + 1.5 * t);
        for (int i = 0; i < n; i++) close &= fabs(ld[0][i] - ld[1][i]) <= 1e-12 * (1.5 * hw);
        CHECK(close, "hw=%lld: avx512 logdet / dscale differ from avx2 beyond summation order", (long long)hw);
        for (int r = 0; r < 2; r++) { free(o[r]); free(inv[r]); free(dy[r]); free(dh[r]); }
        free(b); free(y); free(h); free(g);
    }
    lt_set_isa(isa0);
}

static void bench(void) {
    int64_t n = 64, hw = 784;
    float *b = malloc(hw * 4), *y = malloc(n * hw * 4), *h = malloc(2 * n * hw * 4), *o = malloc(n * hw * 4), *dh = malloc(2 * n * hw * 4);
    double *ld = malloc(n * 8), ds = 0;
    uint64_t rng = 1;
    for (int64_t j = 0; j < hw; j++) b[j] = (float)(j % 2);
    lt_t_fill(y, n * hw, &rng); lt_t_fill(h, 2 * n * hw, &rng);
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double bf = 1e9, bb = 1e9;
        for (int r = 0; r < 50; r++) {
            double t0 = lt_t_now();
            lt_coupling_fwd(n, hw, b, y, h, 1.0f, o, ld);
            double t1 = lt_t_now();
            lt_coupling_bwd(n, hw, b, y, h, 1.0f, y, ld, o, dh, &ds);
            double t2 = lt_t_now();
            if (t1 - t0 < bf) bf = t1 - t0;
            if (t2 - t1 < bb) bb = t2 - t1;
        }
        printf("coupling n=64 hw=784, %d thr: fwd %.1f us, bwd %.1f us\n", th, bf * 1e6, bb * 1e6);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(); return 0; }
    uint64_t rng = 77;
    int64_t hws[] = {1, 7, 8, 9, 784, 1023}, ns[] = {1, 3, 64};
    for (int a = 0; a < 6; a++) for (int c = 0; c < 3; c++) for (int m = 0; m < 2; m++) check(ns[c], hws[a], m, &rng);
    fd_check(&rng);
    avx512_bits(&rng);
    float buf[64] = {0};
    double d[4];
    CHECK(lt_coupling_fwd(0, 4, buf, buf, buf, 1, buf + 32, d) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), ">= 1"), "n = 0 accepted");
    CHECK(lt_coupling_fwd(1, 4, NULL, buf, buf, 1, buf + 32, d) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "NULL"), "NULL mask accepted");
    CHECK(lt_coupling_fwd(1, 4, buf + 40, buf, buf + 8, 1, buf + 2, d) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlap"), "overlap accepted");
    return lt_test_summary();
}
