/* lt_conv2d_* through the exported symbols (avx2 or ref by LATENT_MAX_ISA) against a double reference here, on random
 * shapes (kernel 1..7, stride 1..3, padding 0..3, odd channels and sizes, N = 1, H != W), NaN-prefilled outputs, bias
 * on and off, accumulate 0 and 1; the adjoint identity <conv(x, w), y> = <x, conv^T(y, w)> in double; 1 vs 2 threads
 * bit-identical; bad descriptors refused with a message.
 *   conv2d_test            the checks; "N passed, N failed" last
 *   conv2d_test --bench    the shapes (W3a/b/c), each pass, 1 and 2 threads: ms, GFLOP/s, % of FMA peak
 * Tolerance: |got - want| <= 1e-5 (sum of |terms|) + 1e-30 per output: fp32 accumulation over up to C R S terms
 * (GEMM blocks) against a double sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

static int64_t nx_(const lt_conv2d_desc *d) { return d->n * d->c * d->h * d->w; }
static int64_t ny_(const lt_conv2d_desc *d) { return d->n * d->k * d->oh * d->ow; }
static int64_t nw_(const lt_conv2d_desc *d) { return d->k * d->c * d->r * d->s; }

/* reference of all passes: y, |y| magnitudes; dx, |dx|; dw, |dw|; db */
static void ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *b, const float *bc, const float *dy, double *y,
                double *ym, double *dx, double *dxm, double *dw, double *dwm, double *db) {
    memset(y, 0, ny_(d) * 8); memset(ym, 0, ny_(d) * 8); memset(dx, 0, nx_(d) * 8); memset(dxm, 0, nx_(d) * 8);
    memset(dw, 0, nw_(d) * 8); memset(dwm, 0, nw_(d) * 8); memset(db, 0, d->k * 8);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++)
            for (int64_t p = 0; p < d->oh; p++)
                for (int64_t q = 0; q < d->ow; q++) {
                    int64_t yi = ((n * d->k + k) * d->oh + p) * d->ow + q;
                    if (b) { y[yi] += b[k]; ym[yi] += fabs(b[k]); }
                    db[k] += dy[yi];
                    for (int64_t c = 0; c < d->c; c++)
                        for (int64_t r = 0; r < d->r; r++) {
                            int64_t ih = p * d->stride_h - d->pad_h + r;
                            if (ih < 0 || ih >= d->h) continue;
                            for (int64_t s = 0; s < d->s; s++) {
                                int64_t iw = q * d->stride_w - d->pad_w + s;
                                if (iw < 0 || iw >= d->w) continue;
                                int64_t xi = ((n * d->c + c) * d->h + ih) * d->w + iw, wi = ((k * d->c + c) * d->r + r) * d->s + s;
                                y[yi] += (double)x[xi] * w[wi]; ym[yi] += fabs((double)x[xi] * w[wi]);
                                dx[xi] += (double)dy[yi] * w[wi]; dxm[xi] += fabs((double)dy[yi] * w[wi]);
                                dw[wi] += (double)dy[yi] * x[xi]; dwm[wi] += fabs((double)dy[yi] * x[xi]);
                            }
                        }
                }
    if (bc)
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t c = 0; c < d->c; c++)
                for (int64_t i = 0; i < d->h * d->w; i++) { dx[(n * d->c + c) * d->h * d->w + i] += bc[c]; dxm[(n * d->c + c) * d->h * d->w + i] += fabs(bc[c]); }
}

static int agree(const char *what, const float *got, const double *want, const double *mag, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= 1e-5 * mag[i] + 1e-30) && bad++ < 3)
            fprintf(stderr, "  %s [%lld]: got %.9g want %.9g (|terms| %.3g)\n", what, (long long)i, got[i], want[i], mag[i]);
    return bad == 0;
}

static lt_conv2d_desc make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r, int64_t s, int sh, int sw, int ph, int pw) {
    lt_conv2d_desc d = {n, c, h, w, k, r, s, (h + 2 * ph - r) / sh + 1, (w + 2 * pw - s) / sw + 1, sh, sw, ph, pw};
    return d;
}

