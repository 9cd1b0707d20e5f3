/* Affine coupling, one image, the SIMD body written once for AVX2 (coupling_avx2.c) and AVX-512 (coupling_avx512.c):
 * the reference's formulas in float, VL lanes at a time, with the shared vexp / vtanh (a few ulp each; the AVX-512
 * ones run the AVX2 ones' operations lane for lane, so each output element has the same bits at both levels); the
 * per-image sums (logdet, dscale) accumulate in double, VL / 2 lanes per accumulator (two accumulators), combined
 * in a fixed order, so the sums' order (not the elements) differs between the levels. The row tail (hw % VL)
 * goes to the level below, TAILFN: the reference at AVX2, the AVX2 function at AVX-512 (its 8 lanes, then the
 * reference), so every element has the same bits at both levels (RealNVP's hw = 784 and 3072 have no tail).
 * Required macros: V, VSET1, VLOAD, VSTORE, VADD, VSUB, VMUL, VFMA (a b + c), VFNMA (c - a b), VEXP, VTANH, VL, TAILFN(name);
 * the double accumulator VD with VDZERO, VDADD, VLO / VHI (low / high half of a V in double), VDHSUM; SFX(name).
 * Never compiled on its own (not a *.c). */

double SFX(coupling_fwd)(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale, float *out) {
    const V one = VSET1(1.0f), sc = VSET1(scale);
    VD a0 = VDZERO(), a1 = VDZERO();
    int64_t j = 0;
    for (; j + VL <= hw; j += VL) {
        V bv = VLOAD(b + j), m = VSUB(one, bv), yv = VLOAD(y + j);
        V s = VMUL(VMUL(VTANH(VLOAD(h0 + j)), sc), m);
        V t = VMUL(VLOAD(h1 + j), m);
        V r = VADD(VMUL(bv, yv), VMUL(m, VFMA(yv, VEXP(s), t)));
        VSTORE(out + j, r);
        a0 = VDADD(a0, VLO(s));
        a1 = VDADD(a1, VHI(s));
    }
    double ld = VDHSUM(VDADD(a0, a1));
    if (j < hw) ld += TAILFN(coupling_fwd)(hw - j, b + j, y + j, h0 + j, h1 + j, scale, out + j);
    return ld;
}

void SFX(coupling_inv)(int64_t hw, const float *b, const float *yp, const float *h0, const float *h1, float scale, float *y) {
    const V one = VSET1(1.0f), sc = VSET1(scale), zero = VSET1(0.0f);
    int64_t j = 0;
    for (; j + VL <= hw; j += VL) {
        V bv = VLOAD(b + j), m = VSUB(one, bv), v = VLOAD(yp + j);
        V s = VMUL(VMUL(VTANH(VLOAD(h0 + j)), sc), m);
        V t = VMUL(VLOAD(h1 + j), m);
        V r = VADD(VMUL(bv, v), VMUL(m, VMUL(VSUB(v, t), VEXP(VSUB(zero, s)))));
        VSTORE(y + j, r);
    }
    if (j < hw) TAILFN(coupling_inv)(hw - j, b + j, yp + j, h0 + j, h1 + j, scale, y + j);
}

double SFX(coupling_bwd)(int64_t hw, const float *b, const float *y, const float *h0, const float *h1, float scale,
                         const float *dout, double dld, float *dy, float *dh0, float *dh1) {
    const V one = VSET1(1.0f), sc = VSET1(scale), dl = VSET1((float)dld);
    VD a0 = VDZERO(), a1 = VDZERO();
    int64_t j = 0;
    for (; j + VL <= hw; j += VL) {
        V bv = VLOAD(b + j), m = VSUB(one, bv), yv = VLOAD(y + j), g = VLOAD(dout + j);
        V th = VTANH(VLOAD(h0 + j)), e = VEXP(VMUL(VMUL(th, sc), m));
        VSTORE(dy + j, VMUL(g, VFMA(m, e, bv)));
        V ds = VMUL(VFMA(VMUL(g, yv), e, dl), m);
        VSTORE(dh0 + j, VMUL(VMUL(ds, sc), VFNMA(th, th, one)));
        VSTORE(dh1 + j, VMUL(g, m));
        V p = VMUL(ds, th);
        a0 = VDADD(a0, VLO(p));
        a1 = VDADD(a1, VHI(p));
    }
    double dscale = VDHSUM(VDADD(a0, a1));
    if (j < hw) dscale += TAILFN(coupling_bwd)(hw - j, b + j, y + j, h0 + j, h1 + j, scale, dout + j, dld, dy + j, dh0 + j, dh1 + j);
    return dscale;
}
