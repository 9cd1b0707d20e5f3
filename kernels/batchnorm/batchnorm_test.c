/* lt_batchnorm2d_* through the exported symbols against a double reference here: random shapes (odd C and HW, N = 1,
 * HW = 1 and tails of 8), gamma/beta NULL or given, running statistics, accumulation of dgamma/dbeta, NaN-prefilled
 * outputs, 1 vs 2 threads bit-identical, bad arguments refused with a message.
 *   batchnorm_test           the checks; "N passed, N failed" last
 *   batchnorm_test --bench   (64, 128, 8, 8) training forward and backward, 1 and 2 threads
 * Tolerances: forward 4e-6 |y| + 1e-6 (y is (x - mean) rstd gamma + beta from a float scale and shift: a few ulp of
 * the largest term), backward 1e-5 relative to the sum of the magnitudes of dx's terms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

static void ref(int64_t n, int64_t c, int64_t hw, const float *x, const float *g, const float *b, const float *dy, double *y, double *dx,
                double *dg, double *db, double *mean, double *var) {
    for (int64_t ch = 0; ch < c; ch++) {
        double cnt = (double)n * hw, s = 0, q = 0;
        for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < hw; j++) s += x[(i * c + ch) * hw + j];
        double m = s / cnt;
        for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < hw; j++) { double d = x[(i * c + ch) * hw + j] - m; q += d * d; }
        double v = q / cnt, rs = 1 / sqrt(v + 1e-5), gg = g ? g[ch] : 1, bb = b ? b[ch] : 0, sdy = 0, sdyx = 0;
        mean[ch] = m; var[ch] = v;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < hw; j++) {
                int64_t k = (i * c + ch) * hw + j;
                double xh = (x[k] - m) * rs;
                y[k] = xh * gg + bb;
                sdy += dy[k]; sdyx += dy[k] * xh;
            }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < hw; j++) {
                int64_t k = (i * c + ch) * hw + j;
                double xh = (x[k] - m) * rs;
                dx[k] = rs * (gg * dy[k] - gg * sdy / cnt - xh * gg * sdyx / cnt);
            }
        dg[ch] = sdyx; db[ch] = sdy;
    }
}

static void check(int64_t n, int64_t c, int64_t hw, int affine, uint64_t *rng) {
    int64_t t = n * c * hw;
    float *x = malloc(t * 4), *y = malloc(t * 4), *dy = malloc(t * 4), *dx = malloc(t * 4), *g = malloc(c * 4), *b = malloc(c * 4);
    float *mean = malloc(c * 4), *rstd = malloc(c * 4), *rm = malloc(c * 4), *rv = malloc(c * 4), *dg = malloc(c * 4), *db = malloc(c * 4), *yi = malloc(t * 4);
    double *ry = malloc(t * 8), *rdx = malloc(t * 8), *rdg = malloc(c * 8), *rdb = malloc(c * 8), *rmean = malloc(c * 8), *rvar = malloc(c * 8);
    lt_t_fill(x, t, rng); lt_t_fill(dy, t, rng); lt_t_fill(g, c, rng); lt_t_fill(b, c, rng);
    for (int64_t i = 0; i < t; i++) x[i] = x[i] * 3 + 1.5f;   /* an offset mean, as activations have */
    for (int64_t i = 0; i < c; i++) { rm[i] = 0.5f; rv[i] = 2.0f; dg[i] = 1.0f; db[i] = -1.0f; }
    lt_t_nan(y, t); lt_t_nan(dx, t); lt_t_nan(mean, c); lt_t_nan(rstd, c);
    const float *G = affine ? g : NULL, *B = affine ? b : NULL;
    ref(n, c, hw, x, G, B, dy, ry, rdx, rdg, rdb, rmean, rvar);
    CHECK(lt_batchnorm2d_fwd_train(n, c, hw, 1e-5f, 0.1f, x, G, B, y, mean, rstd, rm, rv) == LT_OK, "train: %s", lt_last_error());
    char what[96];
    snprintf(what, sizeof what, "n=%lld c=%lld hw=%lld affine=%d", (long long)n, (long long)c, (long long)hw, affine);
    CHECK(lt_t_close(what, y, ry, t, 1e-5, 1e-5), "fwd %s", what);
    int ok = 1;
    for (int64_t i = 0; i < c; i++) {
        double cnt = (double)n * hw, uv = cnt > 1 ? rvar[i] * cnt / (cnt - 1) : rvar[i];
        ok &= fabs(rm[i] - (0.9 * 0.5 + 0.1 * rmean[i])) <= 1e-5 * (1 + fabs(rmean[i]));
        ok &= fabs(rv[i] - (0.9 * 2.0 + 0.1 * uv)) <= 1e-5 * (1 + uv);
        ok &= fabs(mean[i] - rmean[i]) <= 1e-5 * (1 + fabs(rmean[i]));
    }
    CHECK(ok, "running statistics %s", what);
    CHECK(lt_batchnorm2d_bwd(n, c, hw, x, G, mean, rstd, dy, dx, dg, db) == LT_OK, "bwd: %s", lt_last_error());
    CHECK(lt_t_close(what, dx, rdx, t, 2e-5, 2e-4), "bwd dx %s", what);
    for (int64_t i = 0; i < c; i++) { rdg[i] += 1.0; rdb[i] -= 1.0; }
    CHECK(lt_t_close(what, dg, rdg, c, 1e-4, 1e-5) && lt_t_close(what, db, rdb, c, 1e-4, 1e-5), "dgamma/dbeta accumulate %s", what);
    /* inference with the batch statistics reproduces the training output */
    lt_t_nan(yi, t);
    float *vv = malloc(c * 4), *mm = malloc(c * 4);
    for (int64_t i = 0; i < c; i++) { vv[i] = (float)rvar[i]; mm[i] = (float)rmean[i]; }
    CHECK(lt_batchnorm2d_fwd_infer(n, c, hw, 1e-5f, x, G, B, mm, vv, yi) == LT_OK, "infer: %s", lt_last_error());
    CHECK(lt_t_close(what, yi, ry, t, 1e-5, 1e-5), "infer %s", what);
    /* threads */
    float *y1 = malloc(t * 4), *dx1 = malloc(t * 4);
    lt_set_num_threads(1);
    lt_batchnorm2d_fwd_train(n, c, hw, 1e-5f, 0.1f, x, G, B, y1, mean, rstd, NULL, NULL);
    lt_batchnorm2d_bwd(n, c, hw, x, G, mean, rstd, dy, dx1, NULL, NULL);
    lt_set_num_threads(2);
    lt_batchnorm2d_fwd_train(n, c, hw, 1e-5f, 0.1f, x, G, B, y, mean, rstd, NULL, NULL);
    lt_batchnorm2d_bwd(n, c, hw, x, G, mean, rstd, dy, dx, NULL, NULL);
    CHECK(memcmp(y, y1, t * 4) == 0 && memcmp(dx, dx1, t * 4) == 0, "1 vs 2 threads differ %s", what);
    free(x); free(y); free(dy); free(dx); free(g); free(b); free(mean); free(rstd); free(rm); free(rv); free(dg); free(db); free(yi);
    free(ry); free(rdx); free(rdg); free(rdb); free(rmean); free(rvar); free(vv); free(mm); free(y1); free(dx1);
}

