/* AVX-512 2-D convolution, fwd and bwd_data: conv2d_avx2.c's direct correlation engine (its header comment has the
 * design: rows of the micro-kernel read in place from a padded copy through an offset table, bwd_data as stride
 * phases of conv^T, tasks of whole input-channel blocks in a fixed order, so the bits do not depend on the thread
 * count) on a wider tile: 8 output pixels x 32 output channels, 16 zmm accumulators, per reduction step 2 zmm loads
 * of B, 8 broadcasts and 16 FMAs (conv2d_ukr512, conv2d_avx512.h). B is packed 32 channels wide; a last sliver of at
 * most 16 channels runs one vector wide, and the stores take every full group of 8 channels through the 8x8
 * transposes (the AVX2 file needed the whole 16-channel sliver). The few-output-channel tiles (ukr_pv*) are the
 * AVX2 ones, up to 8 runs. The padded copy, the per-worker slots and the parked scratch are conv2d_avx2.c's.
 * Unlike the AVX2 engine, border pixels skip the taps that fall in the zero padding: each job's output rows and columns
 * fall into a few tap classes (the range of taps whose input row / column exists), the pixels of a task are ordered by
 * class so no panel mixes two, and a border class reduces over its taps only, through an x-offset table and a
 * B-offset table (ukr512_bt) instead of the packed order. On W3b (4x4, stride 2, pad 1, 7x7 outputs) 14% of the
 * nominal products are with padding; skipping them made fwd and bwd_data 6-10% faster (conv2d_test --bench, A/B on
 * the same host, best of 4). The classes, like the blocks, depend on the shape only, so the bits stay independent of
 * the thread count. The engine and the ukr_pv* tiles are conv2d_simd.h, shared with conv2d_avx2.c. */
#include <string.h>

#include "conv2d_avx512.h"

/* ---- micro-kernel ------------------------------------------------------------------------------------------ */

/* conv2d_avx512.h has the contract. mr and nsub are constants after inlining, so the loops unroll and the 16 zmm
 * accumulators stay in registers: per reduction step 2 vector loads of B, mr broadcasts, 2 mr FMAs. */
static inline __attribute__((always_inline)) void ukr512_t(const int mr, const int nsub, int64_t kc,
                                                           const float *const *rows, const int64_t *tab,
                                                           const float *b, int64_t bstep, int64_t boff, float *c,
                                                           int64_t ldc, int add) {
    __m512 acc[MR][2];
    const float *rp[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) rp[i] = rows[i < mr ? i : 0];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const float *b2 = b + boff;
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const __m512 b0 = _mm512_loadu_ps(b), b1 = nsub > 1 ? _mm512_loadu_ps(b2) : b0;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(rp[i][o]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            if (nsub > 1) acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        b += bstep;
        b2 += bstep;
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (add) {
            acc[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), acc[i][0]);
            if (nsub > 1) acc[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc[i][1]);
        }
        _mm512_storeu_ps(ci, acc[i][0]);
        if (nsub > 1) _mm512_storeu_ps(ci + 16, acc[i][1]);
    }
}

/* ukr512_t with B rows addressed through a table: B[p] = b + bt[p] (32 wide), for the tap-skipping border panels
 * (job_block): the same FMAs in the same order as ukr512_t over the taps that remain. */
static inline __attribute__((always_inline)) void ukr512_bt_t(const int mr, const int nsub, int64_t kc,
                                                              const float *const *rows, const int64_t *tab,
                                                              const int64_t *bt, const float *b, float *c,
                                                              int64_t ldc, int add) {
    __m512 acc[MR][2];
    const float *rp[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) rp[i] = rows[i < mr ? i : 0];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const float *bp = b + bt[p];
        const __m512 b0 = _mm512_loadu_ps(bp), b1 = nsub > 1 ? _mm512_loadu_ps(bp + 16) : b0;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(rp[i][o]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            if (nsub > 1) acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (add) {
            acc[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), acc[i][0]);
            if (nsub > 1) acc[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc[i][1]);
        }
        _mm512_storeu_ps(ci, acc[i][0]);
        if (nsub > 1) _mm512_storeu_ps(ci + 16, acc[i][1]);
    }
}

static void ukr512_bt(int mr, int nsub, int64_t kc, const float *const *rows, const int64_t *tab, const int64_t *bt,
                      const float *b, float *c, int64_t ldc, int add) {
#define U5(M)                                                                             \
    case M:                                                                               \
        if (nsub > 1) ukr512_bt_t(M, 2, kc, rows, tab, bt, b, c, ldc, add);               \
        else ukr512_bt_t(M, 1, kc, rows, tab, bt, b, c, ldc, add);                        \
        break;
    switch (mr) {
    U5(8) U5(7) U5(6) U5(5) U5(4) U5(3) U5(2)
    default: U5(1)
    }
#undef U5
}

void conv2d_ukr512(int mr, int nsub, int64_t kc, const float *const *rows, const int64_t *tab, const float *b,
                   int64_t bstep, int64_t boff, float *c, int64_t ldc, int add) {
#define U5(M)                                                                             \
    case M:                                                                               \
        if (nsub > 1) ukr512_t(M, 2, kc, rows, tab, b, bstep, boff, c, ldc, add);         \
        else ukr512_t(M, 1, kc, rows, tab, b, bstep, boff, c, ldc, add);                  \
        break;
    switch (mr) {
    U5(8) U5(7) U5(6) U5(5) U5(4) U5(3) U5(2)
    default: U5(1)
    }
#undef U5
}

#define SFX(name) name##_avx512
#define CONV_TAP_CLASSES 1 /* see this file's header comment */
/* every full group of 8 channels of a 32-wide sliver takes the 8x8-transpose stores (the AVX2 tile needs its whole
 * 16-channel sliver) */
#define STORE_VEC_CH(nch) ((nch) % 8 == 0)
#define STORE_GROUPS(nch) ((nch) / 8)
/* a last sliver of <= 16 channels runs one vector wide (nsub 1) */
#define CONV_UKR(mr, nsub, kc, rows, tab, b, c, ldc, add) conv2d_ukr512(mr, nsub, kc, rows, tab, b, NR, 16, c, ldc, add)

#include "conv2d_simd.h"
