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
 * the tiles above the diagonal. These are float SIMT; ltk_attention_fwd_bf16 (at the end) is the forward on bf16
 * tensor cores (mma.sync m16n8k16); its backward, and TF32 mma versions of these, are next (docs/cuda.md).
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

/* ---- backward for HS <= 64 with register tiles (ATT_SMALL_HS) -------------------------------------------------
 * Same math and pass split as the kernels above (dk / dv per key block, dq per query block: no atomics), but each of
 * the 64 threads computes a 4 x 4 tile of S = q.k and dP = dout.v from row-major shared tiles with a padded stride
 * (ATT_SP = 65: the 4 rows a thread reads and the 8 row groups of a warp fall in distinct banks), i.e. 16 FMAs per 8
 * scalar loads, and accumulates 4 rows x 8 columns (b + 8 cc) of its outputs in registers, reading the 4 P / dS
 * values of its rows as one 16-byte load. Four 32 x 65 tiles + two 32 x 32 ones: 41 KB of static shared memory,
 * which is why HS > 64 keeps the kernels above. Sums run in increasing tile and index order: deterministic.
 *   ltk_attention_bwd_dkdv64  grid (ceil(T/32), B*NH), 64 threads: 32 keys, query tiles of 32
 *   ltk_attention_bwd_dq64    grid (ceil(T/32), B*NH), 64 threads: 32 query rows, key tiles of 32 */
#define ATT_SMALL_HS 64
#define ATT_SP (ATT_SMALL_HS + 1)

/* Loads rows r0 .. r0 + 31 of a (T, HS) matrix into a 32 x ATT_SP tile (zeros past T and HS). */
static __device__ __forceinline__ void att_tile(float (*dst)[ATT_SP], const float *__restrict__ src, int r0, int T,
                                                int HS) {
    for (int e = threadIdx.x; e < 32 * ATT_SMALL_HS; e += 64) {
        const int r = e / ATT_SMALL_HS, h = e % ATT_SMALL_HS;
        dst[r][h] = r0 + r < T && h < HS ? src[(int64_t)(r0 + r) * HS + h] : 0.0f;
    }
}

/* s[x][y] = sum_h A[4 ga + x][h] B[4 gb + y][h] and likewise for C, D: the two 4 x 4 dot tiles of a thread */
static __device__ __forceinline__ void att_dots2(float s[4][4], float t[4][4], const float (*A)[ATT_SP],
                                                 const float (*B)[ATT_SP], const float (*Cm)[ATT_SP],
                                                 const float (*D)[ATT_SP], int ga, int gb, int HS) {
#pragma unroll
    for (int x = 0; x < 4; x++)
#pragma unroll
        for (int y = 0; y < 4; y++) s[x][y] = t[x][y] = 0.0f;
    for (int h = 0; h < HS; h++) {
        float a[4], b[4], c[4], dd[4];
#pragma unroll
        for (int x = 0; x < 4; x++) {
            a[x] = A[4 * ga + x][h];
            b[x] = B[4 * gb + x][h];
            c[x] = Cm[4 * ga + x][h];
            dd[x] = D[4 * gb + x][h];
        }
#pragma unroll
        for (int x = 0; x < 4; x++)
#pragma unroll
            for (int y = 0; y < 4; y++) {
                s[x][y] = fmaf(a[x], b[y], s[x][y]);
                t[x][y] = fmaf(c[x], dd[y], t[x][y]);
            }
    }
}

