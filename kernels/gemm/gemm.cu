/* GEMM on the GPU: C = alpha op(A) op(B) + beta C, the lt_gemm contract (latent.h, lt_gemm_desc passed by value,
 * the same struct the CPU takes). Two kernels, both 64 x 64 output tiles per block, grid (ceil(N/64), ceil(M/64),
 * batch), transposes folded into the tile loads (op(A)[i][p] = a[i*lda + p] or a[p*lda + i]):
 *
 *   ltk_gemm_f32  — exact fp32, SIMT: 256 threads, each a 4 x 4 micro-tile (rows ty + 16r, columns tx + 16c,
 *                   so shared-memory reads broadcast), K in steps of 16 through shared memory. Every C element is
 *                   one float accumulator summed over p = 0..K-1 in order (fmaf): gemm_test.c's tolerance
 *                   u (8 sqrt(K) + 3) * sum |terms| holds unchanged.
 *   ltk_gemm_tf32 — tensor cores: 128 threads = 4 warps in 2 x 2, each warp 32 x 32 = 2 x 4 tiles of
 *                   mma.sync m16n8k8 TF32 with fp32 accumulation (lt_mma_tf32_16x8x8 in lt_cuda.cuh, PTX with a
 *                   shuffle twin). Inputs are rounded to TF32 (cvt.rna) when stored to shared memory: relative
 *                   error 2^-11 per input, so the test allows 2^-10 sum |terms| on top of the fp32 bound.
 * Shared-memory strides (BK + 4 for A, BN + 8 for B) make the fragment reads bank-conflict free.
 * Loads are plain guarded loads (zero outside the matrix); cp.async double buffering and 128 x 128 tiles are the
 * next steps for throughput and need a GPU to tune (docs/cuda.md). gemm_cuda_test.cc checks both against a
 * double product on shapes at every tile tail, transposes, batches, alpha / beta, beta = 0 with NaN in C. */
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16

/* op(A)[i][p] and op(B)[p][j] of batch entry `bt`, zero outside the matrix. */
struct gemm_view {
    const float *a, *b;
    int64_t a_si, a_sp, b_sp, b_sj, m, n, k;
    __device__ __forceinline__ float A(int64_t i, int64_t p) const { return i < m && p < k ? a[i * a_si + p * a_sp] : 0.0f; }
    __device__ __forceinline__ float B(int64_t p, int64_t j) const { return p < k && j < n ? b[p * b_sp + j * b_sj] : 0.0f; }
};

static __device__ __forceinline__ gemm_view gemm_make_view(const lt_gemm_desc &d, const float *a, const float *b) {
    const int64_t bt = blockIdx.z;
    gemm_view v;
    v.a = a + bt * d.stride_a;
    v.b = b + bt * d.stride_b;
    v.a_si = d.trans_a ? 1 : d.lda;
    v.a_sp = d.trans_a ? d.lda : 1;
    v.b_sp = d.trans_b ? 1 : d.ldb;
    v.b_sj = d.trans_b ? d.ldb : 1;
    v.m = d.m;
    v.n = d.n;
    v.k = d.k;
    return v;
}

static __device__ __forceinline__ void gemm_store(const lt_gemm_desc &d, float *c, int64_t i, int64_t j, float acc) {
    if (i >= d.m || j >= d.n) return;
    float *p = c + (int64_t)blockIdx.z * d.stride_c + i * d.ldc + j;
    *p = d.beta == 0.0f ? d.alpha * acc : d.alpha * acc + d.beta * *p;
}

