/* pack_b of the AVX2 and AVX-512 GEMMs, written once: gemm_avx2.c and gemm_avx512.c define NR (the sliver width:
 * 16 / 64 columns), min64, tr8x8 (common/transpose_avx2.h) and PACK_B_KN(src, ldb, kc, nr, bp) (a sliver from B (K, N), the part that
 * differs: ymm copies vs zmm copies with opmask edges), then #include this file (never compiled on its own; not a *.c,
 * so CMake does not glob it). From B (N, K) both levels transpose 8 x 8 with ymm. */
#ifndef LT_GEMM_PACK_B_H
#define LT_GEMM_PACK_B_H

/* Pack op(B)[p0 .. p0+kc)[j0 .. j0+nc) into slivers of NR columns: sliver s holds, for p = 0 .. kc-1, the NR
 * values op(B)[p0 + p][j0 + s*NR + j] contiguously (columns past nc are zero).  bp: (ceil(nc/NR), kc, NR). */
static void pack_b(const lt_gemm_desc *d, const float *b, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float *bp) {
    const int64_t ldb = d->ldb;
    for (int64_t s0 = 0; s0 < nc; s0 += NR, bp += NR * kc) {
        int64_t nr = min64(NR, nc - s0);
        if (!d->trans_b) { /* B is (K, N): a sliver row is NR contiguous floats */
            const float *src = b + p0 * ldb + j0 + s0;
            PACK_B_KN(src, ldb, kc, nr, bp);
        } else { /* B is (N, K): transpose 8x8 blocks from 16 row streams */
            const float *src = b + (j0 + s0) * ldb + p0;
            int64_t p = 0;
            if (nr == NR) {
                for (; p + 8 <= kc; p += 8) {
                    for (int h = 0; h < NR / 8; h++) {
                        __m256 r[8];
                        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (h * 8 + i) * ldb + p);
                        tr8x8(r);
                        for (int j = 0; j < 8; j++) _mm256_store_ps(bp + (p + j) * NR + h * 8, r[j]);
                    }
                }
            }
            for (; p < kc; p++)
                for (int64_t j = 0; j < NR; j++) bp[p * NR + j] = j < nr ? src[j * ldb + p] : 0.0f;
        }
    }
}

#endif