LT_KERNEL void __launch_bounds__(64) ltk_attention_bwd_dkdv64(lt_attention_desc d, const float *__restrict__ q,
                                                              const float *__restrict__ k, const float *__restrict__ v,
                                                              const float *__restrict__ lse,
                                                              const float *__restrict__ dvec,
                                                              const float *__restrict__ dout, float *__restrict__ dk,
                                                              float *__restrict__ dv) {
    __shared__ float Ks[32][ATT_SP], Vs[32][ATT_SP], Qs[32][ATT_SP], Os[32][ATT_SP]; /* Os: dout */
    __align__(16) __shared__ float Ps[32][32], Ss[32][32]; /* [query][key]: P and dS */
    __shared__ float Ls[32], Ds[32];
    const int T = (int)d.t, HS = (int)d.hs, ga = threadIdx.x >> 3, gb = threadIdx.x & 7;
    if (HS > ATT_SMALL_HS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS, lbase = (int64_t)blockIdx.y * T;
    const int k0 = blockIdx.x * 32;
    att_tile(Ks, k + base, k0, T, HS);
    att_tile(Vs, v + base, k0, T, HS);
    float ak[4][8], av[4][8]; /* dk, dv: keys 4 ga + x, columns gb + 8 cc */
#pragma unroll
    for (int x = 0; x < 4; x++)
#pragma unroll
        for (int cc = 0; cc < 8; cc++) ak[x][cc] = av[x][cc] = 0.0f;
    for (int q0 = d.causal ? k0 : 0; q0 < T; q0 += 32) {
        __syncthreads(); /* the previous tile's Qs, Os, Ps, Ss are consumed (Ks, Vs written, the first time) */
        att_tile(Qs, q + base, q0, T, HS);
        att_tile(Os, dout + base, q0, T, HS);
        if (threadIdx.x < 32) {
            const int i = q0 + threadIdx.x;
            Ls[threadIdx.x] = i < T ? lse[lbase + i] : -INFINITY;
            Ds[threadIdx.x] = i < T ? dvec[lbase + i] : 0.0f;
        }
        __syncthreads();
        float s[4][4], dp[4][4]; /* [key x][query y]: keys 4 ga + x, queries 4 gb + y */
        att_dots2(s, dp, Ks, Qs, Vs, Os, ga, gb, HS);
#pragma unroll
        for (int y = 0; y < 4; y++) {
            const int qi = 4 * gb + y, i = q0 + qi;
            float pw[4], sw[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int j = k0 + 4 * ga + x;
                const bool vis = i < T && j < T && (!d.causal || j <= i) && Ls[qi] != -INFINITY;
                const float p = vis ? expf(s[x][y] * d.scale - Ls[qi]) : 0.0f;
                pw[x] = p;
                sw[x] = p * (dp[x][y] - Ds[qi]) * d.scale;
            }
            *reinterpret_cast<att_f4 *>(&Ps[qi][4 * ga]) = att_f4{pw[0], pw[1], pw[2], pw[3]};
            *reinterpret_cast<att_f4 *>(&Ss[qi][4 * ga]) = att_f4{sw[0], sw[1], sw[2], sw[3]};
        }
        __syncthreads();
        const int nq = min(32, T - q0);
        for (int qi = 0; qi < nq; qi++) {
            const att_f4 pw = *reinterpret_cast<const att_f4 *>(&Ps[qi][4 * ga]);
            const att_f4 sw = *reinterpret_cast<const att_f4 *>(&Ss[qi][4 * ga]);
            const float p4[4] = {pw.x, pw.y, pw.z, pw.w}, s4[4] = {sw.x, sw.y, sw.z, sw.w};
#pragma unroll
            for (int cc = 0; cc < 8; cc++) {
                const float o = Os[qi][gb + 8 * cc], qq = Qs[qi][gb + 8 * cc];
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    av[x][cc] = fmaf(p4[x], o, av[x][cc]);
                    ak[x][cc] = fmaf(s4[x], qq, ak[x][cc]);
                }
            }
        }
    }
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int j = k0 + 4 * ga + x;
        if (j >= T) continue;
#pragma unroll
        for (int cc = 0; cc < 8; cc++) {
            const int c = gb + 8 * cc;
            if (c < HS) {
                dk[base + (int64_t)j * HS + c] = ak[x][cc];
                dv[base + (int64_t)j * HS + c] = av[x][cc];
            }
        }
    }
}