static void check(const lt_conv2d_desc *d, int bias, uint64_t *rng) {
    int64_t nx = nx_(d), ny = ny_(d), nw = nw_(d);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(d->k * 4), *bc = malloc(d->c * 4), *dyv = malloc(ny * 4);
    float *y = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(d->k * 4);
    double *ry = malloc(ny * 8), *rym = malloc(ny * 8), *rdx = malloc(nx * 8), *rdxm = malloc(nx * 8), *rdw = malloc(nw * 8), *rdwm = malloc(nw * 8), *rdb = malloc(d->k * 8);
    lt_t_fill(x, nx, rng); lt_t_fill(w, nw, rng); lt_t_fill(b, d->k, rng); lt_t_fill(bc, d->c, rng); lt_t_fill(dyv, ny, rng);
    ref(d, x, w, bias ? b : NULL, bias ? bc : NULL, dyv, ry, rym, rdx, rdxm, rdw, rdwm, rdb);
    char what[160];
    snprintf(what, sizeof what, "n%lld c%lld %lldx%lld k%lld %lldx%lld s%dx%d p%dx%d%s", (long long)d->n, (long long)d->c, (long long)d->h,
             (long long)d->w, (long long)d->k, (long long)d->r, (long long)d->s, d->stride_h, d->stride_w, d->pad_h, d->pad_w, bias ? " bias" : "");
    lt_t_nan(y, ny); lt_t_nan(dx, nx); lt_t_nan(dw, nw); lt_t_nan(db, d->k);
    CHECK(lt_conv2d_fwd(d, x, w, bias ? b : NULL, y) == LT_OK, "fwd %s: %s", what, lt_last_error());
    CHECK(agree("fwd", y, ry, rym, ny), "fwd %s", what);
    CHECK(lt_conv2d_bwd_data(d, dyv, w, bias ? bc : NULL, dx) == LT_OK, "bwd_data %s: %s", what, lt_last_error());
    CHECK(agree("bwd_data", dx, rdx, rdxm, nx), "bwd_data %s", what);
    CHECK(lt_conv2d_bwd_weight(d, x, dyv, dw, bias ? db : NULL, 0) == LT_OK, "bwd_weight %s: %s", what, lt_last_error());
    CHECK(agree("bwd_weight", dw, rdw, rdwm, nw), "bwd_weight %s", what);
    if (bias) {
        int ok = 1;
        for (int64_t k = 0; k < d->k; k++) ok &= fabs(db[k] - rdb[k]) <= 1e-5 * (fabs(rdb[k]) + d->n * d->oh * d->ow);
        CHECK(ok, "db %s", what);
    }
    /* accumulate: dw += the same again */
    CHECK(lt_conv2d_bwd_weight(d, x, dyv, dw, bias ? db : NULL, 1) == LT_OK, "bwd_weight acc %s", what);
    for (int64_t i = 0; i < nw; i++) { rdw[i] *= 2; rdwm[i] *= 2; }
    CHECK(agree("bwd_weight accumulate", dw, rdw, rdwm, nw), "bwd_weight accumulate %s", what);
    /* adjoint identity, independent of the reference: <conv(x, w), dy> = <x, conv^T(dy, w)> (no bias) */
    lt_conv2d_fwd(d, x, w, NULL, y);
    lt_conv2d_bwd_data(d, dyv, w, NULL, dx);
    double l = 0, r = 0, m = 0;
    for (int64_t i = 0; i < ny; i++) { l += (double)y[i] * dyv[i]; m += fabs((double)y[i] * dyv[i]); }
    for (int64_t i = 0; i < nx; i++) r += (double)x[i] * dx[i];
    CHECK(fabs(l - r) <= 1e-5 * (m + 1), "adjoint %s: %g vs %g", what, l, r);
    free(x); free(w); free(b); free(bc); free(dyv); free(y); free(dx); free(dw); free(db);
    free(ry); free(rym); free(rdx); free(rdxm); free(rdw); free(rdwm); free(rdb);
}

static void threads_identical(void) {
    lt_conv2d_desc d = make(7, 5, 19, 13, 11, 3, 3, 1, 1, 1, 1);
    uint64_t rng = 5;
    int64_t nx = nx_(&d), ny = ny_(&d), nw = nw_(&d);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dyv = malloc(ny * 4), *o[2][4];
    lt_t_fill(x, nx, &rng); lt_t_fill(w, nw, &rng); lt_t_fill(dyv, ny, &rng);
    for (int t = 0; t < 2; t++) {
        lt_set_num_threads(t + 1);
        o[t][0] = malloc(ny * 4); o[t][1] = malloc(nx * 4); o[t][2] = malloc(nw * 4); o[t][3] = malloc(d.k * 4);
        lt_conv2d_fwd(&d, x, w, NULL, o[t][0]);
        lt_conv2d_bwd_data(&d, dyv, w, NULL, o[t][1]);
        lt_conv2d_bwd_weight(&d, x, dyv, o[t][2], o[t][3], 0);
    }
    CHECK(!memcmp(o[0][0], o[1][0], ny * 4) && !memcmp(o[0][1], o[1][1], nx * 4) && !memcmp(o[0][2], o[1][2], nw * 4) && !memcmp(o[0][3], o[1][3], d.k * 4),
          "1 vs 2 threads differ");
    for (int t = 0; t < 2; t++) for (int i = 0; i < 4; i++) free(o[t][i]);
    free(x); free(w); free(dyv);
}

