/* lt_softmax_xent: losses[i] = logsumexp(logits[i, :]) - logits[i, targets[i]], and optionally
 * dlogits[i, :] = (softmax(logits[i, :]) - onehot(targets[i])) * dscale (latent.h has the contract).
 *
 * This file validates (every message names the argument and its value), then splits the rows into tasks of
 * about TASK_ELEMS logits and runs softmax_xent_rows_avx512 (softmax_xent_avx512.c) at avx512,
 * softmax_xent_rows_avx2 (softmax_xent_avx2.c) when the level in use is avx2,
 * else softmax_xent_rows_ref (softmax_xent_ref.c). Rows are independent and each row is computed by one task
 * start to finish, so the bits do not depend on the thread count.
 * All targets are checked before anything is written: a bad call leaves losses and dlogits untouched.
 * Test and benchmark: softmax_xent_test.c (`softmax_xent_test --bench`). */
#include <math.h>

#include "softmax_xent.h"

#define TASK_ELEMS 32768 /* logits per task (128 KB): amortizes a task, balances 2048-row batches */

typedef struct {
    int64_t n, v, rows_per_task;
    const float *logits;
    const int32_t *targets;
    float *losses, *dlogits, dscale;
    int isa;
} sx_ctx;

static void sx_task(void *p, int64_t task, int worker) {
    const sx_ctx *c = p;
    int64_t r0 = task * c->rows_per_task, rows = c->n - r0 < c->rows_per_task ? c->n - r0 : c->rows_per_task;
    (c->isa >= LT_ISA_AVX512 ? softmax_xent_rows_avx512 : c->isa >= LT_ISA_AVX2 ? softmax_xent_rows_avx2 : softmax_xent_rows_ref)(
        rows, c->v, c->logits + r0 * c->v, c->targets + r0, c->losses + r0, c->dlogits ? c->dlogits + r0 * c->v : NULL,
        c->dscale);
}

/* Do the byte ranges [a, a + na) and [b, b + nb) intersect? */
static int overlap(const void *a, int64_t na, const void *b, int64_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na > 0 && nb > 0 && x < y + (uintptr_t)nb && y < x + (uintptr_t)na;
}

lt_status lt_softmax_xent(int64_t n, int64_t v, const float *logits, const int32_t *targets, float *losses,
                          float *dlogits, float dscale) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_softmax_xent: " __VA_ARGS__)
    if (n < 0 || v < 0) return BAD("n=%lld v=%lld must be >= 0", (long long)n, (long long)v);
    if (n == 0) return LT_OK;
    int64_t nv;
    if (__builtin_mul_overflow(n, v, &nv) || nv > INT64_MAX / 4)
        return BAD("n=%lld x v=%lld logits overflow int64 bytes", (long long)n, (long long)v);
    if (!targets) return BAD("targets is NULL with n=%lld", (long long)n);
    if (!losses) return BAD("losses is NULL with n=%lld", (long long)n);
    if (!logits && v > 0) return BAD("logits is NULL for a %lld x %lld problem", (long long)n, (long long)v);
    if (dlogits && !isfinite(dscale)) return BAD("dscale=%g must be finite when dlogits is given", (double)dscale);
    /* In place (dlogits == logits) is supported; a shifted overlap would read gradients as logits. */
    if (dlogits && dlogits != logits && overlap(dlogits, nv * 4, logits, nv * 4))
        return BAD("dlogits=%p overlaps logits=%p without being equal to it", (void *)dlogits, (const void *)logits);
    if (overlap(losses, n * 4, logits, nv * 4) || (dlogits && overlap(losses, n * 4, dlogits, nv * 4)))
        return BAD("losses=%p overlaps logits or dlogits", (void *)losses);
    for (int64_t i = 0; i < n; i++)
        if (targets[i] >= v)
            return BAD("targets[%lld]=%d >= v=%lld (negative targets mark ignored rows)", (long long)i, targets[i],
                       (long long)v);
#undef BAD
    sx_ctx c = {n, v, v > 0 && v < TASK_ELEMS ? TASK_ELEMS / v : 1, logits, targets, losses, dlogits, dscale,
                lt_isa_level()};
    lt_parallel_for((n + c.rows_per_task - 1) / c.rows_per_task, sx_task, &c);
    return LT_OK;
}
