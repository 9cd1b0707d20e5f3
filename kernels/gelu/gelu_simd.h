/* Exact GELU, the SIMD body written once for both levels: y = x Phi(x), dx = dy (Phi(x) + x phi(x)), Phi the
 * normal CDF = (1 + erf(x/sqrt2)) / 2.
 *
 *   x, y, dy, dx: (n) contiguous, y may equal x, dx may equal dy. VL lanes per step, masked tail.
 *
 * The erf is evaluated as the normal CDF directly, through the upper tail Q(a) = 1 - Phi(a), a = |x|:
 *   Q(a) = exp(-a^2/2) * T(q) / (a + K),   q = (a - K) / (a + K) in [-1, 1),   K = 4.25,
 * the form of Shepherd & Laframboise (Math. Comp. 36, 1981) for (1 + 2z) exp(z^2) erfc(z), moved to x = z sqrt2
 * so no x / sqrt2 is rounded (that rounding alone costs 2 z^2 ulp in the tail). T is a degree-9 polynomial fitted
 * here for minimax relative error on a in [0, 13.5] (Lawson-reweighted least squares, coefficients rounded to
 * float one at a time and the rest refitted): 3.9e-9 relative, 0.06 ulp. One division gives r = 1/(a + K) for
 * both q = 2a r - 1 and the prefactor; the rounding of a + K is corrected exactly (Fast2Sum).
 * exp(-a^2/2) keeps its accuracy for large a by splitting a^2 = s + sl exactly with an FMA:
 * exp(-s/2) (1 - sl/2). Then Phi(x) = Q(a) for x < 0 and 1 - Q(a) for x >= 0, so both tails keep their
 * relative accuracy; phi(x) = exp(-a^2/2) / sqrt(2 pi) comes for free for the backward.
 * Why not 1 + erf(x/sqrt2): for x < 0 it cancels; even an erf correct to 1 ulp leaves GELU(-5) with up to 5%
 * relative error (half an ulp of 1 against 2 Phi(-5) = 5.7e-7). Here both tails keep a few ulp.
 * Measured, gelu_test --sweep, every float in [-14, 14] against double erfc/exp (exp: every float in [-87.3, 0]);
 * error relative to the exact value in units of u = 2^-24, and in ulps of the result:
 *   vexp  1.42 u (1.01 ulp)     Phi  4.93 u (4.29 ulp, worst near x = 0.01: T's Horner sum at q ~ -1)
 *   phi   3.35 u (2.74 ulp)     GELU 5.78 u (4.61 ulp) for |y| >= 1e-36; GELU' 5.68 u of Phi + |x| phi
 * Limits: |x| is clamped to 13.5 before use (Phi(-13.5) < FLT_MIN: vexp flushes it to 0), so y(-inf) = -0,
 * y(+inf) = +inf, dx = dy * 1 at +inf and dy * 0 at -inf; NaN gives NaN (every min/max keeps its NaN operand).
 * Cost: ~50 vector ops per 8 elements (one exp, one division, a degree-9 polynomial): compute-bound on one
 * core; see the measured throughput below.
 * Measured on the 2-core Zen 5 VM, shared with other builds (load average 2.3-2.7 during the run, so the
 * 2-thread figures are contended and noisy; best of the reps):
 *   n = 2048*1536: fwd 1 thr 2.90 ms (8.7 GB/s), bwd 3.32 ms (11.4 GB/s); STREAM triad 44 GB/s. ~0.9 ns per
 *   element per core: compute-bound. In cache (n = 65536) 2 threads halve it (fwd 0.060 -> 0.032 ms); every
 *   out-of-cache 2-thread run here had another process on the second core and was no faster (3.15-3.47 ms).
 * (The costs and numbers above are the AVX2 level's, 8 lanes; gelu_avx512.c runs the same operations 16 wide, so the
 * same bits.) gelu_avx2.c and gelu_avx512.c define the vector type and operations, then #include this file (never
 * compiled on its own; not a *.c, so CMake does not glob it). Required: V, VL, VLOAD, VSTORE, VSET1, VADD, VSUB,
 * VMUL, VDIV, VMIN, VMAX, VANDNOT, VFMA (a b + c), VFMSUB (a b - c), VFNMADD (c - a b), VEXP, SFX(name),
 * SIGN_SELECT(x, neg, pos) (neg where x's sign bit is set), and for the tails VMASK, VTAIL(rem) (first min(rem, VL)
 * lanes), VMASKLOAD(p, m) (0 outside m), VMASKSTORE(p, m, v).
 */
