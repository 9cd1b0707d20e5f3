/* lt_layernorm_fwd / lt_layernorm_bwd: LayerNorm over the last dimension C of an (N, C) row-major tensor, with
 * PyTorch nn.LayerNorm semantics (biased variance, eps inside the square root; the math is in layernorm_ref.c).
 *
 * This file validates (every message names the argument and its value), splits the work into tasks and picks
 * layernorm_*_avx512 (layernorm_avx512.c) at ISA avx512, layernorm_*_avx2 (layernorm_avx2.c) at avx2, else
 * layernorm_*_ref (layernorm_ref.c).
 *   fwd: rows are independent; tasks of about TASK_ELEMS floats.
 *   bwd: dx rows are independent, but dw and db are sums over all rows. Rows are cut into chunks whose size
 *        depends on N only (never on the thread count); each chunk writes its own partial sums into scratch,
 *        then each column of dw and db adds the partials in chunk order and accumulates (+=) once. So 1 and
 *        2 threads (or any pool) give the same bits, without atomics.
 * In place: y may equal x, dx may equal dy; any other overlap between an output and another array is refused.
 * Test and benchmark: layernorm_test.c (`layernorm_test --bench`). */
#include <math.h>

#include "layernorm.h"

#define TASK_ELEMS 16384    /* floats per forward task: 64 KB of x */
#define MIN_CHUNK_ROWS 64   /* backward chunk: at least 64 rows ... */
#define MAX_CHUNKS 128      /* ... and at most 128 chunks, so the scratch is at most 2 * 128 * C floats */
#define RED_COLS 512        /* columns per task of the final dw/db reduction */

static int overlap(const void *a, int64_t na, const void *b, int64_t nb) { /* bytes */
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return a && b && na > 0 && nb > 0 && x < y + (uintptr_t)nb && y < x + (uintptr_t)na;
}

/* Common shape checks; `what` names the call. */
static lt_status check_shape(const char *what, int64_t n, int64_t c) {
    if (n < 0 || c < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld c=%lld must be >= 0", what, (long long)n, (long long)c);
    if (n > 0 && c == 0)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: c=0 with n=%lld: a row to normalize needs at least one element",
                       what, (long long)n);
    int64_t nc;
    if (__builtin_mul_overflow(n, c, &nc) || nc > INT64_MAX / 4)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld x c=%lld overflows int64 bytes", what, (long long)n, (long long)c);
    return LT_OK;
}

/* ---- forward ---- */

typedef struct {
    int64_t n, c, rows_per_task;
    float eps;
    const float *x, *w, *b;
    float *y, *mean, *rstd;
    int isa;
    const float *a; /* lt_layernorm_residual_fwd: the residual's other term, else NULL */
    float *s;       /* lt_layernorm_residual_fwd: s = x + a, the rows normalized, else NULL */
} fwd_ctx;

static void (*add_fn(int isa))(int64_t, const float *, const float *, float *) {
    return isa >= LT_ISA_AVX512 ? layernorm_add_avx512 : isa >= LT_ISA_AVX2 ? layernorm_add_avx2 : layernorm_add_ref;
}

static void fwd_task(void *p, int64_t t, int worker) {
    const fwd_ctx *k = p;
    int64_t r0 = t * k->rows_per_task, rows = k->n - r0 < k->rows_per_task ? k->n - r0 : k->rows_per_task;
    if (k->a) { /* fused residual: s = x + a formed in the LayerNorm's first pass over each row */
        (k->isa >= LT_ISA_AVX512 ? layernorm_residual_fwd_avx512 : k->isa >= LT_ISA_AVX2 ? layernorm_residual_fwd_avx2
                                                                                         : layernorm_residual_fwd_ref)(
            rows, k->c, k->eps, k->x + r0 * k->c, k->a + r0 * k->c, k->s + r0 * k->c, k->w, k->b, k->y + r0 * k->c,
            k->mean + r0, k->rstd + r0);
        return;
    }
    (k->isa >= LT_ISA_AVX512 ? layernorm_fwd_avx512 : k->isa >= LT_ISA_AVX2 ? layernorm_fwd_avx2 : layernorm_fwd_ref)(rows, k->c, k->eps, k->x + r0 * k->c, k->w, k->b,
                                                       k->y + r0 * k->c, k->mean + r0, k->rstd + r0);
}

