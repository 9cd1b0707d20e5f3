/* 2-D convolution on the GPU as implicit GEMM (the lt_conv2d_* contract of latent.h; lt_conv2d_desc by value;
 * NCHW x (N, C, H, W), w (K, C, R, S), y / dy (N, K, OH, OW), zero padding, cross-correlation).
 * No im2col buffer: the GEMM's operand tiles are gathered straight from the tensors while loading shared memory.
 *   ltk_conv2d_fwd          y = conv(x, w) + bias     GEMM M = K, N = N*OH*OW, depth C*R*S
 *                           A[k][crs] = w, B[crs][(n,oh,ow)] = x[n][c][oh*sh - ph + r][ow*sw - pw + s] (0 outside)
 *   ltk_conv2d_bwd_data     dx = conv^T(dy, w) + bias M = C, N = N*H*W, depth K*R*S
 *                           A[c][krs] = w[k][c][r][s], B[krs][(n,h,w)] = dy[n][k][oh][ow] where h = oh*sh - ph + r
 *                           (oh = (h + ph - r) / sh when that divides exactly and is in range, else 0); run as
 *                           sh*sw dense GEMMs, one per stride phase of (h, w) (grid z), which skip the taps that
 *                           cannot divide (see conv_bwd_data_op)
 *   ltk_conv2d_bwd_weight   dw (+)= dy (x) x          M = K, N = C*R*S, depth N*OH*OW
 *                           split over grid z: split z sums depth [z chunk, (z + 1) chunk) into its own partial dW
 *                           tile in a scratch buffer (write-only), then ltk_conv2d_bwd_weight_sum adds the partials
 *                           in split order 0, 1, ... and applies accumulate (no atomics: the bits depend only on the
 *                           shape, which fixes the split, and the inputs). The split (conv2d_bwd_weight_chunk below)
 *                           aims at ~512 blocks (the K x CRS grid alone was 9 blocks for C64 K64 3x3 on 132 SMs,
 *                           each looping over a depth of 50176), chunks >= 256 deep; one split (no scratch, dw
 *                           written directly) when the tile grid is already large or the depth is short.
 *   ltk_conv2d_bwd_bias     db[k] (+)= sum of dy over (n, oh, ow): one 256-thread block per k, fixed order
 * The GEMM core is gemm.cu's exact-fp32 SIMT tile (64 x 64, 256 threads, 4 x 4 per thread, depth steps of 16),
 * with the loads replaced by gathers; each kernel also has a 64 x 256 tile (ltk_conv2d_*_wide: 4 x 16 per thread,
 * 16-byte shared reads, double-buffered with register prefetch, see conv_igemm_wide), which fwd and bwd_data take
 * when it alone gives >= 128 blocks (conv2d_wide) and bwd_weight when C R S >= 256 (conv2d_bwd_weight_wide; its
 * split then aims at 256 blocks): pure functions of the shape. Each output of fwd / bwd_data is one float sum in
 * increasing depth order, so the test's bound is gemm's u (8 sqrt(depth) + 3) sum |terms|; bwd_weight's is a float sum per chunk c, then the
 * S partials summed in order: u (8 sqrt(c) + 3 + 8 sqrt(S) + 3) sum |terms|. The gathers follow the contiguous
 * index: consecutive threads load consecutive output columns for fwd / bwd_data, consecutive depth (n, oh, ow) for
 * bwd_weight's x operand (64 x 64 tile; the wide tile's threads each gather one column's 8 consecutive depths).
 * Deterministic (no atomics).
 * Index arithmetic is 32-bit (64-bit division is a slow subroutine, and made bwd_data spill): the caller checks
 * that x, y and w each have fewer than 2^31 elements. The index splits divide by the shape's sizes through
 * conv_fdiv (multiply-high, add, shift; the multipliers computed once per thread at the start), not `/`, whose
 * ~20 instructions a division made the gathers cost more than the FMAs; the tile loads are unrolled with a fixed
 * (row, depth) per thread so loop-invariant index splits leave the depth loop.
 * Launch: grid (ceil(N/tile), ceil(M/64)), tile 64 or 256 (_wide), 256 threads; bwd_weight's z = splits; bwd_data's N = N ceil(H/sh)
 * ceil(W/sw) (phase 0's, the largest) and z = sh sw; bwd_weight_sum a grid-stride 1-D launch. The CPU kernels
 * (kernels/conv2d, issue 4) are written in parallel; conv2d_cuda_test.cc checks against a double reference in
 * the test. TF32 tensor-core tiles and vectorised gathers (channels-last) are the next steps. */
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}

