/* AVX2+FMA AdamW: the loop of adamw_ref.c on 8 parameters at a time (masked tail), the same ops in the same
 * order with FMAs where PyTorch's ops pair a multiply with an add (m, v and the final addcdiv).
 *   param, grad, m, v: (len) contiguous; param, m, v updated in place.
 * 28 bytes per parameter (4 reads, 3 writes) against one sqrt and two divisions per 8: memory-bound on this
 * machine. Measured (adamw_test --bench, n = 10.7M, the 2-core VM shared with other builds): 1 thread 5.10 ms
 * (58.8 GB/s; 6.2 ms in another run), 2 threads 3.59-4.0 ms (75-83 GB/s), 6.4 ms under load; the STREAM triad of the
 * same runs read 35-72 GB/s, below this kernel's figure (it counts non-temporal stores, 1 thread, and moves with
 * the load), so the % of triad it prints is not a ceiling here. Checked by adamw_test.c. */
#include <immintrin.h>

#include "adamw.h"
#include "../common/vmath_avx2.h"

static inline void step8(const adamw_consts *k, __m256 gr, __m256 *p, __m256 *m, __m256 *v) {
    const __m256 g = _mm256_mul_ps(gr, _mm256_set1_ps(k->grad_scale));
    const __m256 pd = _mm256_mul_ps(*p, _mm256_set1_ps(k->decay));
    *m = _mm256_fmadd_ps(_mm256_set1_ps(k->beta1), *m, _mm256_mul_ps(_mm256_set1_ps(k->one_minus_beta1), g));
    *v = _mm256_fmadd_ps(_mm256_set1_ps(k->beta2), *v, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(k->one_minus_beta2), g), g));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(*v), _mm256_set1_ps(k->bc2_sqrt)), _mm256_set1_ps(k->eps));
    *p = _mm256_fnmadd_ps(_mm256_set1_ps(k->step_size), _mm256_div_ps(*m, denom), pd);
}

void adamw_avx2(const adamw_consts *k, int64_t len, float *param, const float *grad, float *m, float *v) {
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256 p = _mm256_loadu_ps(param + i), mm = _mm256_loadu_ps(m + i), vv = _mm256_loadu_ps(v + i);
        step8(k, _mm256_loadu_ps(grad + i), &p, &mm, &vv);
        _mm256_storeu_ps(param + i, p);
        _mm256_storeu_ps(m + i, mm);
        _mm256_storeu_ps(v + i, vv);
    }
    if (i < len) {
        const __m256i mask = vtail_mask(len - i);
        __m256 p = _mm256_maskload_ps(param + i, mask), mm = _mm256_maskload_ps(m + i, mask), vv = _mm256_maskload_ps(v + i, mask);
        step8(k, _mm256_maskload_ps(grad + i, mask), &p, &mm, &vv);
        _mm256_maskstore_ps(param + i, mask, p);
        _mm256_maskstore_ps(m + i, mask, mm);
        _mm256_maskstore_ps(v + i, mask, vv);
    }
}
