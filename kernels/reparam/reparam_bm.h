/* The scalar definition of eps and of s = exp(lv / 2), in float, from IEEE-exact operations only (+ - * /, sqrt,
 * fmaf, int <-> float conversions, bit manipulation), each written out in a fixed order: a correctly rounded fmaf
 * (C99 <math.h>) equals _mm256_fmadd_ps and CUDA's __fmaf_rn bit for bit, so this code (reparam_ref.c), its
 * 8-lane copy (reparam_avx2.c) and its CUDA copy (reparam.cu) give the same bits. No product here feeds a plain
 * addition (every multiply-add is an explicit fmaf), so contraction could not change anything either; the two C
 * files are still built with -ffp-contract=off (CMakeLists.txt) and the CUDA copy uses __fmul_rn / __fadd_rn.
 *
 * Box-Muller of one pair of Philox words (wa, wb) -> (r cos t, r sin t), r = sqrt(-2 ln u1), t = 2 pi u2:
 *   u1 = fmaf(wa >> 8, 2^-24, 2^-25)  (= philox_u01(wa), in [2^-25, 1])
 *   ln u1: bits of u1 + (1.0f - sqrt(1/2) bits) splits u1 = 2^e m with m in [sqrt(1/2), sqrt 2); f = (m - 1) / (m + 1)
 *          (m - 1 exact), ln m = 2f + 2f s (1/3 + s/5 + s^2/7 + s^3/9), s = f^2 <= 0.0295 (truncation < 2e-9
 *          relative); ln u1 = e ln2_hi + (e ln2_lo + ln m) by two fmaf.
 *   r = sqrt(-2 ln u1) <= sqrt(50 ln 2) = 5.8871 (u1 >= 2^-25), so |eps| <= 5.8872: always finite.
 *   t: x = 4 u2 = fmaf(wb >> 8, 2^-22, 2^-23) in (0, 4], q = x rounded to the nearest integer (ties to even) by
 *          adding and subtracting 1.5 * 2^23, y = x - q in [-1/2, 1/2] (exact), so t = (q + y) pi/2.
 *          sin(y pi/2) = y (pi/2)_hi + (y (pi/2)_lo + y^3 S(y^2)), S the Taylor coefficients to y^9 (truncation
 *          < 3e-9 relative); cos(y pi/2) = 1 + y^2 C(y^2), Taylor to y^10 (< 2e-10). Quadrant q mod 4 swaps and
 *          negates (bits of x + 1.5 * 2^23).
 *   eps pair = (r cos t, r sin t), one rounding each.
 * Measured against Box-Muller in double with glibc (reparam_test): |eps - eps_exact| <= REPARAM_EPS_TOL u r
 * (u = 2^-24; the error is relative to the radius r, as cos t and sin t carry absolute errors).
 *
 * rp_exp(y) for y in [-15, 15] (lv / 2 with lv clamped) or NaN: vexp of vmath_avx2.h without its range clamps
 * (not needed on this range), so the AVX2 file can call either: k = round(y / ln 2), f = y - k ln 2 (two fmaf),
 * e^f by the degree-6 polynomial of vexp, times 2^k built in the exponent field. <= 1.01 ulp (vmath_avx2.h). */
#ifndef LT_REPARAM_BM_H
#define LT_REPARAM_BM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "philox.h"

#define REPARAM_EPS_TOL 4 /* in u r, see above; reparam_test measures and checks it */