#define CONV_BM 64
#define CONV_BN 64
#define CONV_BK 16

/* bwd_weight's tile and depth split, a pure function of the shape (so a shape always gets the same bits). The
 * tile: 64 x 256 (ltk_conv2d_bwd_weight_wide) when C R S >= 256 (1x1 over >= 256 channels, 3x3 over >= 29: at
 * most a quarter of the column tiles' width idle beyond 512 columns), else 64 x 64. The split: enough splits that the grid
 * has about CONV_SPLIT_BLOCKS blocks (4 per SM on a 132-SM H200 at 64 registers x 256 threads; half that for the
 * wide tile, 2 per SM at 127 registers), each split at least CONV_SPLIT_MIN_DEPTH deep, chunks a multiple of
 * CONV_BK, at most 65535 splits (grid z). Returns the chunk; splits = ceil(depth / chunk).
 * CudaKernels.conv2dBackwardWeight and gpu_bench.py repeat both. */
#define CONV_SPLIT_BLOCKS 512
#define CONV_SPLIT_MIN_DEPTH 256
inline int conv2d_bwd_weight_wide(const lt_conv2d_desc *d) { return d->c * d->r * d->s >= 256; }
inline int64_t conv2d_bwd_weight_chunk(const lt_conv2d_desc *d) {
    const int wide = conv2d_bwd_weight_wide(d);
    const int64_t depth = d->n * d->oh * d->ow, tn = wide ? 256 : CONV_BN, target = wide ? CONV_SPLIT_BLOCKS / 2 : CONV_SPLIT_BLOCKS;
    const int64_t tiles = (d->c * d->r * d->s + tn - 1) / tn * ((d->k + CONV_BM - 1) / CONV_BM);
    int64_t splits = (target + tiles - 1) / tiles;
    const int64_t cap = (depth + CONV_SPLIT_MIN_DEPTH - 1) / CONV_SPLIT_MIN_DEPTH;
    if (splits > cap) splits = cap;
    if (splits > 65535) splits = 65535;
    if (splits < 1) splits = 1;
    const int64_t per = (depth + splits - 1) / splits;
    return (per + CONV_BK - 1) / CONV_BK * CONV_BK;
}

/* fwd / bwd_data take the 64 x 256 tile (ltk_conv2d_*_wide) when it alone gives at least CONV_WIDE_MIN_BLOCKS
 * blocks (about one per SM), ncol = N OH OW (fwd) or N ceil(H/sh) ceil(W/sw) (bwd_data), m = K or C, phases = 1
 * or sh sw: a pure function of the shape. CudaKernels and gpu_bench.py repeat it. */
#define CONV_WIDE_MIN_BLOCKS 128
inline int conv2d_wide(int64_t ncol, int64_t m, int64_t phases) {
    return (ncol + 255) / 256 * ((m + 63) / 64) * phases >= CONV_WIDE_MIN_BLOCKS;
}