LT_KERNEL void __launch_bounds__(64) ltk_attention_bwd_dq64(lt_attention_desc d, const float *__restrict__ q,
                                                            const float *__restrict__ k, const float *__restrict__ v,
                                                            const float *__restrict__ lse,
                                                            const float *__restrict__ dvec,
                                                            const float *__restrict__ dout, float *__restrict__ dq) {
    __shared__ float Qs[32][ATT_SP], Os[32][ATT_SP], Ks[32][ATT_SP], Vs[32][ATT_SP];
    __align__(16) __shared__ float Ss[32][32]; /* [key][query]: dS */
    const int T = (int)d.t, HS = (int)d.hs, ga = threadIdx.x >> 3, gb = threadIdx.x & 7;
    if (HS > ATT_SMALL_HS) __trap();
    const int64_t base = (int64_t)blockIdx.y * T * HS, lbase = (int64_t)blockIdx.y * T;
    const int q0 = blockIdx.x * 32;
    att_tile(Qs, q + base, q0, T, HS);
    att_tile(Os, dout + base, q0, T, HS);
    float li[4], di[4], aq[4][8]; /* queries 4 ga + x, columns gb + 8 cc */
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int i = q0 + 4 * ga + x;
        li[x] = i < T ? lse[lbase + i] : -INFINITY;
        di[x] = i < T ? dvec[lbase + i] : 0.0f;
#pragma unroll
        for (int cc = 0; cc < 8; cc++) aq[x][cc] = 0.0f;
    }
    const int kend = d.causal ? min(T, q0 + 32) : T;
    for (int kt = 0; kt < kend; kt += 32) {
        __syncthreads(); /* the previous tile's Ks, Vs, Ss are consumed (Qs, Os written, the first time) */
        att_tile(Ks, k + base, kt, T, HS);
        att_tile(Vs, v + base, kt, T, HS);
        __syncthreads();
        float s[4][4], dp[4][4]; /* [query x][key y] */
        att_dots2(s, dp, Qs, Ks, Os, Vs, ga, gb, HS);
#pragma unroll
        for (int y = 0; y < 4; y++) {
            const int kj = 4 * gb + y, j = kt + kj;
            float sw[4];
#pragma unroll
            for (int x = 0; x < 4; x++) {
                const int i = q0 + 4 * ga + x;
                const bool vis = i < T && j < T && (!d.causal || j <= i) && li[x] != -INFINITY;
                const float p = vis ? expf(s[x][y] * d.scale - li[x]) : 0.0f;
                sw[x] = p * (dp[x][y] - di[x]) * d.scale;
            }
            *reinterpret_cast<att_f4 *>(&Ss[kj][4 * ga]) = att_f4{sw[0], sw[1], sw[2], sw[3]};
        }
        __syncthreads();
        const int nk = min(32, T - kt);
        for (int kj = 0; kj < nk; kj++) {
            const att_f4 sw = *reinterpret_cast<const att_f4 *>(&Ss[kj][4 * ga]);
            const float s4[4] = {sw.x, sw.y, sw.z, sw.w};
#pragma unroll
            for (int cc = 0; cc < 8; cc++) {
                const float kk = Ks[kj][gb + 8 * cc];
#pragma unroll
                for (int x = 0; x < 4; x++) aq[x][cc] = fmaf(s4[x], kk, aq[x][cc]);
            }
        }
    }
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int i = q0 + 4 * ga + x;
        if (i >= T) continue;
#pragma unroll
        for (int cc = 0; cc < 8; cc++) {
            const int c = gb + 8 * cc;
            if (c < HS) dq[base + (int64_t)i * HS + c] = aq[x][cc];
        }
    }
}

/* ---- ltk_attention_fwd_bf16: the forward on bf16 tensor cores (issue 18: our own kernel where cuDNN's SDPA is absent)
 * The lt_attention_fwd_bf16 contract of latent.h (the CPU's): q, k, v, o fp32 (B, NH, T, HS), lse fp32 (B, NH, T) with the
 * fp32 kernel's meaning (m + log l, -inf for a row that sees no key); the operands of both matmuls (Q K^T and P V) are
 * rounded to bf16 (to nearest even: Q, K, V as they are staged in shared memory, P in registers) and their products
 * summed in fp32 by mma.sync m16n8k16 (lt_mma_bf16_16x8x16: PTX with a shuffle twin). Softmax statistics, the running
 * max / sum (of the unrounded p) and O stay fp32. FlashAttention-2 structure:
 *   grid (ceil(T / 64), B*NH), 128 threads = 4 warps; warp w owns query rows q0 + 16 w .. + 15 (one mma M tile) and
 *   walks key tiles of 32 (causal: up to the block's last row). Per tile: S (16 x 32) = Q K^T as 4 n-tiles x HS16/16
 *   k-steps; scale, mask (key < T, causal), online softmax per row (a row's 32 scores live in the 4 lanes of a quad:
 *   2 xor shuffles); the S accumulators ARE the A fragments of P (c[0..1] of n-tiles 2kk and 2kk+1 pack into
 *   a[0], a[2]; c[2..3] into a[1], a[3]), so P never touches shared memory; O (16 x HS16) += P V as HS16/8 n-tiles x
 *   2 k-steps. Shared memory (bf16 pairs in 32-bit words; row strides keep every fragment read conflict free):
 *   Q [64][68] (rows: query, words: h pairs), K [32][68] (rows: key), V transposed [128][20] (rows: h, words: key pairs);
 *   36.9 KB. HS is padded to HS16 (a multiple of 16) with zeros; HS <= ATT_MAXHS (the caller checks; traps otherwise).
 * Within a row, O and l sum the tiles in increasing key order and each mma sums its 16 products in the tensor core's
 * order (the twin: in k order): deterministic on a given device. Checked by attention_cuda_test.cc against a double
 * reference on the bf16-rounded inputs. Not yet tuned or timed (no GPU here): V's transposed store has bank conflicts
 * (ldmatrix.trans is the fix), global loads are scalar fp32 reads (no cp.async). */
