/* lt_attention_decode_fwd: single-query multi-head attention over per-row KV caches (latent.h has the contract).
 * Inference only: there is no backward (decoding never differentiates through the cache).
 *
 * This file validates the descriptor and every pointer a row uses, then runs one task per (row, head) pair on the
 * pool: attn_decode_head_avx512 (attention_decode_avx512.c) at ISA avx512, _avx2 at avx2, else _ref
 * (attention_decode_ref.c). A pair is computed start to end by one task in a fixed order (keys in blocks of 64,
 * online softmax between blocks), so the bits depend neither on the thread count nor on the other rows: a row
 * gives the same output alone or in any batch. Small calls (under ~64K multiply-adds) run on the calling
 * thread: the pool's hand-off costs more. Test and benchmark: attention_decode_test.c. */
#include "attention_decode.h"

typedef struct {
    const lt_attention_decode_desc *d;
    const float *q;
    const float *const *k, *const *v;
    const int32_t *len;
    float *o;
    int isa;
} ctx_t;

static void task(void *p, int64_t t, int worker) {
    const ctx_t *c = p;
    const lt_attention_decode_desc *d = c->d;
    int64_t r = t / d->nh, h = t % d->nh;
    const float *q = c->q + r * d->ldq + h * d->hs;
    const float *k = c->k[r] + h * d->hs, *v = c->v[r] + h * d->hs;
    float *o = c->o + r * d->ldo + h * d->hs;
    (c->isa >= LT_ISA_AVX512 ? attn_decode_head_avx512 : c->isa >= LT_ISA_AVX2 ? attn_decode_head_avx2 : attn_decode_head_ref)(
        d->hs, c->len[r], d->scale, q, k, v, d->ldkv, o);
}

lt_status lt_attention_decode_fwd(const lt_attention_decode_desc *d, const float *q, const float *const *k,
                                  const float *const *v, const int32_t *len, float *o) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_attention_decode_fwd: " __VA_ARGS__)
    if (!d) return BAD("descriptor is NULL");
    if (d->rows < 0 || d->nh < 1 || d->hs < 1)
        return BAD("rows=%lld must be >= 0, nh=%lld and hs=%lld >= 1", (long long)d->rows, (long long)d->nh, (long long)d->hs);
    if (d->rows == 0) return LT_OK;
    int64_t c;
    if (__builtin_mul_overflow(d->nh, d->hs, &c) || c > INT64_MAX / 4) return BAD("nh=%lld x hs=%lld overflows", (long long)d->nh, (long long)d->hs);
    if (d->ldq < c || d->ldkv < c || d->ldo < c)
        return BAD("ldq=%lld, ldkv=%lld, ldo=%lld must be >= nh*hs=%lld", (long long)d->ldq, (long long)d->ldkv, (long long)d->ldo, (long long)c);
    if (!(d->scale == d->scale) || d->scale == 1.0f / 0.0f || d->scale == -1.0f / 0.0f) return BAD("scale=%g must be finite", d->scale);
    if (!q || !k || !v || !len || !o)
        return BAD("%s is NULL with rows=%lld", !q ? "q" : !k ? "k" : !v ? "v" : !len ? "len" : "o", (long long)d->rows);
    int64_t work = 0;
    for (int64_t r = 0; r < d->rows; r++) {
        if (len[r] < 1) return BAD("len[%lld]=%d must be >= 1 (a query sees at least its own key)", (long long)r, len[r]);
        if (!k[r] || !v[r]) return BAD("%s[%lld] is NULL", !k[r] ? "k" : "v", (long long)r);
        /* o must not overlap a cache the same call reads: another task may still read it. */
        const float *or0 = o + r * d->ldo, *or1 = or0 + c;
        for (int64_t s = 0; s < d->rows; s++) {
            const float *ks = k[s], *ke = k[s] + (int64_t)(len[s] - 1) * d->ldkv + c;
            const float *vs = v[s], *ve = v[s] + (int64_t)(len[s] - 1) * d->ldkv + c;
            if ((or0 < ke && ks < or1) || (or0 < ve && vs < or1))
                return BAD("output row %lld overlaps the cache of row %lld", (long long)r, (long long)s);
            if (s > 16) break; /* the quadratic check is bounded: callers own disjoint buffers, this catches slips */
        }
        work += (int64_t)len[r];
    }
    ctx_t x = {d, q, k, v, len, o, lt_isa_level()};
    int64_t tasks = d->rows * d->nh;
    if (work * c < (1 << 16)) {
        for (int64_t t = 0; t < tasks; t++) task(&x, t, 0);
    } else {
        lt_parallel_for(tasks, task, &x);
    }
    return LT_OK;
#undef BAD
}