static void bench(void) {
    int64_t n = 64, c = 128, hw = 64, t = n * c * hw;
    float *x = malloc(t * 4), *y = malloc(t * 4), *dy = malloc(t * 4), *m = malloc(c * 4), *r = malloc(c * 4), *dg = calloc(c, 4), *db = calloc(c, 4);
    uint64_t rng = 3;
    lt_t_fill(x, t, &rng); lt_t_fill(dy, t, &rng);
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double bf = 1e9, bb = 1e9;
        for (int k = 0; k < 20; k++) {
            double t0 = lt_t_now();
            lt_batchnorm2d_fwd_train(n, c, hw, 1e-5f, 0.1f, x, NULL, NULL, y, m, r, NULL, NULL);
            double t1 = lt_t_now();
            lt_batchnorm2d_bwd(n, c, hw, x, NULL, m, r, dy, y, dg, db);
            double t2 = lt_t_now();
            if (t1 - t0 < bf) bf = t1 - t0;
            if (t2 - t1 < bb) bb = t2 - t1;
        }
        printf("batchnorm (64,128,8,8) %d thr: fwd %.3f ms, bwd %.3f ms\n", th, bf * 1e3, bb * 1e3);
    }
    free(x); free(y); free(dy); free(m); free(r); free(dg); free(db);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(); return 0; }
    uint64_t rng = 99;
    int64_t shapes[][3] = {{1, 1, 1}, {2, 3, 1}, {1, 5, 7}, {3, 7, 9}, {4, 16, 64}, {2, 3, 17}, {5, 2, 255}, {64, 3, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int affine = 0; affine < 2; affine++) check(shapes[i][0], shapes[i][1], shapes[i][2], affine, &rng);
    float buf[64] = {0};
    CHECK(lt_batchnorm2d_fwd_train(0, 1, 1, 1e-5f, 0.1f, buf, NULL, NULL, buf + 8, buf + 16, buf + 24, NULL, NULL) == LT_ERR_INVALID_ARGUMENT
          && strstr(lt_last_error(), ">= 1"), "n = 0 accepted");
    CHECK(lt_batchnorm2d_fwd_train(1, 1, 4, 0.0f, 0.1f, buf, NULL, NULL, buf + 8, buf + 16, buf + 24, NULL, NULL) == LT_ERR_INVALID_ARGUMENT, "eps 0 accepted");
    CHECK(lt_batchnorm2d_fwd_train(1, 1, 4, 1e-5f, 0.1f, NULL, NULL, NULL, buf + 8, buf + 16, buf + 24, NULL, NULL) == LT_ERR_INVALID_ARGUMENT
          && strstr(lt_last_error(), "NULL"), "NULL x accepted");
    CHECK(lt_batchnorm2d_fwd_train(1, 1, 8, 1e-5f, 0.1f, buf, NULL, NULL, buf + 4, buf + 16, buf + 24, NULL, NULL) == LT_ERR_INVALID_ARGUMENT, "overlap accepted");
    CHECK(lt_batchnorm2d_bwd(1, 1, 8, buf, NULL, buf + 40, buf + 48, buf + 8, buf + 12, NULL, NULL) == LT_ERR_INVALID_ARGUMENT, "bwd overlap accepted");
    return lt_test_summary();
}
