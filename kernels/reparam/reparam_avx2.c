/* AVX2+FMA reparameterization chunk: the float operations of reparam_bm.h / reparam_ref.c, 8 lanes wide, in the same
 * order, so eps, z, the gradients and the KL sum have the reference's bits (reparam_test checks them).
 *
 * One 32-element group per step (the mapping of reparam_ref.c: lane j is Philox block 8g + j and its elements
 * j, j + 8, j + 16, j + 24), so nothing is transposed and nothing goes through a stack buffer:
 *   philox8: the 8 blocks as two sets of 4 (even and odd blocks) in 64-bit lanes: MULUDQ gives the full 32x32
 *     product per lane, hi is one shift, lo is the product itself (the garbage upper half is ignored by the next
 *     MULUDQ and dropped at the end), so a round is 2 MULUDQ + 2 shifts + 4 XORs per set; the two independent
 *     sets hide the multiply latency; one shift + blend per word interleaves them into lanes 0..7.
 *   bm8: Box-Muller of 8 word pairs in float (log by exponent split + atanh series, one divide and one sqrt per 8
 *     pairs, sin/cos polynomials after the quadrant split by the 1.5 * 2^23 rounding trick).
 *   then per 8 elements: lv = clamp (MAXPS/MINPS operand order keeps NaN), s = rexp8(lv / 2) (vexp without the
 *     range clamps), z = fma(s, eps, mu), KL term fma(mu, mu, fms(s, s, 1)) - lv; the 4 terms of a lane summed in
 *     float, then added per lane in double; the row's last partial group by masked loads and stores.
 * bwd: dmu = fma(k, mu, dz), dlogvar = fma(k/2, fms(s, s, 1), (dz eps)(s/2)).
 * Built with -ffp-contract=off (CMakeLists.txt): every FMA here is an explicit intrinsic.
 * Speed (reparam_test --bench, n = 2^24, shared 2-core Zen 5 VM at ~3.6 GHz, best of 10, 3 runs): fwd 28 ms (7.2 GB/s)
 * on 1 thread, 14.1 ms (14.3 GB/s, 13-14% of the ~100 GB/s triad) on 2; bwd 12.2 GB/s and 24.2 GB/s (22-24%).
 * Before (double Box-Muller): fwd 2.2 / 4.4 GB/s, bwd 3.9 / 7.4 GB/s. Still compute-bound: in L1 (n = 4096) fwd
 * costs ~5.9 cycles per element, of which Philox ~2.4 (about 5 vector instructions per element: 10 rounds of
 * MULUDQ, shift and two XORs per 64-bit lane), Box-Muller ~1.7, exp, z and KL ~1.5. */
#include "../common/vmath_avx2.h"
#include "reparam.h"
#include "reparam_bm.h"

#define PS(x) _mm256_set1_ps(x)
#define EPI(x) _mm256_set1_epi32((int)(x))

typedef struct {
    __m256i k0[10], k1[10]; /* round keys, broadcast, as 64-bit lanes */
    __m256i s2, s3;         /* counter words 2, 3 (stream) */
} philox_keys;

static void keys_init(uint64_t seed, uint64_t stream, philox_keys *k) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        k->k0[r] = _mm256_set1_epi64x(k0);
        k->k1[r] = _mm256_set1_epi64x(k1);
    }
    k->s2 = _mm256_set1_epi64x((uint32_t)stream);
    k->s3 = _mm256_set1_epi64x((uint32_t)(stream >> 32));
}

/* philox4x32_10 (philox.h) of blocks b .. b + 7, word k of block b + j -> lane j of w[k]. */
static inline void philox8(uint64_t b, const philox_keys *k, __m256i w[4]) {
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    __m256i a0 = _mm256_add_epi64(_mm256_set1_epi64x((int64_t)b), _mm256_setr_epi64x(0, 2, 4, 6));
    __m256i b0 = _mm256_add_epi64(a0, _mm256_set1_epi64x(1));
    __m256i a1 = _mm256_srli_epi64(a0, 32), b1 = _mm256_srli_epi64(b0, 32);
    __m256i a2 = k->s2, b2 = k->s2, a3 = k->s3, b3 = k->s3;
    for (int r = 0; r < 10; r++) {
        const __m256i pa0 = _mm256_mul_epu32(a0, m0), pa1 = _mm256_mul_epu32(a2, m1);
        const __m256i pb0 = _mm256_mul_epu32(b0, m0), pb1 = _mm256_mul_epu32(b2, m1);
        a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa1, 32), a1), k->k0[r]);
        a2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pa0, 32), a3), k->k1[r]);
        b0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb1, 32), b1), k->k0[r]);
        b2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pb0, 32), b3), k->k1[r]);
        a1 = pa1; a3 = pa0; b1 = pb1; b3 = pb0;
    }
    w[0] = _mm256_blend_epi32(a0, _mm256_slli_epi64(b0, 32), 0xAA);
    w[1] = _mm256_blend_epi32(a1, _mm256_slli_epi64(b1, 32), 0xAA);
    w[2] = _mm256_blend_epi32(a2, _mm256_slli_epi64(b2, 32), 0xAA);
    w[3] = _mm256_blend_epi32(a3, _mm256_slli_epi64(b3, 32), 0xAA);
}

