/* AVX2+FMA reparameterization chunk. eps: Philox on 8 blocks at once (philox8), Box-Muller on 4 pairs at once in
 * double (bm_pair4, a line-by-line copy of reparam_bm.h with every product fenced from FMA contraction, so the bits
 * equal the reference's). Then 8 lanes at a time: lv = clamp(logvar) (MAXPS/MINPS operand order keeps NaN),
 * s = vexp(lv/2) (vmath_avx2.h, <= 1.01 ulp), z = fma(s, eps, mu); KL terms mu^2 + s^2 - 1 - lv in double, 4 lanes per
 * accumulator, lanes combined in a fixed order. The row tail uses masked loads (zero lanes add exactly 0 to KL).
 * bwd: dmu = fma(k, mu, dz), dlogvar = dz eps (s/2) + (k/2) fms(s, s, 1).
 * Compute-bound, not memory-bound: reparam_test --bench, n = 2^24, shared 2-core EPYC VM: fwd 99 ms (2.0 GB/s)
 * on 1 thread, 49 ms (4.1 GB/s, 5% of the triad) on 2; bwd 7.0 GB/s on 2. perf: ~half in eps (divide, sqrt and
 * two polynomials per pair, 4 doubles wide), half in vexp and the double KL. (libm Box-Muller was 1.1 GB/s.) */
#include "../common/vmath_avx2.h"
#include "reparam.h"
#include "reparam_bm.h"

/* Keep a product out of an FMA: the compiler cannot see through the empty asm, so mul then add stay two roundings,
 * as in the scalar reparam_bm.h (built without -mfma). Do not drop the fences: without them GCC fuses ~50 of these
 * products, and a double-level difference only rarely flips the float result, so reparam_test's bit comparison
 * (4M draws) would likely miss it; with them, objdump shows FMAs only in vexp, fwd and bwd (20 in all). */
static inline __m256d nf(__m256d x) {
    __asm__("" : "+x"(x));
    return x;
}
#define MUL(a, b) nf(_mm256_mul_pd(a, b))
#define ADD _mm256_add_pd
#define C(x) _mm256_set1_pd(x)

/* bm_pair_scalar (reparam_bm.h) on 4 pairs: wa, wb the 4 first and 4 second words; eps of pair k -> out[2k],
 * out[2k + 1]. Line by line the same operations in the same order. */
