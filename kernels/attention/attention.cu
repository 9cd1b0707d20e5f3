/* Attention forward and backward on the GPU, FlashAttention-2 structure (the lt_attention_fwd / _bwd contract of
 * latent.h; lt_attention_desc by value). The T x T score matrix is never stored: the forward keeps a running max
 * and sum per query row (online softmax) and writes lse; the backward recomputes P = exp(scale q.k - lse) tile by
 * tile. q, k, v, o, dout, dq, dk, dv: (B, NH, T, HS) contiguous; lse, D: (B, NH, T). HS <= 128 (ATT_MAXHS; the
 * caller checks, the kernel traps otherwise).
 *
 * Layout of the work: a warp owns a few rows of the output (query rows, or key rows for dk / dv) and its 32 lanes
 * walk 32 rows of the other operand held in shared memory (row stride HS + 1 so lane-indexed rows are conflict
 * free); row-owner data is read by broadcast; a lane's part of an output row is columns lane + 32c (c < HS/32).
 *   ltk_attention_fwd        grid (ceil(T/32), B*NH), 64 threads: 32 query rows, key tiles of 32, register tiles
 *                            of 4 x 4 scores and 4 rows x 4 columns of O per thread (see the kernel's comment)
 *   ltk_attention_bwd_dot    D_i = dout_i . o_i, one warp per row (any grid of 256-thread blocks)
 *   ltk_attention_bwd_dkdv   grid (ceil(T/8), B*NH), 128 threads: 8 keys, query tiles of 32 (q, dout in smem)
 *   ltk_attention_bwd_dq     grid (ceil(T/8), B*NH), 128 threads: 8 query rows, key tiles of 32
 * dk / dv and dq are separate passes (the CPU's split schedule), so no atomics: deterministic. Causal blocks skip
 * the tiles above the diagonal. Everything is float SIMT; the mma.sync version (S = Q K^T and O += P V as TF32
 * tiles) is the next step once a GPU can measure it (docs/cuda.md).
 * Checked by attention_cuda_test.cc against a double reference on tiles' tails, causal and not. */
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}

#define ATT_MAXHS 128
#define ATT_NC (ATT_MAXHS / 32) /* columns per lane */

/* dot(a[0..hs), b[0..hs)) in float, in order */
static __device__ __forceinline__ float att_dot(const float *a, const float *b, int hs) {
    float s = 0.0f;
    for (int c = 0; c < hs; c++) s = fmaf(a[c], b[c], s);
    return s;
}

#if defined(__CUDACC__)
typedef float4 att_f4;
#else
struct alignas(16) att_f4 { float x, y, z, w; };
#endif

#define AF_BR 32 /* query rows per block */
#define AF_BC 32 /* keys per tile */

/* Forward with register tiles: 64 threads = 8 row groups x 8 lanes. Thread (rg, kg) = (tid / 8, tid % 8) holds
 * S for rows 4 rg .. 4 rg + 3 and keys 4 kg .. 4 kg + 3 of the tile (16 FMAs per two 16-byte shared loads: Q and K
 * are stored transposed, Qt[h][row], Kt[h][key]), then the same rows and columns cg * 4 + 32 c4 + t (cg = kg) of
 * O += P V (P through shared memory, transposed so a thread's 4 rows are one 16-byte load). A row's 32 scores live
 * in the 8 lanes of one row group, so its max and sum are 3 xor shuffles. K and V share one buffer (K for S, then
 * V for P V: 4 barriers per tile) to stay under 48 KB of static shared memory for HS = 128. Every score is a float
 * dot in increasing h, every output a float sum in increasing key order: deterministic. */
