/* AVX-512 decode attention for one (row, head). Keys in blocks of BK = 64: the block's scores (16-lane dot products,
 * the head dimension in zmm chunks with a masked tail, reduced per key), scaled into base 2; online softmax across
 * blocks (running max m, normalizer l, the output accumulated in o itself and rescaled by 2^(m_old - m_new) when the
 * max grows); the weights 2^(s - m) 16 at a time with exp2_ps (attention_avx512.c's polynomial, <= 0.95 ulp); then
 * o += sum_j p_j v_j over the block. o is divided by l at the end. Any hs >= 1 and len >= 1. The order of every sum
 * is fixed by (hs, len) alone.
 * Prefetch: at 16 sequences a decode step reads ~24 MB of cache per step (E1 shape, position 80), from DRAM, in short
 * runs per (row, head) (20 KB at ld = hs, KvDecoder's head-major cache; strided pieces at ld = nh hs) that the hardware
 * prefetchers ramp up on late and stop at page ends; so the score loop prefetches the K slice PF_KEYS keys ahead and the
 * V slice of the key it scores (read by the weighted sum right after the block): 2.6-2.8 -> 2.1-2.2 ms per step on one
 * thread for 6 layers x 16 rows x 80 keys with the caches cold (1.8 -> 1.1-1.2 ms on two), head-major layout included.
 * Prefetches change no arithmetic. */
#include <immintrin.h>
#include <math.h>

#include "attention_decode.h"

#define BK 64
#ifndef PF_KEYS
#define PF_KEYS 16 /* keys ahead whose K slice the score loop prefetches */
#endif
#define LOG2E 1.4426950408889634f

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

static inline __m512 exp2_ps(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-127.0f), _mm512_min_ps(_mm512_set1_ps(128.0f), x));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 t = _mm512_add_ps(x, magic);
    __m512 f = _mm512_sub_ps(x, _mm512_sub_ps(t, magic));
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

void attn_decode_head_avx512(int64_t hs, int64_t len, float scale, const float *q, const float *k, const float *v,
                             int64_t ld, float *o) {
    const float qs = scale * LOG2E;
    float s[BK] __attribute__((aligned(64)));
    float m = -INFINITY, l = 0.0f;
    for (int64_t e = 0; e < hs; e++) o[e] = 0.0f;
    for (int64_t j0 = 0; j0 < len; j0 += BK) {
        int64_t nb = len - j0 < BK ? len - j0 : BK;
        float bm = -INFINITY;
        for (int64_t j = 0; j < nb; j++) {
            const float *kj = k + (j0 + j) * ld;
            for (int64_t e = 0; e < hs; e += 16) {
                _mm_prefetch((const char *)(kj + PF_KEYS * ld + e), _MM_HINT_T0);
                _mm_prefetch((const char *)(v + (j0 + j) * ld + e), _MM_HINT_T0);
            }
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
            int64_t e = 0;
            for (; e + 32 <= hs; e += 32) {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + e), _mm512_loadu_ps(kj + e), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + e + 16), _mm512_loadu_ps(kj + e + 16), acc1);
            }
            for (; e < hs; e += 16) {
                __mmask16 mk = lanes(hs - e);
                acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + e), _mm512_maskz_loadu_ps(mk, kj + e), acc0);
            }
            float sj = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) * qs;
            s[j] = sj;
            if (sj > bm || sj != sj) bm = sj;
        }
        float mn = bm > m || bm != bm ? bm : m;
        if (mn != m) { /* rescale what was accumulated so far (l = 0 and o = 0 on the first block) */
            float a = exp2f(m - mn);
            l *= a;
            const __m512 av = _mm512_set1_ps(a);
            for (int64_t e = 0; e < hs; e += 16) {
                __mmask16 mk = lanes(hs - e);
                _mm512_mask_storeu_ps(o + e, mk, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(mk, o + e)));
            }
            m = mn;
        }
        const __m512 mv = _mm512_set1_ps(m);
        __m512 lsum = _mm512_setzero_ps();
        for (int64_t j = 0; j < nb; j += 16) {
            __mmask16 mk = lanes(nb - j);
            __m512 p = _mm512_maskz_mov_ps(mk, exp2_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + j), mv)));
            _mm512_mask_storeu_ps(s + j, mk, p);
            lsum = _mm512_add_ps(lsum, p);
        }
        l += _mm512_reduce_add_ps(lsum);
        /* o += sum_j p_j v_j: the head dimension in chunks of 64 kept in registers across the block's keys. */
        for (int64_t e0 = 0; e0 < hs; e0 += 64) {
            __mmask16 m0 = lanes(hs - e0), m1 = lanes(hs - e0 - 16), m2 = lanes(hs - e0 - 32), m3 = lanes(hs - e0 - 48);
            __m512 o0 = _mm512_maskz_loadu_ps(m0, o + e0), o1 = _mm512_maskz_loadu_ps(m1, o + e0 + 16);
            __m512 o2 = _mm512_maskz_loadu_ps(m2, o + e0 + 32), o3 = _mm512_maskz_loadu_ps(m3, o + e0 + 48);
            for (int64_t j = 0; j < nb; j++) {
                const float *vj = v + (j0 + j) * ld + e0;
                __m512 p = _mm512_set1_ps(s[j]);
                o0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m0, vj), o0);
                o1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m1, vj + 16), o1);
                o2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m2, vj + 32), o2);
                o3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(m3, vj + 48), o3);
            }
            _mm512_mask_storeu_ps(o + e0, m0, o0);
            _mm512_mask_storeu_ps(o + e0 + 16, m1, o1);
            _mm512_mask_storeu_ps(o + e0 + 32, m2, o2);
            _mm512_mask_storeu_ps(o + e0 + 48, m3, o3);
        }
    }
    const __m512 inv = _mm512_set1_ps(1.0f / l);
    for (int64_t e = 0; e < hs; e += 16) {
        __mmask16 mk = lanes(hs - e);
        _mm512_mask_storeu_ps(o + e, mk, _mm512_mul_ps(inv, _mm512_maskz_loadu_ps(mk, o + e)));
    }
}