#define AB_BR 64  /* query rows per block: 4 warps x 16 */
#define AB_BC 32  /* keys per tile */
#define AB_QW 68  /* words per Q / K row: 64 h pairs + 4 pad */
#define AB_VW 20  /* words per V^T row: 16 key pairs + 4 pad */

LT_KERNEL void __launch_bounds__(128) ltk_attention_fwd_bf16(lt_attention_desc d, const float *__restrict__ q,
                                                             const float *__restrict__ k, const float *__restrict__ v,
                                                             float *__restrict__ o, float *__restrict__ lse) {
    __shared__ uint32_t Qs[AB_BR][AB_QW];
    __shared__ uint32_t Ks[AB_BC][AB_QW];
    __shared__ uint32_t Vt[ATT_MAXHS][AB_VW];
    const int T = (int)d.t, HS = (int)d.hs, tid = threadIdx.x;
    if (HS > ATT_MAXHS) __trap();
    const int HS16 = (HS + 15) & ~15, HW = HS16 >> 1, NK = HS16 >> 4, NH8 = HS16 >> 3;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t base = (int64_t)blockIdx.y * T * HS;
    const int q0 = blockIdx.x * AB_BR;
    /* Q: word (r, hp) = bf16(q[r][2hp]) | bf16(q[r][2hp+1]) << 16, zero outside T x HS */
    for (int e = tid; e < AB_BR * HW; e += 128) {
        const int r = e / HW, hp = e % HW, row = q0 + r, h = 2 * hp;
        const float *src = q + base + (int64_t)row * HS;
        const bool ok = row < T;
        Qs[r][hp] = lt_pack_bf16x2(ok && h < HS ? src[h] : 0.0f, ok && h + 1 < HS ? src[h + 1] : 0.0f);
    }
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8; /* this lane's two rows */
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float acc[ATT_MAXHS / 8][4];
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nh][e] = 0.0f;
    const int kend = d.causal ? min(T, q0 + AB_BR) : T;
    for (int kt = 0; kt < kend; kt += AB_BC) {
        __syncthreads(); /* the previous tile is done with Ks / Vt (and Qs is complete, the first time) */
        for (int e = tid; e < AB_BC * HW; e += 128) {
            const int j = e / HW, hp = e % HW, key = kt + j, h = 2 * hp;
            const float *src = k + base + (int64_t)key * HS;
            const bool ok = key < T;
            Ks[j][hp] = lt_pack_bf16x2(ok && h < HS ? src[h] : 0.0f, ok && h + 1 < HS ? src[h + 1] : 0.0f);
        }
        for (int e = tid; e < (AB_BC / 2) * HS16; e += 128) { /* consecutive threads: consecutive h (coalesced reads) */
            const int h = e % HS16, kp = e / HS16, key = kt + 2 * kp;
            const bool hok = h < HS;
            const float lo = hok && key < T ? v[base + (int64_t)key * HS + h] : 0.0f;
            const float hi = hok && key + 1 < T ? v[base + (int64_t)(key + 1) * HS + h] : 0.0f;
            Vt[h][kp] = lt_pack_bf16x2(lo, hi);
        }
        __syncthreads();
        /* S = Q K^T: 4 n-tiles of 8 keys */
        float s[AB_BC / 8][4];
#pragma unroll
        for (int ni = 0; ni < AB_BC / 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[ni][e] = 0.0f;
        const int qr = warp * 16 + g;
        for (int kk = 0; kk < NK; kk++) {
            uint32_t af[4];
            af[0] = Qs[qr][kk * 8 + t];
            af[1] = Qs[qr + 8][kk * 8 + t];
            af[2] = Qs[qr][kk * 8 + t + 4];
            af[3] = Qs[qr + 8][kk * 8 + t + 4];
#pragma unroll
            for (int ni = 0; ni < AB_BC / 8; ni++) {
                uint32_t bfr[2];
                bfr[0] = Ks[ni * 8 + g][kk * 8 + t];
                bfr[1] = Ks[ni * 8 + g][kk * 8 + t + 4];
                lt_mma_bf16_16x8x16(s[ni], af, bfr);
            }
        }
        /* scale and mask; row maxima over the quad */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int ni = 0; ni < AB_BC / 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kt + ni * 8 + 2 * t + (e & 1), row = e < 2 ? r0 : r1;
                const bool vis = row < T && key < T && (!d.causal || key <= row);
                s[ni][e] = vis ? s[ni][e] * d.scale : -INFINITY;
                if (e < 2) mx0 = fmaxf(mx0, s[ni][e]);
                else mx1 = fmaxf(mx1, s[ni][e]);
            }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(LT_FULL_MASK, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(LT_FULL_MASK, mx1, off));
        }
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        /* p = exp(s - m_new) (0 where masked or while the row has seen nothing); corr = exp(m_old - m_new) */
        const float c0 = mn0 == -INFINITY ? 1.0f : expf(m0 - mn0), c1 = mn1 == -INFINITY ? 1.0f : expf(m1 - mn1);
        float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
        for (int ni = 0; ni < AB_BC / 8; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float mn = e < 2 ? mn0 : mn1;
                const float p = s[ni][e] == -INFINITY ? 0.0f : expf(s[ni][e] - mn);
                s[ni][e] = p;
                if (e < 2) ps0 += p;
                else ps1 += p;
            }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            ps0 += __shfl_xor_sync(LT_FULL_MASK, ps0, off);
            ps1 += __shfl_xor_sync(LT_FULL_MASK, ps1, off);
        }
        if (mn0 != -INFINITY) m0 = mn0;
        if (mn1 != -INFINITY) m1 = mn1;
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
        /* O = O corr + P V: P's A fragments straight from the S accumulators */
        uint32_t pf[AB_BC / 16][4];
