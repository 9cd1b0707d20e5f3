/* What the fp32 attention body (attention_simd.h, instantiated by attention_avx2.c and attention_avx512.c) and the
 * bf16 kernel (attention_avx512_bf16.c) share: the inline helpers, the constants and exp2_ps. exp2_ps is written in
 * the vector macros (V, VI and their operations: ../common/simd_avx2.h or simd_avx512.h for the float ones; the
 * integer ones attention_avx2.c defines, or attention_avx512.h at 16 lanes), so the includer defines them first.
 * Never compiled on its own. */
#ifndef LT_ATTENTION_BASE_H
#define LT_ATTENTION_BASE_H

#include <stdint.h>

#define AI static inline __attribute__((always_inline))
#define LOG2E 1.44269504088896340736f
#define LN2 0.69314718055994530942f

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* 2^x, VL lanes. x = n + f with n = round(x) (the 1.5*2^23 trick: the sum's low mantissa bits hold n),
 * |f| <= 1/2, 2^f by the degree-6 polynomial of Cephes' exp2f, 2^n built in the exponent field.
 * Accuracy, measured against exp2() in double over every float in [-126, 127.5): at most 0.95 ulp (8e-8
 * relative). The kernels only need x <= 0 (scores minus their max, or minus lse), but the edges are clean:
 * x < -126.5 and -inf give exactly 0 (the clamp to -127 makes n = -127, whose exponent field is 0),
 * [-126.5, -126) gives subnormals; x >= 127.5 and +inf give +inf (n = 128: exponent field 255), a little
 * early for [127.5, 128) whose true value is still finite.
 * NaN stays NaN (vmaxps and vminps return their second operand when either is NaN; NaN * anything is NaN). */
AI V exp2_ps(V x) {
    x = VMAX(VSET1(-127.0f), VMIN(VSET1(128.0f), x));
    const V magic = VSET1(12582912.0f); /* 1.5 * 2^23 */
    V t = VADD(x, magic);
    V f = VSUB(x, VSUB(t, magic));
    V p = VSET1(1.535336188319500e-4f);
    p = VFMA(p, f, VSET1(1.339887440266574e-3f));
    p = VFMA(p, f, VSET1(9.618437357674640e-3f));
    p = VFMA(p, f, VSET1(5.550332471162809e-2f));
    p = VFMA(p, f, VSET1(2.402264791363012e-1f));
    p = VFMA(p, f, VSET1(6.931472028550421e-1f));
    p = VFMA(p, f, VSET1(1.0f));
    VI e = VSLLI(VADDI(VCAST_I(t), VSET1I(127)), 23);
    return VMUL(p, VCAST_F(e));
}

#endif