static inline void bm_pair4(__m128i wa, __m128i wb, float *out) {
    const __m128 k24 = _mm_set1_ps(1.0f / 16777216.0f), half = _mm_set1_ps(0.5f);
    const __m128 u1 = _mm_mul_ps(_mm_add_ps(_mm_cvtepi32_ps(_mm_srli_epi32(wa, 8)), half), k24);
    const __m128 u2 = _mm_mul_ps(_mm_add_ps(_mm_cvtepi32_ps(_mm_srli_epi32(wb, 8)), half), k24);
    const __m128i bits = _mm_castps_si128(u1);
    __m128i e = _mm_sub_epi32(_mm_srli_epi32(bits, 23), _mm_set1_epi32(127));
    __m128 m = _mm_castsi128_ps(_mm_or_si128(_mm_and_si128(bits, _mm_set1_epi32(0x007FFFFF)), _mm_set1_epi32(0x3F800000)));
    const __m128 big = _mm_cmpgt_ps(m, _mm_set1_ps(BM_SQRT2F));
    m = _mm_blendv_ps(m, _mm_mul_ps(m, half), big);
    e = _mm_sub_epi32(e, _mm_castps_si128(big)); /* big lanes are -1: e + 1 */
    const __m256d md = _mm256_cvtps_pd(m), one = C(1.0);
    const __m256d f = _mm256_div_pd(_mm256_sub_pd(md, one), ADD(md, one)), s = MUL(f, f);
    __m256d p = C(BM_L7);
    p = ADD(MUL(p, s), C(BM_L6)); p = ADD(MUL(p, s), C(BM_L5)); p = ADD(MUL(p, s), C(BM_L4));
    p = ADD(MUL(p, s), C(BM_L3)); p = ADD(MUL(p, s), C(BM_L2)); p = ADD(MUL(p, s), C(BM_L1));
    p = ADD(MUL(p, s), one);
    const __m256d ln = ADD(MUL(_mm256_cvtepi32_pd(e), C(BM_LN2)), MUL(ADD(f, f), p));
    const __m256d r = _mm256_sqrt_pd(MUL(C(-2.0), ln));
    const __m256d x = MUL(_mm256_cvtps_pd(u2), C(4.0)), q = _mm256_floor_pd(ADD(x, C(0.5)));
    const __m256d a = MUL(_mm256_sub_pd(x, q), C(BM_PIO2)), a2 = MUL(a, a);
    __m256d sn = C(BM_S7);
    sn = ADD(MUL(sn, a2), C(BM_S6)); sn = ADD(MUL(sn, a2), C(BM_S5)); sn = ADD(MUL(sn, a2), C(BM_S4));
    sn = ADD(MUL(sn, a2), C(BM_S3)); sn = ADD(MUL(sn, a2), C(BM_S2)); sn = ADD(MUL(sn, a2), C(BM_S1));
    sn = ADD(a, MUL(MUL(a, a2), sn));
    __m256d cs = C(BM_C8);
    cs = ADD(MUL(cs, a2), C(BM_C7)); cs = ADD(MUL(cs, a2), C(BM_C6)); cs = ADD(MUL(cs, a2), C(BM_C5));
    cs = ADD(MUL(cs, a2), C(BM_C4)); cs = ADD(MUL(cs, a2), C(BM_C3)); cs = ADD(MUL(cs, a2), C(BM_C2));
    cs = ADD(MUL(cs, a2), C(BM_C1));
    cs = ADD(one, MUL(a2, cs));
    const __m128i qi = _mm_and_si128(_mm256_cvttpd_epi32(q), _mm_set1_epi32(3));
    /* lane masks, widened to 64 bits: swap sin and cos when q is odd; negate cos for q = 1, 2, sin for q = 2, 3 */
    const __m128i one32 = _mm_set1_epi32(1), two32 = _mm_set1_epi32(2);
    const __m256d swap = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpeq_epi32(_mm_and_si128(qi, one32), one32)));
    const __m256d negc = _mm256_castsi256_pd(
        _mm256_cvtepi32_epi64(_mm_cmpeq_epi32(_mm_and_si128(_mm_add_epi32(qi, one32), two32), two32)));
    const __m256d negs = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpeq_epi32(_mm_and_si128(qi, two32), two32)));
    const __m256d sign = C(-0.0);
    const __m256d c = _mm256_xor_pd(_mm256_blendv_pd(cs, sn, swap), _mm256_and_pd(negc, sign));
    const __m256d sv = _mm256_xor_pd(_mm256_blendv_pd(sn, cs, swap), _mm256_and_pd(negs, sign));
    const __m128 ev = _mm256_cvtpd_ps(_mm256_mul_pd(r, c)), od = _mm256_cvtpd_ps(_mm256_mul_pd(r, sv));
    _mm_storeu_ps(out, _mm_unpacklo_ps(ev, od));
    _mm_storeu_ps(out + 4, _mm_unpackhi_ps(ev, od));
}
#undef MUL
#undef ADD
#undef C

/* hi and lo 32 bits of a * m (m broadcast) on 8 uint32 lanes: even lanes by one MULUDQ, odd lanes by another. */
static inline void mulhilo8(__m256i a, __m256i m, __m256i *hi, __m256i *lo) {
    const __m256i pe = _mm256_mul_epu32(a, m), po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

/* philox4x32_10 (philox.h) on the 8 blocks b .. b + 7 of one stream, word k of block j -> lane j of w[k]. Integer
 * only: exact by construction, and checked against the scalar Philox through eps by reparam_test. */
static inline void philox8(uint64_t b, uint64_t seed, uint64_t stream, __m256i w[4]) {
    uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; j++) { lo[j] = (uint32_t)(b + j); hi[j] = (uint32_t)((b + j) >> 32); }
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo), c1 = _mm256_loadu_si256((const __m256i *)hi);
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream), c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        __m256i h0, l0, h1, l1;
        mulhilo8(c0, m0, &h0, &l0);
        mulhilo8(c2, m1, &h1, &l1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(h1, c1), _mm256_set1_epi32((int)k0));
        c2 = _mm256_xor_si256(_mm256_xor_si256(h0, c3), _mm256_set1_epi32((int)k1));
        c1 = l1;
        c3 = l0;
    }
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}

/* eps for [lo, lo + len) as reparam_eps: 8 Philox blocks (32 elements) per round, 16 pairs in 4 bm_pair4; the rest
 * (< 32 elements, or an lo not on a block) by the scalar reparam_eps. */
