/* Pointwise activations, the SIMD body written once for AVX2 (activation_avx2.c) and AVX-512 (activation_avx512.c).
 *   ReLU / LeakyReLU: compare-and-select (exact; alpha * x is one rounding, as the reference's double product
 *   rounded to float is the same value because float * float is exact in double).
 *   Sigmoid: e = e^-|x| with the shared vexp (1.4 u), then 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, so
 *   small outputs keep their relative accuracy (below x = -87.3 vexp flushes e to 0 and so the result: +0). Measured
 *   max error vs double over a sweep of [-30, 30] in activation_test: a few u (the test's bound is 8 u).
 *   Tanh: the shared vtanh (vmath_avx2.h: odd Taylor polynomial below 0.4, else via vexp; <= 4 u).
 *   Backward: dy (1 - y^2) and dy y (1 - y), from the forward output.
 * The AVX-512 level (forward only) runs the same operations lane for lane (vexp16 / vtanh16 are vexp / vtanh 16 wide, selects are
 * opmask blends), and the last n % VL elements go to the level below (TAILFN: the reference at AVX2, the AVX2
 * function at AVX-512), so both levels give the same bits (activation_test checks).
 * Required macros: V, VL, VMASK, VSET1, VZERO, VLOAD, VSTORE, VADD, VSUB, VMUL, VDIV, VMAX, VFNMA (c - a b), VABS,
 * VLT / VGT / VUNORD (compare to a VMASK), VSEL(a, b, k) (b where k, else a), VAND0(a, k) (a where k, else +0),
 * VEXP, VTANH, TAILFN(name), SFX(name). Never compiled on its own (not a *.c). */

static inline V SFX(sigmoid)(V x) {
    const V one = VSET1(1.0f);
    VMASK neg = VLT(x, VZERO());
    V e = VEXP(VSUB(VZERO(), VABS(x)));        /* e^-|x| in (0, 1] */
    V r = VDIV(one, VADD(one, e));             /* sigmoid(|x|) */
    return VSEL(r, VMUL(e, r), neg);           /* sigmoid(-|x|) = e^-|x| / (1 + e^-|x|): no cancellation */
}

void SFX(act_fwd)(int kind, int64_t n, float alpha, const float *x, float *y) {
    const V zero = VZERO(), a = VSET1(alpha);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        V v = VLOAD(x + i), r;
        switch (kind) {
        case LT_ACT_RELU: r = VSEL(VMAX(v, zero), v, VUNORD(v)); break;
        case LT_ACT_LEAKY_RELU: r = VSEL(VMUL(v, a), v, VGT(v, zero)); break;
        case LT_ACT_TANH: r = VTANH(v); break;
        default: r = SFX(sigmoid)(v); break;
        }
        VSTORE(y + i, r);
    }
    if (i < n) TAILFN(act_fwd)(kind, n - i, alpha, x + i, y + i);
}

/* The backward is compiled at AVX2 only (activation_avx512.c defines FWD_ONLY): at AVX-512 it measured 0.73-1.33x
 * (LeakyReLU's backward slower in L2 in every round), no consistent gain, so the avx512 level runs act_bwd_avx2. */
#ifndef FWD_ONLY
void SFX(act_bwd)(int kind, int64_t n, float alpha, const float *in, const float *dy, float *dx) {
    const V zero = VZERO(), a = VSET1(alpha), one = VSET1(1.0f);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        V v = VLOAD(in + i), g = VLOAD(dy + i), r;
        VMASK nan = VUNORD(v), pos = VGT(v, zero);
        switch (kind) {
        case LT_ACT_RELU: r = VSEL(VAND0(g, pos), v, nan); break;
        case LT_ACT_LEAKY_RELU: r = VSEL(VSEL(VMUL(g, a), g, pos), v, nan); break;
        case LT_ACT_TANH: r = VMUL(g, VFNMA(v, v, one)); break;
        default: r = VMUL(VMUL(g, v), VSUB(one, v)); break;
        }
        VSTORE(dx + i, r);
    }
    if (i < n) TAILFN(act_bwd)(kind, n - i, alpha, in + i, dy + i, dx + i);
}
#endif