#define XMAX 13.5f /* Phi(-13.5) ~ 7.7e-42: past it every result is the limit */
#define K 4.25f

/* Phi(x) and, when pdf != NULL, phi(x) (of |x| clamped to XMAX). */
static inline V ncdf(V x, V *pdf) {
    const V a = VMIN(VSET1(XMAX), VANDNOT(VSET1(-0.0f), x));
    const V s = VMUL(a, a);
    const V sl = VFMSUB(a, a, s); /* a^2 = s + sl exactly */
    V e = VEXP(VMUL(s, VSET1(-0.5f)));
    e = VFNMADD(VMUL(e, sl), VSET1(0.5f), e); /* exp(-a^2/2) = exp(-s/2) (1 - sl/2) */
    /* r = 1 / (a + K) to ~0.5 ulp: a + K rounds by up to an ulp of ~4 (1 u of r, as much as the division); the
     * rounding error lo of d = a + K is exact (Fast2Sum, larger operand first) and r (1 - r lo) removes it. */
    const V vk = VSET1(K), d = VADD(a, vk);
    const V lo = VADD(VSUB(VMAX(a, vk), d), VMIN(a, vk));
    V r = VDIV(VSET1(1.0f), d);
    r = VFNMADD(VMUL(r, lo), r, r);
    /* q = (a - K) r written as 2a r - 1 with one rounding: near a = 0, where T' / T is largest, the error of r
     * is scaled by 1 + q ~ 0 (as (a - K) r, rounding a - K and r cost up to 6 ulp of Phi there). */
    const V q = VFMSUB(VADD(a, a), r, VSET1(1.0f));
    V t = VSET1(-0x1.f21ea2p-13f);
    t = VFMA(t, q, VSET1(-0x1.886cdcp-12f));
    t = VFMA(t, q, VSET1(0x1.1d7c6cp-9f));
    t = VFMA(t, q, VSET1(-0x1.87d224p-11f));
    t = VFMA(t, q, VSET1(-0x1.3d3d94p-6f));
    t = VFMA(t, q, VSET1(0x1.5d45fap-4f));
    t = VFMA(t, q, VSET1(-0x1.c39de2p-3f));
    t = VFMA(t, q, VSET1(0x1.ac43d8p-2f));
    t = VFMA(t, q, VSET1(-0x1.401102p-1f));
    t = VFMA(t, q, VSET1(0x1.84e44ap-1f));
    const V tail = VMUL(VMUL(e, r), t); /* Q(a) = 1 - Phi(a) */
    if (pdf) *pdf = VMUL(e, VSET1(0x1.988454p-2f)); /* 1/sqrt(2 pi) */
    /* the sign bit of x picks Q(a) (x < 0, and -0: Q(0) = 1/2) or 1 - Q(a) */
    return SIGN_SELECT(x, tail, VSUB(VSET1(1.0f), tail));
}

static inline V gelu_v(V x) {
    /* x >= -XMAX keeps -inf * 0 from making a NaN; above XMAX, Phi = 1 and y = x. */
    return VMUL(VMAX(VSET1(-XMAX), x), ncdf(x, NULL));
}

static inline V dgelu_v(V x, V dy) {
    V pdf;
    const V cdf = ncdf(x, &pdf);
    const V xc = VMIN(VSET1(XMAX), VMAX(VSET1(-XMAX), x));
    return VMUL(dy, VFMA(xc, pdf, cdf));
}

void SFX(gelu_fwd)(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        V a = gelu_v(VLOAD(x + i)), b = gelu_v(VLOAD(x + i + VL));
        VSTORE(y + i, a);
        VSTORE(y + i + VL, b);
    }
    for (; i < n; i += VL) {
        const VMASK m = VTAIL(n - i);
        VMASKSTORE(y + i, m, gelu_v(VMASKLOAD(x + i, m)));
    }
}

void SFX(gelu_bwd)(int64_t n, const float *x, const float *dy, float *dx) {
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        V a = dgelu_v(VLOAD(x + i), VLOAD(dy + i));
        V b = dgelu_v(VLOAD(x + i + VL), VLOAD(dy + i + VL));
        VSTORE(dx + i, a);
        VSTORE(dx + i + VL, b);
    }
    for (; i < n; i += VL) {
        const VMASK m = VTAIL(n - i);
        VMASKSTORE(dx + i, m, dgelu_v(VMASKLOAD(x + i, m), VMASKLOAD(dy + i, m)));
    }
}
