/* lt_gelu_fwd / lt_gelu_bwd: exact GELU, y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's F.gelu default,
 * approximate='none'), and dx = dy (Phi(x) + x phi(x)).
 *
 * This file validates (n >= 0, pointers non-NULL when n > 0; y may equal x and dx may equal dy, but a shifted
 * overlap is refused since it would read outputs as inputs), then cuts [0, n) into CHUNK-element tasks and runs
 * gelu_*_avx512 (gelu_avx512.c, the AVX2 path's bits) at ISA avx512, gelu_*_avx2 (gelu_avx2.c) at avx2, else
 * gelu_*_ref (gelu_ref.c). Elementwise: the bits never depend on
 * the thread count. Test and benchmark: gelu_test.c (`gelu_test --bench`, `gelu_test --sweep`). */
#include "gelu.h"

#define CHUNK 16384 /* elements per task: 64 KB per array */

typedef struct { const float *x, *dy; float *out; int64_t n; int isa; } gelu_ctx;

static void fwd_task(void *p, int64_t t, int worker) {
    const gelu_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    (c->isa >= LT_ISA_AVX512 ? gelu_fwd_avx512 : c->isa >= LT_ISA_AVX2 ? gelu_fwd_avx2 : gelu_fwd_ref)(len, c->x + lo, c->out + lo);
}

static void bwd_task(void *p, int64_t t, int worker) {
    const gelu_ctx *c = p;
    int64_t lo = t * CHUNK, len = c->n - lo < CHUNK ? c->n - lo : CHUNK;
    (c->isa >= LT_ISA_AVX512 ? gelu_bwd_avx512 : c->isa >= LT_ISA_AVX2 ? gelu_bwd_avx2 : gelu_bwd_ref)(len, c->x + lo, c->dy + lo, c->out + lo);
}

/* Do [a, a + n) and [b, b + n) (floats) overlap without being the same array? */
static int shifted_overlap(const float *a, const float *b, int64_t n) {
    return a != b && a < b + n && b < a + n;
}

lt_status lt_gelu_fwd(int64_t n, const float *x, float *y) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_fwd: n=%lld must be >= 0", (long long)n);
    if (n == 0) return LT_OK;
    if (n > INT64_MAX / 4) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_fwd: n=%lld overflows int64 bytes", (long long)n);
    if (!x || !y) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_fwd: %s is NULL with n=%lld", !x ? "x" : "y", (long long)n);
    if (shifted_overlap(x, y, n))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_fwd: y=%p overlaps x=%p without being equal to it", (void *)y, (const void *)x);
    gelu_ctx c = {x, NULL, y, n, lt_isa_level()};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, fwd_task, &c);
    return LT_OK;
}

lt_status lt_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_bwd: n=%lld must be >= 0", (long long)n);
    if (n == 0) return LT_OK;
    if (n > INT64_MAX / 4) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_bwd: n=%lld overflows int64 bytes", (long long)n);
    if (!x || !dy || !dx)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_bwd: %s is NULL with n=%lld", !x ? "x" : !dy ? "dy" : "dx", (long long)n);
    if (shifted_overlap(dx, dy, n) || shifted_overlap(dx, x, n))
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_gelu_bwd: dx=%p overlaps %s=%p without being equal to it", (void *)dx,
                       shifted_overlap(dx, dy, n) ? "dy" : "x", shifted_overlap(dx, dy, n) ? (const void *)dy : (const void *)x);
    gelu_ctx c = {x, dy, dx, n, lt_isa_level()};
    lt_parallel_for((n + CHUNK - 1) / CHUNK, bwd_task, &c);
    return LT_OK;
}
