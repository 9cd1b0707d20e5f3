/* Attention forward and backward on the GPU, FlashAttention-2 structure (the lt_attention_fwd / _bwd contract of
 * latent.h; lt_attention_desc by value). The T x T score matrix is never stored: the forward keeps a running max
 * and sum per query row (online softmax) and writes lse; the backward recomputes P = exp(scale q.k - lse) tile by
 * tile. q, k, v, o, dout, dq, dk, dv: (B, NH, T, HS) contiguous; lse, D: (B, NH, T). HS <= 128 (ATT_MAXHS; the
 * caller checks, the kernel traps otherwise).
 *
 * Layout of the work: a warp owns a few rows of the output (query rows, or key rows for dk / dv) and its 32 lanes
 * walk 32 rows of the other operand held in shared memory (row stride HS + 1 so lane-indexed rows are conflict
 * free); row-owner data is read by broadcast; a lane's part of an output row is columns lane + 32c (c < HS/32).
 *   ltk_attention_fwd        grid (ceil(T/16), B*NH), 128 threads: 16 query rows, key tiles of 32 (K, V in smem)
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

LT_KERNEL void __launch_bounds__(128) ltk_attention_fwd(lt_attention_desc d, const float *__restrict__ q,
                                                        const float *__restrict__ k, const float *__restrict__ v,
                                                        float *__restrict__ o, float *__restrict__ lse) {
    enum { BR = 16, RW = 4, BC = 32 };
    __shared__ float Qs[BR][ATT_MAXHS];
    __shared__ float Ks[BC][ATT_MAXHS + 1];
    __shared__ float Vs[BC][ATT_MAXHS];
    const int T = (int)d.t, HS = (int)d.hs, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (HS > ATT_MAXHS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS;
    const int q0 = blockIdx.x * BR;
    for (int e = threadIdx.x; e < BR * HS; e += blockDim.x) {
        const int r = e / HS, c = e % HS;
        Qs[r][c] = q0 + r < T ? q[base + (int64_t)(q0 + r) * HS + c] : 0.0f;
    }
    float m[RW], l[RW], acc[RW][ATT_NC];
#pragma unroll
    for (int r = 0; r < RW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_NC; c++) acc[r][c] = 0.0f;
    }
    const int kend = d.causal ? min(T, q0 + BR) : T;
    for (int kt = 0; kt < kend; kt += BC) {
        __syncthreads(); /* the previous tile is consumed (and Qs is written, the first time) */
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
            const bool vis = i < T && j < T && (!d.causal || j <= i);
            const float s = vis ? att_dot(Qs[ri], Ks[lane], HS) * d.scale : -INFINITY;
            const float mnew = fmaxf(m[r], lt_warp_max(s));
            if (mnew == -INFINITY) continue; /* nothing visible yet: uniform across the warp */
            const float p = vis ? expf(s - mnew) : 0.0f;
            const float corr = expf(m[r] - mnew); /* 0 when m was -inf */
            l[r] = l[r] * corr + lt_warp_sum(p);
            m[r] = mnew;
#pragma unroll
            for (int c = 0; c < ATT_NC; c++) acc[r][c] *= corr;
            for (int jj = 0; jj < BC; jj++) {
                const float pj = __shfl_sync(LT_FULL_MASK, p, jj);
#pragma unroll
                for (int c = 0; c < ATT_NC; c++)
                    if (lane + 32 * c < HS) acc[r][c] = fmaf(pj, Vs[jj][lane + 32 * c], acc[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RW; r++) {
        const int i = q0 + warp * RW + r;
        if (i >= T) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_NC; c++)
            if (lane + 32 * c < HS) o[base + (int64_t)i * HS + lane + 32 * c] = acc[r][c] * inv;
        if (lane == 0) lse[(int64_t)blockIdx.y * T + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
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
