/* GEMM on the GPU: C = alpha op(A) op(B) + beta C, the lt_gemm contract (latent.h, lt_gemm_desc passed by value,
 * the same struct the CPU takes). Three kernels, grid (ceil(N/tile), ceil(M/tile), batch), transposes folded into
 * the tile loads (op(A)[i][p] = a[i*lda + p] or a[p*lda + i]):
 *
 *   ltk_gemm_f32_128 — exact fp32, SIMT, for large problems: 128 x 128 tile per block, 256 threads, each an
 *                   8 x 8 micro-tile (rows ty*4 + 0..3 and 64 + ty*4 + 0..3, columns likewise with tx: read from
 *                   shared memory as 16-byte vectors, 4 LDS.128 per 64 FMA), depth steps of 8 through two shared
 *                   buffers (16.5 KB): the next step's global loads go to registers before this step's arithmetic
 *                   and into the other buffer after it, one barrier per step. Each thread loads 4 consecutive
 *                   elements along the operand's contiguous index (coalesced for every transpose). 126-128
 *                   registers under __launch_bounds__(256, 2): 2 blocks = 16 warps per SM.
 *   ltk_gemm_tf32_128 — the same block tile, loads and double buffering (gemm128<true>), inputs rounded to TF32
 *                   as they are stored; 8 warps in 2 x 4, each 64 x 32 = 4 x 4 mma.sync m16n8k8 per depth step of
 *                   8 (24 fragment loads per 16 mma, conflict free with shared rows of 136). 117-119 registers,
 *                   17 KB shared memory, 2 blocks per SM. Its bound is ltk_gemm_tf32's.
 *   ltk_gemm_f32  — exact fp32, SIMT, the 64 x 64 tile: 256 threads, each a 4 x 4 micro-tile (rows ty + 16r,
 *                   columns tx + 16c, so shared-memory reads broadcast), K in steps of 16 through shared memory.
 *                   Used when 128 x 128 tiles would give fewer than GEMM_BIG_MIN_BLOCKS blocks (gemm_big, a
 *                   pure function of the shape: CudaKernels.gemm picks), where the small tile fills more SMs.
 *   Both fp32 kernels keep every C element one float accumulator summed over p = 0..K-1 in order (fmaf):
 *   gemm_test.c's tolerance u (8 sqrt(K) + 3) * sum |terms| holds unchanged (the same fmaf chain in both).
 *   ltk_gemm_tf32 — tensor cores, the 64 x 64 tile (small problems, as ltk_gemm_f32): 128 threads = 4 warps in 2 x 2, each warp 32 x 32 = 2 x 4 tiles of
 *                   mma.sync m16n8k8 TF32 with fp32 accumulation (lt_mma_tf32_16x8x8 in lt_cuda.cuh, PTX with a
 *                   shuffle twin). Inputs are rounded to TF32 (cvt.rna) when stored to shared memory: relative
 *                   error 2^-11 per input, so the test allows 2^-10 sum |terms| on top of the fp32 bound.
 *                   Shared-memory strides (BK + 4 for A, BN + 8 for B) make the fragment reads bank-conflict free.
 *   ltk_gemm_bf16 / ltk_gemm_bf16_128 — bf16 operands on tensor cores (mma.sync m16n8k16), the two tiles above
 *                   through one template (gemm_bf16_tile, below).
 * Loads are plain guarded loads (zero outside the matrix); cp.async is the next step (docs/cuda.md).
 * gemm_cuda_test.cc checks all six against a double product on shapes at every tile tail,
 * transposes, batches, alpha / beta, beta = 0 with NaN in C, K = 0. */
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

/* ---- ltk_gemm_f32_128: the large-problem fp32 tile (see the header) ---- */
#define G2_BM 128
#define G2_BN 128
#define G2_BK 8

/* Pick the 128 x 128 kernels (ltk_gemm_f32_128 / ltk_gemm_tf32_128) over the 64 x 64 ones (a pure function of
 * the shape): when 128 x 128 tiles alone give at least GEMM_BIG_MIN_BLOCKS blocks (about one per SM of an
 * A100 / H100 / H200), so the bigger tile leaves no SM idle that the 64 x 64 one would have used.
 * CudaKernels.gemm and gpu_bench.py repeat it. */