#pragma unroll
        for (int kk = 0; kk < AB_BC / 16; kk++) {
            pf[kk][0] = lt_pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
            pf[kk][1] = lt_pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
            pf[kk][2] = lt_pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pf[kk][3] = lt_pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        }
#pragma unroll
        for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
            if (nh < NH8) {
                acc[nh][0] *= c0;
                acc[nh][1] *= c0;
                acc[nh][2] *= c1;
                acc[nh][3] *= c1;
#pragma unroll
                for (int kk = 0; kk < AB_BC / 16; kk++) {
                    uint32_t bfr[2];
                    bfr[0] = Vt[nh * 8 + g][kk * 8 + t];
                    bfr[1] = Vt[nh * 8 + g][kk * 8 + t + 4];
                    lt_mma_bf16_16x8x16(acc[nh], pf[kk], bfr);
                }
            }
        }
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
        if (nh < NH8) {
            const int col = nh * 8 + 2 * t;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = e < 2 ? r0 : r1, c = col + (e & 1);
                if (row < T && c < HS) o[base + (int64_t)row * HS + c] = acc[nh][e] * (e < 2 ? inv0 : inv1);
            }
        }
    }
    if (t == 0) {
        if (r0 < T) lse[(int64_t)blockIdx.y * T + r0] = l0 > 0.0f ? m0 + logf(l0) : -INFINITY;
        if (r1 < T) lse[(int64_t)blockIdx.y * T + r1] = l1 > 0.0f ? m1 + logf(l1) : -INFINITY;
    }
}