/* Four consecutive floats from shared memory, 16-byte aligned: one LDS.128 on the GPU. */
static __device__ __forceinline__ void conv_lds4(const float *p, float *r) {
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

/* Tiled C[i][j] = sum_p A(i, p) B(p, j) over an M x N problem, p from kbeg to kend - 1 (the depth, or one split
 * of it); `op` supplies A, B (zero outside) and the store of one finished element. B_DEPTH_FAST: consecutive
 * threads load consecutive p of B (bwd_weight, whose B is x gathered along the depth (n, oh, ow): contiguous in
 * ow), else consecutive j (fwd / bwd_data, whose columns (n, oh, ow) / (n, h, w) are the contiguous ones). */
template <bool B_DEPTH_FAST, class Op>
static __device__ __forceinline__ void conv_igemm(const Op &op, int64_t M, int64_t N, int64_t kbeg, int64_t kend) {
    __shared__ float As[CONV_BK][CONV_BM + 4];
    __shared__ float Bs[CONV_BK][CONV_BN + 4];
    const int64_t m0 = (int64_t)blockIdx.y * CONV_BM, n0 = (int64_t)blockIdx.x * CONV_BN;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int q = 0; q < 4; q++) acc[r][q] = 0.0f;
    for (int64_t k0 = kbeg; k0 < kend; k0 += CONV_BK) {
#pragma unroll
        for (int t = 0; t < CONV_BM * CONV_BK / 256; t++) { /* blockDim.x == 256: fixed (i, p) per thread */
            const int e = threadIdx.x + 256 * t, i = e / CONV_BK, p = e % CONV_BK;
            As[p][i] = m0 + i < M && k0 + p < kend ? op.A(m0 + i, k0 + p) : 0.0f;
        }
#pragma unroll
        for (int t = 0; t < CONV_BK * CONV_BN / 256; t++) {
            const int e = threadIdx.x + 256 * t;
            const int p = B_DEPTH_FAST ? e % CONV_BK : e / CONV_BN, j = B_DEPTH_FAST ? e / CONV_BK : e % CONV_BN;
            Bs[p][j] = k0 + p < kend && n0 + j < N ? op.B(k0 + p, n0 + j) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int p = 0; p < CONV_BK; p++) {
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
        for (int q = 0; q < 4; q++) {
            const int64_t i = m0 + ty + 16 * r, j = n0 + tx + 16 * q;
            if (i < M && j < N) op.store(i, j, acc[r][q]);
        }
}

/* The wide tile for large problems (depth kbeg .. depth - 1): 64 x 256 outputs per block (M = K or C is often only 64;
 * N = the pixels is large), 256 threads each 4 x 16 (rows ty*4 + 0..3, columns tx*4 + 64 q + 0..3: 5 LDS.128 per
 * 64 FMA instead of the 64 x 64 tile's 8 LDS.32 per 16), depth steps of 8 through two shared buffers with the
 * next step's gathers held in registers during this step's FMAs (one barrier per step). Each thread gathers one
 * fixed column of B (its 8 depths: coalesced across the warp, the column's index split loop-invariant) and 2
 * elements of A. Same per-output order (increasing depth, fmaf) as conv_igemm. */
#define CW_BN 256
#define CW_BK 8
template <class Op>
static __device__ __forceinline__ void conv_igemm_wide(const Op &op, int64_t M, int64_t N, int64_t kbeg, int64_t depth) {
    __align__(16) __shared__ float As[2][CW_BK][CONV_BM + 4];
    __align__(16) __shared__ float Bs[2][CW_BK][CW_BN + 4];
    const int64_t m0 = (int64_t)blockIdx.y * CONV_BM, n0 = (int64_t)blockIdx.x * CW_BN;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int ai = tid >> 2, ap = (tid & 3) * 2;
    const bool arow = m0 + ai < M, bcol = n0 + tid < N;
    float ra[2], rb[CW_BK];
    float acc[4][16];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int q = 0; q < 16; q++) acc[r][q] = 0.0f;
#pragma unroll
    for (int t = 0; t < 2; t++) ra[t] = arow && kbeg + ap + t < depth ? op.A(m0 + ai, kbeg + ap + t) : 0.0f;
#pragma unroll
    for (int t = 0; t < CW_BK; t++) rb[t] = bcol && kbeg + t < depth ? op.B(kbeg + t, n0 + tid) : 0.0f;
#pragma unroll
    for (int t = 0; t < 2; t++) As[0][ap + t][ai] = ra[t];
#pragma unroll
    for (int t = 0; t < CW_BK; t++) Bs[0][t][tid] = rb[t];
    __syncthreads();
    int cur = 0;
    for (int64_t k0 = kbeg; k0 < depth; k0 += CW_BK) {
        const int64_t kn = k0 + CW_BK;
        if (kn < depth) {
#pragma unroll
            for (int t = 0; t < 2; t++) ra[t] = arow && kn + ap + t < depth ? op.A(m0 + ai, kn + ap + t) : 0.0f;
#pragma unroll
            for (int t = 0; t < CW_BK; t++) rb[t] = bcol && kn + t < depth ? op.B(kn + t, n0 + tid) : 0.0f;
        }
#pragma unroll
        for (int p = 0; p < CW_BK; p++) {
            float ar[4], br[16];
            conv_lds4(&As[cur][p][ty * 4], ar);
#pragma unroll
            for (int q = 0; q < 4; q++) conv_lds4(&Bs[cur][p][tx * 4 + 64 * q], br + 4 * q);
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int q = 0; q < 16; q++) acc[r][q] = fmaf(ar[r], br[q], acc[r][q]);
        }
        if (kn < depth) { /* the other buffer: everyone finished reading it before the previous barrier */
#pragma unroll
            for (int t = 0; t < 2; t++) As[cur ^ 1][ap + t][ai] = ra[t];
#pragma unroll
            for (int t = 0; t < CW_BK; t++) Bs[cur ^ 1][t][tid] = rb[t];
        }
        __syncthreads();
        cur ^= 1;
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int64_t i = m0 + ty * 4 + r;
        if (i >= M) continue;
#pragma unroll
        for (int q = 0; q < 16; q++) {
            const int64_t j = n0 + tx * 4 + 64 * (q >> 2) + (q & 3);
            if (j < N) op.store(i, j, acc[r][q]);
        }
    }
}

