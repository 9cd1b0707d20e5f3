/* AVX-512 reparameterization chunk: the float operations of reparam_bm.h / reparam_ref.c, 16 lanes wide, in the
 * same order, so eps, z, the gradients and the KL sum have the reference's (and AVX2's, CUDA's) bits; reparam_test
 * checks ref vs avx2 vs avx512 at 1 and 2 threads.
 *
 * Per 32-element group g (the mapping of reparam_ref.c: Philox block 8g + j gives elements j, j + 8 (words 0, 1)
 * and j + 16, j + 24 (words 2, 3)):
 *   philox: the group's 8 blocks as the 8 64-bit lanes of one ZMM per word; two groups at a time as two
 *     independent sets that hide the multiply latency. A round per set: 2 VPMULUDQ (the full 32x32 -> 64 product;
 *     the garbage upper half of a lane is ignored by the next VPMULUDQ), 2 shifts (hi = p >> 32), 2 VPTERNLOGD
 *     (hi ^ c ^ key in one instruction).
 *   one VPERMT2D per word pair packs the low halves: wa = [w0 of blocks 0..7 | w2 of blocks 0..7], wb = [w1 | w3];
 *   bm16: Box-Muller of those 16 pairs -> c = [elements 0..7 | 16..23], s = [8..15 | 24..31]; the quadrant
 *     swap by a mask blend, the sign flips by VPTERNLOGD; two VSHUFF64X2 reorder to elements 0..15 and 16..31.
 *   per 16 elements: lv = clamp (MAXPS/MINPS operand order keeps NaN), s = rexp16(lv / 2), z = fma(s, eps, mu),
 *     KL term fma(mu, mu, fms(s, s, 1)) - lv; the reference's order ((t[j] + t[j + 8]) + t[j + 16]) + t[j + 24]
 *     by three 256-bit adds, then lane j (0..7) of one double accumulator; the last partial group by masked
 *     loads and stores (masked lanes load 0, so their term is +0 as in the reference).
 * bwd: dmu = fma(k, mu, dz), dlogvar = fma(k/2, fms(s, s, 1), (dz eps)(s/2)).
 * Built with -ffp-contract=off (CMakeLists.txt): every FMA here is an explicit intrinsic.
 * Speed (BENCHMARKS.md, AVX-512 section): compute-bound at ~4 cycles per element per core on Zen 4 (Philox ~1.2,
 * Box-Muller ~1.3, exp + z + KL ~1.2), 1.5-1.9x the AVX2 path. */
#include <immintrin.h>

#include "reparam.h"
#include "reparam_bm.h"

#define PS(x) _mm512_set1_ps(x)
#define EPI(x) _mm512_set1_epi32((int)(x))
#define XOR3 0x96 /* VPTERNLOGD imm: a ^ b ^ c */
#define XAND 0x78 /* a ^ (b & c) */

typedef struct {
    __m512i k0[10], k1[10]; /* round keys, broadcast, as 64-bit lanes */
    __m512i s2, s3;         /* counter words 2, 3 (stream) */
} philox_keys16;

static void keys_init(uint64_t seed, uint64_t stream, philox_keys16 *k) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        k->k0[r] = _mm512_set1_epi64(k0);
        k->k1[r] = _mm512_set1_epi64(k1);
    }
    k->s2 = _mm512_set1_epi64((uint32_t)stream);
    k->s3 = _mm512_set1_epi64((uint32_t)(stream >> 32));
}

/* philox4x32_10 (philox.h) of the 8 NSET blocks of groups g .. g + NSET - 1, the groups as independent sets (a
 * round's chain is VPMULUDQ -> shift -> VPTERNLOGD, ~5 cycles; NSET = 4 sets keep the multiplier busy instead:
 * Philox alone 0.377 ns per element with 2 sets, 0.321 with 4, in L1 on Zen 4; the loops over the sets must be
 * unrolled, or GCC keeps the sets in memory: 0.81). Out, per group h: wa[h] = [w0 | w2] and wb[h] = [w1 | w3] of its
 * 8 blocks (block 8(g + h) + j in lanes j and 8 + j). */
