/* AVX2+FMA decode attention for one (row, head): attention_decode_avx512.c's scheme with 8 lanes (keys in blocks of
 * BK = 64, online softmax across blocks, o accumulated in place and divided by l at the end), the weights with vexp
 * (../common/vmath_avx2.h, <= 1.42 u) in natural units, partial vectors through lane masks. Any hs >= 1, len >= 1;
 * the order of every sum is fixed by (hs, len) alone. */
#include <immintrin.h>
#include <math.h>

#include "attention_decode.h"
#include "../common/vmath_avx2.h"

#define BK 64

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void attn_decode_head_avx2(int64_t hs, int64_t len, float scale, const float *q, const float *k, const float *v,
                           int64_t ld, float *o) {
    float s[BK] __attribute__((aligned(32)));
    float m = -INFINITY, l = 0.0f;
    const int64_t hfull = hs / 8 * 8;
    const __m256i tail = vtail_mask(hs - hfull);
    for (int64_t e = 0; e < hs; e++) o[e] = 0.0f;
    for (int64_t j0 = 0; j0 < len; j0 += BK) {
        int64_t nb = len - j0 < BK ? len - j0 : BK;
        float bm = -INFINITY;
        for (int64_t j = 0; j < nb; j++) {
            const float *kj = k + (j0 + j) * ld;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            int64_t e = 0;
            for (; e + 16 <= hfull; e += 16) {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + e), _mm256_loadu_ps(kj + e), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + e + 8), _mm256_loadu_ps(kj + e + 8), acc1);
            }
            for (; e < hfull; e += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + e), _mm256_loadu_ps(kj + e), acc0);
            if (hfull < hs) acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + hfull, tail), _mm256_maskload_ps(kj + hfull, tail), acc1);
            float sj = hsum(_mm256_add_ps(acc0, acc1)) * scale;
            s[j] = sj;
            if (sj > bm || sj != sj) bm = sj;
        }
        float mn = bm > m || bm != bm ? bm : m;
        if (mn != m) {
            float a = expf(m - mn);
            l *= a;
            for (int64_t e = 0; e < hs; e++) o[e] *= a;
            m = mn;
        }
        const __m256 mv = _mm256_set1_ps(m);
        __m256 lsum = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= nb; j += 8) {
            __m256 p = vexp(_mm256_sub_ps(_mm256_load_ps(s + j), mv));
            _mm256_store_ps(s + j, p);
            lsum = _mm256_add_ps(lsum, p);
        }
        if (j < nb) {
            const __m256i mk = vtail_mask(nb - j);
            __m256 p = _mm256_and_ps(vexp(_mm256_sub_ps(_mm256_maskload_ps(s + j, mk), mv)), _mm256_castsi256_ps(mk));
            _mm256_maskstore_ps(s + j, mk, p);
            lsum = _mm256_add_ps(lsum, p);
        }
        l += hsum(lsum);
        int64_t e0 = 0;
        for (; e0 + 32 <= hfull; e0 += 32) {
            __m256 o0 = _mm256_loadu_ps(o + e0), o1 = _mm256_loadu_ps(o + e0 + 8);
            __m256 o2 = _mm256_loadu_ps(o + e0 + 16), o3 = _mm256_loadu_ps(o + e0 + 24);
            for (int64_t jj = 0; jj < nb; jj++) {
                const float *vj = v + (j0 + jj) * ld + e0;
                __m256 p = _mm256_set1_ps(s[jj]);
                o0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj), o0);
                o1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8), o1);
                o2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 16), o2);
                o3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 24), o3);
            }
            _mm256_storeu_ps(o + e0, o0);
            _mm256_storeu_ps(o + e0 + 8, o1);
            _mm256_storeu_ps(o + e0 + 16, o2);
            _mm256_storeu_ps(o + e0 + 24, o3);
        }
        for (; e0 < hfull; e0 += 8) {
            __m256 o0 = _mm256_loadu_ps(o + e0);
            for (int64_t jj = 0; jj < nb; jj++) o0 = _mm256_fmadd_ps(_mm256_set1_ps(s[jj]), _mm256_loadu_ps(v + (j0 + jj) * ld + e0), o0);
            _mm256_storeu_ps(o + e0, o0);
        }
        if (hfull < hs) {
            __m256 o0 = _mm256_maskload_ps(o + hfull, tail);
            for (int64_t jj = 0; jj < nb; jj++)
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(s[jj]), _mm256_maskload_ps(v + (j0 + jj) * ld + hfull, tail), o0);
            _mm256_maskstore_ps(o + hfull, tail, o0);
        }
    }
    const float inv = 1.0f / l;
    for (int64_t e = 0; e < hs; e++) o[e] *= inv;
}
