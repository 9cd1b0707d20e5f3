/* bf16 GEMM (lt_gemm_bf16): C = alpha * op(A) * op(B) + beta * C with op(A), op(B) rounded to bf16 (round to
 * nearest even, vcvtneps2bf16) when packed, products summed in fp32 by AVX512_BF16 vdpbf16ps; C, alpha, beta
 * and the result stay fp32. The same descriptor, layouts, blocking, task plan and determinism as the fp32
 * kernels (gemm_avx2.c's header; the drivers are gemm_blocked.h), the 6 x 64 tile of gemm_avx512.c.
 *
 * Layout. vdpbf16ps adds, per fp32 lane, the products of 2 bf16 pairs, so both packed operands hold k in
 * pairs: a 32-bit word is (x[2q] in the low half, x[2q+1] in the high half). Packed A micro-panel: for
 * q = 0 .. ceil(kc/2)-1, MR words (rows); packed B sliver: for each q, NR words (columns). An odd kc pads its
 * last pair with 0. Each panel / sliver uses MR * ceil(kc/2) / NR * ceil(kc/2) words of the MR * kc / NR * kc
 * floats the driver lays out, so the driver's offsets and scratch sizes hold unchanged.
 * Micro-kernel. Per pair step: 4 zmm loads of B words, 6 broadcast A words, 24 vdpbf16ps (64 flops each, twice
 * an fp32 FMA's). Edges as in gemm_avx512.c (opmask stores, same arithmetic everywhere).
 * Arithmetic. Products of two bf16 values are exact in fp32; vdpbf16ps rounds each of its two additions to fp32
 * (RNE) and treats denormal inputs and outputs as zero. So against the exact product of the fp32 inputs an
 * element errs by at most (2 u_bf + u_bf^2) sum|a b| (u_bf = 2^-8: bf16 keeps 8 significant bits) plus the fp32
 * summation error of the fp32 kernels; gemm_test.c derives its tolerance from this.
 * Only called when lt_cpu_bf16() and the level in use is avx512 (gemm.c refuses otherwise). */
#include <immintrin.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

#ifndef GEMMBF_KC
#define GEMMBF_KC 768  /* elements: 384 pairs, the same bytes per sliver as the fp32 kernel's KC 384 */
#endif
#ifndef GEMMBF_MC
#define GEMMBF_MC 192
#endif
#define MR 6
#define NV 4
#define NR (16 * NV)
#define KC GEMMBF_KC
#define MC GEMMBF_MC
#define NC 3072
#define SLACK 16
_Static_assert(MC % MR == 0 && NC % NR == 0 && KC % 2 == 0, "tile");

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* One float to bf16 bits with the instruction the vector paths use (RNE, NaN kept quiet). */
static inline uint32_t bf(float x) { return (uint16_t)_mm_cvtness_sbh(x); }
/* 16 floats to 16 bf16, each zero-extended into a 32-bit lane. */
static inline __m512i bf16x16(__m512 x) { return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x)); }
/* Pair words from 16 values at k = 2q (lo) and 16 at k = 2q + 1 (hi). */
static inline __m512i pairs(__m512 lo, __m512 hi) { return _mm512_or_si512(bf16x16(lo), _mm512_slli_epi32(bf16x16(hi), 16)); }

/* ---- packing ----------------------------------------------------------------------------------------- */

/* Pack op(A)[i0 .. i0+mc)[p0 .. p0+kc) as pair words: panel of MR rows at ap + panel * MR * kc (floats), word
 * (q, r) at [q * MR + r] within it (rows past mc, and the pad of an odd kc, are 0). */
static void pack_a(const lt_gemm_desc *d, const float *a, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *apf) {
    const int64_t lda = d->lda, kp = (kc + 1) / 2;
    for (int64_t r0 = 0; r0 < mc; r0 += MR, apf += MR * kc) {
        uint32_t *ap = (uint32_t *)apf;
        int64_t mr = min64(MR, mc - r0);
        if (d->trans_a) { /* A is (K, M): the MR values of one k are contiguous; two k rows make MR words */
            const float *src = a + p0 * lda + i0 + r0;
            const __mmask16 in = lanes(mr), out = lanes(MR);
            int64_t q = 0;
            for (; 2 * q + 1 < kc; q++)
                _mm512_mask_storeu_epi32(ap + q * MR, out, pairs(_mm512_maskz_loadu_ps(in, src + 2 * q * lda),
                                                                 _mm512_maskz_loadu_ps(in, src + (2 * q + 1) * lda)));
            if (q < kp)
                _mm512_mask_storeu_epi32(ap + q * MR, out, pairs(_mm512_maskz_loadu_ps(in, src + 2 * q * lda), _mm512_setzero_ps()));
        } else { /* A is (M, K): a row's 32 floats convert in order to 16 pair words, then spread by row */
            const float *src = a + (i0 + r0) * lda + p0;
            for (int64_t r = 0; r < MR; r++) {
                const float *row = src + r * lda;
                int64_t q = 0;
                if (r < mr) {
                    for (; 2 * q + 32 <= kc; q += 16) {
                        uint32_t w[16] __attribute__((aligned(64)));
                        _mm512_store_si512(w, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * q + 16),
                                                                            _mm512_loadu_ps(row + 2 * q)));
                        for (int j = 0; j < 16; j++) ap[(q + j) * MR + r] = w[j];
                    }
                    for (; q < kp; q++)
                        ap[q * MR + r] = bf(row[2 * q]) | (2 * q + 1 < kc ? bf(row[2 * q + 1]) << 16 : 0);
                } else {
                    for (; q < kp; q++) ap[q * MR + r] = 0;
                }
            }
        }
    }
}