LT_KERNEL void __launch_bounds__(64) ltk_attention_fwd(lt_attention_desc d, const float *__restrict__ q,
                                                       const float *__restrict__ k, const float *__restrict__ v,
                                                       float *__restrict__ o, float *__restrict__ lse) {
    __align__(16) __shared__ float Qt[ATT_MAXHS][AF_BR];
    __align__(16) __shared__ float KV[ATT_MAXHS * AF_BC]; /* Kt[h][key] (h < HS), then Vs[key][h] (HS4 per row) */
    __align__(16) __shared__ float Pt[AF_BC][AF_BR];
    const int T = (int)d.t, HS = (int)d.hs, HS4 = (HS + 3) & ~3, tid = threadIdx.x, rg = tid >> 3, kg = tid & 7;
    if (HS > ATT_MAXHS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS;
    const int q0 = blockIdx.x * AF_BR;
    /* Qt: lanes walk rows (conflict-free stores), each reading a row's h in order */
    for (int e = tid; e < AF_BR * HS; e += 64) {
        const int r = e % AF_BR, h = e / AF_BR;
        Qt[h][r] = q0 + r < T ? q[base + (int64_t)(q0 + r) * HS + h] : 0.0f;
    }
    float m[4], l[4], acc[4][ATT_NC * 4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_NC * 4; c++) acc[i][c] = 0.0f;
    }
    const int kend = d.causal ? min(T, q0 + AF_BR) : T;
    for (int kt = 0; kt < kend; kt += AF_BC) {
        __syncthreads(); /* the previous tile's P V is done with KV and Pt (and Qt is written, the first time) */
        for (int e = tid; e < AF_BC * HS; e += 64) {
            const int j = e % AF_BC, h = e / AF_BC;
            KV[h * AF_BC + j] = kt + j < T ? k[base + (int64_t)(kt + j) * HS + h] : 0.0f;
        }
        __syncthreads();
        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
        for (int h = 0; h < HS; h++) {
            const att_f4 a = *reinterpret_cast<const att_f4 *>(&Qt[h][rg * 4]);
            const att_f4 b = *reinterpret_cast<const att_f4 *>(&KV[h * AF_BC + kg * 4]);
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) s[i][j] = fmaf(av[i], bv[j], s[i][j]);
        }
        float p[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int row = q0 + rg * 4 + i;
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int key = kt + kg * 4 + j;
                const bool vis = row < T && key < T && (!d.causal || key <= row);
                s[i][j] = vis ? s[i][j] * d.scale : -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
#pragma unroll
            for (int off = 4; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(LT_FULL_MASK, mx, off));
            const float mnew = fmaxf(m[i], mx);
            float ps = 0.0f, corr = 1.0f;
            if (mnew == -INFINITY) { /* nothing visible yet in this row: uniform across its 8 lanes */
#pragma unroll
                for (int j = 0; j < 4; j++) p[i][j] = 0.0f;
            } else {
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    p[i][j] = s[i][j] == -INFINITY ? 0.0f : expf(s[i][j] - mnew);
                    ps += p[i][j];
                }
                corr = expf(m[i] - mnew); /* 0 when m was -inf */
                m[i] = mnew;
            }
#pragma unroll
            for (int off = 4; off > 0; off >>= 1) ps += __shfl_xor_sync(LT_FULL_MASK, ps, off);
            l[i] = l[i] * corr + ps;
#pragma unroll
            for (int c = 0; c < ATT_NC * 4; c++) acc[i][c] *= corr;
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            att_f4 w;
            w.x = p[0][j];
            w.y = p[1][j];
            w.z = p[2][j];
            w.w = p[3][j];
            *reinterpret_cast<att_f4 *>(&Pt[kg * 4 + j][rg * 4]) = w;
        }
        __syncthreads(); /* S is done with Kt; Pt is complete */
        const int nk = min(AF_BC, T - kt);
        for (int e = tid; e < AF_BC * HS4; e += 64) {
            const int j = e / HS4, h = e % HS4;
            KV[j * HS4 + h] = j < nk && h < HS ? v[base + (int64_t)(kt + j) * HS + h] : 0.0f;
        }
        __syncthreads();
        for (int j = 0; j < nk; j++) {
            const att_f4 pw = *reinterpret_cast<const att_f4 *>(&Pt[j][rg * 4]);
            const float pv[4] = {pw.x, pw.y, pw.z, pw.w};
#pragma unroll
            for (int c4 = 0; c4 < ATT_NC; c4++) {
                const int col = kg * 4 + 32 * c4;
                if (col < HS4) {
                    const att_f4 vw = *reinterpret_cast<const att_f4 *>(&KV[j * HS4 + col]);
                    const float vv[4] = {vw.x, vw.y, vw.z, vw.w};
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int t = 0; t < 4; t++) acc[i][c4 * 4 + t] = fmaf(pv[i], vv[t], acc[i][c4 * 4 + t]);
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = q0 + rg * 4 + i;
        if (row >= T) continue;
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
        for (int c4 = 0; c4 < ATT_NC; c4++)
#pragma unroll
            for (int t = 0; t < 4; t++) {
                const int col = kg * 4 + 32 * c4 + t;
                if (col < HS) o[base + (int64_t)row * HS + col] = acc[i][c4 * 4 + t] * inv;
            }
        if (kg == 0) lse[(int64_t)blockIdx.y * T + row] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
    }
}