/* Division by a divisor fixed for the whole launch, for 0 <= n < 2^31: q = (mulhi(m, n) + n) >> l with
 * l = ceil(log2 d) and m = floor(2^32 (2^l - d) / d) + 1 (the round-up multiplier; the sum stays below 2^32
 * since mulhi(m, n) < n < 2^31). Three integer instructions instead of the ~20 of a 32-bit division by a runtime
 * value, which dominated the gathers (four per x element against 4 FMAs per loaded element per thread).
 * conv2d_cuda_test checks it against `/` for every divisor up to 4100 and sampled ones to 2^31 - 1. */
struct conv_fdiv {
    uint32_t m, l;
    int d;
    __device__ __forceinline__ int div(int n) const {
        return (int)(((uint32_t)(((uint64_t)m * (uint32_t)n) >> 32) + (uint32_t)n) >> l);
    }
};
static __device__ __forceinline__ conv_fdiv conv_fdiv_make(int d) {
    uint32_t l = 0;
    while (l < 31 && (1u << l) < (uint32_t)d) l++;
    /* floor(2^32 rem / d) for rem = 2^l - d < d by long division, one bit a step: a 64-bit `/` is a called
     * subroutine whose saved registers spilled */
    uint32_t rem = (uint32_t)(((uint64_t)1 << l) - (uint32_t)d), q = 0;
    for (int i = 0; i < 32; i++) {
        rem <<= 1; /* rem < d < 2^31: no overflow */
        q <<= 1;
        if (rem >= (uint32_t)d) {
            rem -= (uint32_t)d;
            q |= 1;
        }
    }
    return {q + 1, l, d};
}

/* The descriptor's sizes as 32-bit ints for the gathers (see the header), with dividers for the index splits. */
struct conv_dims {
    int n, c, h, w, k, r, s, oh, ow, sh, sw, ph, pw;
    conv_fdiv f_rs, f_s, f_pq, f_ow, f_hw, f_w, f_sh, f_sw; /* by r s, s, oh ow, ow, h w, w, stride h, stride w */
};
static __device__ __forceinline__ conv_dims conv_make_dims(const lt_conv2d_desc &d) {
    const int r = (int)d.r, s = (int)d.s, h = (int)d.h, w = (int)d.w, oh = (int)d.oh, ow = (int)d.ow;
    return {(int)d.n, (int)d.c, h, w, (int)d.k, r, s, oh, ow, d.stride_h, d.stride_w, d.pad_h, d.pad_w,
            conv_fdiv_make(r * s), conv_fdiv_make(s), conv_fdiv_make(oh * ow), conv_fdiv_make(ow),
            conv_fdiv_make(h * w), conv_fdiv_make(w), conv_fdiv_make(d.stride_h), conv_fdiv_make(d.stride_w)};
}