#define BM_SQRTH_BITS 0x3f3504f3u /* bits of 0.70710677f, sqrt(1/2) rounded */
#define BM_LN2_HI 0x1.62e430p-1f  /* ln 2 = hi + lo to ~2^-54 */
#define BM_LN2_LO (-0x1.05c610p-29f)
#define BM_L1 0x1.555556p-2f /* 1/3, 1/5, 1/7, 1/9 */
#define BM_L2 0x1.99999ap-3f
#define BM_L3 0x1.24924ap-3f
#define BM_L4 0x1.c71c72p-4f
#define BM_MAGIC 12582912.0f         /* 1.5 * 2^23: x + MAGIC rounds x to an integer, held in the low mantissa bits */
#define BM_PIO2_HI 0x1.921fb6p+0f    /* pi/2 = hi + lo to ~2^-49 */
#define BM_PIO2_LO (-0x1.777a5cp-25f)
/* (-1)^k (pi/2)^(2k+1) / (2k+1)!, k = 1..4 */
#define BM_S3 (-0x1.4abbcep-1f)
#define BM_S5 0x1.466bc6p-4f
#define BM_S7 (-0x1.32d2ccp-8f)
#define BM_S9 0x1.507834p-13f
/* (-1)^k (pi/2)^(2k) / (2k)!, k = 1..5 */
#define BM_C2 (-0x1.3bd3ccp+0f)
#define BM_C4 0x1.03c1f0p-2f
#define BM_C6 (-0x1.55d3c8p-6f)
#define BM_C8 0x1.e1f506p-11f
#define BM_C10 (-0x1.a6d1f2p-16f)
/* rp_exp */
#define RP_EXP_MAGIC 12583039.0f /* 1.5 * 2^23 + 127 */
#define RP_LOG2E 1.44269502f
#define RP_E5 0x1.6a4f70p-10f
#define RP_E4 0x1.123980p-7f
#define RP_E3 0x1.5558aep-5f
#define RP_E2 0x1.555492p-3f
#define RP_E1 0x1.fffffcp-2f

static inline uint32_t bm_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float bm_float(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* out[0] = r cos t, out[1] = r sin t for the word pair (wa, wb). */
static inline void bm_pair(uint32_t wa, uint32_t wb, float out[2]) {
    const float u1 = fmaf((float)(int32_t)(wa >> 8), 0x1p-24f, 0x1p-25f);
    const uint32_t ix = bm_bits(u1) + (0x3f800000u - BM_SQRTH_BITS);
    const float e = (float)((int32_t)(ix >> 23) - 127);
    const float m = bm_float((ix & 0x007fffffu) + BM_SQRTH_BITS);
    const float f = (m - 1.0f) / (m + 1.0f), s = f * f;
    float p = fmaf(BM_L4, s, BM_L3);
    p = fmaf(p, s, BM_L2);
    p = fmaf(p, s, BM_L1);
    const float f2 = f + f, lnm = fmaf(f2, s * p, f2);
    const float ln = fmaf(e, BM_LN2_HI, fmaf(e, BM_LN2_LO, lnm));
    const float r = sqrtf(ln * -2.0f);
    const float x = fmaf((float)(int32_t)(wb >> 8), 0x1p-22f, 0x1p-23f);
    const float xm = x + BM_MAGIC, y = x - (xm - BM_MAGIC), y2 = y * y;
    float sp = fmaf(BM_S9, y2, BM_S7);
    sp = fmaf(sp, y2, BM_S5);
    sp = fmaf(sp, y2, BM_S3);
    const float sn = fmaf(y, BM_PIO2_HI, fmaf(y, BM_PIO2_LO, (y * y2) * sp));
    float cp = fmaf(BM_C10, y2, BM_C8);
    cp = fmaf(cp, y2, BM_C6);
    cp = fmaf(cp, y2, BM_C4);
    cp = fmaf(cp, y2, BM_C2);
    const float cs = fmaf(cp, y2, 1.0f);
    const uint32_t q = bm_bits(xm); /* q mod 4 in the low 2 bits */
    const float c = (q & 1) ? sn : cs, sv = (q & 1) ? cs : sn;
    out[0] = r * bm_float(bm_bits(c) ^ (((q + 1) << 30) & 0x80000000u)); /* cos t: negated for q = 1, 2 */
    out[1] = r * bm_float(bm_bits(sv) ^ ((q << 30) & 0x80000000u));     /* sin t: negated for q = 2, 3 */
}

/* e^y for y in [-15, 15] or NaN (see the header). */
static inline float rp_exp(float y) {
    const float t = fmaf(y, RP_LOG2E, RP_EXP_MAGIC), kf = t - RP_EXP_MAGIC;
    float f = fmaf(-kf, BM_LN2_HI, y);
    f = fmaf(-kf, BM_LN2_LO, f);
    float p = fmaf(RP_E5, f, RP_E4);
    p = fmaf(p, f, RP_E3);
    p = fmaf(p, f, RP_E2);
    p = fmaf(p, f, RP_E1);
    p = fmaf(p, f * f, f) + 1.0f;
    return p * bm_float(bm_bits(t) << 23);
}

#endif