#define GEMM_BIG_MIN_BLOCKS 128
inline int gemm_big(const lt_gemm_desc *d) {
    return (d->m + G2_BM - 1) / G2_BM * ((d->n + G2_BN - 1) / G2_BN) * d->batch >= GEMM_BIG_MIN_BLOCKS;
}

/* Four consecutive floats from shared memory, 16-byte aligned: one LDS.128 on the GPU. */
static __device__ __forceinline__ void gemm_lds4(const float *p, float *r) {
#ifdef __CUDACC__
    const float4 v = *reinterpret_cast<const float4 *>(p);
    r[0] = v.x;
    r[1] = v.y;
    r[2] = v.z;
    r[3] = v.w;
#else
    r[0] = p[0];
    r[1] = p[1];
    r[2] = p[2];
    r[3] = p[3];
#endif
}

/* A thread's 4 loaded elements into a k-major tile s[p][i] (row length ld): 4 depths of one row (pf) or 4 rows
 * of one depth (one 16-byte store). */
static __device__ __forceinline__ void gemm_sts4(float *s, int ld, bool pf, int p0, int i0, const float *r) {
    if (pf) {
#pragma unroll
        for (int t = 0; t < 4; t++) s[(p0 + t) * ld + i0] = r[t];
    } else {
#ifdef __CUDACC__
        *reinterpret_cast<float4 *>(&s[p0 * ld + i0]) = make_float4(r[0], r[1], r[2], r[3]);
#else
#pragma unroll
        for (int t = 0; t < 4; t++) s[p0 * ld + i0 + t] = r[t];
#endif
    }
}

/* The 128 x 128 block tile shared by ltk_gemm_f32_128 (TF32 = false: 8 x 8 SIMT outputs per thread) and
 * ltk_gemm_tf32_128 (TF32 = true: 8 warps in 2 x 4, each 64 x 32 = 4 x 4 mma.sync m16n8k8 tiles, inputs rounded
 * to TF32 as they are stored to shared memory). k-major shared tiles s[p][i] with rows of 128 + PAD: PAD 4 keeps
 * the SIMT kernel's scalar stores conflict free, PAD 8 the mma fragment reads (banks 8 t + g). */
