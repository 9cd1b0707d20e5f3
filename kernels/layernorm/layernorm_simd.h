/* LayerNorm forward and backward over rows of C floats, the SIMD body written once for both levels (the math is in
 * layernorm_ref.c's header).
 *
 *   fwd: x, y (rows, C); w, b (C); mean, rstd (rows)              y may equal x
 *   bwd: x, dy, dx (rows, C); w (C); mean, rstd (rows); dw_part, db_part (C) overwritten with this chunk's sums
 *
 * A row (1.5 KB at C = 384) stays in L1 across its passes, so each row is read from memory once:
 *   fwd: (1) sum in double, 8 lanes; (2) sum of (x - mean)^2 in double around the double mean (exact centring:
 *        the variance keeps its accuracy when |mean| >> std); (3) y = fma((x - mean) * rstd, w, b) in float.
 *   bwd: (1) A = sum dy w, B = sum dy w xhat in double, 8 lanes each; (2) dx = rstd (dn - (A + xhat B)) and the
 *        chunk's dw/db sums in float, row after row (deterministic: fixed order within the chunk).
 * The double reductions cost 2 converts per 8 floats, cheap next to memory, and make the row statistics
 * accurate to ~1 ulp, so the test tolerances only carry the float rounding of the elementwise part and the
 * conditioning |mean| * rstd of centring with the saved float mean.
 * The last C % 8 elements go through masked loads and stores in the float passes and a scalar loop in the
 * double ones (same order every time).
 * Measured on the 2-core Zen 5 VM, shared with other builds (load average 2.3-2.7 during the run, so the
 * 2-thread figures are contended and noisy; best of the reps):
 *   N=2048 C=384: fwd 1 thr 0.290 ms (21.8 GB/s, 52% of a 42 GB/s triad), bwd 0.278 ms (34.1 GB/s, 81%);
 *   2 threads, best when the second core was free: fwd 0.164 ms (38.5 GB/s), bwd 0.188 ms (50.2 GB/s); runs
 *   with another process on that core took 0.6-1.2 ms. The bench reuses 3 MB arrays that can stay in the L3.
 * (The description and numbers above are the AVX2 level's; layernorm_avx512.c says what changes at 16 floats.)
 * layernorm_avx2.c and layernorm_avx512.c define the vector types and operations, then #include this file (never
 * compiled on its own; not a *.c, so CMake does not glob it). Required: V, VL, VSET1, VLOAD, VSTORE, VADD, VSUB,
 * VMUL, VFMA (a b + c), VFMSUB (a b - c); the double vector VD (VL / 2 lanes) with VDZERO, VDSET1, VDADD, VDSUB,
 * VDFMA, VLO / VHI (low / high half of a V converted to VD), VDHSUM (lane sum, fixed order); the tail's VMASK,
 * VTAIL(rem) (0 < rem < VL), VMASKLOAD(p, k) (0 outside k), VMASKSTORE(p, k, v); SFX(name).
 */
#include <math.h>

/* passes (2) and (3) of a row whose pass (1) gave the sum s (shared by fwd_row and fwd_row_res: the same code) */
static inline void fwd_rest(int64_t c, float eps, double s, const float *x, const float *w, const float *b, float *y,
                            float *mean, float *rstd) {
    const int64_t cv = c & ~(int64_t)(VL - 1);
    const double m = s / c;
    const VD vm = VDSET1(m);
    VD q0 = VDZERO(), q1 = q0;
    for (int64_t j = 0; j < cv; j += VL) {
        V v = VLOAD(x + j);
        VD d0 = VDSUB(VLO(v), vm), d1 = VDSUB(VHI(v), vm);
        q0 = VDFMA(d0, d0, q0);
        q1 = VDFMA(d1, d1, q1);
    }
    double var = VDHSUM(VDADD(q0, q1));
    for (int64_t j = cv; j < c; j++) var += ((double)x[j] - m) * ((double)x[j] - m);
    const float mf = (float)m, rf = (float)(1.0 / sqrt(var / c + eps));
    const V vmf = VSET1(mf), vr = VSET1(rf);
    for (int64_t j = 0; j < cv; j += VL) {
        V xh = VMUL(VSUB(VLOAD(x + j), vmf), vr);
        VSTORE(y + j, VFMA(xh, VLOAD(w + j), VLOAD(b + j)));
    }
    if (cv < c) {
        const VMASK k = VTAIL(c - cv);
        V xh = VMUL(VSUB(VMASKLOAD(x + cv, k), vmf), vr);
        VMASKSTORE(y + cv, k, VFMA(xh, VMASKLOAD(w + cv, k), VMASKLOAD(b + cv, k)));
    }
    *mean = mf;
    *rstd = rf;
}


static void fwd_row(int64_t c, float eps, const float *x, const float *w, const float *b, float *y, float *mean,
                    float *rstd) {
    const int64_t cv = c & ~(int64_t)(VL - 1);
    VD s0 = VDZERO(), s1 = s0;
    for (int64_t j = 0; j < cv; j += VL) {
        V v = VLOAD(x + j);
        s0 = VDADD(s0, VLO(v));
        s1 = VDADD(s1, VHI(v));
    }
    double s = VDHSUM(VDADD(s0, s1));
    for (int64_t j = cv; j < c; j++) s += x[j];
    fwd_rest(c, eps, s, x, w, b, y, mean, rstd);
}

