/* lt_conv1d_fwd / lt_conv1d_bwd_data / lt_conv1d_bwd_weight: dilated causal 1-D convolution (WaveNet's layer;
 * latent.h has the contract, conv1d_ref.c the formulas).
 *
 * This file validates (each message names the argument and its value), then dispatches by ISA: conv1d_*_avx512
 * (conv1d_avx512.c) at avx512, conv1d_*_avx2 (conv1d_avx2.c) at avx2, else conv1d_*_ref (conv1d_ref.c). For the
 * SIMD levels it first lays the operands out for conv1d_simd.h (on the pool, in parallel):
 *   fwd:        x rows padded on the left with the causal zeros P = (kk-1) d and on the right with 128 zeros, the
 *               weights packed in blocks of 4 output rows (ni, kk, 4);
 *   bwd_data:   the same correlation on dy padded on the right (dy[t + s_j]) with the transposed, tap-reversed
 *               weights (Cin blocks of 4, Cout, kk, 4);
 *   bwd_weight: x padded as for fwd and dy padded to a multiple of 64 time steps with zeros (read in place when T is
 *               one already).
 * kk = min(K, (T-1)/d + 1) taps reach a sample (conv1d.h); the others have zero gradient and add nothing.
 * Test and benchmark: conv1d_test.c (ctest runs it at LATENT_MAX_ISA=ref, avx2 and avx512; `conv1d_test --bench`). */
#include <string.h>

#include "conv1d.h"

#define RPAD 128 /* zeros past T in a padded row: a register tile (<= 64 steps) past the end still reads inside */

static int overlap(const void *a, int64_t na, const void *b, int64_t nb) { /* float counts */
    const char *pa = a, *pb = b;
    return a && b && pa < pb + 4 * nb && pb < pa + 4 * na;
}

static int64_t prod3(int64_t a, int64_t b, int64_t c) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) || r > INT64_MAX / 8) return -1;
    return r;
}

/* Shape checks shared by the three passes; `op` names the call. */
static lt_status check(const char *op, int64_t n, int64_t ci, int64_t t, int64_t co, int64_t k, int64_t d) {
#define BAD(fmt, ...) lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: " fmt, op, __VA_ARGS__)
    if (n < 1 || ci < 1 || t < 1 || co < 1)
        return BAD("n=%lld cin=%lld t=%lld cout=%lld must all be >= 1", (long long)n, (long long)ci, (long long)t,
                   (long long)co);
    if (k < 1) return BAD("k=%lld (kernel taps) must be >= 1", (long long)k);
    if (d < 1) return BAD("dilation=%lld must be >= 1", (long long)d);
    int64_t rf;
    if (__builtin_mul_overflow(k - 1, d, &rf))
        return BAD("receptive field (k-1) x dilation = %lld x %lld overflows int64", (long long)(k - 1), (long long)d);
    /* padded rows hold up to 2 T + 128 floats; element counts (and those of the padded copies) fit int64 bytes */
    if (t > INT64_MAX / 16) return BAD("t=%lld is too large", (long long)t);
    const int64_t len = 2 * t + RPAD;
    if (prod3(n, ci, len) < 0 || prod3(n, co, len) < 0 || prod3(co, ci, k) < 0)
        return BAD("n=%lld cin=%lld t=%lld cout=%lld k=%lld: element counts overflow int64 bytes", (long long)n,
                   (long long)ci, (long long)t, (long long)co, (long long)k);
#undef BAD
    return LT_OK;
}

static int64_t taps_used(int64_t t, int64_t k, int64_t d) {
    const int64_t m = (t - 1) / d + 1; /* shifts 0, d, ..., (m-1) d are < T */
    return k < m ? k : m;
}

/* ---- packing, on the pool ---- */

typedef struct {
    const float *src; /* (rows, t) */
    float *dst;       /* (rows, len): left zeros, the row, zeros */
    int64_t t, left, len;
} pad_ctx;

static void pad_task(void *p, int64_t r, int worker) {
    const pad_ctx *c = p;
    float *o = c->dst + r * c->len;
    memset(o, 0, (size_t)c->left * sizeof(float));
    memcpy(o + c->left, c->src + r * c->t, (size_t)c->t * sizeof(float));
    memset(o + c->left + c->t, 0, (size_t)(c->len - c->left - c->t) * sizeof(float));
}

static void pad_rows(const float *src, int64_t rows, int64_t t, int64_t left, int64_t len, float *dst) {
    pad_ctx c = {src, dst, t, left, len};
    lt_parallel_for(rows, pad_task, &c);
}

/* wp[ob][i][jj][r] = w[o = 4 ob + r][i][j0 + jj] (fwd, reverse = 0) or, for bwd_data, with the roles of the two
 * channel axes swapped and the taps reversed: wp[ib][o][jj][r] = w[o][i = 4 ib + r][K-1-jj]. Zero past the rows. */
static void pack_w(const float *w, int64_t co, int64_t ci, int64_t k, int64_t kk, int reverse, float *wp) {
    const int64_t rows = reverse ? ci : co, cols = reverse ? co : ci, nb = (rows + CONV1D_COB - 1) / CONV1D_COB;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t c = 0; c < cols; c++)
            for (int64_t jj = 0; jj < kk; jj++)
                for (int64_t r = 0; r < CONV1D_COB; r++) {
                    const int64_t row = b * CONV1D_COB + r;
                    float v = 0.0f;
                    if (row < rows) v = reverse ? w[(c * ci + row) * k + (k - 1 - jj)] : w[(row * ci + c) * k + (k - kk + jj)];
                    wp[((b * cols + c) * kk + jj) * CONV1D_COB + r] = v;
                }
}

static lt_status oom(const char *op, int64_t floats) {
    return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: %lld bytes of padded operands", op, (long long)(floats * 4));
}

