/* Attention forward and backward on bf16 tensor cores (mma.sync m16n8k16), FlashAttention-2 structure: the
 * lt_attention_fwd_bf16 / lt_attention_bwd_bf16 contracts of latent.h. The fp32 SIMT kernels, the shared backward
 * prologue D = dout . o (ltk_attention_bwd_dot) and the layout conventions are in attention.cu; both files are
 * #included into one translation unit (cmake/LatentCuda.cmake), so helpers here carry the ab_ prefix.
 *   ltk_attention_fwd_bf16       grid (ceil(T / 64), B*NH), 128 threads: 4 warps x 16 query rows, key tiles of 32
 *   ltk_attention_bwd_dkdv_bf16  grid (ceil(T / 32), B*NH), 64 threads: 2 warps x 16 keys, query tiles of 16
 *   ltk_attention_bwd_dq_bf16    grid (ceil(T / 32), B*NH), 64 threads: 2 warps x 16 query rows, key tiles of 32
 * Checked by attention_cuda_test.cc against a double reference on the bf16-rounded operands. */
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}

#define ATT_MAXHS 128 /* attention.cu's limit, repeated so this file stands alone (GenBindings fails if they differ) */

#define AB_BR 64  /* query rows per block: 4 warps x 16 */
#define AB_BC 32  /* keys per tile */
#define AB_QW 68  /* words per Q / K row: 64 h pairs + 4 pad */
#define AB_VW 20  /* words per V^T row: 16 key pairs + 4 pad */

/* Staging and fragment helpers of the three kernels (forward and backward load their tiles the same way) */

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
/* What every kernel here starts from: T and HS (a head wider than ATT_MAXHS traps), the thread, the head padded to
 * 16 (HS16: HW bf16 pairs, NK k-steps of 16, NH8 n-tiles of 8), and the thread's lane, warp, mma group g and pair t. */
struct ab_geom {
    int T, HS, tid, HS16, HW, NK, NH8, lane, warp, g, t;
};

static __device__ __forceinline__ ab_geom ab_geom_of(const lt_attention_desc &d) {
    const int T = (int)d.t, HS = (int)d.hs, tid = threadIdx.x;
    if (HS > ATT_MAXHS) __trap();
    const int HS16 = (HS + 15) & ~15, lane = tid & 31;
    return ab_geom{T, HS, tid, HS16, HS16 >> 1, HS16 >> 4, HS16 >> 3, lane, tid >> 5, lane >> 2, lane & 3};
}

LT_KERNEL void __launch_bounds__(128) ltk_attention_fwd_bf16(lt_attention_desc d, const float *__restrict__ q,
                                                             const float *__restrict__ k, const float *__restrict__ v,
                                                             float *__restrict__ o, float *__restrict__ lse) {
    __shared__ uint32_t Qs[AB_BR][AB_QW];
    __shared__ uint32_t Ks[AB_BC][AB_QW];
    __shared__ uint32_t Vt[ATT_MAXHS][AB_VW];
    const auto [T, HS, tid, HS16, HW, NK, NH8, lane, warp, g, t] = ab_geom_of(d);
    const int64_t base = (int64_t)blockIdx.y * T * HS;
    const int q0 = blockIdx.x * AB_BR;
    /* Q: word (r, hp) = bf16(q[r][2hp]) | bf16(q[r][2hp+1]) << 16, zero outside T x HS */
    ab_stage_rows<AB_BR>(Qs, q, base, q0, T, HS, HW, tid, 128);
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
        ab_stage_rows<AB_BC>(Ks, k, base, kt, T, HS, HW, tid, 128);
        ab_stage_cols<AB_BC, AB_VW>(Vt, v, base, kt, T, HS, HS16, tid, 128);
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
        for (int kk = 0; kk < AB_BC / 16; kk++) ab_afrag(pf[kk], s[2 * kk], s[2 * kk + 1]);
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

/* The backward's two products over one k loop, for this warp's 16 A rows (ar, ar + 8 of the lane's quad) against NT
 * n-tiles of 8 B rows: x[ni] = A1 B1^T and y[ni] = A2 B2^T over the HS16 / 16 k-steps. The dk dv pass takes S^T = K Q^T
 * and dP^T = V dout^T (NT 2: 16 queries), the dq pass S = Q K^T and dP = dout V^T (NT 4: 32 keys). */
template <int NT>
static __device__ __forceinline__ void ab_mma2(float x[NT][4], float y[NT][4], const uint32_t (*A1)[AB_QW],
                                               const uint32_t (*A2)[AB_QW], const uint32_t (*B1)[AB_QW],
                                               const uint32_t (*B2)[AB_QW], int ar, int NK, int g, int t) {
#pragma unroll
    for (int ni = 0; ni < NT; ni++)
#pragma unroll
        for (int e = 0; e < 4; e++) x[ni][e] = y[ni][e] = 0.0f;
    for (int kk = 0; kk < NK; kk++) {
        const int w0 = kk * 8 + t;
        const uint32_t a1[4] = {A1[ar][w0], A1[ar + 8][w0], A1[ar][w0 + 4], A1[ar + 8][w0 + 4]};
        const uint32_t a2[4] = {A2[ar][w0], A2[ar + 8][w0], A2[ar][w0 + 4], A2[ar + 8][w0 + 4]};
#pragma unroll
        for (int ni = 0; ni < NT; ni++) {
            const uint32_t b1[2] = {B1[ni * 8 + g][w0], B1[ni * 8 + g][w0 + 4]};
            const uint32_t b2[2] = {B2[ni * 8 + g][w0], B2[ni * 8 + g][w0 + 4]};
            lt_mma_bf16_16x8x16(x[ni], a1, b1);
            lt_mma_bf16_16x8x16(y[ni], a2, b2);
        }
    }
}

LT_KERNEL void __launch_bounds__(64) ltk_attention_bwd_dkdv_bf16(lt_attention_desc d, const float *__restrict__ q,
                                                                 const float *__restrict__ k, const float *__restrict__ v,
                                                                 const float *__restrict__ lse, const float *__restrict__ dvec,
                                                                 const float *__restrict__ dout, float *__restrict__ dk,
                                                                 float *__restrict__ dv) {
    __shared__ uint32_t Ks[32][AB_QW], Vs[32][AB_QW], Qs[16][AB_QW], Os[16][AB_QW];
    __shared__ uint32_t Qt[ATT_MAXHS][AB_KW], Ot[ATT_MAXHS][AB_KW];
    __shared__ float Ls[16], Ds[16];
    const auto [T, HS, tid, HS16, HW, NK, NH8, lane, warp, g, t] = ab_geom_of(d);
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
        ab_mma2<2>(st, dpt, Ks, Vs, Qs, Os, kr, NK, g, t);
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
    const auto [T, HS, tid, HS16, HW, NK, NH8, lane, warp, g, t] = ab_geom_of(d);
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
        float s[4][4], dp[4][4]; /* S and dP: 16 query rows x 32 keys */
        ab_mma2<4>(s, dp, Qs, Os, Ks, Vs, qr, NK, g, t);
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