/* x[n][c][oh*sh - ph + r][ow*sw - pw + s], 0 in the padding: the im2col element (crs, (n, oh, ow)). */
static __device__ __forceinline__ float conv_gather_x(const conv_dims &d, const float *x, int crs, int npq) {
    const int c = d.f_rs.div(crs), rs = crs - c * (d.r * d.s), r = d.f_s.div(rs), s = rs - r * d.s;
    const int n = d.f_pq.div(npq), pq = npq - n * (d.oh * d.ow), oh = d.f_ow.div(pq), ow = pq - oh * d.ow;
    const int h = oh * d.sh - d.ph + r, wc = ow * d.sw - d.pw + s;
    return h >= 0 && h < d.h && wc >= 0 && wc < d.w ? x[((n * d.c + c) * d.h + h) * d.w + wc] : 0.0f;
}

struct conv_fwd_op {
    conv_dims d;
    const float *x, *w, *bias;
    float *y;
    __device__ float A(int64_t k, int64_t crs) const { return w[(int)k * d.c * d.r * d.s + (int)crs]; }
    __device__ float B(int64_t crs, int64_t col) const { return conv_gather_x(d, x, (int)crs, (int)col); }
    __device__ void store(int64_t k, int64_t col, float acc) const {
        const int n = d.f_pq.div((int)col), pq = (int)col - n * (d.oh * d.ow);
        y[(n * d.k + (int)k) * d.oh * d.ow + pq] = bias ? acc + bias[k] : acc;
    }
};

/* bwd_data by stride phase (a, b) = (blockIdx.z / sw, blockIdx.z % sw): the rows h = a + sh i and columns
 * w = b + sw ii of dx only meet filter taps r = r0 + sh j, s = s0 + sw jj with r0 = (a + ph) mod sh (likewise s0),
 * and there oh = bh + i - j with bh = (a + ph - r0) / sh (likewise ow): a dense implicit GEMM per phase, M = C,
 * N = N nh nw (nh = ceil((H - a) / sh) rows in the phase), depth K nr ns (nr = ceil((R - r0) / sh) taps), with
 * no zero terms (for stride 2 the old single GEMM had 3 of 4 depth terms zero) and no divisibility tests. Each
 * output still sums its nonzero terms in increasing (k, r, s) order. */
struct conv_bwd_data_op {
    conv_dims d;
    const float *dy, *w, *bias;
    float *dx;
    int woff, bh, bw, nr, ns, nh, nw; /* woff = r0 S + s0 */
    conv_fdiv f_rs, f_s, f_hw, f_w;   /* by nr ns, ns, nh nw, nw */
    __device__ float A(int64_t c, int64_t kjj) const {
        const int k = f_rs.div((int)kjj), rs = (int)kjj - k * (nr * ns), j = f_s.div(rs), jj = rs - j * ns;
        return w[(k * d.c + (int)c) * d.r * d.s + woff + d.sh * d.s * j + d.sw * jj];
    }
    __device__ float B(int64_t kjj, int64_t col) const {
        const int k = f_rs.div((int)kjj), rs = (int)kjj - k * (nr * ns), j = f_s.div(rs), jj = rs - j * ns;
        const int n = f_hw.div((int)col), hw = (int)col - n * (nh * nw), i = f_w.div(hw), ii = hw - i * nw;
        const int oh = bh + i - j, ow = bw + ii - jj;
        return oh >= 0 && oh < d.oh && ow >= 0 && ow < d.ow ? dy[((n * d.k + k) * d.oh + oh) * d.ow + ow] : 0.0f;
    }
    __device__ void store(int64_t c, int64_t col, float acc) const {
        const int a = (int)blockIdx.z / d.sw, b = (int)blockIdx.z - a * d.sw; /* the phase */
        const int n = f_hw.div((int)col), hw = (int)col - n * (nh * nw), i = f_w.div(hw), ii = hw - i * nw;
        dx[((n * d.c + (int)c) * d.h + a + d.sh * i) * d.w + b + d.sw * ii] = bias ? acc + bias[c] : acc;
    }
};