/* The correlation (fwd when reverse = 0, bwd_data when 1) on padded rows of `in` (N, ni, T). */
static lt_status corr(const char *op, int isa, int64_t n, int64_t ni, int64_t no, int64_t t, int64_t ci, int64_t co,
                      int64_t k, int64_t d, const float *in, const float *w, const float *bias, float *out, int reverse) {
    const int64_t kk = taps_used(t, k, d), left = reverse ? 0 : (kk - 1) * d, len = t + (kk - 1) * d + RPAD;
    const int64_t nwp = (no + CONV1D_COB - 1) / CONV1D_COB * CONV1D_COB * ni * kk, nin = n * ni * len;
    float *buf = lt_alloc((size_t)(nwp + nin) * sizeof(float));
    if (!buf) return oom(op, nwp + nin);
    pack_w(w, co, ci, k, kk, reverse, buf);
    pad_rows(in, n * ni, t, left, len, buf + nwp);
    conv1d_corr c = {n, no, ni, t, kk, d, len, buf + nwp, buf, bias, out};
    if (isa >= LT_ISA_AVX512) conv1d_corr_avx512(&c);
    else conv1d_corr_avx2(&c);
    lt_free(buf);
    return LT_OK;
}

lt_status lt_conv1d_fwd(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation, const float *x,
                        const float *w, const float *bias, float *y) {
    const char *op = "lt_conv1d_fwd";
    lt_status st = check(op, n, cin, t, cout, k, dilation);
    if (st) return st;
    if (!x || !w || !y) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, !x ? "x" : !w ? "w" : "y");
    const int64_t nx = n * cin * t, nw = cout * cin * k, ny = n * cout * t;
    if (overlap(y, ny, x, nx) || overlap(y, ny, w, nw) || overlap(y, ny, bias, cout))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: y overlaps %s: the output must not share memory with the inputs", op,
                       overlap(y, ny, x, nx) ? "x" : overlap(y, ny, w, nw) ? "w" : "bias");
    const int isa = lt_isa_level();
    if (isa < LT_ISA_AVX2) {
        conv1d_fwd_ref(n, cin, t, cout, k, dilation, x, w, bias, y);
        return LT_OK;
    }
    return corr(op, isa, n, cin, cout, t, cin, cout, k, dilation, x, w, bias, y, 0);
}

lt_status lt_conv1d_bwd_data(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation,
                             const float *dy, const float *w, float *dx) {
    const char *op = "lt_conv1d_bwd_data";
    lt_status st = check(op, n, cin, t, cout, k, dilation);
    if (st) return st;
    if (!dy || !w || !dx) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, !dy ? "dy" : !w ? "w" : "dx");
    const int64_t nx = n * cin * t, nw = cout * cin * k, ny = n * cout * t;
    if (overlap(dx, nx, dy, ny) || overlap(dx, nx, w, nw))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: dx overlaps %s: the output must not share memory with the inputs", op,
                       overlap(dx, nx, dy, ny) ? "dy" : "w");
    const int isa = lt_isa_level();
    if (isa < LT_ISA_AVX2) {
        conv1d_bwd_data_ref(n, cin, t, cout, k, dilation, dy, w, dx);
        return LT_OK;
    }
    return corr(op, isa, n, cout, cin, t, cin, cout, k, dilation, dy, w, NULL, dx, 1);
}

lt_status lt_conv1d_bwd_weight(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation,
                               const float *x, const float *dy, float *dw, float *db, int32_t accumulate) {
    const char *op = "lt_conv1d_bwd_weight";
    lt_status st = check(op, n, cin, t, cout, k, dilation);
    if (st) return st;
    if (!x || !dy || !dw) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, !x ? "x" : !dy ? "dy" : "dw");
    if (accumulate != 0 && accumulate != 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: accumulate=%d must be 0 or 1", op, accumulate);
    const int64_t nx = n * cin * t, nw = cout * cin * k, ny = n * cout * t;
    if (overlap(dw, nw, x, nx) || overlap(dw, nw, dy, ny) || overlap(db, cout, x, nx) || overlap(db, cout, dy, ny) ||
        overlap(db, cout, dw, nw))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: dw or db overlaps x, dy or each other", op);
    const int isa = lt_isa_level();
    if (isa < LT_ISA_AVX2) {
        conv1d_bwd_weight_ref(n, cin, t, cout, k, dilation, x, dy, dw, db, accumulate);
        return LT_OK;
    }
    const int64_t kk = taps_used(t, k, dilation), left = (kk - 1) * dilation, len = t + left + RPAD;
    /* dy is read in place when T is a multiple of 64 (no tail to pad): one copy of N Cout T floats less */
    const int64_t tr = (t + 63) / 64 * 64, nxp = n * cin * len, ndy = tr == t ? 0 : n * cout * tr;
    const int64_t per = isa >= LT_ISA_AVX512 ? conv1d_wgrad_scratch_avx512(cin, kk) : conv1d_wgrad_scratch_avx2(cin, kk);
    const int width = lt_pool_width();
    const int64_t total = nxp + ndy + per * width;
    float *buf = lt_alloc((size_t)total * sizeof(float));
    if (!buf) return oom(op, total);
    pad_rows(x, n * cin, t, left, len, buf);
    if (ndy) pad_rows(dy, n * cout, t, 0, tr, buf + nxp);
    conv1d_wgrad c = {n, cout, cin, tr, k, kk, dilation, len, buf, ndy ? buf + nxp : dy, dw, db, accumulate, buf + nxp + ndy, per};
    if (isa >= LT_ISA_AVX512) conv1d_wgrad_avx512(&c);
    else conv1d_wgrad_avx2(&c);
    lt_free(buf);
    return LT_OK;
}
