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
 * the tiles above the diagonal. These are float SIMT; the forward and backward on bf16 tensor cores (mma.sync
 * m16n8k16) are in attention_bf16.cu; TF32 mma versions of these are next (docs/cuda.md).
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
