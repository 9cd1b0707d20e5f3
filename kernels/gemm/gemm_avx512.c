/* AVX-512 GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, strided batch; the same contract, blocking
 * scheme, task plan and determinism as gemm_avx2.c (read its header first; the drivers are shared through
 * gemm_blocked.h), with a wider micro-tile that uses the 32 zmm registers and masked edges.
 *
 * Micro-tile. MR x NR = 6 x 64: C in 24 zmm accumulators, per k step 4 zmm loads of the packed B sliver, 6
 * broadcasts of packed A and 24 FMAs; 24 independent chains cover 2 FMA pipes x 4 cycles, 10 loads per 24 FMAs
 * leave the load ports idle half the time, and 24 + 4 B vectors + 1 broadcast fit the 32 registers.
 * GEMM512_MR / GEMM512_NV select other tiles (NR = 16 * NV) for measurement; see "Measured" below.
 * Edges. A partial tile runs the same micro-kernel (packed A and B are zero-padded) and stores only its
 * rows and, through an opmask, its columns: no buffer, and the arithmetic of an element (alpha * acc, then
 * an fma with beta * C) is the same wherever its tile falls.
 * Packing. op(A) from (M, K) is transposed 8 x 8 (ymm) from up to 16 row streams; from (K, M) each k step is
 * one masked zmm load and store. op(B) from (K, N) is NV zmm copies per k step (masked at the edge sliver);
 * from (N, K) it is transposed 8 x 8.
 * Sizes. KC = 384 makes K = 384 (the 4096x1536x384 target) one k block, so C is written once; MC = 192 keeps
 * the A block (288 KB) in L2 (1 MB per core on Zen 4 and Zen 5) beside the sliver (96 KB) it is multiplied by.
 * Measured (2026-12-07, the shared 2-core EPYC this project runs on, CPUID family 25 model 17, i.e. Zen 4:
 * 32 KB L1D, 1 MB L2, and 512-bit FMAs issued as two 256-bit halves, so the AVX-512 FMA ceiling equals the AVX2
 * one, ~116 / ~232 GFLOP/s on 1 / 2 threads; other agents compiled on the same cores during these runs, so
 * 2-thread medians moved by up to 15% between rounds). Two interleaved rounds of gemm_test --bench, medians:
 *   tile (KC, MC)          1024^3 1 thr / 2 thr     4096x1536x384 1 thr / 2 thr     GFLOP/s
 *   14x32 (384, 168)       92.5 / 183.8             99.8 / 186.7
 *   12x32 (384, 192)       92.7 / 181.8             99.3 / 192.2
 *   8x48  (384, 192)       -    / 189.7             -    / 220.0   (2 thr only, 3 rounds of another series)
 *   6x64  (192, 192)       91.9 / 172.6             97.0 / 175.8
 *   6x64  (256, 192)       94.7 / 166.9             89.8 / 167.0   (K = 384 split in two k blocks)
 *   6x64  (384, 192)       102.6 / 182.8            97.4 / 200.2   <- kept
 *   6x64  (384, 96)        97.3 / 181.8             99.6 / 208.0
 * The 6 x 64 tile streams A (the broadcast operand) 2.3x less than 14 x 32 per flop and its 4 B vectors per
 * k step share each broadcast; 14 x 32 and 12 x 32 used 28 / 24 accumulators with no spill (checked in the
 * disassembly) but were no faster. BENCHMARKS.md has the figures beside oneDNN in one run.
 * Checked by gemm_test.c (ctest runs it at LATENT_MAX_ISA=avx512 too) with the AVX2 kernel's tolerance, on
 * shapes that hit the 16-, 32- and 64-wide column tails and the 6-row tail, 1 and 2 threads bit-identical, ASan/UBSan clean.
 *   LATENT_MAX_ISA=avx512 build/gemm_test --bench    % of the AVX-512 FMA ceiling measured in the same run */
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm.h"
#include "../common/transpose_avx2.h" /* 8 x 8 ymm transposes; this file is compiled with -mavx2 as well */

#ifndef GEMM512_KC
#define GEMM512_KC 384
#endif
#ifndef GEMM512_MC
#define GEMM512_MC 192
#endif
#ifndef GEMM512_NC
#define GEMM512_NC 3072
#endif
#ifndef GEMM512_MR
#define GEMM512_MR 6
#define GEMM512_NV 4
#endif
#ifndef UNROLL
#define UNROLL 4
#endif
#define STR_(x) #x
#define PRAGMA_UNROLL(n) _Pragma(STR_(GCC unroll n))
#define MR GEMM512_MR
#define NV GEMM512_NV
#define NR (16 * NV)
#define KC GEMM512_KC
#define MC GEMM512_MC
#define NC GEMM512_NC
#define SLACK 16 /* floats past a packed A block: pack_a's overlapping 8-wide stores spill up to 7 */
_Static_assert(MR <= 16 && NV <= 4 && MC % MR == 0 && NC % NR == 0, "pack_a transposes up to 16 rows; NR <= 64");

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
/* Lanes [0, n) of a 16-lane mask, n clamped to 0..16. */
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* ---- packing ----------------------------------------------------------------------------------------- */

/* Pack op(A)[i0 .. i0+mc)[p0 .. p0+kc) into micro-panels of MR rows: panel q holds, for p = 0 .. kc-1, the
 * MR values op(A)[i0 + q*MR + r][p0 + p] contiguously (rows past mc are zero).  ap: (ceil(mc/MR), kc, MR). */
