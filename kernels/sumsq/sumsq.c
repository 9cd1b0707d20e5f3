/* lt_sumsq: *out = sum_i x[i]^2 in double, for the global gradient norm (clip_grad_norm_).
 *
 * Deterministic by construction: x is cut into 4096-element chunks; each chunk's sum (sumsq_chunk_avx2 at ISA
 * avx2, else sumsq_chunk_ref) lands in its own slot, whichever thread computes it; then the slots are added in
 * chunk order on the calling thread. x^2 of a float is exact in double (48 significant bits), so the only
 * roundings are the double additions: relative error below (4096/16 + n/4096) * 2^-53, far under anything a
 * float gradient can notice. Tasks take TASK_CHUNKS chunks (256 KB of x) each.
 * lt_sumsq_segments: the same sum over several segments of one buffer (a model's flat gradient buffer, one segment
 * per parameter) in ONE parallel pass: every segment is chunked from its own start exactly as lt_sumsq chunks it,
 * all chunks of all segments run as one task list, then each segment's chunk sums are added in chunk order and
 * the segment totals in segment order, so the result has the bits of
 *     double s = 0; for (k) { double t; lt_sumsq(len[k], x + off[k], &t); s += t; }
 * (what optim.AdamW did per parameter before the flat buffer) for any thread count.
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

typedef struct { const float *x; const int64_t *lo, *len; double *slot; int64_t chunks; int avx2; } sumsq_seg_ctx;

static void seg_task(void *p, int64_t t, int worker) {
    const sumsq_seg_ctx *c = p;
    for (int64_t q = t * TASK_CHUNKS; q < (t + 1) * TASK_CHUNKS && q < c->chunks; q++)
        c->slot[q] = (c->avx2 ? sumsq_chunk_avx2 : sumsq_chunk_ref)(c->x + c->lo[q], c->len[q]);
}

lt_status lt_sumsq_segments(int64_t nseg, const int64_t *offset, const int64_t *len, const float *x, double *out) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_sumsq_segments: " __VA_ARGS__)
    if (nseg < 0) return BAD("nseg=%lld must be >= 0", (long long)nseg);
    if (!out) return BAD("out is NULL");
    if (nseg > 0 && (!offset || !len)) return BAD("%s is NULL with nseg=%lld", !offset ? "offset" : "len", (long long)nseg);
    int64_t chunks = 0;
    for (int64_t k = 0; k < nseg; k++) {
        if (offset[k] < 0 || len[k] < 0) return BAD("segment %lld: offset=%lld len=%lld must be >= 0", (long long)k,
                                                   (long long)offset[k], (long long)len[k]);
        if (len[k] > INT64_MAX / 4 - offset[k]) return BAD("segment %lld: offset + len overflows int64 bytes", (long long)k);
        if (len[k] > 0 && !x) return BAD("x is NULL with segment %lld of len=%lld", (long long)k, (long long)len[k]);
        chunks += (len[k] + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    }
#undef BAD
    if (chunks == 0) {
        *out = 0.0;
        return LT_OK;
    }
    /* one block: chunk sums, then each chunk's start and length in x */
    double *slot = lt_alloc((size_t)chunks * (sizeof(double) + 2 * sizeof(int64_t)));
    if (!slot) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_sumsq_segments: %lld chunk sums", (long long)chunks);
    int64_t *lo = (int64_t *)(slot + chunks), *ln = lo + chunks, q = 0;
    for (int64_t k = 0; k < nseg; k++)
        for (int64_t i = 0; i < len[k]; i += SUMSQ_CHUNK, q++) {
            lo[q] = offset[k] + i;
            ln[q] = len[k] - i < SUMSQ_CHUNK ? len[k] - i : SUMSQ_CHUNK;
        }
    sumsq_seg_ctx c = {x, lo, ln, slot, chunks, lt_isa_level() >= LT_ISA_AVX2};
    lt_parallel_for((chunks + TASK_CHUNKS - 1) / TASK_CHUNKS, seg_task, &c);
    double s = 0;
    q = 0;
    for (int64_t k = 0; k < nseg; k++) {
        double seg = 0; /* lt_sumsq of this segment, bit for bit */
        for (int64_t i = 0; i < len[k]; i += SUMSQ_CHUNK) seg += slot[q++];
        s += seg;
    }
    lt_free(slot);
    *out = s;
    return LT_OK;
}