#define NSET 4
static inline void philox_sets(uint64_t g, const philox_keys16 *k, __m512i wa[NSET], __m512i wb[NSET]) {
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    const __m512i b = _mm512_add_epi64(_mm512_set1_epi64((int64_t)(g * 8)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    __m512i c0[NSET], c1[NSET], c2[NSET], c3[NSET];
#pragma GCC unroll 8
    for (int h = 0; h < NSET; h++) {
        c0[h] = _mm512_add_epi64(b, _mm512_set1_epi64(8 * h));
        c1[h] = _mm512_srli_epi64(c0[h], 32);
        c2[h] = k->s2;
        c3[h] = k->s3;
    }
    for (int r = 0; r < 10; r++) {
    #pragma GCC unroll 8
    for (int h = 0; h < NSET; h++) {
            const __m512i p0 = _mm512_mul_epu32(c0[h], m0), p1 = _mm512_mul_epu32(c2[h], m1);
            c0[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), c1[h], k->k0[r], XOR3);
            c2[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), c3[h], k->k1[r], XOR3);
            c1[h] = p1;
            c3[h] = p0;
        }
    }
    /* even dwords (the low halves) of x then of y */
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#pragma GCC unroll 8
    for (int h = 0; h < NSET; h++) {
        wa[h] = _mm512_permutex2var_epi32(c0[h], ev, c2[h]);
        wb[h] = _mm512_permutex2var_epi32(c1[h], ev, c3[h]);
    }
}

/* bm_pair (reparam_bm.h) on 16 pairs: *c = r cos t, *s = r sin t. Line by line the same operations. */
static inline void bm16(__m512i wa, __m512i wb, __m512 *cos_out, __m512 *sin_out) {
    const __m512 one = PS(1.0f);
    const __m512 u1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(wa, 8)), PS(0x1p-24f), PS(0x1p-25f));
    const __m512i ix = _mm512_add_epi32(_mm512_castps_si512(u1), EPI(0x3f800000u - BM_SQRTH_BITS));
    const __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(ix, 23), EPI(127)));
    const __m512 m = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_and_si512(ix, EPI(0x007fffffu)), EPI(BM_SQRTH_BITS)));
    const __m512 f = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one)), s = _mm512_mul_ps(f, f);
    __m512 p = _mm512_fmadd_ps(PS(BM_L4), s, PS(BM_L3));
    p = _mm512_fmadd_ps(p, s, PS(BM_L2));
    p = _mm512_fmadd_ps(p, s, PS(BM_L1));
    const __m512 f2 = _mm512_add_ps(f, f), lnm = _mm512_fmadd_ps(f2, _mm512_mul_ps(s, p), f2);
    const __m512 ln = _mm512_fmadd_ps(e, PS(BM_LN2_HI), _mm512_fmadd_ps(e, PS(BM_LN2_LO), lnm));
    const __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(ln, PS(-2.0f)));
    const __m512 x = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(wb, 8)), PS(0x1p-22f), PS(0x1p-23f));
    const __m512 xm = _mm512_add_ps(x, PS(BM_MAGIC));
    const __m512 y = _mm512_sub_ps(x, _mm512_sub_ps(xm, PS(BM_MAGIC))), y2 = _mm512_mul_ps(y, y);
    __m512 sp = _mm512_fmadd_ps(PS(BM_S9), y2, PS(BM_S7));
    sp = _mm512_fmadd_ps(sp, y2, PS(BM_S5));
    sp = _mm512_fmadd_ps(sp, y2, PS(BM_S3));
    const __m512 sn = _mm512_fmadd_ps(y, PS(BM_PIO2_HI),
                                      _mm512_fmadd_ps(y, PS(BM_PIO2_LO), _mm512_mul_ps(_mm512_mul_ps(y, y2), sp)));
    __m512 cp = _mm512_fmadd_ps(PS(BM_C10), y2, PS(BM_C8));
    cp = _mm512_fmadd_ps(cp, y2, PS(BM_C6));
    cp = _mm512_fmadd_ps(cp, y2, PS(BM_C4));
    cp = _mm512_fmadd_ps(cp, y2, PS(BM_C2));
    const __m512 cs = _mm512_fmadd_ps(cp, y2, one);
    const __m512i q = _mm512_castps_si512(xm), sign = EPI(0x80000000u);
    const __mmask16 swap = _mm512_test_epi32_mask(q, EPI(1)); /* q odd */
    const __m512i c = _mm512_castps_si512(_mm512_mask_blend_ps(swap, cs, sn));
    const __m512i sv = _mm512_castps_si512(_mm512_mask_blend_ps(swap, sn, cs));
    /* cos t negated for q mod 4 = 1, 2 (bit 31 of (q + 1) << 30), sin t for q mod 4 = 2, 3 (bit 31 of q << 30) */
    const __m512i cc = _mm512_ternarylogic_epi32(c, _mm512_slli_epi32(_mm512_add_epi32(q, EPI(1)), 30), sign, XAND);
    const __m512i ss = _mm512_ternarylogic_epi32(sv, _mm512_slli_epi32(q, 30), sign, XAND);
    *cos_out = _mm512_mul_ps(r, _mm512_castsi512_ps(cc));
    *sin_out = _mm512_mul_ps(r, _mm512_castsi512_ps(ss));
}

