/* lt_sumsq: *out = sum_i x[i]^2 in double, for the global gradient norm (clip_grad_norm_).
 *
 * Deterministic by construction: x is cut into 4096-element chunks; each chunk's sum (sumsq_chunk_avx2 at ISA
 * avx2, else sumsq_chunk_ref) lands in its own slot, whichever thread computes it; then the slots are added in
 * chunk order on the calling thread. x^2 of a float is exact in double (48 significant bits), so the only
 * roundings are the double additions: relative error below (4096/16 + n/4096) * 2^-53, far under anything a
 * float gradient can notice. Tasks take TASK_CHUNKS chunks (256 KB of x) each.
 * Test and benchmark: sumsq_test.c (`sumsq_test --bench`). */
#include <math.h>

#include "sumsq.h"

#define TASK_CHUNKS 16
#define STACK_SLOTS 512

typedef struct { const float *x; int64_t n; double *slot; int avx2; } sumsq_ctx;

static void task(void *p, int64_t t, int worker) {
    const sumsq_ctx *c = p;
    for (int64_t q = t * TASK_CHUNKS; q < (t + 1) * TASK_CHUNKS && q * SUMSQ_CHUNK < c->n; q++) {
        int64_t lo = q * SUMSQ_CHUNK, len = c->n - lo < SUMSQ_CHUNK ? c->n - lo : SUMSQ_CHUNK;
        c->slot[q] = (c->avx2 ? sumsq_chunk_avx2 : sumsq_chunk_ref)(c->x + lo, len);
    }
}

lt_status lt_sumsq(int64_t n, const float *x, double *out) {
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_sumsq: n=%lld must be >= 0", (long long)n);
    if (!out) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_sumsq: out is NULL");
    if (n > 0 && !x) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_sumsq: x is NULL with n=%lld", (long long)n);
    if (n > INT64_MAX / 4) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_sumsq: n=%lld overflows int64 bytes", (long long)n);
    const int64_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double stack[STACK_SLOTS], *slot = chunks <= STACK_SLOTS ? stack : lt_alloc((size_t)chunks * sizeof(double));
    if (!slot) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_sumsq: %lld chunk sums", (long long)chunks);
    sumsq_ctx c = {x, n, slot, lt_isa_level() >= LT_ISA_AVX2};
    lt_parallel_for((chunks + TASK_CHUNKS - 1) / TASK_CHUNKS, task, &c);
    double s = 0;
    for (int64_t q = 0; q < chunks; q++) s += slot[q];
    if (slot != stack) lt_free(slot);
    *out = s;
    return LT_OK;
}
