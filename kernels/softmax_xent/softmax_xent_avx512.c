/* AVX-512 softmax + cross-entropy: softmax_xent_avx2.c's blocked online softmax (same blocks, same two-pass
 * gradient, same special-row rules), 16 lanes per vector: two 16-lane float accumulators per block (reduced
 * to 8 lanes, then vmath_avx2.h's fixed double sum), vexp16 (vmath's vexp 16 wide, underflow by zero-masking),
 * row tails by masked loads and stores. Error bound as in softmax_xent_avx2.c with B/32 + 4 u for the block
 * sums (softmax_xent_test.c's tolerance covers it). Speed: BENCHMARKS.md (memory-bound ops, AVX-512). */
#include <immintrin.h>
#include <math.h>

#include "softmax_xent.h"
#include "../common/vmath_avx2.h"

static inline __mmask16 tail16(int64_t rem) { return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1); }

/* vmath_avx2.h's vexp, 16 lanes: e^y, NaN kept, y < -87.34 gives 0. */
static inline __m512 vexp16(__m512 y) {
    const __m512 lo = _mm512_set1_ps(-87.3365478515625f), hi = _mm512_set1_ps(88.0f);
    const __mmask16 under = _mm512_cmp_ps_mask(y, lo, _CMP_LT_OQ);
    y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
    const __m512 magic = _mm512_set1_ps(12583039.0f);
    const __m512 t = _mm512_fmadd_ps(y, _mm512_set1_ps(1.44269502f), magic);
    const __m512 kf = _mm512_sub_ps(t, magic);
    __m512 f = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0x1.62e430p-1f), y);
    f = _mm512_fnmadd_ps(kf, _mm512_set1_ps(-0x1.05c610p-29f), f);
    __m512 p = _mm512_set1_ps(0x1.6a4f70p-10f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.123980p-7f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.5558aep-5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.555492p-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.fffffcp-2f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    const __m512 two_k = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_mul_ps(p, two_k));
}

#define MAX_BLOCKS 256

static int64_t block_len(int64_t v) {
    int64_t b = (v + MAX_BLOCKS - 1) / MAX_BLOCKS;
    b = (b + 7) & ~(int64_t)7; /* as softmax_xent_avx2.c: the blocks depend on V only */
    return b < 512 ? 512 : b;
}

static float block_max(const float *x, int64_t len) {
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + j + 16));
    }
    for (; j + 16 <= len; j += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
    if (j < len) m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail16(len - j), x + j));
    const __m512 m = _mm512_max_ps(m0, m1);
    return vhmax(_mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1)));
}

/* sum_j exp(x_j - m) over the block, in a fixed order; stores each term to e (may equal x) when e != NULL. */
static double block_sumexp(const float *x, int64_t len, float m, float *e) {
    const __m512 vm = _mm512_set1_ps(m);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        __m512 e0 = vexp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        __m512 e1 = vexp16(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vm));
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        if (e) {
            _mm512_storeu_ps(e + j, e0);
            _mm512_storeu_ps(e + j + 16, e1);
        }
    }
    for (; j + 16 <= len; j += 16) {
        __m512 e0 = vexp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        s0 = _mm512_add_ps(s0, e0);
        if (e) _mm512_storeu_ps(e + j, e0);
    }
    if (j < len) {
        const __mmask16 mk = tail16(len - j);
        __m512 e0 = _mm512_maskz_mov_ps(mk, vexp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), vm)));
        s1 = _mm512_add_ps(s1, e0);
        if (e) _mm512_mask_storeu_ps(e + j, mk, e0);
    }
    const __m512 s = _mm512_add_ps(s0, s1);
    return vhsum_d(_mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1)));
}

static void fill(float *d, int64_t len, float val) {
    const __m512 z = _mm512_set1_ps(val);
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) _mm512_storeu_ps(d + j, z);
    if (j < len) _mm512_mask_storeu_ps(d + j, tail16(len - j), z);
}

static void scale(float *d, int64_t len, float f) {
    const __m512 vf = _mm512_set1_ps(f);
    int64_t j = 0;
    for (; j + 32 <= len; j += 32) {
        _mm512_storeu_ps(d + j, _mm512_mul_ps(_mm512_loadu_ps(d + j), vf));
        _mm512_storeu_ps(d + j + 16, _mm512_mul_ps(_mm512_loadu_ps(d + j + 16), vf));
    }
    for (; j < len; j += 16) {
        const __mmask16 mk = tail16(len - j);
        _mm512_mask_storeu_ps(d + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, d + j), vf));
    }
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

void softmax_xent_rows_avx512(int64_t rows, int64_t v, const float *logits, const int32_t *targets, float *losses,
                            float *dlogits, float dscale) {
    for (int64_t i = 0; i < rows; i++)
        row(v, logits + i * v, targets[i], losses + i, dlogits ? dlogits + i * v : NULL, dscale);
}
