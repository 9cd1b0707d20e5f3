/* AVX2+FMA GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, strided batch (BLIS-style, Goto's algorithm).
 *
 *   A: (M, K) row stride lda, or (K, M) when trans_a     C[i][j] = alpha * sum_p op(A)[i][p] op(B)[p][j]
 *   B: (K, N) row stride ldb, or (N, K) when trans_b                + beta * C[i][j]   (beta == 0: C not read)
 *   C: (M, N) row stride ldc; batch entry t of X starts at X + t * stride_x. gemm.c validated all of it and
 *   handled k == 0 and alpha == 0.
 *
 * Blocking. K is cut into ceil(K / KC) near-equal k blocks, N into column blocks of at most NC, M into row
 * blocks of at most MC. Per k block, op(B) is packed into slivers of KC x NR (NR = 16 columns, one row of a
 * sliver = 64 contiguous bytes) and op(A) into micro-panels of MR x KC (MR = 6 rows), zero-padded at the
 * edges; packing reads either transpose (8x8 in-register transposes where rows are strided), so the
 * micro-kernel sees one layout. The micro-kernel keeps a 6 x 16 tile of C in 12 ymm accumulators and per k
 * step loads 2 vectors of B, broadcasts 6 values of A and issues 12 FMAs: 12 independent chains cover the 2
 * FMA pipes x ~4 cycles of latency, 15 of the 16 ymm registers are used (AVX2 has 16; AVX-512's 32 are off
 * limits), and 8 loads per 12 FMAs stay far below the load ports. Sizes for Zen 5 (48 KB L1D, 1 MB L2,
 * 32 MB L3): KC = 384 keeps a B sliver (24 KB) plus an A micro-panel (9 KB) in L1 and makes K = 384 one
 * block; MC = 192 keeps the A block (288 KB) in L2 while the slivers stream past; NC = 3072 and
 * PANEL_FLOATS (16 MB) bound the packed B kept for a group of k blocks. alpha and beta are applied when the
 * tile is stored (the first k block scales C by beta, later ones add); edge tiles go through a buffer.
 *
 * Threads. Tasks are (row block, range of slivers), a multiple of the pool size, and each task owns its C
 * block through all k blocks of the group: no barrier between k blocks, one lt_parallel_for per product for
 * the target shapes. B slivers are packed on first use by whichever task gets there (a compare-and-swap per
 * sliver; the others wait or find it done), A blocks by each task into its worker's slot. An element's sum
 * is always: the same k blocks in order, each by the same micro-kernel, so the bits do not depend on the
 * thread count, the task split or the path (small products and batches of them run whole on one thread).
 *
 * The drivers (task plan, B sliver claiming, batch / intra modes, parked scratch) are in gemm_blocked.h, shared
 * with gemm_avx512.c; this file holds the AVX2 packing and micro-kernel.
 *
 * Checked by gemm_test.c against a double-precision product with the tolerance u * (8 sqrt(K) + 3) *
 * sum|alpha a b| + |beta c| (reasons there), 1 and 2 threads bit-identical, ASan/UBSan and TSan clean.
 *   build/gemm_test                 the checks (ctest runs them at LATENT_MAX_ISA=avx2 and =ref)
 *   build/gemm_test --bench         the two target shapes on 1 and 2 threads, % of lt_peak_fma measured then
 * Measured (2026-11-24, shared 2-core Zen 5, ~3.2-3.4 GHz; best / median of 15 calls, % of the lt_peak_fma
 * measured just before; other jobs share the machine, so medians move by ~5% between runs):
 *   1024 x 1024 x 1024        1 thread   101.4 / 100.3 GFLOP/s = 95.5 / 94.5% of 106.1
 *                             2 threads  187.0 / 182.7 GFLOP/s = 89.1 / 87.1% of 209.9
 *   (4096x384) x (384x1536)   1 thread   103.0 / 102.1 GFLOP/s = 97.4 / 96.5% of 105.8
 *                             2 threads  205.6 / 194.0 GFLOP/s = 96.4 / 90.9% of 213.3
 * Same minute, medians: oneDNN 3.12 matmul (PyTorch 2.13, ONEDNN_MAX_CPU_ISA=AVX2) 94.9 / 178.4 (1024^3,
 * 1 / 2 threads) and 91.9 / 170.6 (the other shape); MKL sgemm (torch.mm) 87.2 / 153.2 and 83.9 / 163.5.
 * (oneDNN left to pick AVX-512 here reaches ~180 / ~340: another ISA, outside this project's target.)
 * Tried: a 4x24 micro-kernel (12 accumulators, 3 B vectors): same speed within noise; 3x32 (17 live
 * vectors) spills: 48 GFLOP/s. KC 256 / 320 / 512: KC 256 lost ~10% on 2 threads when k blocks were
 * separated by barriers, the others within noise. MC 96 / 144 instead of 192 on 2 threads at 1024^3:
 * 5-8% slower (likely because a task's C block, revisited once per k block, then no longer fits in L2
 * beside its A block). Unroll 1 / 4 / 8 of the k loop: no difference. A barrier per k block (B packed in a parallel
 * phase, then the multiply): same on a quiet machine, slower when another job holds a core (every barrier
 * waits for the slowest thread). More tasks per thread (8, 12): no gain. Where it is weaker: small M with
 * large K and N (64 x 4096 x 4096: ~70% on 1 thread, ~60-70% on 2), where packing B reads 64 MB from DRAM
 * for only 128 flops per element; a software prefetch of the next sliver's rows did not help. Non-temporal
 * stores of C when it is written once (one k block, beta 0, C >= 16 MB: 4096x1536x384) to skip the read for
 * ownership (2026-12-04): gemm_test --bench 1 thread 2.7% slower, 2 threads 4% faster, and beside oneDNN in
 * `bench gemm` 0.97-1.00x either way, i.e. within noise; not kept. */
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm.h"
#include "../common/transpose_avx2.h"

