/* Exported elementwise and layout kernels: validation, ISA dispatch, and the split into pool tasks.
 * Work is cut into fixed chunks (CHUNK elements, or column blocks for reductions) whatever the thread
 * count, and every output element belongs to one task, so results do not depend on the pool size. */
#include <math.h>
#include "elementwise.h"

#define CHUNK 16384     /* elements per task: ~64 KB, large enough to amortize a task, small enough to balance */
#define COLBLOCK 64     /* columns per task in lt_sum_rows */

static int avx2(void) { return lt_isa_level() >= LT_ISA_AVX2; }

typedef struct { int64_t n; float a, b; const float *x, *z; float *y; int op; } ew_ctx;

static void ew_task(void *p, int64_t t, int worker) {
    ew_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    if (c->op == 0) (avx2() ? axpby_avx2 : axpby_ref)(len, c->a, c->x + lo, c->b, c->y + lo);
    else (avx2() ? mul_avx2 : mul_ref)(len, c->x + lo, c->z + lo, c->y + lo);
}

lt_status lt_axpby(int64_t n, float a, const float *x, float b, float *y) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_axpby: n=%lld < 0", (long long)n);
    if (n > 0 && (!x || !y)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_axpby: NULL x or y with n=%lld", (long long)n);
    ew_ctx c = {n, a, b, x, NULL, y, 0};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, ew_task, &c);
    return LT_OK;
}

lt_status lt_mul(int64_t n, const float *x, const float *z, float *y) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_mul: n=%lld < 0", (long long)n);
    if (n > 0 && (!x || !z || !y)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_mul: NULL pointer with n=%lld", (long long)n);
    ew_ctx c = {n, 0, 0, x, z, y, 1};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, ew_task, &c);
    return LT_OK;
}

typedef struct { int64_t n, c, period, rows_per_task; const float *x, *rows; float *y; } rows_ctx;

static void add_rows_task(void *p, int64_t t, int worker) {
    rows_ctx *c = p;
    int64_t lo = t * c->rows_per_task, cnt = c->n - lo < c->rows_per_task ? c->n - lo : c->rows_per_task;
    /* Rows lo.. use table rows (lo + i) % period: pass the table so that row 0 of the call is row lo. */
    for (int64_t i = 0; i < cnt; i++) {
        int64_t r = (lo + i) % c->period;
        (avx2() ? add_rows_avx2 : add_rows_ref)(1, c->c, 1, c->x + (lo + i) * c->c, c->rows + r * c->c, c->y + (lo + i) * c->c);
    }
}

static lt_status check_rows(const char *op, int64_t n, int64_t c, int64_t period, const void *a, const void *b, const void *d) {
    if (n < 0 || c < 0 || period < 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld, c=%lld (>= 0), period=%lld (>= 1)", op, (long long)n, (long long)c, (long long)period);
    if (n > 0 && c > 0 && (!a || !b || !d)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: NULL pointer", op);
    return LT_OK;
}

lt_status lt_add_rows(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y) {
    lt_status st = check_rows("lt_add_rows", n, c, period, x, rows, y);
    if (st || n == 0 || c == 0) return st;
    rows_ctx ctx = {n, c, period, c >= CHUNK ? 1 : CHUNK / c, x, rows, y};
    lt_parallel_for((n + ctx.rows_per_task - 1) / ctx.rows_per_task, add_rows_task, &ctx);
    return LT_OK;
}

static void sum_rows_task(void *p, int64_t t, int worker) {
    rows_ctx *c = p;
    int64_t j0 = t * COLBLOCK, w = c->c - j0 < COLBLOCK ? c->c - j0 : COLBLOCK;
    /* Each task owns columns [j0, j0 + w) of every table row and walks x's rows in order: a fixed order. */
    for (int64_t r = 0; r < c->period && r < c->n; r++) {
        int64_t rows = (c->n - r + c->period - 1) / c->period;   /* i = r, r + period, ... < n */
        (avx2() ? sum_rows_chunk_avx2 : sum_rows_chunk_ref)(rows, w, c->period * c->c, c->x + r * c->c + j0,
                                                          (float *)c->rows + r * c->c + j0);
    }
}

lt_status lt_sum_rows(int64_t n, int64_t c, int64_t period, const float *x, float *out) {
    lt_status st = check_rows("lt_sum_rows", n, c, period, x, out, out);
    if (st || n == 0 || c == 0) return st;
    rows_ctx ctx = {n, c, period, 0, x, out, NULL};
    lt_parallel_for((c + COLBLOCK - 1) / COLBLOCK, sum_rows_task, &ctx);
    return LT_OK;
}

/* ---- strided copy ---- */
typedef struct { const lt_copy_desc *d; const float *src; float *dst; int64_t inner; } copy_ctx;

/* Task t copies the t-th index of dimension 0 (all inner dimensions), odometer over dims 1..rank-2,
 * the last dimension as a loop (unit stride on both sides is the common, vectorized case). */
static void copy_task(void *p, int64_t t, int worker) {
    copy_ctx *c = p;
    const lt_copy_desc *d = c->d;
    int r = d->rank;
    int64_t idx[LT_MAX_RANK] = {0};
    const float *s0 = c->src + t * d->src_stride[0];
    float *d0 = c->dst + t * d->dst_stride[0];
    int64_t last = d->shape[r - 1], ss = d->src_stride[r - 1], ds = d->dst_stride[r - 1];
    for (;;) {
        int64_t so = 0, dof = 0;
        for (int k = 1; k < r - 1; k++) { so += idx[k] * d->src_stride[k]; dof += idx[k] * d->dst_stride[k]; }
        const float *s = r > 1 ? s0 + so : c->src;
        float *o = r > 1 ? d0 + dof : c->dst;
        if (r == 1) { s = c->src + t * ss; o = c->dst + t * ds; last = 1; }
        if (ss == 1 && ds == 1) for (int64_t j = 0; j < last; j++) o[j] = s[j];
        else for (int64_t j = 0; j < last; j++) o[j * ds] = s[j * ss];
        int k = r - 2;
        while (k >= 1 && ++idx[k] == d->shape[k]) idx[k--] = 0;
        if (k < 1) break;
    }
}

lt_status lt_copy_strided(const lt_copy_desc *d, const float *src, float *dst) {
    if (!d) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_copy_strided: NULL descriptor");
    if (d->rank < 1 || d->rank > LT_MAX_RANK)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_copy_strided: rank=%d outside [1, %d]", d->rank, LT_MAX_RANK);
    int64_t n = 1;
    for (int k = 0; k < d->rank; k++) {
        if (d->shape[k] < 0 || d->src_stride[k] < 0 || d->dst_stride[k] < 0)
            return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_copy_strided: dim %d: shape %lld, strides %lld/%lld must be >= 0", k,
                           (long long)d->shape[k], (long long)d->src_stride[k], (long long)d->dst_stride[k]);
        n *= d->shape[k];
    }
    if (n == 0) return LT_OK;
    if (!src || !dst) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_copy_strided: NULL src or dst");
    copy_ctx c = {d, src, dst, 0};
    lt_parallel_for(d->shape[0], copy_task, &c);
    return LT_OK;
}
