/* lt_embedding_bwd: dtable[ids[i], :] += dout[i, :] for i < n (the backward of an embedding lookup).
 *
 * Deterministic without atomics or sorting: the table is cut into tasks of COLS columns x a range of vocabulary
 * rows; each task reads every id in index order and adds only its own rows and columns, so each dtable element
 * gets exactly the additions a sequential loop would make, in the same order (same bits as embedding_bwd_ref,
 * for any thread count). With few column blocks (small C) the vocabulary is also split so that there are at
 * least MIN_TASKS tasks; each then re-reads the n ids (4 bytes each, against 4*COLS bytes of dout per row).
 * Every id is checked against [0, vocab) before anything is written. embedding_bwd_avx2 (embedding_avx2.c) at
 * ISA avx2, else embedding_bwd_ref (embedding_ref.c). Test and benchmark: embedding_test.c. */
#include "embedding.h"

#define COLS 64      /* floats per column block: 256 bytes, four cache lines of a row */
#define MIN_TASKS 8

typedef struct {
    int64_t n, c, vocab, ncb, vrange;
    const int32_t *ids;
    const float *dout;
    float *dtable;
    int avx2;
} emb_ctx;

static void task(void *p, int64_t t, int worker) {
    const emb_ctx *k = p;
    int64_t cb = t % k->ncb, vb = t / k->ncb;
    int64_t c0 = cb * COLS, c1 = c0 + COLS < k->c ? c0 + COLS : k->c;
    int64_t v0 = vb * k->vrange, v1 = v0 + k->vrange < k->vocab ? v0 + k->vrange : k->vocab;
    (k->avx2 ? embedding_bwd_avx2 : embedding_bwd_ref)(k->n, k->c, c0, c1, v0, v1, k->ids, k->dout, k->dtable);
}

lt_status lt_embedding_bwd(int64_t n, int64_t c, int64_t vocab, const int32_t *ids, const float *dout, float *dtable) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_embedding_bwd: " __VA_ARGS__)
    if (n < 0 || c < 0 || vocab < 0)
        return BAD("n=%lld c=%lld vocab=%lld must be >= 0", (long long)n, (long long)c, (long long)vocab);
    int64_t e;
    if (__builtin_mul_overflow(n, c, &e) || e > INT64_MAX / 4 || __builtin_mul_overflow(vocab, c, &e) || e > INT64_MAX / 4)
        return BAD("n=%lld or vocab=%lld x c=%lld overflows int64 bytes", (long long)n, (long long)vocab, (long long)c);
    if (n == 0) return LT_OK;
    if (!ids) return BAD("ids is NULL with n=%lld", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return BAD("ids[%lld]=%d outside [0, vocab=%lld)", (long long)i, ids[i], (long long)vocab);
    if (c == 0) return LT_OK;
    if (!dout || !dtable) return BAD("%s is NULL for n=%lld c=%lld", !dout ? "dout" : "dtable", (long long)n, (long long)c);
    uintptr_t a = (uintptr_t)dout, b = (uintptr_t)dtable;
    if (a < b + (uintptr_t)(vocab * c * 4) && b < a + (uintptr_t)(n * c * 4))
        return BAD("dout=%p overlaps dtable=%p", (const void *)dout, (void *)dtable);
#undef BAD
    const int64_t ncb = (c + COLS - 1) / COLS;
    int64_t nv = ncb >= MIN_TASKS ? 1 : (MIN_TASKS + ncb - 1) / ncb;
    if (nv > vocab) nv = vocab;
    const int64_t vrange = (vocab + nv - 1) / nv;
    emb_ctx k = {n, c, vocab, ncb, vrange, ids, dout, dtable, lt_isa_level() >= LT_ISA_AVX2};
    lt_parallel_for(ncb * ((vocab + vrange - 1) / vrange), task, &k);
    return LT_OK;
}