/* rp_exp (reparam_bm.h) on 16 lanes. */
static inline __m512 rexp16(__m512 y) {
    const __m512 magic = PS(RP_EXP_MAGIC);
    const __m512 t = _mm512_fmadd_ps(y, PS(RP_LOG2E), magic), kf = _mm512_sub_ps(t, magic);
    __m512 f = _mm512_fnmadd_ps(kf, PS(BM_LN2_HI), y);
    f = _mm512_fnmadd_ps(kf, PS(BM_LN2_LO), f);
    __m512 p = _mm512_fmadd_ps(PS(RP_E5), f, PS(RP_E4));
    p = _mm512_fmadd_ps(p, f, PS(RP_E3));
    p = _mm512_fmadd_ps(p, f, PS(RP_E2));
    p = _mm512_fmadd_ps(p, f, PS(RP_E1));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f), PS(1.0f));
    return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23)));
}

static inline __m512 clamp16(__m512 x) {
    return _mm512_min_ps(PS(REPARAM_LV_MAX), _mm512_max_ps(PS(REPARAM_LV_MIN), x));
}

/* eps of group h (0 .. NSET - 1) from its Philox words: e[0] = elements 0..15, e[1] = 16..31. */
static inline void group_eps16(__m512i wa, __m512i wb, __m512 e[2]) {
    __m512 c, s;
    bm16(wa, wb, &c, &s);
    e[0] = _mm512_shuffle_f32x4(c, s, 0x44); /* c[0..7], s[0..7]: elements 0..15 */
    e[1] = _mm512_shuffle_f32x4(c, s, 0xEE); /* c[8..15], s[8..15]: elements 16..31 */
}

static inline __mmask16 tail16(int64_t rem) {
    return rem <= 0 ? 0 : rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
}

/* fwd of 16 elements under mask mk (masked lanes load 0 and give a term of +0). */
static inline __m512 fwd16(const float *mu, const float *logvar, float *z, __m512 e, __mmask16 mk) {
    const __m512 m = _mm512_maskz_loadu_ps(mk, mu), lv = clamp16(_mm512_maskz_loadu_ps(mk, logvar));
    const __m512 s = rexp16(_mm512_mul_ps(PS(0.5f), lv));
    _mm512_mask_storeu_ps(z, mk, _mm512_fmadd_ps(s, e, m));
    return _mm512_sub_ps(_mm512_fmadd_ps(m, m, _mm512_fmsub_ps(s, s, PS(1.0f))), lv);
}

static inline __m512 fwd16_full(const float *mu, const float *logvar, float *z, __m512 e) {
    const __m512 m = _mm512_loadu_ps(mu), lv = clamp16(_mm512_loadu_ps(logvar));
    const __m512 s = rexp16(_mm512_mul_ps(PS(0.5f), lv));
    _mm512_storeu_ps(z, _mm512_fmadd_ps(s, e, m));
    return _mm512_sub_ps(_mm512_fmadd_ps(m, m, _mm512_fmsub_ps(s, s, PS(1.0f))), lv);
}

/* the group's terms t01 (elements 0..15), t23 (16..31) added in the reference order into lanes j = 0..7 of acc */
static inline __m512d kl_add(__m512d acc, __m512 t01, __m512 t23) {
    __m256 v = _mm256_add_ps(_mm512_castps512_ps256(t01), _mm512_extractf32x8_ps(t01, 1));
    v = _mm256_add_ps(v, _mm512_castps512_ps256(t23));
    v = _mm256_add_ps(v, _mm512_extractf32x8_ps(t23, 1));
    return _mm512_add_pd(acc, _mm512_cvtps_pd(v));
}

