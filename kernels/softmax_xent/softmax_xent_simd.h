/* Softmax + cross-entropy, the SIMD body written once for both levels: losses[i] = logsumexp(x) - x[t],
 * dlogits = (softmax(x) - onehot(t)) * dscale.
 *
 *   logits (rows, V) row-major, targets (rows), losses (rows), dlogits (rows, V) or NULL (may equal logits).
 *
 * One read of each row from memory, blocked online softmax: the row is cut into blocks of B floats (B >= 512,
 * at most 256 blocks per row, so B depends on V only: the same bits for any thread count). Per block, from L1:
 *   1. m_b = max of the block; if m_b > M, the running sum is rescaled: S *= exp(M - m_b) (double), M = m_b;
 *   2. e_j = exp(x_j - M) summed (two 8-lane float accumulators, added to S in double) and, with dlogits,
 *      stored into dlogits (in place: e_j overwrites x_j after x_j is read; x[t] is saved before) and M_b = M
 *      remembered for the block.
 * Then loss = M + log S - x[t] (double), and with dlogits a second sweep over the row (from L2 for V = 50257:
 * 200 KB) scales block b by exp(M_b - M) / S * dscale and subtracts dscale at t. One exp per logit in total.
 * Error: the float block sums err by at most (B/16 + 3) u relative worst case (positive terms; B = 512 up to
 * V = 131072: 35 u), exp by ~1 ulp (vmath_avx2.h),
 * x - M rounds by u |x - M| (negligible weight once exp makes the term small): softmax_xent_test.c allows
 * |d loss| <= u (48 + |loss|) and |d grad_j| <= u |dscale| ((48 + |x_j - M|) p_j + 2 [j == t]).
 * Special rows: a leading run of blocks that are all -inf contributes zeros (no -inf - -inf); a row with no
 * finite maximum gives NaN loss and gradient (as PyTorch); NaN anywhere in a row gives NaN (a block whose max
 * is -inf is scanned for NaN, elsewhere exp(NaN - M) carries it).
 * Measured on the 2-core Zen 5 VM, shared with other builds (load average 2.3-2.7 during the run, so the
 * 2-thread figures are contended and noisy; best of the reps):
 *   N=2048 V=50257 loss only:   1 thr 39.8 ms (10.3 GB/s), 2 thr 21.2 ms (19.4 GB/s); STREAM triad 40-75 GB/s.
 *   N=2048 V=50257 + in-place dlogits: 1 thr 44.1 ms (18.7 GB/s), 2 thr 24.4 ms (33.7 GB/s).
 *   N=2048 V=65: loss only 0.105 / 0.053 ms, + dlogits 0.122 / 0.063 ms (1 / 2 threads).
 *   Compute-bound at ~10 cycles per 8 logits (the exp):
 *   the prefetch of the next block while the current one is in exp halved the V=50257 time (82 -> 43 ms).
 * (The description and numbers above are the AVX2 level's, 8 lanes; softmax_xent_avx512.c says what changes at 16.)
 * softmax_xent_avx2.c and softmax_xent_avx512.c define the vector type and operations, then #include this file
 * (never compiled on its own; not a *.c, so CMake does not glob it). Required: V, VL, VLOAD, VSTORE, VSET1, VZERO,
 * VADD, VSUB, VMUL, VMAX, VEXP, VHMAX (horizontal max to float), VHSUM_D (lane sum in double, fixed order), SFX(name),
 * and for the row tails VMASK, VTAIL(rem), VMASKLOAD(p, m), VMASKSTORE(p, m, v), VMASKZERO(m, v) (lanes outside m
 * zeroed), load_tail_ninf(p, rem) (-inf past rem), fill_tail(d, j, len, z, val) and scale_tail(d, j, len, vf, f)
 * (elements j .. len - 1, fewer than a vector's worth for fill, two vectors' worth for scale).
 */
#include <math.h>

#define MAX_BLOCKS 256

static int64_t block_len(int64_t v) {
    int64_t b = (v + MAX_BLOCKS - 1) / MAX_BLOCKS;
    b = (b + 7) & ~(int64_t)7;
    return b < 512 ? 512 : b;
}

static float block_max(const float *x, int64_t len) {
    V m0 = VSET1(-INFINITY), m1 = m0;
    int64_t j = 0;
    for (; j + 2 * VL <= len; j += 2 * VL) {
        m0 = VMAX(m0, VLOAD(x + j));
        m1 = VMAX(m1, VLOAD(x + j + VL));
    }
    for (; j + VL <= len; j += VL) m0 = VMAX(m0, VLOAD(x + j));
    if (j < len) m1 = VMAX(m1, load_tail_ninf(x + j, len - j));
    return VHMAX(VMAX(m0, m1));
}

