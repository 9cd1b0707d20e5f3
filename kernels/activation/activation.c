/* lt_act_fwd / lt_act_bwd / lt_bce_logits: validation (n >= 0, known kind, non-NULL pointers when n > 0, outputs
 * equal to an input or disjoint from it), then CHUNK-element tasks on the pool, each running the AVX-512 (forward
 * only), AVX2 or the reference loop. Pointwise: the bits never depend on the thread count. BCE's loss sum is deterministic too: each
 * 4096-element chunk is summed in double in order, and the chunk sums are added in chunk order afterwards.
 * Test and benchmark: activation_test.c. */
#include <stdlib.h>

#include "activation.h"

#define CHUNK 16384
#define BCE_CHUNK 4096

typedef struct { int kind; float alpha; const float *x, *dy; float *out; int64_t n; int isa; } act_ctx;

static void fwd_task(void *p, int64_t t, int worker) {
    const act_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    (c->isa >= LT_ISA_AVX512 ? act_fwd_avx512 : c->isa >= LT_ISA_AVX2 ? act_fwd_avx2 : act_fwd_ref)(c->kind, len, c->alpha, c->x + lo, c->out + lo);
}

static void bwd_task(void *p, int64_t t, int worker) {
    const act_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    (c->isa >= LT_ISA_AVX2 ? act_bwd_avx2 : act_bwd_ref) /* AVX2 at avx512 too: activation_simd.h */(c->kind, len, c->alpha, c->x + lo, c->dy + lo, c->out + lo);
}

static int shifted_overlap(const float *a, const float *b, int64_t n) { return a != b && a < b + n && b < a + n; }

static lt_status check(const char *fn, int kind, int64_t n) {
    if (kind < LT_ACT_RELU || kind > LT_ACT_SIGMOID) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: unknown activation kind %d", fn, kind);
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld must be >= 0", fn, (long long)n);
    if (n > INT64_MAX / 4) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: n=%lld overflows int64 bytes", fn, (long long)n);
    return LT_OK;
}

lt_status lt_act_fwd(int32_t kind, int64_t n, float alpha, const float *x, float *y) {
    lt_status s = check("lt_act_fwd", kind, n);
    if (s != LT_OK || n == 0) return s;
    if (!x || !y) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_act_fwd: %s is NULL with n=%lld", !x ? "x" : "y", (long long)n);
    if (shifted_overlap(x, y, n)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_act_fwd: y overlaps x without being equal to it");
    act_ctx c = {kind, alpha, x, NULL, y, n, lt_isa_level()};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, fwd_task, &c);
    return LT_OK;
}

lt_status lt_act_bwd(int32_t kind, int64_t n, float alpha, const float *in, const float *dy, float *dx) {
    lt_status s = check("lt_act_bwd", kind, n);
    if (s != LT_OK || n == 0) return s;
    if (!in || !dy || !dx)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_act_bwd: %s is NULL with n=%lld", !in ? "in" : !dy ? "dy" : "dx", (long long)n);
    if (shifted_overlap(dx, dy, n) || shifted_overlap(dx, in, n))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_act_bwd: dx overlaps %s without being equal to it", shifted_overlap(dx, dy, n) ? "dy" : "in");
    act_ctx c = {kind, alpha, in, dy, dx, n, lt_isa_level()};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, bwd_task, &c);
    return LT_OK;
}

typedef struct { const float *x, *t; float tc, dscale; float *dx; int64_t n; double *part; } bce_ctx;

static void bce_task(void *p, int64_t t, int worker) {
    const bce_ctx *c = p;
    int64_t lo = t * BCE_CHUNK, len = c->n - lo < BCE_CHUNK ? c->n - lo : BCE_CHUNK;
    c->part[t] = bce_chunk(len, c->x + lo, c->t ? c->t + lo : NULL, c->tc, c->dx ? c->dx + lo : NULL, c->dscale);
}

lt_status lt_bce_logits(int64_t n, const float *logits, const float *targets, float t_const, double *loss, float *dlogits, float dscale) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: n=%lld must be >= 0", (long long)n);
    if (n > INT64_MAX / 4) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: n=%lld overflows int64 bytes", (long long)n);
    if (n > 0 && !logits) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: logits is NULL with n=%lld", (long long)n);
    if (dlogits && shifted_overlap(dlogits, logits, n))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: dlogits overlaps logits without being equal to it");
    if (dlogits && targets && (const float *)dlogits != targets && shifted_overlap(dlogits, targets, n))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: dlogits overlaps targets");
    if (dlogits && (const float *)dlogits == targets)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_bce_logits: dlogits must not be the targets array");
    if (n == 0) {
        if (loss) *loss = 0;
        return LT_OK;
    }
    int64_t chunks = (n + BCE_CHUNK - 1) / BCE_CHUNK;
    double *part = lt_alloc((size_t)chunks * sizeof(double));
    if (!part) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_bce_logits: %lld partial sums", (long long)chunks);
    bce_ctx c = {logits, targets, t_const, dscale, dlogits, n, part};
    lt_parallel_for(chunks, bce_task, &c);
    double s = 0;
    for (int64_t i = 0; i < chunks; i++) s += part[i];
    lt_free(part);
    if (loss) *loss = s;
    return LT_OK;
}