/* lt_layernorm_residual_fwd's row: pass (1) also forms and stores sv = x + a (then sums it exactly as fwd_row sums its
 * input), passes (2) and (3) read sv back from L1: the bits of fwd_row on x + a. */
static void fwd_row_res(int64_t c, float eps, const float *x, const float *a, float *sv, const float *w, const float *b,
                        float *y, float *mean, float *rstd) {
    const int64_t cv = c & ~(int64_t)(VL - 1);
    VD s0 = VDZERO(), s1 = s0;
    for (int64_t j = 0; j < cv; j += VL) {
        V v = VADD(VLOAD(x + j), VLOAD(a + j));
        VSTORE(sv + j, v);
        s0 = VDADD(s0, VLO(v));
        s1 = VDADD(s1, VHI(v));
    }
    double s = VDHSUM(VDADD(s0, s1));
    for (int64_t j = cv; j < c; j++) {
        const float v = x[j] + a[j];
        sv[j] = v;
        s += v;
    }
    fwd_rest(c, eps, s, sv, w, b, y, mean, rstd);
}

void SFX(layernorm_fwd)(int64_t rows, int64_t c, float eps, const float *x, const float *w, const float *b, float *y,
                         float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++) fwd_row(c, eps, x + i * c, w, b, y + i * c, mean + i, rstd + i);
}

void SFX(layernorm_residual_fwd)(int64_t rows, int64_t c, float eps, const float *x, const float *a, float *s,
                                   const float *w, const float *b, float *y, float *mean, float *rstd) {
    for (int64_t i = 0; i < rows; i++)
        fwd_row_res(c, eps, x + i * c, a + i * c, s + i * c, w, b, y + i * c, mean + i, rstd + i);
}

void SFX(layernorm_bwd)(int64_t rows, int64_t c, const float *x, const float *w, const float *mean, const float *rstd,
                         const float *dy, float *dx, float *dw_part, float *db_part) {
    const int64_t cv = c & ~(int64_t)(VL - 1);
    for (int64_t j = 0; j < c; j++) dw_part[j] = db_part[j] = 0.0f;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * c, *dyr = dy + i * c;
        float *dxr = dx + i * c;
        const float m = mean[i], r = rstd[i];
        const V vm = VSET1(m), vr = VSET1(r);
        VD a0 = VDZERO(), a1 = a0, b0 = a0, b1 = a0;
        for (int64_t j = 0; j < cv; j += VL) {
            V dn = VMUL(VLOAD(dyr + j), VLOAD(w + j));
            V xh = VMUL(VSUB(VLOAD(xr + j), vm), vr);
            V p = VMUL(dn, xh);
            a0 = VDADD(a0, VLO(dn));
            a1 = VDADD(a1, VHI(dn));
            b0 = VDADD(b0, VLO(p));
            b1 = VDADD(b1, VHI(p));
        }
        double sa = VDHSUM(VDADD(a0, a1)), sb = VDHSUM(VDADD(b0, b1));
        for (int64_t j = cv; j < c; j++) {
            float dn = dyr[j] * w[j], xh = (xr[j] - m) * r;
            sa += dn;
            sb += dn * xh;
        }
        const V va = VSET1((float)(sa / c)), vb = VSET1((float)(sb / c));
        for (int64_t j = 0; j < cv; j += VL) {
            V g = VLOAD(dyr + j);
            V xh = VMUL(VSUB(VLOAD(xr + j), vm), vr);
            VSTORE(dw_part + j, VFMA(g, xh, VLOAD(dw_part + j)));
            VSTORE(db_part + j, VADD(g, VLOAD(db_part + j)));
            V t = VFMA(xh, vb, va); /* A + xhat B */
            VSTORE(dxr + j, VMUL(vr, VFMSUB(g, VLOAD(w + j), t)));
        }
        if (cv < c) {
            const VMASK k = VTAIL(c - cv);
            V g = VMASKLOAD(dyr + cv, k);
            V xh = VMUL(VSUB(VMASKLOAD(xr + cv, k), vm), vr);
            VMASKSTORE(dw_part + cv, k, VFMA(g, xh, VMASKLOAD(dw_part + cv, k)));
            VMASKSTORE(db_part + cv, k, VADD(g, VMASKLOAD(db_part + cv, k)));
            V t = VFMA(xh, vb, va);
            VMASKSTORE(dxr + cv, k, VMUL(vr, VFMSUB(g, VMASKLOAD(w + cv, k), t)));
        }
    }
}

/* s = x + a over n floats (lt_layernorm_residual_bwd's dx = ds + dx): one float add per element, the same bits as
 * lt_axpby(1, x, 1, s = a) at every ISA. s may equal x or a. */
void SFX(layernorm_add)(int64_t n, const float *x, const float *a, float *s) {
    const int64_t nv = n & ~(int64_t)(VL - 1);
    for (int64_t j = 0; j < nv; j += VL) VSTORE(s + j, VADD(VLOAD(x + j), VLOAD(a + j)));
    if (nv < n) {
        const VMASK k = VTAIL(n - nv);
        VMASKSTORE(s + nv, k, VADD(VMASKLOAD(x + nv, k), VMASKLOAD(a + nv, k)));
    }
}