/* ---- the bf16 backward on tensor cores: ltk_attention_bwd_dkdv_bf16 and ltk_attention_bwd_dq_bf16 ----
 * The lt_attention_bwd_bf16 contract (latent.h): the operands of dP = dout V^T, dS K, P^T dout and dS^T Q rounded to
 * bf16 (nearest even), products summed in fp32; P = exp(scale q.k - lse), dS = P (dP - D) scale and D = dout . o
 * (ltk_attention_bwd_dot, fp32) stay fp32 until they are rounded as mma operands. Two passes as the fp32 kernels (no
 * atomics: deterministic), each recomputing S = Q K^T by mma (Q and K rounded to bf16 as in the forward):
 *   ltk_attention_bwd_dkdv_bf16  grid (ceil(T / 32), B*NH), 64 threads: warp w owns keys k0 + 16 w .. + 15 (one mma M
 *       tile, dK and dV accumulators in registers) and walks query tiles of 16 (causal: from the block's first key).
 *       S^T = K Q^T and dP^T = V dout^T as 2 n-tiles each; P^T and dS^T are repacked in registers as A fragments
 *       for dV += P^T dout and dK += dS^T Q (B from transposed copies of the query tile: Qt, dOt [h][query pairs]).
 *       Shared: K, V [32][68], Q, dout [16][68], Qt, dOt [128][12] words, 37.6 KB.
 *   ltk_attention_bwd_dq_bf16    grid (ceil(T / 32), B*NH), 64 threads: warp w owns query rows q0 + 16 w .. + 15 and
 *       walks key tiles of 32: S = Q K^T, dP = dout V^T (4 n-tiles), dS repacked as A fragments for dQ += dS K (B from
 *       Kt [h][key pairs]). Shared: Q, dout, K, V [32][68], Kt [128][20] words, 44 KB.
 * Checked by attention_cuda_test.cc against a double reference on the rounded operands. */
#define AB_KW 12 /* words per row of a transposed 16-query tile: 8 pairs + 4 pad */

/* rows r0 .. r0 + R - 1 of x (T x HS, at base) into S[R][AB_QW] as bf16 pairs, zero past T and HS */
template <int R>
static __device__ __forceinline__ void ab_stage_rows(uint32_t (*S)[AB_QW], const float *__restrict__ x, int64_t base,
                                                     int r0, int T, int HS, int HW, int tid, int nth) {
    for (int e = tid; e < R * HW; e += nth) {
        const int r = e / HW, hp = e % HW, row = r0 + r, h = 2 * hp;
        const float *src = x + base + (int64_t)row * HS;
        const bool ok = row < T;
        S[r][hp] = lt_pack_bf16x2(ok && h < HS ? src[h] : 0.0f, ok && h + 1 < HS ? src[h + 1] : 0.0f);
    }
}

/* the same rows transposed: S[h][p] = pair (row r0 + 2p, r0 + 2p + 1) of column h, for h < HS16, p < R / 2 */
template <int R, int W>
static __device__ __forceinline__ void ab_stage_cols(uint32_t (*S)[W], const float *__restrict__ x, int64_t base, int r0,
                                                     int T, int HS, int HS16, int tid, int nth) {
    for (int e = tid; e < (R / 2) * HS16; e += nth) { /* consecutive threads: consecutive h (coalesced reads) */
        const int h = e % HS16, p = e / HS16, row = r0 + 2 * p;
        const bool hok = h < HS;
        const float lo = hok && row < T ? x[base + (int64_t)row * HS + h] : 0.0f;
        const float hi = hok && row + 1 < T ? x[base + (int64_t)(row + 1) * HS + h] : 0.0f;
        S[h][p] = lt_pack_bf16x2(lo, hi);
    }
}

/* A fragments of a 16 x (8 NT) accumulator tile (rows g, g + 8 of the lane's quad) as the k = 16 kk .. 16 kk + 15 slice */
static __device__ __forceinline__ void ab_afrag(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = lt_pack_bf16x2(c0[0], c0[1]);
    a[1] = lt_pack_bf16x2(c0[2], c0[3]);
    a[2] = lt_pack_bf16x2(c1[0], c1[1]);
    a[3] = lt_pack_bf16x2(c1[2], c1[3]);
}