LT_KERNEL void __launch_bounds__(256) ltk_gemm_f32(lt_gemm_desc d, const float *__restrict__ a,
                                                   const float *__restrict__ b, float *__restrict__ c) {
    __shared__ float As[GEMM_BK][GEMM_BM + 4]; /* k-major: a thread's 4 rows are one broadcast read per k */
    __shared__ float Bs[GEMM_BK][GEMM_BN + 4];
    const gemm_view v = gemm_make_view(d, a, b);
    const int64_t m0 = (int64_t)blockIdx.y * GEMM_BM, n0 = (int64_t)blockIdx.x * GEMM_BN;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[r][q] = 0.0f;
    for (int64_t k0 = 0; k0 < d.k; k0 += GEMM_BK) {
        for (int e = threadIdx.x; e < GEMM_BM * GEMM_BK; e += 256) {
            const int i = e / GEMM_BK, p = e % GEMM_BK; /* consecutive threads walk p: coalesced for trans_a = 0 */
            As[p][i] = v.A(m0 + i, k0 + p);
        }
        for (int e = threadIdx.x; e < GEMM_BK * GEMM_BN; e += 256) {
            const int p = e / GEMM_BN, j = e % GEMM_BN;
            Bs[p][j] = v.B(k0 + p, n0 + j);
        }
        __syncthreads();
#pragma unroll
        for (int p = 0; p < GEMM_BK; p++) {
            float ar[4], br[4];
#pragma unroll
            for (int r = 0; r < 4; r++) ar[r] = As[p][ty + 16 * r];
#pragma unroll
            for (int q = 0; q < 4; q++) br[q] = Bs[p][tx + 16 * q];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int q = 0; q < 4; q++) acc[r][q] = fmaf(ar[r], br[q], acc[r][q]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int q = 0; q < 4; q++) gemm_store(d, c, m0 + ty + 16 * r, n0 + tx + 16 * q, acc[r][q]);
}

LT_KERNEL void __launch_bounds__(128) ltk_gemm_tf32(lt_gemm_desc d, const float *__restrict__ a,
                                                    const float *__restrict__ b, float *__restrict__ c) {
    __shared__ float As[GEMM_BM][GEMM_BK + 4]; /* row-major (m, k): stride 20 -> fragment reads conflict free */
    __shared__ float Bs[GEMM_BK][GEMM_BN + 8]; /* (k, n): stride 72 -> conflict free */
    const gemm_view v = gemm_make_view(d, a, b);
    const int64_t m0 = (int64_t)blockIdx.y * GEMM_BM, n0 = (int64_t)blockIdx.x * GEMM_BN;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[mi][ni][r] = 0.0f;
    for (int64_t k0 = 0; k0 < d.k; k0 += GEMM_BK) {
        for (int e = threadIdx.x; e < GEMM_BM * GEMM_BK; e += 128) {
            const int i = e / GEMM_BK, p = e % GEMM_BK;
            As[i][p] = lt_to_tf32(v.A(m0 + i, k0 + p));
        }
        for (int e = threadIdx.x; e < GEMM_BK * GEMM_BN; e += 128) {
            const int p = e / GEMM_BN, j = e % GEMM_BN;
            Bs[p][j] = lt_to_tf32(v.B(k0 + p, n0 + j));
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; kk += 8) {
            float af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const int r = wm + mi * 16 + g;
                af[mi][0] = As[r][kk + t];
                af[mi][1] = As[r + 8][kk + t];
                af[mi][2] = As[r][kk + t + 4];
                af[mi][3] = As[r + 8][kk + t + 4];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const int col = wn + ni * 8 + g;
                bf[ni][0] = Bs[kk + t][col];
                bf[ni][1] = Bs[kk + t + 4][col];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) lt_mma_tf32_16x8x8(acc[mi][ni], af[mi], bf[ni]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            const int64_t r = m0 + wm + mi * 16 + g, col = n0 + wn + ni * 8 + 2 * t;
            gemm_store(d, c, r, col, acc[mi][ni][0]);
            gemm_store(d, c, r, col + 1, acc[mi][ni][1]);
            gemm_store(d, c, r + 8, col, acc[mi][ni][2]);
            gemm_store(d, c, r + 8, col + 1, acc[mi][ni][3]);
        }
}
