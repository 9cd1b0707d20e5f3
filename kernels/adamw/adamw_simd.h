/* AdamW's elementwise step, the SIMD body written once for AVX2 (adamw_avx2.c) and AVX-512 (adamw_avx512.c): the
 * loop of adamw_ref.c on VL parameters at a time, the same ops in the same order with FMAs where PyTorch's ops pair
 * a multiply with an add (m, v and the final addcdiv), so both levels give the same bits per element (checked by
 * adamw_test: avx512 against avx2 bit for bit, each against the double step within tolerance).
 *   param, grad, m, v: (len) contiguous; param, m, v updated in place.
 * The last len % VL parameters go through masked loads and stores (AVX2: vmaskmov; AVX-512: opmasks).
 * Required macros: V, VL, VSET1, VLOAD, VSTORE, VADD, VMUL, VDIV, VSQRT, VFMA (a b + c), VFNMA (c - a b); VMASK,
 * VTAIL(rem) (0 < rem < VL), VMASKLOAD(p, k) (0 outside k), VMASKSTORE(p, k, v); SFX(name). Never compiled on its
 * own (not a *.c). */

static inline void SFX(step)(const adamw_consts *k, V gr, V *p, V *m, V *v) {
    const V g = VMUL(gr, VSET1(k->grad_scale));
    const V pd = VMUL(*p, VSET1(k->decay));
    *m = VFMA(VSET1(k->beta1), *m, VMUL(VSET1(k->one_minus_beta1), g));
    *v = VFMA(VSET1(k->beta2), *v, VMUL(VMUL(VSET1(k->one_minus_beta2), g), g));
    const V denom = VADD(VDIV(VSQRT(*v), VSET1(k->bc2_sqrt)), VSET1(k->eps));
    *p = VFNMA(VSET1(k->step_size), VDIV(*m, denom), pd);
}

void SFX(adamw)(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v) {
    int64_t i = 0;
    for (; i + VL <= len; i += VL) {
        V p = VLOAD(param + i), mm = VLOAD(m + i), vv = VLOAD(v + i);
        SFX(step)(k, VLOAD(grad + i), &p, &mm, &vv);
        VSTORE(param + i, p);
        VSTORE(m + i, mm);
        VSTORE(v + i, vv);
    }
    if (i < len) {
        const VMASK t = VTAIL(len - i);
        V p = VMASKLOAD(param + i, t), mm = VMASKLOAD(m + i, t), vv = VMASKLOAD(v + i, t);
        SFX(step)(k, VMASKLOAD(grad + i, t), &p, &mm, &vv);
        VMASKSTORE(param + i, t, p);
        VMASKSTORE(m + i, t, mm);
        VMASKSTORE(v + i, t, vv);
    }
}