/* Pack op(B)[p0 .. p0+kc)[j0 .. j0+nc) as pair words: sliver s at bp + s * NR * kc (floats), word (q, j) at
 * [q * NR + j] (columns past nc and the pad of an odd kc are 0). */
static void pack_b(const lt_gemm_desc *d, const float *b, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float *bpf) {
    const int64_t ldb = d->ldb, kp = (kc + 1) / 2;
    for (int64_t s0 = 0; s0 < nc; s0 += NR, bpf += NR * kc) {
        uint32_t *bp = (uint32_t *)bpf;
        int64_t nr = min64(NR, nc - s0);
        if (!d->trans_b) { /* B is (K, N): two k rows of NR floats make NR words */
            const float *src = b + p0 * ldb + j0 + s0;
            __mmask16 m[NV];
            for (int v = 0; v < NV; v++) m[v] = lanes(nr - 16 * v);
            for (int64_t q = 0; q < kp; q++) {
                const float *r0 = src + 2 * q * ldb, *r1 = r0 + ldb;
                int odd = 2 * q + 1 >= kc;
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) {
                    __m512 lo = _mm512_maskz_loadu_ps(m[v], r0 + 16 * v);
                    __m512 hi = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[v], r1 + 16 * v);
                    _mm512_store_si512(bp + q * NR + 16 * v, pairs(lo, hi));
                }
            }
        } else { /* B is (N, K): column j of the sliver is row j of B, its k pairs adjacent */
            const float *src = b + (j0 + s0) * ldb + p0;
            for (int64_t j = 0; j < NR; j++) {
                const float *row = src + j * ldb;
                int64_t q = 0;
                if (j < nr) {
                    for (; 2 * q + 32 <= kc; q += 16) {
                        uint32_t w[16] __attribute__((aligned(64)));
                        _mm512_store_si512(w, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * q + 16),
                                                                            _mm512_loadu_ps(row + 2 * q)));
                        for (int t = 0; t < 16; t++) bp[(q + t) * NR + j] = w[t];
                    }
                    for (; q < kp; q++)
                        bp[q * NR + j] = bf(row[2 * q]) | (2 * q + 1 < kc ? bf(row[2 * q + 1]) << 16 : 0);
                } else {
                    for (; q < kp; q++) bp[q * NR + j] = 0;
                }
            }
        }
    }
}

/* ---- micro-kernel -------------------------------------------------------------------------------------- */

/* As gemm_avx512.c's ukr over kp pair steps: a: (kp, MR) words, b: (kp, NR) words (64-byte aligned). */
static inline __attribute__((always_inline)) void ukr(int64_t kp, const uint32_t *restrict a, const uint32_t *restrict b,
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
#pragma GCC unroll 4
    for (int64_t q = 0; q < kp; q++) {
        __m512bh bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_load_si512(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
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

#define ALL_COLS (~(uint64_t)0)

static void sliver_times_block(int64_t mc, int64_t nr, int64_t kc, const float *ap, const float *bs, float *c,
                               int64_t ldc, float alpha, float beta_eff) {
    const uint64_t cm = nr >= NR ? ALL_COLS : (((uint64_t)1 << nr) - 1);
    const int64_t kp = (kc + 1) / 2;
    for (int64_t i = 0; i < mc; i += MR) {
        const uint32_t *as = (const uint32_t *)(ap + i * kc), *bw = (const uint32_t *)bs;
        int64_t mr = min64(MR, mc - i);
        float *ct = c + i * ldc;
        if (mr == MR && nr == NR)
            ukr(kp, as, bw, ct, ldc, alpha, beta_eff, MR, ALL_COLS);
        else
            ukr(kp, as, bw, ct, ldc, alpha, beta_eff, mr, cm);
    }
}

#define GEMM_ENTRY gemm_avx512_bf16
#include "gemm_blocked.h"