/* sum_j exp(x_j - m) over the block, in a fixed order; stores each term to e (may equal x) when e != NULL. */
static double block_sumexp(const float *x, int64_t len, float m, float *e) {
    const V vm = VSET1(m);
    V s0 = VZERO(), s1 = s0;
    int64_t j = 0;
    for (; j + 2 * VL <= len; j += 2 * VL) {
        V e0 = VEXP(VSUB(VLOAD(x + j), vm));
        V e1 = VEXP(VSUB(VLOAD(x + j + VL), vm));
        s0 = VADD(s0, e0);
        s1 = VADD(s1, e1);
        if (e) {
            VSTORE(e + j, e0);
            VSTORE(e + j + VL, e1);
        }
    }
    for (; j + VL <= len; j += VL) {
        V e0 = VEXP(VSUB(VLOAD(x + j), vm));
        s0 = VADD(s0, e0);
        if (e) VSTORE(e + j, e0);
    }
    if (j < len) {
        const VMASK mask = VTAIL(len - j);
        V e0 = VMASKZERO(mask, VEXP(VSUB(VMASKLOAD(x + j, mask), vm)));
        s1 = VADD(s1, e0);
        if (e) VMASKSTORE(e + j, mask, e0);
    }
    return VHSUM_D(VADD(s0, s1));
}

static void fill(float *d, int64_t len, float val) {
    const V z = VSET1(val);
    int64_t j = 0;
    for (; j + VL <= len; j += VL) VSTORE(d + j, z);
    fill_tail(d, j, len, z, val);
}

static void scale(float *d, int64_t len, float f) {
    const V vf = VSET1(f);
    int64_t j = 0;
    for (; j + 2 * VL <= len; j += 2 * VL) {
        VSTORE(d + j, VMUL(VLOAD(d + j), vf));
        VSTORE(d + j + VL, VMUL(VLOAD(d + j + VL), vf));
    }
    scale_tail(d, j, len, vf, f);
}

static void row(int64_t v, const float *x, int32_t t, float *loss, float *d, float dscale) {
    if (t < 0) { /* ignored row: logits not read */
        *loss = 0.0f;
        if (d) fill(d, v, 0.0f);
        return;
    }
    const float xt = x[t];
    const int64_t bl = block_len(v);
    float mb[MAX_BLOCKS]; /* the running max each block's stored terms are relative to */
    float m = -INFINITY;
    double s = 0;
    int64_t nb = 0;
    for (int64_t b0 = 0; b0 < v; b0 += bl, nb++) {
        const int64_t len = v - b0 < bl ? v - b0 : bl;
        const float bm = block_max(x + b0, len);
        if (bm > m) {
            s *= exp((double)m - bm); /* 0 * exp(-inf) = 0 on the first finite block */
            m = bm;
        }
        mb[nb] = m;
        if (m == -INFINITY) { /* nothing finite yet: the block contributes exp(-inf) = 0, unless it holds NaN */
            for (int64_t j = 0; j < len; j++)
                if (x[b0 + j] != x[b0 + j]) s = NAN;
            if (d) fill(d + b0, len, 0.0f);
            continue;
        }
        /* The exp sweep is compute-bound and runs from L1: start the next block's DRAM reads now. */
        for (int64_t j = b0 + bl; j < b0 + 2 * bl && j < v; j += 16) _mm_prefetch((const char *)(x + j), _MM_HINT_T0);
        s += block_sumexp(x + b0, len, m, d ? d + b0 : NULL);
    }
    *loss = (float)((double)m + log(s) - xt);
    if (!d) return;
    const double inv = dscale / s;
    nb = 0;
    for (int64_t b0 = 0; b0 < v; b0 += bl, nb++) {
        const int64_t len = v - b0 < bl ? v - b0 : bl;
        /* exp(-inf) = 0 for blocks before the first finite value; NaN when no value is finite (-inf - -inf). */
        scale(d + b0, len, (float)(exp((double)mb[nb] - m) * inv));
    }
    d[t] -= dscale;
}

void SFX(softmax_xent_rows)(int64_t rows, int64_t v, const float *logits, const int32_t *targets, float *losses,
                             float *dlogits, float dscale) {
    for (int64_t i = 0; i < rows; i++)
        row(v, logits + i * v, targets[i], losses + i, dlogits ? dlogits + i * v : NULL, dscale);
}
