/* Box-Muller of one pair of Philox words, with its own log and sincos in double built only from IEEE-exact
 * operations (+, -, *, /, sqrt, floor, conversions), so that this scalar code (reparam_ref.c, built without -mfma:
 * nothing can be fused) and the 4-pair vector copy in reparam_avx2.c (every product that feeds a sum passes an
 * asm barrier, so it is never fused either) give the same bits. reparam_test checks that bit for bit.
 *   u1 = philox_u01(wa), u2 = philox_u01(wb) (floats in (0, 1])
 *   ln u1: u1 = m 2^e with m in [1, 2) from the float's bits, halved (e + 1) when m > sqrt 2; with f = (m-1)/(m+1),
 *          ln m = 2 f (1 + f^2/3 + ... + f^14/15) (|f| <= 0.172: truncation < 3e-14 relative); ln u1 = e ln2 + ln m
 *   r = sqrt(-2 ln u1)
 *   angle 2 pi u2 = (q + y) pi/2 with x = 4 u2 (exact), q = floor(x + 1/2), y = x - q (exact), a = y pi/2 in
 *          [-pi/4, pi/4]; Taylor sin to a^15, cos to a^16 (truncation < 1e-16); quadrant q mod 4 swaps and negates.
 *   out[0] = (float)(r cos), out[1] = (float)(r sin)
 * Against glibc's double log/sincos the result differs by at most one float rounding near a tie (reparam_test). */
#ifndef LT_REPARAM_BM_H
#define LT_REPARAM_BM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "philox.h"

#define BM_SQRT2F 1.41421356f
#define BM_LN2 0.69314718055994530942
#define BM_PIO2 1.57079632679489661923
/* 1/(2k+1), k = 7..1 */
#define BM_L7 (1.0 / 15)
#define BM_L6 (1.0 / 13)
#define BM_L5 (1.0 / 11)
#define BM_L4 (1.0 / 9)
#define BM_L3 (1.0 / 7)
#define BM_L2 (1.0 / 5)
#define BM_L1 (1.0 / 3)
/* sin: (-1)^k / (2k+1)!, k = 7..1; cos: (-1)^k / (2k)!, k = 8..1 */
#define BM_S7 (-1.0 / 1307674368000.0)
#define BM_S6 (1.0 / 6227020800.0)
#define BM_S5 (-1.0 / 39916800.0)
#define BM_S4 (1.0 / 362880.0)
#define BM_S3 (-1.0 / 5040.0)
#define BM_S2 (1.0 / 120.0)
#define BM_S1 (-1.0 / 6.0)
#define BM_C8 (1.0 / 20922789888000.0)
#define BM_C7 (-1.0 / 87178291200.0)
#define BM_C6 (1.0 / 479001600.0)
#define BM_C5 (-1.0 / 3628800.0)
#define BM_C4 (1.0 / 40320.0)
#define BM_C3 (-1.0 / 720.0)
#define BM_C2 (1.0 / 24.0)
#define BM_C1 (-1.0 / 2.0)

static inline void bm_pair_scalar(uint32_t wa, uint32_t wb, float out[2]) {
    const float u1 = philox_u01(wa), u2 = philox_u01(wb);
    uint32_t bits;
    memcpy(&bits, &u1, 4);
    int32_t e = (int32_t)(bits >> 23) - 127;
    bits = (bits & 0x007FFFFFu) | 0x3F800000u;
    float m;
    memcpy(&m, &bits, 4);
    if (m > BM_SQRT2F) { m = m * 0.5f; e = e + 1; }
    const double md = m, f = (md - 1.0) / (md + 1.0), s = f * f;
    double p = BM_L7;
    p = p * s + BM_L6; p = p * s + BM_L5; p = p * s + BM_L4; p = p * s + BM_L3; p = p * s + BM_L2; p = p * s + BM_L1;
    p = p * s + 1.0;
    const double ln = (double)e * BM_LN2 + (f + f) * p;
    const double r = sqrt(-2.0 * ln);
    const double x = (double)u2 * 4.0, q = floor(x + 0.5), a = (x - q) * BM_PIO2, a2 = a * a;
    double sn = BM_S7;
    sn = sn * a2 + BM_S6; sn = sn * a2 + BM_S5; sn = sn * a2 + BM_S4; sn = sn * a2 + BM_S3; sn = sn * a2 + BM_S2;
    sn = sn * a2 + BM_S1;
    sn = a + a * a2 * sn;
    double cs = BM_C8;
    cs = cs * a2 + BM_C7; cs = cs * a2 + BM_C6; cs = cs * a2 + BM_C5; cs = cs * a2 + BM_C4; cs = cs * a2 + BM_C3;
    cs = cs * a2 + BM_C2; cs = cs * a2 + BM_C1;
    cs = 1.0 + a2 * cs;
    const int32_t qi = (int32_t)q & 3;
    double c = (qi & 1) ? sn : cs, sv = (qi & 1) ? cs : sn;
    if ((qi + 1) & 2) c = -c; /* q = 1, 2 */
    if (qi & 2) sv = -sv;     /* q = 2, 3 */
    out[0] = (float)(r * c);
    out[1] = (float)(r * sv);
}

#endif