static void errors(void) {
    float buf[4096];
    memset(buf, 0, sizeof buf);
    lt_conv2d_desc d = make(1, 2, 5, 5, 3, 3, 3, 1, 1, 0, 0);
    lt_conv2d_desc bad = d;
    bad.oh = 4;
    CHECK(lt_conv2d_fwd(&bad, buf, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "oh=4"), "wrong oh accepted");
    bad = d; bad.stride_h = 0;
    CHECK(lt_conv2d_fwd(&bad, buf, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "stride"), "stride 0 accepted");
    bad = d; bad.r = 9; bad.oh = 0;
    CHECK(lt_conv2d_fwd(&bad, buf, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "larger"), "big kernel accepted");
    bad = d; bad.c = 0;
    CHECK(lt_conv2d_bwd_data(&bad, buf, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT, "c = 0 accepted");
    bad = d; bad.n = (int64_t)1 << 40; bad.c = (int64_t)1 << 20;
    CHECK(lt_conv2d_fwd(&bad, buf, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overflow"), "overflow accepted");
    CHECK(lt_conv2d_fwd(NULL, buf, buf, NULL, buf) == LT_ERR_INVALID_ARGUMENT, "NULL descriptor accepted");
    CHECK(lt_conv2d_fwd(&d, NULL, buf + 100, NULL, buf + 200) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "NULL"), "NULL x accepted");
    CHECK(lt_conv2d_fwd(&d, buf, buf + 100, NULL, buf + 10) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "overlap"), "overlap accepted");
    CHECK(lt_conv2d_bwd_weight(&d, buf, buf + 100, buf + 200, NULL, 2) == LT_ERR_INVALID_ARGUMENT, "accumulate 2 accepted");
}

static void bench(void) {
    struct { const char *id; lt_conv2d_desc d; } s[] = {
        {"W3a 3x3 s1 N32 64->64 32x32", make(32, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1)},
        {"W3b 4x4 s2 N64 64->128 14x14", make(64, 64, 14, 14, 128, 4, 4, 2, 2, 1, 1)},
        {"W3c (conv of convT 128->64 7x7)", make(64, 64, 14, 14, 128, 4, 4, 2, 2, 1, 1)}};
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double peak = 0;
        lt_peak_fma(th, 200000000 / th, &peak);
        printf("threads %d, FMA peak %.1f GFLOP/s\n", th, peak);
        for (int i = 0; i < 2; i++) {
            lt_conv2d_desc *d = &s[i].d;
            float *x = calloc(nx_(d), 4), *w = calloc(nw_(d), 4), *y = calloc(ny_(d), 4), *db = calloc(d->k, 4);
            double fl = 2.0 * d->n * d->k * d->oh * d->ow * d->c * d->r * d->s;
            const char *names[3] = {"fwd", "bwd_data", "bwd_weight"};
            for (int pass = 0; pass < 3; pass++) {
                double best = 1e9;
                for (int rep = 0; rep < 8; rep++) {
                    double t0 = lt_t_now();
                    if (pass == 0) lt_conv2d_fwd(d, x, w, NULL, y);
                    else if (pass == 1) lt_conv2d_bwd_data(d, y, w, NULL, x);
                    else lt_conv2d_bwd_weight(d, x, y, w, NULL, 0);
                    double t = lt_t_now() - t0;
                    if (t < best) best = t;
                }
                printf("  %-32s %-10s %8.3f ms %7.1f GFLOP/s %5.1f%% of peak\n", s[i].id, names[pass], best * 1e3, fl / best / 1e9, 100 * fl / best / 1e9 / peak);
            }
            free(x); free(w); free(y); free(db);
        }
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(); return 0; }
    uint64_t rng = 2024;
    /* fixed cases: 1x1, the DCGAN shapes (small), big kernels */
    lt_conv2d_desc fixed[] = {make(2, 3, 5, 5, 4, 1, 1, 1, 1, 0, 0), make(2, 4, 8, 8, 6, 4, 4, 2, 2, 1, 1), make(1, 3, 9, 7, 2, 7, 7, 1, 1, 3, 3),
                              make(3, 2, 4, 4, 5, 4, 4, 1, 1, 0, 0), make(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0), make(2, 5, 11, 6, 3, 5, 2, 3, 2, 2, 1)};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) for (int b = 0; b < 2; b++) check(&fixed[i], b, &rng);
    for (int t = 0; t < 40; t++) {
        int r = 1 + (int)(lt_t_next(&rng) % 7), s = lt_t_next(&rng) % 2 ? r : 1 + (int)(lt_t_next(&rng) % 7);
        int sh = 1 + (int)(lt_t_next(&rng) % 3), sw = 1 + (int)(lt_t_next(&rng) % 3), ph = (int)(lt_t_next(&rng) % 4), pw = (int)(lt_t_next(&rng) % 4);
        int64_t h = 1 + lt_t_next(&rng) % 13, w = 1 + lt_t_next(&rng) % 13;
        if (h + 2 * ph < r || w + 2 * pw < s) { t--; continue; }
        int64_t n = lt_t_next(&rng) % 3 == 0 ? 1 : 1 + lt_t_next(&rng) % 3, c = 1 + lt_t_next(&rng) % 9, k = 1 + lt_t_next(&rng) % 17;
        lt_conv2d_desc d = make(n, c, h, w, k, r, s, sh, sw, ph, pw);
        check(&d, t % 2, &rng);
    }
    threads_identical();
    errors();
    return lt_test_summary();
}