lt_status lt_layernorm_fwd(int64_t n, int64_t c, float eps, const float *x, const float *w, const float *b, float *y,
                           float *mean, float *rstd) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_layernorm_fwd: " __VA_ARGS__)
    lt_status st = check_shape("lt_layernorm_fwd", n, c);
    if (st) return st;
    if (!(eps > 0.0f) || !isfinite(eps)) return BAD("eps=%g must be finite and > 0 (PyTorch's default is 1e-5)", (double)eps);
    if (n == 0) return LT_OK;
    const char *null = !x ? "x" : !w ? "w" : !b ? "b" : !y ? "y" : !mean ? "mean" : !rstd ? "rstd" : NULL;
    if (null) return BAD("%s is NULL for n=%lld c=%lld", null, (long long)n, (long long)c);
    const int64_t nc = n * c * 4, cb = c * 4, nb = n * 4;
    if ((y != x && overlap(y, nc, x, nc)) || overlap(y, nc, w, cb) || overlap(y, nc, b, cb))
        return BAD("y=%p overlaps x, w or b (only y == x is allowed)", (void *)y);
    if (overlap(mean, nb, x, nc) || overlap(mean, nb, y, nc) || overlap(mean, nb, w, cb) || overlap(mean, nb, b, cb) ||
        overlap(mean, nb, rstd, nb))
        return BAD("mean=%p overlaps another array", (void *)mean);
    if (overlap(rstd, nb, x, nc) || overlap(rstd, nb, y, nc) || overlap(rstd, nb, w, cb) || overlap(rstd, nb, b, cb))
        return BAD("rstd=%p overlaps another array", (void *)rstd);
#undef BAD
    fwd_ctx k = {n, c, c < TASK_ELEMS ? TASK_ELEMS / c : 1, eps, x, w, b, y, mean, rstd, lt_isa_level(), NULL, NULL};
    lt_parallel_for((n + k.rows_per_task - 1) / k.rows_per_task, fwd_task, &k);
    return LT_OK;
}

/* ---- backward ---- */

typedef struct {
    int64_t n, c, chunk_rows, nchunks;
    const float *x, *w, *mean, *rstd, *dy;
    float *dx, *dw, *db;
    float *part; /* (nchunks, 2, C): dw then db partial sums of each chunk */
    int isa;
    const float *ds; /* lt_layernorm_residual_bwd: the residual stream's own gradient, added to dx; else NULL */
} bwd_ctx;

static void bwd_task(void *p, int64_t t, int worker) {
    const bwd_ctx *k = p;
    int64_t r0 = t * k->chunk_rows, rows = k->n - r0 < k->chunk_rows ? k->n - r0 : k->chunk_rows;
    float *part = k->part + t * 2 * k->c;
    (k->isa >= LT_ISA_AVX512 ? layernorm_bwd_avx512 : k->isa >= LT_ISA_AVX2 ? layernorm_bwd_avx2 : layernorm_bwd_ref)(rows, k->c, k->x + r0 * k->c, k->w, k->mean + r0, k->rstd + r0,
                                                       k->dy + r0 * k->c, k->dx + r0 * k->c, part, part + k->c);
    /* fused residual: dx = ds + dLN over the chunk just written (still in L2): the add of two finished float
     * gradients, the bits of the autograd's F.add(ds, dLN) */
    if (k->ds) add_fn(k->isa)(rows * k->c, k->ds + r0 * k->c, k->dx + r0 * k->c, k->dx + r0 * k->c);
}

/* dw[j] += sum over chunks in order of part[chunk][0][j], db likewise, for one block of columns. */
static void reduce_task(void *p, int64_t t, int worker) {
    const bwd_ctx *k = p;
    int64_t j0 = t * RED_COLS, j1 = j0 + RED_COLS < k->c ? j0 + RED_COLS : k->c;
    for (int64_t j = j0; j < j1; j++) {
        float sw = 0.0f, sb = 0.0f;
        for (int64_t q = 0; q < k->nchunks; q++) {
            sw += k->part[q * 2 * k->c + j];
            sb += k->part[q * 2 * k->c + k->c + j];
        }
        k->dw[j] += sw;
        k->db[j] += sb;
    }
}

