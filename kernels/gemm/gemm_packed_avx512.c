/* lt_gemm_rows_packed AVX-512 task. A tile is MR rows (up to 16) x NP panels (16 columns each, one zmm): per k, NP
 * panel loads and MR x NP fused multiply-adds with A[i][k] broadcast, so the weights stream through once per row block
 * and no horizontal sum is ever needed. Shapes: 9-16 rows x 1 panel, 5-8 x 2, 1-4 x 4 (enough independent chains to
 * hide the FMA latency), the panels left over 1 at a time. Each lane is fma(a, b, acc) in k order, as in the
 * reference (gemm_packed.h). */
#include <immintrin.h>

#include "gemm_packed.h"

#ifndef GP_PF
#define GP_PF 24 /* k rows (64-byte lines) of each panel prefetched ahead into L1 */
#endif
/* Tiles of 9-16 rows also prefetch GP_PF2 k rows ahead into L2 (prefetcht1). At 16 rows a line of a panel feeds 16
 * FMAs (16 cycles), so 24 lines ahead is ~400 cycles, short of a DRAM miss in this VM, and L1 prefetches are capped by
 * the L1 miss buffers (~24 lines in flight: ~13 GB/s at ~120 ns, below the ~14 GB/s a 16-row tile needs at the FMA
 * rate); the L2 prefetch keeps the stream ahead. Measured (E1 decode step at 16 rows, one thread, weights on 2 MB
 * pages, 2026-12-07): the step's GEMMs 3.6-3.8 ms -> 3.1-3.2 ms (94 -> 108 GFLOP/s); on 4 KB pages it made no
 * difference (the hardware stops at every page end). Smaller tiles stream their panels faster than they compute and
 * keep the L1 prefetch alone. */
#ifndef GP_PF2
#define GP_PF2 128
#endif

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

static inline __attribute__((always_inline)) void tile(const int MR, const int NP, int64_t k, const float *at, const float *pk,
                                                       int64_t ncols, const float *bias, float *c, int64_t ldc) {
    __m512 acc[16][4]; /* fixed bounds (not MR x NP: a VLA stays in memory); only MR x NP are used */
    for (int i = 0; i < MR; i++)
        for (int q = 0; q < NP; q++) acc[i][q] = _mm512_setzero_ps();
    const int64_t ps = k * GP_NR;
    for (int64_t p = 0; p < k; p++) {
        __m512 bv[4];
        for (int q = 0; q < NP; q++) {
            _mm_prefetch((const char *)(pk + q * ps + (p + GP_PF) * GP_NR), _MM_HINT_T0);
            if (MR > 8 && GP_PF2) _mm_prefetch((const char *)(pk + q * ps + (p + GP_PF2) * GP_NR), _MM_HINT_T1);
            bv[q] = _mm512_loadu_ps(pk + q * ps + p * GP_NR);
        }
        const float *ap = at + p * GP_MB;
        for (int i = 0; i < MR; i++) {
            const __m512 av = _mm512_set1_ps(ap[i]);
            for (int q = 0; q < NP; q++) acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
        }
    }
    for (int q = 0; q < NP; q++) {
        const __mmask16 mk = lanes(ncols - q * GP_NR);
        const __m512 bb = bias ? _mm512_maskz_loadu_ps(mk, bias + q * GP_NR) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++)
            _mm512_mask_storeu_ps(c + i * ldc + q * GP_NR, mk, bias ? _mm512_add_ps(acc[i][q], bb) : acc[i][q]);
    }
}

/* rows MR of one block against np panels: NP at a time, then the rest one by one */
#define GP_ROWS(MR, NP)                                                                                                           \
    case MR: {                                                                                                                    \
        int64_t q = 0;                                                                                                            \
        for (; q + NP <= np; q += NP)                                                                                             \
            tile(MR, NP, k, at, pk + q * k * GP_NR, ncols - q * GP_NR, bias ? bias + q * GP_NR : 0, c + q * GP_NR, ldc);         \
        for (; q < np; q++) tile(MR, 1, k, at, pk + q * k * GP_NR, ncols - q * GP_NR, bias ? bias + q * GP_NR : 0, c + q * GP_NR, ldc); \
        break;                                                                                                                    \
    }

void gemm_packed_task_avx512(GP_TASK_ARGS) {
    for (int64_t i0 = 0; i0 < m; i0 += GP_MB, at += k * GP_MB, c += GP_MB * ldc) {
        switch (m - i0 < GP_MB ? m - i0 : GP_MB) {
            GP_ROWS(1, 4) GP_ROWS(2, 4) GP_ROWS(3, 4) GP_ROWS(4, 4)
            GP_ROWS(5, 2) GP_ROWS(6, 2) GP_ROWS(7, 2) GP_ROWS(8, 2)
            GP_ROWS(9, 1) GP_ROWS(10, 1) GP_ROWS(11, 1) GP_ROWS(12, 1) GP_ROWS(13, 1) GP_ROWS(14, 1) GP_ROWS(15, 1) GP_ROWS(16, 1)
        }
    }
}