static void pack_a(const lt_gemm_desc *d, const float *a, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *ap) {
    const int64_t lda = d->lda;
    for (int64_t r0 = 0; r0 < mc; r0 += MR, ap += MR * kc) {
        int64_t mr = min64(MR, mc - r0);
        if (d->trans_a) { /* A is (K, M): the MR values for one p are contiguous */
            const float *src = a + p0 * lda + i0 + r0;
            const __mmask16 in = lanes(mr), out = lanes(MR);
            for (int64_t p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(ap + p * MR, out, _mm512_maskz_loadu_ps(in, src + p * lda));
        } else { /* A is (M, K): transpose 8 p at a time from the MR row streams, 8 rows per ymm transpose */
            const float *src = a + (i0 + r0) * lda + p0;
            int64_t p = 0;
            enum { G = (MR + 7) / 8 };
            if (mr == MR) {
                for (; p + 8 <= kc; p += 8) {
                    __m256 r[G][8];
                    for (int g = 0; g < G; g++) {
                        for (int i = 0; i < 8; i++)
                            r[g][i] = 8 * g + i < MR ? _mm256_loadu_ps(src + (8 * g + i) * lda + p) : _mm256_setzero_ps();
                        tr8x8(r[g]);
                    }
                    /* r[g][j] = rows 8g.. of column p+j; stores in increasing address order, each overwriting
                     * the padding lanes the previous one spilled into the next column. */
                    for (int j = 0; j < 8; j++)
                        for (int g = 0; g < G; g++) _mm256_storeu_ps(ap + (p + j) * MR + 8 * g, r[g][j]);
                }
            }
            for (; p < kc; p++)
                for (int64_t r = 0; r < MR; r++) ap[p * MR + r] = r < mr ? src[r * lda + p] : 0.0f;
        }
    }
}

/* pack_b's sliver from B (K, N): kc rows of NR contiguous floats (nr of them real, zeros past), NV zmm copies a
 * row, under opmasks at the edge sliver (the AVX2 file goes element by element there). A macro, as in gemm_avx2.c. */
#define PACK_B_KN(src, ldb, kc, nr, bp)                                                                                    \
    do {                                                                                                                   \
        if (nr == NR) {                                                                                                    \
            for (int64_t p = 0; p < kc; p++)                                                                               \
                _Pragma("GCC unroll 4")                                                                                    \
                for (int v = 0; v < NV; v++) _mm512_store_ps(bp + p * NR + 16 * v, _mm512_loadu_ps(src + p * ldb + 16 * v)); \
        } else {                                                                                                           \
            __mmask16 m[NV];                                                                                               \
            for (int v = 0; v < NV; v++) m[v] = lanes(nr - 16 * v);                                                        \
            for (int64_t p = 0; p < kc; p++)                                                                               \
                for (int v = 0; v < NV; v++)                                                                               \
                    _mm512_store_ps(bp + p * NR + 16 * v, _mm512_maskz_loadu_ps(m[v], src + p * ldb + 16 * v));            \
        }                                                                                                                  \
    } while (0)

#include "gemm_pack_b.h"

/* ---- micro-kernel -------------------------------------------------------------------------------------- */

/* C[0..mr)[0..NR) under the column mask cm (bit j = column j) = alpha * sum_p a[p][0..MR) (x) b[p][0..NR)
 * + beta * C; beta == 0 does not read C. a: (kc, MR) packed, b: (kc, NR) packed (64-byte aligned), c: row
 * stride ldc. Inlined at two call sites: the full tile (mr = MR, all columns: plain stores) and the edge. */
static inline __attribute__((always_inline)) void ukr(int64_t kc, const float *restrict a, const float *restrict b,
                                                      float *c, int64_t ldc, float alpha, float beta, int64_t mr,
                                                      uint64_t cm) {
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
        }
    }
    PRAGMA_UNROLL(UNROLL)
    for (int64_t p = 0; p < kc; p++) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *ci = c + i * ldc + 16 * v;
            __mmask16 m = (__mmask16)(cm >> (16 * v));
            __m512 y = _mm512_mul_ps(va, acc[i][v]);
            if (beta != 0.0f) y = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, ci), y);
            _mm512_mask_storeu_ps(ci, m, y);
        }
    }
}

#define ALL_COLS (NR == 64 ? ~(uint64_t)0 : (((uint64_t)1 << NR) - 1))

/* C[0..mc)[0..nr) (+)= alpha * (A block) (B sliver), one MR x NR tile at a time down the block; the last
 * tile's rows and an edge sliver's columns are stored under masks. */
static void sliver_times_block(int64_t mc, int64_t nr, int64_t kc, const float *ap, const float *bs, float *c,
                               int64_t ldc, float alpha, float beta_eff) {
    const uint64_t cm = nr >= NR ? ALL_COLS : (((uint64_t)1 << nr) - 1);
    for (int64_t i = 0; i < mc; i += MR) {
        const float *as = ap + i * kc;
        int64_t mr = min64(MR, mc - i);
        float *ct = c + i * ldc;
        if (mr == MR && nr == NR)
            ukr(kc, as, bs, ct, ldc, alpha, beta_eff, MR, ALL_COLS);
        else
            ukr(kc, as, bs, ct, ldc, alpha, beta_eff, mr, cm);
    }
}

#define GEMM_ENTRY gemm_avx512
#include "gemm_blocked.h"