double reparam_fwd_avx512(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                          uint64_t stream, float *z) {
    philox_keys16 k;
    keys_init(seed, stream, &k);
    __m512d acc = _mm512_setzero_pd();
    for (int64_t i0 = 0; i0 < len; i0 += 32 * NSET) {
        __m512i wa[NSET], wb[NSET];
        philox_sets((uint64_t)((lo + i0) >> 5), &k, wa, wb);
        for (int h = 0; h < NSET; h++) {
            const int64_t i = i0 + 32 * h;
            if (i >= len) break;
            __m512 e[2];
            group_eps16(wa[h], wb[h], e);
            if (i + 32 <= len)
                acc = kl_add(acc, fwd16_full(mu + i, logvar + i, z + i, e[0]), fwd16_full(mu + i + 16, logvar + i + 16, z + i + 16, e[1]));
            else
                acc = kl_add(acc, fwd16(mu + i, logvar + i, z + i, e[0], tail16(len - i)),
                             fwd16(mu + i + 16, logvar + i + 16, z + i + 16, e[1], tail16(len - i - 16)));
        }
    }
    /* ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
    const __m256d a = _mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1));
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

static inline void bwd16(const float *mu, const float *logvar, const float *dz, float *dmu, float *dlogvar, __m512 e,
                         __m512 k, __m512 hk, __mmask16 mk) {
    const __m512 m = _mm512_maskz_loadu_ps(mk, mu), lv = clamp16(_mm512_maskz_loadu_ps(mk, logvar));
    const __m512 g = _mm512_maskz_loadu_ps(mk, dz);
    const __m512 s = rexp16(_mm512_mul_ps(PS(0.5f), lv));
    const __m512 a = _mm512_mul_ps(_mm512_mul_ps(g, e), _mm512_mul_ps(PS(0.5f), s));
    _mm512_mask_storeu_ps(dmu, mk, _mm512_fmadd_ps(k, m, g));
    _mm512_mask_storeu_ps(dlogvar, mk, _mm512_fmadd_ps(hk, _mm512_fmsub_ps(s, s, PS(1.0f)), a));
}

static inline void bwd16_full(const float *mu, const float *logvar, const float *dz, float *dmu, float *dlogvar,
                              __m512 e, __m512 k, __m512 hk) {
    const __m512 m = _mm512_loadu_ps(mu), lv = clamp16(_mm512_loadu_ps(logvar)), g = _mm512_loadu_ps(dz);
    const __m512 s = rexp16(_mm512_mul_ps(PS(0.5f), lv));
    const __m512 a = _mm512_mul_ps(_mm512_mul_ps(g, e), _mm512_mul_ps(PS(0.5f), s));
    _mm512_storeu_ps(dmu, _mm512_fmadd_ps(k, m, g));
    _mm512_storeu_ps(dlogvar, _mm512_fmadd_ps(hk, _mm512_fmsub_ps(s, s, PS(1.0f)), a));
}

void reparam_bwd_avx512(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                        const float *dz, float kl_scale, float *dmu, float *dlogvar) {
    philox_keys16 pk;
    keys_init(seed, stream, &pk);
    const __m512 k = PS(kl_scale), hk = PS(0.5f * kl_scale);
    for (int64_t i0 = 0; i0 < len; i0 += 32 * NSET) {
        __m512i wa[NSET], wb[NSET];
        philox_sets((uint64_t)((lo + i0) >> 5), &pk, wa, wb);
        for (int h = 0; h < NSET && i0 + 32 * h < len; h++) {
            __m512 e[2];
            group_eps16(wa[h], wb[h], e);
            for (int q = 0; q < 2; q++) {
                const int64_t o = i0 + 32 * h + 16 * q, rem = len - o;
                if (rem >= 16) bwd16_full(mu + o, logvar + o, dz + o, dmu + o, dlogvar + o, e[q], k, hk);
                else if (rem > 0) bwd16(mu + o, logvar + o, dz + o, dmu + o, dlogvar + o, e[q], k, hk, tail16(rem));
            }
        }
    }
}