LT_KERNEL void __launch_bounds__(64) ltk_attention_bwd_dkdv_bf16(lt_attention_desc d, const float *__restrict__ q,
                                                                 const float *__restrict__ k, const float *__restrict__ v,
                                                                 const float *__restrict__ lse, const float *__restrict__ dvec,
                                                                 const float *__restrict__ dout, float *__restrict__ dk,
                                                                 float *__restrict__ dv) {
    __shared__ uint32_t Ks[32][AB_QW], Vs[32][AB_QW], Qs[16][AB_QW], Os[16][AB_QW];
    __shared__ uint32_t Qt[ATT_MAXHS][AB_KW], Ot[ATT_MAXHS][AB_KW];
    __shared__ float Ls[16], Ds[16];
    const int T = (int)d.t, HS = (int)d.hs, tid = threadIdx.x;
    if (HS > ATT_MAXHS) __trap();
    const int HS16 = (HS + 15) & ~15, HW = HS16 >> 1, NK = HS16 >> 4, NH8 = HS16 >> 3;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t base = (int64_t)blockIdx.y * T * HS, lbase = (int64_t)blockIdx.y * T;
    const int k0 = blockIdx.x * 32;
    ab_stage_rows<32>(Ks, k, base, k0, T, HS, HW, tid, 64);
    ab_stage_rows<32>(Vs, v, base, k0, T, HS, HW, tid, 64);
    const int kr = warp * 16 + g, key0 = k0 + kr, key1 = key0 + 8; /* this lane's two keys */
    float adk[ATT_MAXHS / 8][4], adv[ATT_MAXHS / 8][4];
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++)
#pragma unroll
        for (int e = 0; e < 4; e++) adk[nh][e] = adv[nh][e] = 0.0f;
    for (int qt = d.causal ? k0 : 0; qt < T; qt += 16) {
        __syncthreads(); /* the previous tile is done with Qs .. Ds (and Ks, Vs are complete, the first time) */
        ab_stage_rows<16>(Qs, q, base, qt, T, HS, HW, tid, 64);
        ab_stage_rows<16>(Os, dout, base, qt, T, HS, HW, tid, 64);
        ab_stage_cols<16, AB_KW>(Qt, q, base, qt, T, HS, HS16, tid, 64);
        ab_stage_cols<16, AB_KW>(Ot, dout, base, qt, T, HS, HS16, tid, 64);
        if (tid < 16) {
            Ls[tid] = qt + tid < T ? lse[lbase + qt + tid] : 0.0f;
            Ds[tid] = qt + tid < T ? dvec[lbase + qt + tid] : 0.0f;
        }
        __syncthreads();
        float st[2][4], dpt[2][4]; /* S^T and dP^T: 16 keys x 16 queries */
#pragma unroll
        for (int ni = 0; ni < 2; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) st[ni][e] = dpt[ni][e] = 0.0f;
        for (int kk = 0; kk < NK; kk++) {
            const int w0 = kk * 8 + t;
            const uint32_t ak[4] = {Ks[kr][w0], Ks[kr + 8][w0], Ks[kr][w0 + 4], Ks[kr + 8][w0 + 4]};
            const uint32_t av[4] = {Vs[kr][w0], Vs[kr + 8][w0], Vs[kr][w0 + 4], Vs[kr + 8][w0 + 4]};
#pragma unroll
            for (int ni = 0; ni < 2; ni++) {
                const uint32_t bq[2] = {Qs[ni * 8 + g][w0], Qs[ni * 8 + g][w0 + 4]};
                const uint32_t bo[2] = {Os[ni * 8 + g][w0], Os[ni * 8 + g][w0 + 4]};
                lt_mma_bf16_16x8x16(st[ni], ak, bq);
                lt_mma_bf16_16x8x16(dpt[ni], av, bo);
            }
        }
#pragma unroll
        for (int ni = 0; ni < 2; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = ni * 8 + 2 * t + (e & 1), qrow = qt + qi, key = e < 2 ? key0 : key1;
                const bool vis = key < T && qrow < T && (!d.causal || qrow >= key);
                const float p = vis ? expf(st[ni][e] * d.scale - Ls[qi]) : 0.0f;
                st[ni][e] = p;
                dpt[ni][e] = p * (dpt[ni][e] - Ds[qi]) * d.scale;
            }
        uint32_t pa[4], sa[4];
        ab_afrag(pa, st[0], st[1]);
        ab_afrag(sa, dpt[0], dpt[1]);
#pragma unroll
        for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
            if (nh < NH8) {
                const uint32_t bo[2] = {Ot[nh * 8 + g][t], Ot[nh * 8 + g][t + 4]};
                const uint32_t bq[2] = {Qt[nh * 8 + g][t], Qt[nh * 8 + g][t + 4]};
                lt_mma_bf16_16x8x16(adv[nh], pa, bo);
                lt_mma_bf16_16x8x16(adk[nh], sa, bq);
            }
        }
    }
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
        if (nh < NH8) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = e < 2 ? key0 : key1, c = nh * 8 + 2 * t + (e & 1);
                if (key < T && c < HS) {
                    dk[base + (int64_t)key * HS + c] = adk[nh][e];
                    dv[base + (int64_t)key * HS + c] = adv[nh][e];
                }
            }
        }
    }
}