#ifndef GEMM_KC
#define GEMM_KC 384
#endif
#ifndef GEMM_MC
#define GEMM_MC 192
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072
#endif
#ifndef GEMM_MR
#define GEMM_MR 6
#define GEMM_NR 16
#endif
#ifndef UNROLL
#define UNROLL 4
#endif
#define STR_(x) #x
#define PRAGMA_UNROLL(n) _Pragma(STR_(GCC unroll n))
#define MR GEMM_MR
#define NR GEMM_NR
#define KC GEMM_KC
#define MC GEMM_MC
#define NC GEMM_NC
#define SLACK 16 /* floats past a packed A block: pack_a's overlapping 8-wide stores spill up to 2 */
_Static_assert(MR <= 8 && NR % 8 == 0 && MC % MR == 0 && NC % NR == 0, "pack_a transposes 8 rows; NR in whole vectors");

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

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
            if (mr == MR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int r = 0; r < MR; r++) ap[p * MR + r] = src[p * lda + r];
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t r = 0; r < MR; r++) ap[p * MR + r] = r < mr ? src[p * lda + r] : 0.0f;
            }
        } else { /* A is (M, K): transpose 8 p at a time from MR row streams */
            const float *src = a + (i0 + r0) * lda + p0;
            int64_t p = 0;
            if (mr == MR) {
                for (; p + 8 <= kc; p += 8) {
                    __m256 r[8];
                    for (int i = 0; i < 8; i++) r[i] = i < MR ? _mm256_loadu_ps(src + i * lda + p) : _mm256_setzero_ps();
                    tr8x8(r);
                    /* r[j] = column p+j; each store writes 8 floats where 6 belong: the next overwrites the 2. */
                    for (int j = 0; j < 8; j++) _mm256_storeu_ps(ap + (p + j) * MR, r[j]);
                }
            }
            for (; p < kc; p++)
                for (int64_t r = 0; r < MR; r++) ap[p * MR + r] = r < mr ? src[r * lda + p] : 0.0f;
        }
    }
}

/* pack_b's sliver from B (K, N): kc rows of NR contiguous floats (nr of them real, zeros past), 2 ymm copies a row
 * when the sliver is full, else element by element. A macro, not an inline function: inlined as a function it moved
 * the register allocation of run_task, which holds the micro-kernel's loop. */
#define PACK_B_KN(src, ldb, kc, nr, bp)                                                                                      \
    do {                                                                                                                     \
        if (nr == NR) {                                                                                                      \
            for (int64_t p = 0; p < kc; p++)                                                                                 \
                for (int v = 0; v < NR / 8; v++) _mm256_store_ps(bp + p * NR + 8 * v, _mm256_loadu_ps(src + p * ldb + 8 * v)); \
        } else {                                                                                                             \
            for (int64_t p = 0; p < kc; p++)                                                                                 \
                for (int64_t j = 0; j < NR; j++) bp[p * NR + j] = j < nr ? src[p * ldb + j] : 0.0f;                          \
        }                                                                                                                    \
    } while (0)

#include "gemm_pack_b.h"

/* ---- micro-kernel -------------------------------------------------------------------------------------- */

/* C[0..MR)[0..NR) = alpha * sum_p a[p][0..MR) (x) b[p][0..NR) + beta * C; beta == 0 does not read C.
 * a: (kc, MR) packed, b: (kc, NR) packed (64-byte aligned), c: (MR, NR) with row stride ldc.
 * The loops over i and v have constant bounds and are fully unrolled, so acc lives in MR*NV registers. */
#define NV (NR / 8)
static void ukr(int64_t kc, const float *restrict a, const float *restrict b, float *c, int64_t ldc,
                float alpha, float beta) {
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    PRAGMA_UNROLL(UNROLL)
    for (int64_t p = 0; p < kc; p++) {
        __m256 bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            float *ci = c + i * ldc + 8 * v;
            __m256 y = _mm256_mul_ps(va, acc[i][v]);
            if (beta != 0.0f) y = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), y);
            _mm256_storeu_ps(ci, y);
        }
}

/* C[0..mc)[0..nr) (+)= alpha * (A block) (B sliver), one MR x NR tile at a time down the block. Full tiles go
 * straight to C; edge tiles through a buffer and a scalar copy with the same arithmetic (alpha * acc, then
 * fma with beta * C), so an element's bits do not depend on where its tile falls. */
static void sliver_times_block(int64_t mc, int64_t nr, int64_t kc, const float *ap, const float *bs, float *c,
                               int64_t ldc, float alpha, float beta_eff) {
    for (int64_t i = 0; i < mc; i += MR) {
        const float *as = ap + i * kc;
        int64_t mr = min64(MR, mc - i);
        float *ct = c + i * ldc;
        if (mr == MR && nr == NR) {
            ukr(kc, as, bs, ct, ldc, alpha, beta_eff);
        } else {
            float buf[MR * NR] __attribute__((aligned(64)));
            ukr(kc, as, bs, buf, NR, 1.0f, 0.0f);
            for (int64_t r = 0; r < mr; r++)
                for (int64_t q = 0; q < nr; q++) {
                    float y = alpha * buf[r * NR + q];
                    ct[r * ldc + q] = beta_eff != 0.0f ? __builtin_fmaf(beta_eff, ct[r * ldc + q], y) : y;
                }
        }
    }
}

#define GEMM_ENTRY gemm_avx2
#include "gemm_blocked.h"
