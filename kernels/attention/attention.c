/* lt_attention_fwd / lt_attention_bwd: causal or full multi-head scaled dot-product attention
 * (latent.h has the layouts; attention_ref.c and attention_simd.h have the math).
 *
 * This file is the front door shared by every implementation: it validates the descriptor and the pointers
 * (every check names the field and its value in lt_last_error()), then dispatches by ISA, fastest first:
 * attention_*_avx512 (attention_avx512.c) at avx512, attention_*_avx2 (attention_avx2.c) at avx2, else
 * attention_*_ref (attention_ref.c).
 * Neither implementation declines a valid shape, so there is no further fallback.
 * lt_attention_fwd_bf16 / lt_attention_bwd_bf16 go through the same fwd / bwd (checks, then the kernel), which run
 * attention_avx512_bf16.c (bf16 operands, fp32 accumulation) for them; they are refused with LT_ERR_UNSUPPORTED
 * where AVX512_BF16 or the avx512 level is missing (as lt_gemm_bf16), never emulated.
 * Test and benchmark: attention_test.c (ctest runs it at LATENT_MAX_ISA=ref, =avx2 and =avx512; `attention_test --bench`). */
#include <math.h>

#include "attention.h"

static lt_status check(const char *fn, const lt_attention_desc *d) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, __VA_ARGS__)
    if (!d) return BAD("%s: descriptor is NULL", fn);
    if (d->b < 1) return BAD("%s: b=%lld must be >= 1", fn, (long long)d->b);
    if (d->nh < 1) return BAD("%s: nh=%lld must be >= 1", fn, (long long)d->nh);
    if (d->t < 1) return BAD("%s: t=%lld must be >= 1", fn, (long long)d->t);
    if (d->hs < 1) return BAD("%s: hs=%lld must be >= 1", fn, (long long)d->hs);
    if (d->causal != 0 && d->causal != 1) return BAD("%s: causal=%d must be 0 or 1", fn, d->causal);
    if (!isfinite(d->scale)) return BAD("%s: scale=%g must be finite", fn, (double)d->scale);
    /* The kernels index with int64 element offsets up to b*nh*t*hs (times 4 for bytes): an absurd
     * descriptor fails here instead of wrapping inside a kernel. */
    int64_t n;
    if (__builtin_mul_overflow(d->b, d->nh, &n) || __builtin_mul_overflow(n, d->t, &n) ||
        __builtin_mul_overflow(n, d->hs, &n) || n > INT64_MAX / 4)
        return BAD("%s: b=%lld nh=%lld t=%lld hs=%lld: b*nh*t*hs overflows", fn, (long long)d->b, (long long)d->nh,
                   (long long)d->t, (long long)d->hs);
#undef BAD
    return LT_OK;
}

#define NULLCHECK(fn, p) \
    if (!(p)) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, #p)

/* bf16: LT_OK when it can run here, else the refusal (the same wording as lt_gemm_bf16's). */
static lt_status bf16_refused(const char *fn) {
    if (lt_cpu_bf16() && lt_isa_level() >= LT_ISA_AVX512) return LT_OK;
    return lt_fail(LT_ERR_UNSUPPORTED, "%s: bf16 attention needs AVX512_BF16 at ISA avx512 (CPU %s AVX512_BF16, "
                   "level in use: %s)", fn, lt_cpu_bf16() ? "has" : "lacks",
                   lt_isa_level() >= LT_ISA_AVX512 ? "avx512" : lt_isa_level() >= LT_ISA_AVX2 ? "avx2" : "ref");
}

/* The forward of every entry point: the checks, then bf16's kernel (or its refusal) or the fp32 kernel of the
 * level in use. */
static lt_status fwd(const char *fn, int bf16, const lt_attention_desc *d, const float *q, const float *k,
                     const float *v, float *o, float *lse) {
    lt_status st = check(fn, d);
    if (st) return st;
    NULLCHECK(fn, q);
    NULLCHECK(fn, k);
    NULLCHECK(fn, v);
    NULLCHECK(fn, o);
    NULLCHECK(fn, lse);
    if (bf16) return (st = bf16_refused(fn)) ? st : attention_fwd_avx512_bf16(d, q, k, v, o, lse);
    if (lt_isa_level() >= LT_ISA_AVX512) return attention_fwd_avx512(d, q, k, v, o, lse);
    if (lt_isa_level() >= LT_ISA_AVX2) return attention_fwd_avx2(d, q, k, v, o, lse);
    return attention_fwd_ref(d, q, k, v, o, lse);
}

/* The backward of every entry point, as fwd. */
static lt_status bwd(const char *fn, int bf16, const lt_attention_desc *d, const float *q, const float *k,
                     const float *v, const float *o, const float *lse, const float *dout, float *dq, float *dk,
                     float *dv) {
    lt_status st = check(fn, d);
    if (st) return st;
    NULLCHECK(fn, q);
    NULLCHECK(fn, k);
    NULLCHECK(fn, v);
    NULLCHECK(fn, o);
    NULLCHECK(fn, lse);
    NULLCHECK(fn, dout);
    NULLCHECK(fn, dq);
    NULLCHECK(fn, dk);
    NULLCHECK(fn, dv);
    if (bf16) return (st = bf16_refused(fn)) ? st : attention_bwd_avx512_bf16(d, q, k, v, o, lse, dout, dq, dk, dv);
    if (lt_isa_level() >= LT_ISA_AVX512) return attention_bwd_avx512(d, q, k, v, o, lse, dout, dq, dk, dv);
    if (lt_isa_level() >= LT_ISA_AVX2) return attention_bwd_avx2(d, q, k, v, o, lse, dout, dq, dk, dv);
    return attention_bwd_ref(d, q, k, v, o, lse, dout, dq, dk, dv);
}

lt_status lt_attention_fwd(const lt_attention_desc *d, const float *q, const float *k, const float *v, float *o,
                           float *lse) {
    return fwd("lt_attention_fwd", 0, d, q, k, v, o, lse);
}

lt_status lt_attention_bwd(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                           const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    return bwd("lt_attention_bwd", 0, d, q, k, v, o, lse, dout, dq, dk, dv);
}

lt_status lt_attention_fwd_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v, float *o,
                                float *lse) {
    return fwd("lt_attention_fwd_bf16", 1, d, q, k, v, o, lse);
}

lt_status lt_attention_bwd_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    return bwd("lt_attention_bwd_bf16", 1, d, q, k, v, o, lse, dout, dq, dk, dv);
}