/* The backward after validation (n > 0): chunks, then the fixed-order dw / db reduction; ds NULL or added to dx. */
static lt_status bwd_run(const char *fn, int64_t n, int64_t c, const float *x, const float *w, const float *mean,
                         const float *rstd, const float *dy, const float *ds, float *dx, float *dw, float *db) {
    int64_t chunk_rows = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (chunk_rows < MIN_CHUNK_ROWS) chunk_rows = MIN_CHUNK_ROWS;
    const int64_t nchunks = (n + chunk_rows - 1) / chunk_rows;
    float *part = lt_alloc((size_t)nchunks * 2 * (size_t)c * sizeof(float));
    if (!part)
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "%s: %lld bytes of dw/db partial sums", fn, (long long)(nchunks * 2 * c * 4));
    bwd_ctx k = {n, c, chunk_rows, nchunks, x, w, mean, rstd, dy, dx, dw, db, part, lt_isa_level(), ds};
    lt_parallel_for(nchunks, bwd_task, &k);
    lt_parallel_for((c + RED_COLS - 1) / RED_COLS, reduce_task, &k);
    lt_free(part);
    return LT_OK;
}

lt_status lt_layernorm_bwd(int64_t n, int64_t c, const float *x, const float *w, const float *mean, const float *rstd,
                           const float *dy, float *dx, float *dw, float *db) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_layernorm_bwd: " __VA_ARGS__)
    lt_status st = check_shape("lt_layernorm_bwd", n, c);
    if (st) return st;
    if (n == 0) return LT_OK; /* dw += 0, db += 0 */
    const char *null = !x ? "x" : !w ? "w" : !mean ? "mean" : !rstd ? "rstd" : !dy ? "dy" : !dx ? "dx" : !dw ? "dw"
                     : !db ? "db" : NULL;
    if (null) return BAD("%s is NULL for n=%lld c=%lld", null, (long long)n, (long long)c);
    const int64_t nc = n * c * 4, cb = c * 4, nb = n * 4;
    if ((dx != dy && overlap(dx, nc, dy, nc)) || overlap(dx, nc, x, nc) || overlap(dx, nc, w, cb) ||
        overlap(dx, nc, mean, nb) || overlap(dx, nc, rstd, nb))
        return BAD("dx=%p overlaps an input (only dx == dy is allowed)", (void *)dx);
    const void *ins[6] = {x, w, mean, rstd, dy, dx};
    const int64_t len[6] = {nc, cb, nb, nb, nc, nc};
    for (int i = 0; i < 6; i++)
        if (overlap(dw, cb, ins[i], len[i]) || overlap(db, cb, ins[i], len[i]))
            return BAD("dw=%p or db=%p overlaps another array", (void *)dw, (void *)db);
    if (overlap(dw, cb, db, cb)) return BAD("dw=%p and db=%p overlap", (void *)dw, (void *)db);
#undef BAD
    return bwd_run("lt_layernorm_bwd", n, c, x, w, mean, rstd, dy, NULL, dx, dw, db);
}

/* ---- residual add fused with LayerNorm (GPT's x = x + f(...); ln(x)) ----
 * fwd: per row, s = x + a formed, stored and summed in the LayerNorm's first pass, then its other passes on s (in L1)
 *      with the same code as lt_layernorm_fwd's (fwd_rest in layernorm_simd.h, fwd_rest_ref): the bits of lt_axpby's
 *      add followed by lt_layernorm_fwd.
 * bwd: exactly lt_layernorm_bwd's chunks and dw / db reduction, then dx = ds + dx per chunk: the same bits as
 *      lt_layernorm_bwd followed by the autograd's add of the two gradients. */