LT_KERNEL void ltk_attention_bwd_dot(int64_t rows, int64_t hs, const float *__restrict__ dout,
                                     const float *__restrict__ o, float *__restrict__ dvec) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    float s = 0.0f;
    for (int64_t c = lane; c < hs; c += 32) s = fmaf(dout[row * hs + c], o[row * hs + c], s);
    s = lt_warp_sum(s);
    if (lane == 0) dvec[row] = s;
}

LT_KERNEL void __launch_bounds__(128) ltk_attention_bwd_dkdv(lt_attention_desc d, const float *__restrict__ q,
                                                             const float *__restrict__ k, const float *__restrict__ v,
                                                             const float *__restrict__ lse, const float *__restrict__ dvec,
                                                             const float *__restrict__ dout, float *__restrict__ dk,
                                                             float *__restrict__ dv) {
    enum { BK = 8, RW = 2, BQ = 32 };
    __shared__ float Ks[BK][ATT_MAXHS];
    __shared__ float Vs[BK][ATT_MAXHS];
    __shared__ float Qs[BQ][ATT_MAXHS + 1];
    __shared__ float Os[BQ][ATT_MAXHS + 1]; /* dout rows */
    __shared__ float Ls[BQ], Ds[BQ];
    const int T = (int)d.t, HS = (int)d.hs, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (HS > ATT_MAXHS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS, rbase = (int64_t)blockIdx.y * T;
    const int k0 = blockIdx.x * BK;
    for (int e = threadIdx.x; e < BK * HS; e += blockDim.x) {
        const int r = e / HS, c = e % HS;
        const bool in = k0 + r < T;
        Ks[r][c] = in ? k[base + (int64_t)(k0 + r) * HS + c] : 0.0f;
        Vs[r][c] = in ? v[base + (int64_t)(k0 + r) * HS + c] : 0.0f;
    }
    float gk[RW][ATT_NC], gv[RW][ATT_NC];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int c = 0; c < ATT_NC; c++) gk[r][c] = gv[r][c] = 0.0f;
    const int qstart = d.causal ? (k0 / BQ) * BQ : 0;
    for (int qt = qstart; qt < T; qt += BQ) {
        __syncthreads();
        for (int e = threadIdx.x; e < BQ * HS; e += blockDim.x) {
            const int i = e / HS, c = e % HS;
            const bool in = qt + i < T;
            Qs[i][c] = in ? q[base + (int64_t)(qt + i) * HS + c] : 0.0f;
            Os[i][c] = in ? dout[base + (int64_t)(qt + i) * HS + c] : 0.0f;
        }
        if (threadIdx.x < BQ) {
            const bool in = qt + (int)threadIdx.x < T;
            Ls[threadIdx.x] = in ? lse[rbase + qt + threadIdx.x] : -INFINITY;
            Ds[threadIdx.x] = in ? dvec[rbase + qt + threadIdx.x] : 0.0f;
        }
        __syncthreads();
        const int i = qt + lane;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const int rj = warp * RW + r, j = k0 + rj;
            const bool vis = j < T && i < T && (!d.causal || j <= i) && Ls[lane] != -INFINITY;
            float p = 0.0f, ds = 0.0f;
            if (vis) {
                p = expf(att_dot(Qs[lane], Ks[rj], HS) * d.scale - Ls[lane]);
                ds = p * (att_dot(Os[lane], Vs[rj], HS) - Ds[lane]) * d.scale;
            }
            for (int ii = 0; ii < BQ; ii++) {
                const float pi = __shfl_sync(LT_FULL_MASK, p, ii), dsi = __shfl_sync(LT_FULL_MASK, ds, ii);
#pragma unroll
                for (int c = 0; c < ATT_NC; c++)
                    if (lane + 32 * c < HS) {
                        gv[r][c] = fmaf(pi, Os[ii][lane + 32 * c], gv[r][c]);
                        gk[r][c] = fmaf(dsi, Qs[ii][lane + 32 * c], gk[r][c]);
                    }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RW; r++) {
        const int j = k0 + warp * RW + r;
        if (j >= T) continue;
#pragma unroll
        for (int c = 0; c < ATT_NC; c++)
            if (lane + 32 * c < HS) {
                dk[base + (int64_t)j * HS + lane + 32 * c] = gk[r][c];
                dv[base + (int64_t)j * HS + lane + 32 * c] = gv[r][c];
            }
    }
}

LT_KERNEL void __launch_bounds__(128) ltk_attention_bwd_dq(lt_attention_desc d, const float *__restrict__ q,
                                                           const float *__restrict__ k, const float *__restrict__ v,
                                                           const float *__restrict__ lse, const float *__restrict__ dvec,
                                                           const float *__restrict__ dout, float *__restrict__ dq) {
    enum { BR = 8, RW = 2, BC = 32 };
    __shared__ float Qs[BR][ATT_MAXHS];
    __shared__ float Os[BR][ATT_MAXHS];
    __shared__ float Ks[BC][ATT_MAXHS + 1];
    __shared__ float Vs[BC][ATT_MAXHS + 1];
    const int T = (int)d.t, HS = (int)d.hs, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (HS > ATT_MAXHS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS, rbase = (int64_t)blockIdx.y * T;
    const int q0 = blockIdx.x * BR;
    for (int e = threadIdx.x; e < BR * HS; e += blockDim.x) {
        const int r = e / HS, c = e % HS;
        const bool in = q0 + r < T;
        Qs[r][c] = in ? q[base + (int64_t)(q0 + r) * HS + c] : 0.0f;
        Os[r][c] = in ? dout[base + (int64_t)(q0 + r) * HS + c] : 0.0f;
    }
    float li[RW], di[RW], g[RW][ATT_NC];
#pragma unroll
    for (int r = 0; r < RW; r++) {
        const int i = q0 + warp * RW + r;
        li[r] = i < T ? lse[rbase + i] : -INFINITY;
        di[r] = i < T ? dvec[rbase + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_NC; c++) g[r][c] = 0.0f;
    }
    const int kend = d.causal ? min(T, q0 + BR) : T;
    for (int kt = 0; kt < kend; kt += BC) {
        __syncthreads();
        for (int e = threadIdx.x; e < BC * HS; e += blockDim.x) {
            const int j = e / HS, c = e % HS;
            const bool in = kt + j < T;
            Ks[j][c] = in ? k[base + (int64_t)(kt + j) * HS + c] : 0.0f;
            Vs[j][c] = in ? v[base + (int64_t)(kt + j) * HS + c] : 0.0f;
        }
        __syncthreads();
        const int j = kt + lane;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const int ri = warp * RW + r, i = q0 + ri;
            const bool vis = i < T && j < T && (!d.causal || j <= i) && li[r] != -INFINITY;
            float ds = 0.0f;
            if (vis) {
                const float p = expf(att_dot(Qs[ri], Ks[lane], HS) * d.scale - li[r]);
                ds = p * (att_dot(Os[ri], Vs[lane], HS) - di[r]) * d.scale;
            }
            for (int jj = 0; jj < BC; jj++) {
                const float dsj = __shfl_sync(LT_FULL_MASK, ds, jj);
#pragma unroll
                for (int c = 0; c < ATT_NC; c++)
                    if (lane + 32 * c < HS) g[r][c] = fmaf(dsj, Ks[jj][lane + 32 * c], g[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RW; r++) {
        const int i = q0 + warp * RW + r;
        if (i >= T) continue;
#pragma unroll
        for (int c = 0; c < ATT_NC; c++)
            if (lane + 32 * c < HS) dq[base + (int64_t)i * HS + lane + 32 * c] = g[r][c];
    }
}