struct conv_bwd_weight_op {
    conv_dims d;
    const float *x, *dy;
    float *dw; /* the split's partial tile in the scratch (accumulate 0), or dw itself when there is one split */
    int32_t accumulate;
    __device__ float A(int64_t k, int64_t npq) const {
        const int n = d.f_pq.div((int)npq), pq = (int)npq - n * (d.oh * d.ow);
        return dy[(n * d.k + (int)k) * d.oh * d.ow + pq];
    }
    __device__ float B(int64_t npq, int64_t crs) const { return conv_gather_x(d, x, (int)crs, (int)npq); }
    __device__ void store(int64_t k, int64_t crs, float acc) const {
        float *p = dw + (int)k * d.c * d.r * d.s + (int)crs;
        *p = accumulate ? *p + acc : acc;
    }
};

LT_KERNEL void __launch_bounds__(256) ltk_conv2d_fwd(lt_conv2d_desc d, const float *__restrict__ x,
                                                     const float *__restrict__ w, const float *__restrict__ bias,
                                                     float *__restrict__ y) {
    const conv_fwd_op op{conv_make_dims(d), x, w, bias, y};
    conv_igemm<false>(op, d.k, d.n * d.oh * d.ow, 0, d.c * d.r * d.s);
}

/* fwd on the 64 x 256 tile: grid (ceil(N OH OW / 256), ceil(K / 64)); chosen by conv2d_wide. */
LT_KERNEL void __launch_bounds__(256) ltk_conv2d_fwd_wide(lt_conv2d_desc d, const float *__restrict__ x,
                                                          const float *__restrict__ w, const float *__restrict__ bias,
                                                          float *__restrict__ y) {
    const conv_fwd_op op{conv_make_dims(d), x, w, bias, y};
    conv_igemm_wide(op, d.k, d.n * d.oh * d.ow, 0, d.c * d.r * d.s);
}

template <bool WIDE>
static __device__ __forceinline__ void conv_bwd_data_run(const lt_conv2d_desc &d, const float *__restrict__ dy,
                                                         const float *__restrict__ w, const float *__restrict__ bias,
                                                         float *__restrict__ dx) {
    const int sh = d.stride_h, sw = d.stride_w, a = (int)blockIdx.z / sw, b = (int)blockIdx.z - a * sw;
    const int r0 = (a + d.pad_h) % sh, s0 = (b + d.pad_w) % sw;
    const int nr = (int)d.r > r0 ? ((int)d.r - r0 + sh - 1) / sh : 0, ns = (int)d.s > s0 ? ((int)d.s - s0 + sw - 1) / sw : 0;
    const int nh = (int)d.h > a ? ((int)d.h - a + sh - 1) / sh : 0, nw = (int)d.w > b ? ((int)d.w - b + sw - 1) / sw : 0;
    const int ncol = (int)d.n * nh * nw;
    if ((int64_t)blockIdx.x * (WIDE ? CW_BN : CONV_BN) >= ncol) return; /* phases with fewer columns: whole block */
    const conv_bwd_data_op op{conv_make_dims(d), dy, w, bias, dx, r0 * (int)d.s + s0, (a + d.pad_h - r0) / sh,
                              (b + d.pad_w - s0) / sw, nr, ns, nh, nw, conv_fdiv_make(nr * ns), conv_fdiv_make(ns),
                              conv_fdiv_make(nh * nw), conv_fdiv_make(nw)};
    if (WIDE) conv_igemm_wide(op, d.c, ncol, 0, (int64_t)d.k * nr * ns);
    else conv_igemm<false>(op, d.c, ncol, 0, (int64_t)d.k * nr * ns);
}

LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_data(lt_conv2d_desc d, const float *__restrict__ dy,
                                                          const float *__restrict__ w, const float *__restrict__ bias,
                                                          float *__restrict__ dx) {
    conv_bwd_data_run<false>(d, dy, w, bias, dx);
}

/* bwd_data on the 64 x 256 tile: grid (ceil(N ceil(H/sh) ceil(W/sw) / 256), ceil(C / 64), sh sw). */
LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_data_wide(lt_conv2d_desc d, const float *__restrict__ dy,
                                                               const float *__restrict__ w, const float *__restrict__ bias,
                                                               float *__restrict__ dx) {
    conv_bwd_data_run<true>(d, dy, w, bias, dx);
}

/* Split z of gridDim.z sums depth [z chunk, min((z + 1) chunk, N OH OW)). One split: dw (+)= directly; more:
 * the partial tile goes to part + z K C R S (write-only) and ltk_conv2d_bwd_weight_sum adds them up. */
template <bool WIDE>
static __device__ __forceinline__ void conv_bwd_weight_run(const lt_conv2d_desc &d, const float *__restrict__ x,
                                                           const float *__restrict__ dy, float *__restrict__ dw,
                                                           int32_t accumulate, float *__restrict__ part, int64_t chunk) {
    const int64_t depth = d.n * d.oh * d.ow, z = blockIdx.z, kbeg = z * chunk; /* z = 0 when gridDim.z == 1 */
    const int64_t kend = gridDim.z == 1 ? depth : (kbeg + chunk < depth ? kbeg + chunk : depth);
    const conv_bwd_weight_op op{conv_make_dims(d), x, dy,
                                gridDim.z == 1 ? dw : part + z * d.k * d.c * d.r * d.s, gridDim.z == 1 ? accumulate : 0};
    if (WIDE) conv_igemm_wide(op, d.k, d.c * d.r * d.s, kbeg, kend);
    else conv_igemm<true>(op, d.k, d.c * d.r * d.s, kbeg, kend);
}

LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_weight(lt_conv2d_desc d, const float *__restrict__ x,
                                                            const float *__restrict__ dy, float *__restrict__ dw,
                                                            int32_t accumulate, float *__restrict__ part, int64_t chunk) {
    conv_bwd_weight_run<false>(d, x, dy, dw, accumulate, part, chunk);
}

/* bwd_weight on the 64 x 256 tile (C R S >= 256: conv2d_bwd_weight_wide): grid (ceil(C R S / 256), ceil(K / 64),
 * splits), the split from conv2d_bwd_weight_chunk's wide variant. */
LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_weight_wide(lt_conv2d_desc d, const float *__restrict__ x,
                                                                 const float *__restrict__ dy, float *__restrict__ dw,
                                                                 int32_t accumulate, float *__restrict__ part,
                                                                 int64_t chunk) {
    conv_bwd_weight_run<true>(d, x, dy, dw, accumulate, part, chunk);
}

/* dw[e] (+)= part[0][e] + part[1][e] + ... + part[splits - 1][e], in that order (n = K C R S; grid-stride). */
LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_weight_sum(int64_t n, int32_t splits, const float *__restrict__ part,
                                                                float *__restrict__ dw, int32_t accumulate) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        float s = part[e];
        for (int32_t z = 1; z < splits; z++) s += part[z * n + e];
        dw[e] = accumulate ? dw[e] + s : s;
    }
}

LT_KERNEL void __launch_bounds__(256) ltk_conv2d_bwd_bias(lt_conv2d_desc d, const float *__restrict__ dy,
                                                          float *__restrict__ db, int32_t accumulate) {
    __shared__ float red[32];
    const int64_t k = blockIdx.x, pq = d.oh * d.ow;
    float s = 0.0f;
    for (int64_t n = 0; n < d.n; n++)
        for (int64_t e = threadIdx.x; e < pq; e += blockDim.x) s += dy[(n * d.k + k) * pq + e];
    s = lt_block_sum(s, red);
    if (threadIdx.x == 0) db[k] = accumulate ? db[k] + s : s;
}