template <bool TF32>
static __device__ __forceinline__ void gemm128(const lt_gemm_desc &d, const float *__restrict__ a,
                                               const float *__restrict__ b, float *__restrict__ c) {
    constexpr int LD = G2_BM + (TF32 ? 8 : 4);
    __align__(16) __shared__ float As[2][G2_BK][LD]; /* double-buffered; rows of 132 / 136 floats: 16-byte aligned */
    __align__(16) __shared__ float Bs[2][G2_BK][LD];
    const int64_t bt = blockIdx.z, m0 = (int64_t)blockIdx.y * G2_BM, n0 = (int64_t)blockIdx.x * G2_BN;
    const int tid = threadIdx.x;
    /* Loads: each thread 4 consecutive elements of A and 4 of B (along the operand's contiguous index) per depth
     * step: element t at (i0 + t di, p0 + t dp), address pa + t. p contiguous (A not transposed, B transposed):
     * thread -> row tid / 2, depths (tid & 1) * 4 + t (a warp reads 16 rows x 32 bytes), stored as 4 scalars
     * (banks 4 p + i: conflict free at PAD 4). Else row (tid & 31) * 4 + t at depth tid / 32 (a warp reads 512
     * contiguous bytes), stored as one 16-byte vector. Row / column checks are a fixed bit mask; one pointer per
     * operand, advanced a depth step per iteration (a 64-bit index per element would spill). */
    const bool a_pf = !d.trans_a, b_pf = d.trans_b;
    const int ai0 = a_pf ? tid >> 1 : (tid & 31) * 4, ap0 = a_pf ? (tid & 1) * 4 : tid >> 5;
    const int bj0 = b_pf ? tid >> 1 : (tid & 31) * 4, bp0 = b_pf ? (tid & 1) * 4 : tid >> 5;
    const int64_t a_si = d.trans_a ? 1 : d.lda, a_sp = d.trans_a ? d.lda : 1;
    const int64_t b_sp = d.trans_b ? 1 : d.ldb, b_sj = d.trans_b ? d.ldb : 1;
    const float *pa = a + bt * d.stride_a + (m0 + ai0) * a_si + ap0 * a_sp;
    const float *pb = b + bt * d.stride_b + bp0 * b_sp + (n0 + bj0) * b_sj;
    const int64_t akst = G2_BK * a_sp, bkst = G2_BK * b_sp; /* one depth step */
    unsigned amask = 0, bmask = 0; /* bit t: element t in range along M / N, and along the depth at step 0 */
#pragma unroll
    for (int t = 0; t < 4; t++) {
        amask |= (m0 + ai0 + (a_pf ? 0 : t) < d.m && ap0 + (a_pf ? t : 0) < d.k ? 1u : 0u) << t;
        bmask |= (n0 + bj0 + (b_pf ? 0 : t) < d.n && bp0 + (b_pf ? t : 0) < d.k ? 1u : 0u) << t;
    }
    float ra[4], rb[4];
    /* SIMT: acc[r][q], rows ty*4 + 0..3 and 64 + ty*4 + 0..3, columns likewise with tx. TF32: acc[mi][ni][4]. */
    float acc[64];
#pragma unroll
    for (int e = 0; e < 64; e++) acc[e] = 0.0f;
#pragma unroll
    for (int t = 0; t < 4; t++) {
        ra[t] = amask >> t & 1 ? pa[t] : 0.0f;
        rb[t] = bmask >> t & 1 ? pb[t] : 0.0f;
        if (TF32) {
            ra[t] = lt_to_tf32(ra[t]);
            rb[t] = lt_to_tf32(rb[t]);
        }
    }
    gemm_sts4(&As[0][0][0], LD, a_pf, ap0, ai0, ra);
    gemm_sts4(&Bs[0][0][0], LD, b_pf, bp0, bj0, rb);
    /* from now on the masks hold only the M / N checks; the depth check is against krem */
    amask = 0;
    bmask = 0;
#pragma unroll
    for (int t = 0; t < 4; t++) {
        amask |= (m0 + ai0 + (a_pf ? 0 : t) < d.m ? 1u : 0u) << t;
        bmask |= (n0 + bj0 + (b_pf ? 0 : t) < d.n ? 1u : 0u) << t;
    }
    __syncthreads();
    int cur = 0;
    for (int64_t k0 = 0; k0 < d.k; k0 += G2_BK) {
        const int64_t krem = d.k - k0 - G2_BK; /* depth left after this step */
        if (krem > 0) { /* the next step's loads are in flight during this step's arithmetic */
            pa += akst;
            pb += bkst;
#pragma unroll
            for (int t = 0; t < 4; t++) {
                ra[t] = (amask >> t & 1) && ap0 + (a_pf ? t : 0) < krem ? pa[t] : 0.0f;
                rb[t] = (bmask >> t & 1) && bp0 + (b_pf ? t : 0) < krem ? pb[t] : 0.0f;
            }
        }
        if (!TF32) {
            const int tx = tid & 15, ty = tid >> 4;
#pragma unroll
            for (int p = 0; p < G2_BK; p++) {
                float ar[8], br[8]; /* rows ty*4 + 0..3 and 64 + ty*4 + 0..3, columns likewise with tx */
                gemm_lds4(&As[cur][p][ty * 4], ar);
                gemm_lds4(&As[cur][p][64 + ty * 4], ar + 4);
                gemm_lds4(&Bs[cur][p][tx * 4], br);
                gemm_lds4(&Bs[cur][p][64 + tx * 4], br + 4);
#pragma unroll
                for (int r = 0; r < 8; r++)
#pragma unroll
                    for (int q = 0; q < 8; q++) acc[r * 8 + q] = fmaf(ar[r], br[q], acc[r * 8 + q]);
            }
        } else {
            const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
            const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
            float af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const int r = wm + mi * 16 + g;
                af[mi][0] = As[cur][t][r];
                af[mi][1] = As[cur][t][r + 8];
                af[mi][2] = As[cur][t + 4][r];
                af[mi][3] = As[cur][t + 4][r + 8];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const int col = wn + ni * 8 + g;
                bf[ni][0] = Bs[cur][t][col];
                bf[ni][1] = Bs[cur][t + 4][col];
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) lt_mma_tf32_16x8x8(&acc[(mi * 4 + ni) * 4], af[mi], bf[ni]);
        }
        if (krem > 0) { /* the other buffer: everyone finished reading it before the previous barrier */
            if (TF32) {
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    ra[t] = lt_to_tf32(ra[t]);
                    rb[t] = lt_to_tf32(rb[t]);
                }
            }
            gemm_sts4(&As[cur ^ 1][0][0], LD, a_pf, ap0, ai0, ra);
            gemm_sts4(&Bs[cur ^ 1][0][0], LD, b_pf, bp0, bj0, rb);
        }
        __syncthreads();
        cur ^= 1;
    }
    const bool beta0 = d.beta == 0.0f;
    if (!TF32) {
        const int tx = tid & 15, ty = tid >> 4;
        const int64_t jb = n0 + tx * 4;
#pragma unroll
        for (int r = 0; r < 8; r++) {
            const int64_t i = m0 + (r >> 2) * 64 + ty * 4 + (r & 3);
            if (i >= d.m) continue;
            float *crow = c + bt * d.stride_c + i * d.ldc + jb;
#pragma unroll
            for (int q = 0; q < 8; q++) {
                const int off = (q >> 2) * 64 + (q & 3);
                const float v = acc[r * 8 + q];
                if (jb + off < d.n) crow[off] = beta0 ? d.alpha * v : d.alpha * v + d.beta * crow[off];
            }
        }
    } else {
        const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
        const int64_t jb = n0 + (warp & 3) * 32 + 2 * t;
#pragma unroll
        for (int mi = 0; mi < 4; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t i = m0 + (warp >> 2) * 64 + mi * 16 + g + 8 * h;
                if (i >= d.m) continue;
                float *crow = c + bt * d.stride_c + i * d.ldc + jb;
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int off = ni * 8 + e;
                        const float v = acc[(mi * 4 + ni) * 4 + 2 * h + e];
                        if (jb + off < d.n) crow[off] = beta0 ? d.alpha * v : d.alpha * v + d.beta * crow[off];
                    }
            }
    }
}