lt_status lt_layernorm_residual_fwd(int64_t n, int64_t c, float eps, const float *x, const float *a, const float *w,
                                    const float *b, float *s, float *y, float *mean, float *rstd) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_layernorm_residual_fwd: " __VA_ARGS__)
    lt_status st = check_shape("lt_layernorm_residual_fwd", n, c);
    if (st) return st;
    if (!(eps > 0.0f) || !isfinite(eps)) return BAD("eps=%g must be finite and > 0 (PyTorch's default is 1e-5)", (double)eps);
    if (n == 0) return LT_OK;
    const char *null = !x ? "x" : !a ? "a" : !w ? "w" : !b ? "b" : !s ? "s" : !y ? "y" : !mean ? "mean" : !rstd ? "rstd" : NULL;
    if (null) return BAD("%s is NULL for n=%lld c=%lld", null, (long long)n, (long long)c);
    const int64_t nc = n * c * 4, cb = c * 4, nb = n * 4;
    if ((s != x && overlap(s, nc, x, nc)) || (s != a && overlap(s, nc, a, nc)) || overlap(s, nc, w, cb) ||
        overlap(s, nc, b, cb))
        return BAD("s=%p overlaps x, a, w or b (only s == x or s == a is allowed)", (void *)s);
    const void *other[7] = {x, a, w, b, s, mean, rstd};
    const int64_t len[7] = {nc, nc, cb, cb, nc, nb, nb};
    for (int i = 0; i < 7; i++) {
        if (overlap(y, nc, other[i], len[i])) return BAD("y=%p overlaps another array", (void *)y);
        if (i != 5 && overlap(mean, nb, other[i], len[i])) return BAD("mean=%p overlaps another array", (void *)mean);
        if (i != 6 && overlap(rstd, nb, other[i], len[i])) return BAD("rstd=%p overlaps another array", (void *)rstd);
    }
#undef BAD
    fwd_ctx k = {n, c, c < TASK_ELEMS ? TASK_ELEMS / c : 1, eps, x, w, b, y, mean, rstd, lt_isa_level(), a, s};
    lt_parallel_for((n + k.rows_per_task - 1) / k.rows_per_task, fwd_task, &k);
    return LT_OK;
}

lt_status lt_layernorm_residual_bwd(int64_t n, int64_t c, const float *s, const float *w, const float *mean,
                                    const float *rstd, const float *dy, const float *ds, float *dx, float *dw, float *db) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_layernorm_residual_bwd: " __VA_ARGS__)
    lt_status st = check_shape("lt_layernorm_residual_bwd", n, c);
    if (st) return st;
    if (n == 0) return LT_OK; /* dw += 0, db += 0 */
    const char *null = !s ? "s" : !w ? "w" : !mean ? "mean" : !rstd ? "rstd" : !dy ? "dy" : !ds ? "ds" : !dx ? "dx"
                     : !dw ? "dw" : !db ? "db" : NULL;
    if (null) return BAD("%s is NULL for n=%lld c=%lld", null, (long long)n, (long long)c);
    const int64_t nc = n * c * 4, cb = c * 4, nb = n * 4;
    if ((dx != dy && overlap(dx, nc, dy, nc)) || overlap(dx, nc, s, nc) || overlap(dx, nc, ds, nc) ||
        overlap(dx, nc, w, cb) || overlap(dx, nc, mean, nb) || overlap(dx, nc, rstd, nb))
        return BAD("dx=%p overlaps an input (only dx == dy is allowed)", (void *)dx);
    const void *ins[7] = {s, w, mean, rstd, dy, ds, dx};
    const int64_t len[7] = {nc, cb, nb, nb, nc, nc, nc};
    for (int i = 0; i < 7; i++)
        if (overlap(dw, cb, ins[i], len[i]) || overlap(db, cb, ins[i], len[i]))
            return BAD("dw=%p or db=%p overlaps another array", (void *)dw, (void *)db);
    if (overlap(dw, cb, db, cb)) return BAD("dw=%p and db=%p overlap", (void *)dw, (void *)db);
#undef BAD
    return bwd_run("lt_layernorm_residual_bwd", n, c, s, w, mean, rstd, dy, ds, dx, dw, db);
}