/* bm_pair (reparam_bm.h) on 8 pairs: *c = r cos t, *s = r sin t. Line by line the same operations. */
static inline void bm8(__m256i wa, __m256i wb, __m256 *cos_out, __m256 *sin_out) {
    const __m256 one = PS(1.0f);
    const __m256 u1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(wa, 8)), PS(0x1p-24f), PS(0x1p-25f));
    const __m256i ix = _mm256_add_epi32(_mm256_castps_si256(u1), EPI(0x3f800000u - BM_SQRTH_BITS));
    const __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(ix, 23), EPI(127)));
    const __m256 m = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_and_si256(ix, EPI(0x007fffffu)), EPI(BM_SQRTH_BITS)));
    const __m256 f = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one)), s = _mm256_mul_ps(f, f);
    __m256 p = _mm256_fmadd_ps(PS(BM_L4), s, PS(BM_L3));
    p = _mm256_fmadd_ps(p, s, PS(BM_L2));
    p = _mm256_fmadd_ps(p, s, PS(BM_L1));
    const __m256 f2 = _mm256_add_ps(f, f), lnm = _mm256_fmadd_ps(f2, _mm256_mul_ps(s, p), f2);
    const __m256 ln = _mm256_fmadd_ps(e, PS(BM_LN2_HI), _mm256_fmadd_ps(e, PS(BM_LN2_LO), lnm));
    const __m256 r = _mm256_sqrt_ps(_mm256_mul_ps(ln, PS(-2.0f)));
    const __m256 x = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(wb, 8)), PS(0x1p-22f), PS(0x1p-23f));
    const __m256 xm = _mm256_add_ps(x, PS(BM_MAGIC));
    const __m256 y = _mm256_sub_ps(x, _mm256_sub_ps(xm, PS(BM_MAGIC))), y2 = _mm256_mul_ps(y, y);
    __m256 sp = _mm256_fmadd_ps(PS(BM_S9), y2, PS(BM_S7));
    sp = _mm256_fmadd_ps(sp, y2, PS(BM_S5));
    sp = _mm256_fmadd_ps(sp, y2, PS(BM_S3));
    const __m256 sn = _mm256_fmadd_ps(y, PS(BM_PIO2_HI),
                                      _mm256_fmadd_ps(y, PS(BM_PIO2_LO), _mm256_mul_ps(_mm256_mul_ps(y, y2), sp)));
    __m256 cp = _mm256_fmadd_ps(PS(BM_C10), y2, PS(BM_C8));
    cp = _mm256_fmadd_ps(cp, y2, PS(BM_C6));
    cp = _mm256_fmadd_ps(cp, y2, PS(BM_C4));
    cp = _mm256_fmadd_ps(cp, y2, PS(BM_C2));
    const __m256 cs = _mm256_fmadd_ps(cp, y2, one);
    const __m256i q = _mm256_castps_si256(xm), sign = EPI(0x80000000u);
    const __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(q, 31)); /* sign bit = q odd */
    const __m256 c = _mm256_blendv_ps(cs, sn, swap), sv = _mm256_blendv_ps(sn, cs, swap);
    const __m256 sgc = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(_mm256_add_epi32(q, EPI(1)), 30), sign));
    const __m256 sgs = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(q, 30), sign));
    *cos_out = _mm256_mul_ps(r, _mm256_xor_ps(c, sgc));
    *sin_out = _mm256_mul_ps(r, _mm256_xor_ps(sv, sgs));
}

/* rp_exp (reparam_bm.h) on 8 lanes: vexp's operations for y in [-15, 15] or NaN. */
static inline __m256 rexp8(__m256 y) {
    const __m256 magic = PS(RP_EXP_MAGIC);
    const __m256 t = _mm256_fmadd_ps(y, PS(RP_LOG2E), magic), kf = _mm256_sub_ps(t, magic);
    __m256 f = _mm256_fnmadd_ps(kf, PS(BM_LN2_HI), y);
    f = _mm256_fnmadd_ps(kf, PS(BM_LN2_LO), f);
    __m256 p = _mm256_fmadd_ps(PS(RP_E5), f, PS(RP_E4));
    p = _mm256_fmadd_ps(p, f, PS(RP_E3));
    p = _mm256_fmadd_ps(p, f, PS(RP_E2));
    p = _mm256_fmadd_ps(p, f, PS(RP_E1));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(f, f), f), PS(1.0f));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