static void eps_avx2(uint64_t seed, uint64_t stream, int64_t lo, int64_t len, float *eps) {
    int64_t i = 0;
    if ((lo & 3) == 0) {
        for (; i + 32 <= len; i += 32) {
            __m256i w[4];
            philox8((uint64_t)(lo + i) >> 2, seed, stream, w);
            for (int h = 0; h < 2; h++) { /* blocks 4h .. 4h + 3 */
                const __m128i w0 = h ? _mm256_extracti128_si256(w[0], 1) : _mm256_castsi256_si128(w[0]);
                const __m128i w1 = h ? _mm256_extracti128_si256(w[1], 1) : _mm256_castsi256_si128(w[1]);
                const __m128i w2 = h ? _mm256_extracti128_si256(w[2], 1) : _mm256_castsi256_si128(w[2]);
                const __m128i w3 = h ? _mm256_extracti128_si256(w[3], 1) : _mm256_castsi256_si128(w[3]);
                /* pairs (w0, w1), (w2, w3) of block j are elements 4j, 4j+1 and 4j+2, 4j+3 */
                bm_pair4(_mm_unpacklo_epi32(w0, w2), _mm_unpacklo_epi32(w1, w3), eps + i + 16 * h);
                bm_pair4(_mm_unpackhi_epi32(w0, w2), _mm_unpackhi_epi32(w1, w3), eps + i + 16 * h + 8);
            }
        }
    }
    if (i < len) reparam_eps(seed, stream, lo + i, len - i, eps + i);
}

static inline __m256 clamp8(__m256 x) {
    return _mm256_min_ps(_mm256_set1_ps(REPARAM_LV_MAX), _mm256_max_ps(_mm256_set1_ps(REPARAM_LV_MIN), x));
}

double reparam_fwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                        float *z) {
    float eps[REPARAM_CHUNK];
    eps_avx2(seed, stream, lo, len, eps);
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256d one = _mm256_set1_pd(1.0);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    for (int64_t i = 0; i < len; i += 8) {
        const __m256i mask = vtail_mask(len - i < 8 ? len - i : 8);
        const __m256 m = _mm256_maskload_ps(mu + i, mask), lv = clamp8(_mm256_maskload_ps(logvar + i, mask));
        const __m256 e = _mm256_maskload_ps(eps + i, mask), s = vexp(_mm256_mul_ps(half, lv));
        _mm256_maskstore_ps(z + i, mask, _mm256_fmadd_ps(s, e, m));
        const __m256d m0 = _mm256_cvtps_pd(_mm256_castps256_ps128(m)), m1 = _mm256_cvtps_pd(_mm256_extractf128_ps(m, 1));
        const __m256d s0 = _mm256_cvtps_pd(_mm256_castps256_ps128(s)), s1 = _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1));
        const __m256d l0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lv)), l1 = _mm256_cvtps_pd(_mm256_extractf128_ps(lv, 1));
        a0 = _mm256_add_pd(a0, _mm256_sub_pd(_mm256_fmadd_pd(m0, m0, _mm256_fmsub_pd(s0, s0, one)), l0));
        a1 = _mm256_add_pd(a1, _mm256_sub_pd(_mm256_fmadd_pd(m1, m1, _mm256_fmsub_pd(s1, s1, one)), l1));
    }
    const __m256d a = _mm256_add_pd(a0, a1);
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

void reparam_bwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                      const float *dz, float kl_scale, float *dmu, float *dlogvar) {
    float eps[REPARAM_CHUNK];
    eps_avx2(seed, stream, lo, len, eps);
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), k = _mm256_set1_ps(kl_scale);
    const __m256 hk = _mm256_set1_ps(0.5f * kl_scale);
    for (int64_t i = 0; i < len; i += 8) {
        const __m256i mask = vtail_mask(len - i < 8 ? len - i : 8);
        const __m256 m = _mm256_maskload_ps(mu + i, mask), lv = clamp8(_mm256_maskload_ps(logvar + i, mask));
        const __m256 e = _mm256_maskload_ps(eps + i, mask), g = _mm256_maskload_ps(dz + i, mask);
        const __m256 s = vexp(_mm256_mul_ps(half, lv));
        _mm256_maskstore_ps(dmu + i, mask, _mm256_fmadd_ps(k, m, g));
        const __m256 a = _mm256_mul_ps(_mm256_mul_ps(g, e), _mm256_mul_ps(half, s));
        _mm256_maskstore_ps(dlogvar + i, mask, _mm256_fmadd_ps(hk, _mm256_fmsub_ps(s, s, one), a));
    }
}