LT_KERNEL void __launch_bounds__(256, 2) ltk_gemm_f32_128(lt_gemm_desc d, const float *__restrict__ a,
                                                          const float *__restrict__ b, float *__restrict__ c) {
    gemm128<false>(d, a, b, c);
}

LT_KERNEL void __launch_bounds__(256, 2) ltk_gemm_tf32_128(lt_gemm_desc d, const float *__restrict__ a,
                                                           const float *__restrict__ b, float *__restrict__ c) {
    gemm128<true>(d, a, b, c);
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

/* ---- ltk_gemm_bf16 / ltk_gemm_bf16_128: bf16 operands on tensor cores, fp32 accumulation and C ----
 * (--precision bf16 on CUDA without cuBLAS.) A and B are 2-byte bf16 (ltk_f32_to_bf16 rounds them, to nearest even),
 * C, alpha and beta fp32; the lt_gemm_desc strides and leading dimensions count elements, as for the fp32 kernels.
 * mma.sync m16n8k16 bf16 (lt_mma_bf16_16x8x16 in lt_cuda.cuh: PTX with a shuffle twin), the block tiles and
 * double buffering of ltk_gemm_tf32_128, one template over the tile (gemm_bf16_tile):
 *   ltk_gemm_bf16_128 — 128 x 128 block, 256 threads = 8 warps in 2 x 4, each 64 x 32 = 4 x 4 mma per depth step;
 *   ltk_gemm_bf16     — 64 x 64 block, 128 threads = 4 warps in 2 x 2, each 32 x 32 = 2 x 4 mma per depth step;
 *   picked as the fp32 pair (gemm_big, CudaKernels.gemmBf16). Depth steps of 16 (one mma k) through two shared buffers.
 * Shared tiles are k-contiguous for both operands (A row-major [m][k], B column-major [n][k]), k pairs packed in
 * 32-bit words as the fragments want them, rows of 8 + 4 words: the fragment reads (word 12 g + t) hit 32 distinct
 * banks. Each thread loads 8 bf16 of A and 8 of B per step: where the operand's contiguous index is k (A not
 * transposed, B transposed) 8 consecutive k of one row, stored as one 16-byte vector; otherwise the k pairs
 * (2 kp, 2 kp + 1) of one row for kp = tid / BM + 0, 2, 4, 6, consecutive lanes on consecutive rows (coalesced),
 * packed in registers and stored as words. Loads are guarded scalar loads (zero outside the matrix).
 * Every product of two bf16 values is exact in fp32. The twin sums p = 0..K-1 in order with fmaf, so on the emulation
 * each C element is the fp32 kernel's chain on the rounded operands; the tensor core sums each group of 16 in an
 * unspecified order (gemm_cuda_test.cc states the tolerance against a double product of the rounded operands). */
#define GB_BK 16
#define GB_LDW 12 /* words per shared row: 8 k pairs + 4 pad */

template <int BM, int BN, int WARPS_M, int WARPS_N>
static __device__ __forceinline__ void gemm_bf16_tile(const lt_gemm_desc &d, const uint16_t *__restrict__ a,
                                                      const uint16_t *__restrict__ b, float *__restrict__ c) {
    constexpr int NT = WARPS_M * WARPS_N * 32, WTM = BM / WARPS_M, WTN = BN / WARPS_N, MI = WTM / 16, NI = WTN / 8;
    static_assert(NT == 2 * BM && NT == 2 * BN, "one thread per half row of each operand tile");
    __align__(16) __shared__ uint32_t As[2][BM][GB_LDW];
    __align__(16) __shared__ uint32_t Bs[2][BN][GB_LDW];
    const int64_t bt = blockIdx.z, m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN;
    const int tid = threadIdx.x;
    /* operand tiles as rows r (i of A, j of B) x depth p: element (r, p) at base[r * s_r + p * s_p] */
    const bool a_pf = !d.trans_a, b_pf = d.trans_b; /* p contiguous */
    const int64_t a_sr = d.trans_a ? 1 : d.lda, a_sp = d.trans_a ? d.lda : 1;
    const int64_t b_sr = d.trans_b ? d.ldb : 1, b_sp = d.trans_b ? 1 : d.ldb;
    /* this thread's row and first depth: p contiguous: row tid / 2, depths (tid & 1) * 8 + 0..7; else row tid % R,
     * depths 2 kp + 0..1 for kp = tid / R + 0, 2, 4, 6 */
    const int ar = a_pf ? tid >> 1 : tid % BM, ap = a_pf ? (tid & 1) * 8 : 2 * (tid / BM);
    const int br = b_pf ? tid >> 1 : tid % BN, bp = b_pf ? (tid & 1) * 8 : 2 * (tid / BN);
    const bool a_ok = m0 + ar < d.m, b_ok = n0 + br < d.n;
    const uint16_t *pa = a + bt * d.stride_a + (m0 + ar) * a_sr + ap * a_sp;
    const uint16_t *pb = b + bt * d.stride_b + (n0 + br) * b_sr + bp * b_sp;
    uint32_t ra[4], rb[4]; /* the next step's 8 + 8 bf16, packed in k pairs */
    /* Element e (0..7) of a step sits at depth offset e (p contiguous) or 4 (e / 2) + e % 2 from the thread's first:
     * reached by walking a pointer with two alternating increments (odd e: +1 or +s_p; even e: +1 or +3 s_p), so no
     * per-element 64-bit offsets stay live across the loop. */
    const int64_t a_i1 = a_pf ? 1 : a_sp, a_i2 = a_pf ? 1 : 3 * a_sp;
    const int64_t b_i1 = b_pf ? 1 : b_sp, b_i2 = b_pf ? 1 : 3 * b_sp;
    const int a_d2 = a_pf ? 1 : 3, b_d2 = b_pf ? 1 : 3; /* depth increments of the even steps */
    auto load = [&](int64_t krem) { /* krem: depth left from this step on */
        const uint16_t *qa = pa, *qb = pb;
        int da = ap, db = bp;
#pragma unroll
        for (int w = 0; w < 4; w++) {
            uint32_t va = 0, vb = 0;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                if (w > 0 || h > 0) {
                    qa += h ? a_i1 : a_i2;
                    qb += h ? b_i1 : b_i2;
                    da += h ? 1 : a_d2;
                    db += h ? 1 : b_d2;
                }
                const uint32_t xa = a_ok && da < krem ? *qa : 0u;
                const uint32_t xb = b_ok && db < krem ? *qb : 0u;
                va |= xa << (16 * h);
                vb |= xb << (16 * h);
            }
            ra[w] = va;
            rb[w] = vb;
        }
    };
    auto store = [&](int buf) {
        if (a_pf) {
#ifdef __CUDACC__
            *reinterpret_cast<uint4 *>(&As[buf][ar][ap >> 1]) = make_uint4(ra[0], ra[1], ra[2], ra[3]);
#else
            for (int w = 0; w < 4; w++) As[buf][ar][(ap >> 1) + w] = ra[w];
#endif
        } else {
#pragma unroll
            for (int w = 0; w < 4; w++) As[buf][ar][(ap >> 1) + 2 * w] = ra[w];
        }
        if (b_pf) {
#ifdef __CUDACC__
            *reinterpret_cast<uint4 *>(&Bs[buf][br][bp >> 1]) = make_uint4(rb[0], rb[1], rb[2], rb[3]);
#else
            for (int w = 0; w < 4; w++) Bs[buf][br][(bp >> 1) + w] = rb[w];
#endif
        } else {
#pragma unroll
            for (int w = 0; w < 4; w++) Bs[buf][br][(bp >> 1) + 2 * w] = rb[w];
        }
    };
    float acc[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int ni = 0; ni < NI; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;
    load(d.k);
    store(0);
    __syncthreads();
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (warp / WARPS_N) * WTM, wn = (warp % WARPS_N) * WTN;
    const int64_t akst = GB_BK * a_sp, bkst = GB_BK * b_sp;
    int cur = 0;
    for (int64_t k0 = 0; k0 < d.k; k0 += GB_BK) {
        const int64_t krem = d.k - k0 - GB_BK; /* depth left after this step */
        if (krem > 0) { /* the next step's loads are in flight during this step's arithmetic */
            pa += akst;
            pb += bkst;
            load(krem);
        }
        uint32_t af[MI][4], bfr[NI][2];
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
            const int r = wm + mi * 16 + g;
            af[mi][0] = As[cur][r][t];
            af[mi][1] = As[cur][r + 8][t];
            af[mi][2] = As[cur][r][t + 4];
            af[mi][3] = As[cur][r + 8][t + 4];
        }
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
            const int col = wn + ni * 8 + g;
            bfr[ni][0] = Bs[cur][col][t];
            bfr[ni][1] = Bs[cur][col][t + 4];
        }
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int ni = 0; ni < NI; ni++) lt_mma_bf16_16x8x16(acc[mi][ni], af[mi], bfr[ni]);
        if (krem > 0) store(cur ^ 1); /* the other buffer: everyone finished reading it before the previous barrier */
        __syncthreads();
        cur ^= 1;
    }
    const bool beta0 = d.beta == 0.0f;
    const int64_t jb = n0 + wn + 2 * t;
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int64_t i = m0 + wm + mi * 16 + g + 8 * h;
            if (i >= d.m) continue;
            float *crow = c + bt * d.stride_c + i * d.ldc + jb;
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int off = ni * 8 + e;
                    const float v = acc[mi][ni][2 * h + e];
                    if (jb + off < d.n) crow[off] = beta0 ? d.alpha * v : d.alpha * v + d.beta * crow[off];
                }
        }
}

LT_KERNEL void __launch_bounds__(128) ltk_gemm_bf16(lt_gemm_desc d, const __nv_bfloat16 *__restrict__ a,
                                                    const __nv_bfloat16 *__restrict__ b, float *__restrict__ c) {
    gemm_bf16_tile<64, 64, 2, 2>(d, reinterpret_cast<const uint16_t *>(a), reinterpret_cast<const uint16_t *>(b), c);
}

LT_KERNEL void __launch_bounds__(256, 2) ltk_gemm_bf16_128(lt_gemm_desc d, const __nv_bfloat16 *__restrict__ a,
                                                           const __nv_bfloat16 *__restrict__ b, float *__restrict__ c) {
    gemm_bf16_tile<128, 128, 2, 4>(d, reinterpret_cast<const uint16_t *>(a), reinterpret_cast<const uint16_t *>(b), c);
}