LT_KERNEL void __launch_bounds__(64) ltk_attention_bwd_dq_bf16(lt_attention_desc d, const float *__restrict__ q,
                                                               const float *__restrict__ k, const float *__restrict__ v,
                                                               const float *__restrict__ lse, const float *__restrict__ dvec,
                                                               const float *__restrict__ dout, float *__restrict__ dq) {
    __shared__ uint32_t Qs[32][AB_QW], Os[32][AB_QW], Ks[32][AB_QW], Vs[32][AB_QW];
    __shared__ uint32_t Kt[ATT_MAXHS][AB_VW];
    const int T = (int)d.t, HS = (int)d.hs, tid = threadIdx.x;
    if (HS > ATT_MAXHS) __trap();
    const int HS16 = (HS + 15) & ~15, HW = HS16 >> 1, NK = HS16 >> 4, NH8 = HS16 >> 3;
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t base = (int64_t)blockIdx.y * T * HS, lbase = (int64_t)blockIdx.y * T;
    const int q0 = blockIdx.x * 32;
    ab_stage_rows<32>(Qs, q, base, q0, T, HS, HW, tid, 64);
    ab_stage_rows<32>(Os, dout, base, q0, T, HS, HW, tid, 64);
    const int qr = warp * 16 + g, r0 = q0 + qr, r1 = r0 + 8;
    const float L0 = r0 < T ? lse[lbase + r0] : 0.0f, L1 = r1 < T ? lse[lbase + r1] : 0.0f;
    const float D0 = r0 < T ? dvec[lbase + r0] : 0.0f, D1 = r1 < T ? dvec[lbase + r1] : 0.0f;
    float acc[ATT_MAXHS / 8][4];
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nh][e] = 0.0f;
    const int kend = d.causal ? min(T, q0 + 32) : T;
    for (int kt = 0; kt < kend; kt += 32) {
        __syncthreads();
        ab_stage_rows<32>(Ks, k, base, kt, T, HS, HW, tid, 64);
        ab_stage_rows<32>(Vs, v, base, kt, T, HS, HW, tid, 64);
        ab_stage_cols<32, AB_VW>(Kt, k, base, kt, T, HS, HS16, tid, 64);
        __syncthreads();
        float s[4][4], dp[4][4];
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[ni][e] = dp[ni][e] = 0.0f;
        for (int kk = 0; kk < NK; kk++) {
            const int w0 = kk * 8 + t;
            const uint32_t aq[4] = {Qs[qr][w0], Qs[qr + 8][w0], Qs[qr][w0 + 4], Qs[qr + 8][w0 + 4]};
            const uint32_t ao[4] = {Os[qr][w0], Os[qr + 8][w0], Os[qr][w0 + 4], Os[qr + 8][w0 + 4]};
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const uint32_t bk[2] = {Ks[ni * 8 + g][w0], Ks[ni * 8 + g][w0 + 4]};
                const uint32_t bv[2] = {Vs[ni * 8 + g][w0], Vs[ni * 8 + g][w0 + 4]};
                lt_mma_bf16_16x8x16(s[ni], aq, bk);
                lt_mma_bf16_16x8x16(dp[ni], ao, bv);
            }
        }
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kt + ni * 8 + 2 * t + (e & 1), row = e < 2 ? r0 : r1;
                const bool vis = key < T && row < T && (!d.causal || key <= row);
                const float p = vis ? expf(s[ni][e] * d.scale - (e < 2 ? L0 : L1)) : 0.0f;
                dp[ni][e] = p * (dp[ni][e] - (e < 2 ? D0 : D1)) * d.scale;
            }
        uint32_t sa[2][4];
        ab_afrag(sa[0], dp[0], dp[1]);
        ab_afrag(sa[1], dp[2], dp[3]);
#pragma unroll
        for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
            if (nh < NH8) {
#pragma unroll
                for (int kk = 0; kk < 2; kk++) {
                    const uint32_t bk[2] = {Kt[nh * 8 + g][kk * 8 + t], Kt[nh * 8 + g][kk * 8 + t + 4]};
                    lt_mma_bf16_16x8x16(acc[nh], sa[kk], bk);
                }
            }
        }
    }
#pragma unroll
    for (int nh = 0; nh < ATT_MAXHS / 8; nh++) {
        if (nh < NH8) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = e < 2 ? r0 : r1, c = nh * 8 + 2 * t + (e & 1);
                if (row < T && c < HS) dq[base + (int64_t)row * HS + c] = acc[nh][e];
            }
        }
    }
}
