/* The AVX-512 FMA ceiling's chain loop (lt_peak_fma_isa(LT_ISA_AVX512, ...) in peak_avx2.c runs it): 12
 * independent zmm accumulators per thread, as the ymm loop, so the two ceilings differ only in vector width.
 * Zen 5: 2 FMA pipes x 4 cycles latency = 8 in flight; 12 leaves slack. Called only at ISA avx512. */
#include <immintrin.h>

#include "peak.h"

void *peak_fma_avx512_worker(void *p) {
    peak_arg *a = p;
    __m512 acc[12];
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps((float)i);
    peak_barrier_wait(a);
    a->t0 = peak_now_s();
    for (int64_t it = 0; it < a->iters; it++) {
        /* Unrolled by hand so the compiler keeps 12 chains in registers. */
        acc[0] = _mm512_fmadd_ps(acc[0], x, y); acc[1] = _mm512_fmadd_ps(acc[1], x, y);
        acc[2] = _mm512_fmadd_ps(acc[2], x, y); acc[3] = _mm512_fmadd_ps(acc[3], x, y);
        acc[4] = _mm512_fmadd_ps(acc[4], x, y); acc[5] = _mm512_fmadd_ps(acc[5], x, y);
        acc[6] = _mm512_fmadd_ps(acc[6], x, y); acc[7] = _mm512_fmadd_ps(acc[7], x, y);
        acc[8] = _mm512_fmadd_ps(acc[8], x, y); acc[9] = _mm512_fmadd_ps(acc[9], x, y);
        acc[10] = _mm512_fmadd_ps(acc[10], x, y); acc[11] = _mm512_fmadd_ps(acc[11], x, y);
    }
    a->t1 = peak_now_s();
    __m512 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, acc[i]);
    a->sink = _mm512_reduce_add_ps(s);
    return NULL;
}
