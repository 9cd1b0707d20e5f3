/* The AVX512_BF16 dot-product ceiling's chain loop (lt_peak_bf16 in peak_avx2.c runs it, only when
 * lt_cpu_bf16() and the level in use is avx512): 12 independent zmm vdpbf16ps accumulators per thread. One
 * vdpbf16ps multiplies 16 lanes x 2 bf16 pairs and adds both products into the fp32 lane: 64 flops, the
 * count a bf16 GEMM's 2 * M * N * K is graded against. */
#include <immintrin.h>

#include "peak.h"

void *peak_bf16_worker(void *p) {
    peak_arg *a = p;
    __m512 acc[12];
    /* 1.0 and a tiny value in bf16 pairs: the sums stay finite for any iteration count. */
    __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-20f), _mm512_set1_ps(1e-20f));
    __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps((float)i);
    peak_barrier_wait(a);
    a->t0 = peak_now_s();
    for (int64_t it = 0; it < a->iters; it++) {
        acc[0] = _mm512_dpbf16_ps(acc[0], x, y); acc[1] = _mm512_dpbf16_ps(acc[1], x, y);
        acc[2] = _mm512_dpbf16_ps(acc[2], x, y); acc[3] = _mm512_dpbf16_ps(acc[3], x, y);
        acc[4] = _mm512_dpbf16_ps(acc[4], x, y); acc[5] = _mm512_dpbf16_ps(acc[5], x, y);
        acc[6] = _mm512_dpbf16_ps(acc[6], x, y); acc[7] = _mm512_dpbf16_ps(acc[7], x, y);
        acc[8] = _mm512_dpbf16_ps(acc[8], x, y); acc[9] = _mm512_dpbf16_ps(acc[9], x, y);
        acc[10] = _mm512_dpbf16_ps(acc[10], x, y); acc[11] = _mm512_dpbf16_ps(acc[11], x, y);
    }
    a->t1 = peak_now_s();
    __m512 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, acc[i]);
    a->sink = _mm512_reduce_add_ps(s);
    return NULL;
}