static inline __m256 clamp8(__m256 x) {
    return _mm256_min_ps(PS(REPARAM_LV_MAX), _mm256_max_ps(PS(REPARAM_LV_MIN), x));
}

/* eps of group g: e[t] holds elements 32g + 8t .. 32g + 8t + 7. */
static inline void group_eps8(int64_t g, const philox_keys *k, __m256 e[4]) {
    __m256i w[4];
    philox8((uint64_t)g * 8, k, w);
    bm8(w[0], w[1], &e[0], &e[1]);
    bm8(w[2], w[3], &e[2], &e[3]);
}

/* fwd of 8 elements; full: plain loads and stores, else masked by `mask` (masked lanes give a term of +0). */
static inline __m256 fwd8(const float *mu, const float *logvar, float *z, __m256 e, int full, __m256i mask) {
    const __m256 m = full ? _mm256_loadu_ps(mu) : _mm256_maskload_ps(mu, mask);
    const __m256 lv = clamp8(full ? _mm256_loadu_ps(logvar) : _mm256_maskload_ps(logvar, mask));
    const __m256 s = rexp8(_mm256_mul_ps(PS(0.5f), lv)), zz = _mm256_fmadd_ps(s, e, m);
    if (full) _mm256_storeu_ps(z, zz);
    else _mm256_maskstore_ps(z, mask, zz);
    return _mm256_sub_ps(_mm256_fmadd_ps(m, m, _mm256_fmsub_ps(s, s, PS(1.0f))), lv);
}

double reparam_fwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                        float *z) {
    philox_keys k;
    keys_init(seed, stream, &k);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    const __m256i none = _mm256_setzero_si256();
    for (int64_t i = 0; i < len; i += 32) {
        __m256 e[4], t[4];
        group_eps8((lo + i) >> 5, &k, e);
        if (i + 32 <= len) {
            for (int h = 0; h < 4; h++) t[h] = fwd8(mu + i + 8 * h, logvar + i + 8 * h, z + i + 8 * h, e[h], 1, none);
        } else {
            for (int h = 0; h < 4; h++) {
                const int64_t rem = len - i - 8 * h;
                t[h] = fwd8(mu + i + 8 * h, logvar + i + 8 * h, z + i + 8 * h, e[h], 0,
                            vtail_mask(rem < 0 ? 0 : rem > 8 ? 8 : rem));
            }
        }
        const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[0], t[1]), t[2]), t[3]);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    const __m256d a = _mm256_add_pd(a0, a1);
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

static inline void bwd8(const float *mu, const float *logvar, const float *dz, float *dmu, float *dlogvar, __m256 e,
                        __m256 k, __m256 hk, int full, __m256i mask) {
    const __m256 m = full ? _mm256_loadu_ps(mu) : _mm256_maskload_ps(mu, mask);
    const __m256 lv = clamp8(full ? _mm256_loadu_ps(logvar) : _mm256_maskload_ps(logvar, mask));
    const __m256 g = full ? _mm256_loadu_ps(dz) : _mm256_maskload_ps(dz, mask);
    const __m256 s = rexp8(_mm256_mul_ps(PS(0.5f), lv));
    const __m256 dm = _mm256_fmadd_ps(k, m, g);
    const __m256 a = _mm256_mul_ps(_mm256_mul_ps(g, e), _mm256_mul_ps(PS(0.5f), s));
    const __m256 dl = _mm256_fmadd_ps(hk, _mm256_fmsub_ps(s, s, PS(1.0f)), a);
    if (full) {
        _mm256_storeu_ps(dmu, dm);
        _mm256_storeu_ps(dlogvar, dl);
    } else {
        _mm256_maskstore_ps(dmu, mask, dm);
        _mm256_maskstore_ps(dlogvar, mask, dl);
    }
}

void reparam_bwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                      const float *dz, float kl_scale, float *dmu, float *dlogvar) {
    philox_keys pk;
    keys_init(seed, stream, &pk);
    const __m256 k = PS(kl_scale), hk = PS(0.5f * kl_scale);
    const __m256i none = _mm256_setzero_si256();
    for (int64_t i = 0; i < len; i += 32) {
        __m256 e[4];
        group_eps8((lo + i) >> 5, &pk, e);
        for (int h = 0; h < 4; h++) {
            const int64_t o = i + 8 * h, rem = len - o;
            if (rem >= 8) bwd8(mu + o, logvar + o, dz + o, dmu + o, dlogvar + o, e[h], k, hk, 1, none);
            else if (rem > 0) bwd8(mu + o, logvar + o, dz + o, dmu + o, dlogvar + o, e[h], k, hk, 0, vtail_mask(rem));
        }
    }
}
