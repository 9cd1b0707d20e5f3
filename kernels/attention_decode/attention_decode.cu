/* Decode attention on the GPU (the CUDA sibling of lt_attention_decode_fwd): KvDecoder's single-query attention
 * against a KV cache that lives in device memory, for GPT decoding on the device (DeviceKvDecoder). One layer's cache
 * is head-major, as the CPU decoder's: K (nh, ctx, hs) and V (nh, ctx, hs), so a (head, position) row is hs
 * contiguous floats. A step runs `rows` consecutive positions p0 .. p0 + rows - 1 of one sequence (a prompt at once,
 * then one token a step); row r sees the keys 0 .. p0 + r (causal).
 *
 *   ltk_kv_append(rows, nh, hs, ctx, p0, qkv, ld, kc, vc)   grid-stride over rows * nh * hs, 256 threads: copies the
 *       K and V thirds of the projection rows (qkv: rows x ld, q | k | v, each nh * hs wide) into the cache at
 *       positions p0 + r: kc[(h ctx + p0 + r) hs + e] = qkv[r ld + C + h hs + e], likewise V from 2C. Exact.
 *   ltk_attention_decode(rows, nh, hs, ctx, p0, scale, q, ldq, kc, vc, o, ldo)   grid rows * nh (block b: row b / nh,
 *       head b % nh), AD_THREADS threads (a multiple of 32), dynamic shared memory (hs + p0 + rows + 32) floats
 *       (AD_SMEM_EXTRA = 32 of them for the reductions): o[r ldo + h hs + e] = sum_j softmax_j(scale q . k_j) v_je
 *       over j <= p0 + r. Scores: warp w takes keys w, w + 4, ... (lanes split the dot product over e, a fixed
 *       butterfly adds the lanes), so a key's row is read coalesced; the max and the normalizer are block reductions
 *       in a fixed tree; the weighted sum of V is thread e's loop over j in key order, then one division by the
 *       normalizer. Every order is fixed: the same bits on every run, and for a row whatever the other rows are.
 *       Against the CPU kernels (scores in double at ISA ref, float with an online softmax at avx2 / avx512) the
 *       outputs agree within attention_decode_test.c's derived bound, not bit for bit
 *       (attention_decode_cuda_test.cc checks that bound).
 *   ltk_kv_append_rows(rows, nh, hs, ctx, slots, slot, pos, qkv, ld, kc, vc) and
 *   ltk_attention_decode_rows(rows, nh, hs, ctx, slots, maxlen, slot, pos, scale, q, ldq, kc, vc, o, ldo)   the
 *       batched forms (many sequences a step, DeviceKvDecoder.forward): the caches are a pool of `slots` sequences, K
 *       and V each (slots, nh, ctx, hs), and row r belongs to the sequence in slot[r] at position pos[r] (int32 device
 *       arrays), so it sees that slot's keys 0 .. pos[r]. Same grids; the attention's dynamic shared memory is
 *       (hs + maxlen + 32) floats with maxlen >= every pos[r] + 1. A row runs exactly the single-sequence code
 *       (ad_row_head) on its own slot: its bits do not depend on the other rows. The caller checks the indices; a row
 *       outside the pool (slot or position out of range, pos[r] + 1 > maxlen) is skipped, never written or read out
 *       of bounds.
 *   ltk_argmax_rows(rows, n, x, out)   grid rows, AD_THREADS threads: out[r] = the index of the largest of x[r n ..
 *       r n + n), the lowest index on ties, NaN never chosen (Sampling.pick's greedy loop: best = 0, then i whenever
 *       x[i] > x[best]; so a NaN at index 0, or a row of NaN, gives 0). Greedy decoding then reads 4 bytes a token
 *       (the one host synchronisation of a decoded token) instead of the vocabulary's logits.
 * Limits the launcher checks: hs <= AD_MAXHS (the per-lane dot product keeps hs / 32 floats of q in shared memory
 * anyway; the bound keeps the weighted sum's loop short), the dynamic shared memory within the device's 48 KiB
 * default (contexts up to ~12K positions). */
#include "lt_cuda.cuh"

#define AD_THREADS 128
#define AD_MAXHS 256
#define AD_SMEM_EXTRA 32

LT_KERNEL void ltk_kv_append(int64_t rows, int64_t nh, int64_t hs, int64_t ctx, int64_t p0, const float *__restrict__ qkv,
                             int64_t ld, float *__restrict__ kc, float *__restrict__ vc) {
    const int64_t c = nh * hs, n = rows * c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / c, cc = i - r * c, h = cc / hs, e = cc - h * hs;
        const int64_t dst = (h * ctx + p0 + r) * hs + e;
        kc[dst] = qkv[r * ld + c + cc];
        vc[dst] = qkv[r * ld + 2 * c + cc];
    }
}

LT_KERNEL void ltk_kv_append_rows(int64_t rows, int64_t nh, int64_t hs, int64_t ctx, int64_t slots, const int32_t *__restrict__ slot,
                                  const int32_t *__restrict__ pos, const float *__restrict__ qkv, int64_t ld, float *__restrict__ kc,
                                  float *__restrict__ vc) {
    const int64_t c = nh * hs, n = rows * c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / c, cc = i - r * c, h = cc / hs, e = cc - h * hs;
        const int64_t sl = slot[r], p = pos[r];
        if (sl < 0 || sl >= slots || p < 0 || p >= ctx) continue;   /* the caller checked; never write outside the pool */
        const int64_t dst = ((sl * nh + h) * ctx + p) * hs + e;
        kc[dst] = qkv[r * ld + c + cc];
        vc[dst] = qkv[r * ld + 2 * c + cc];
    }
}

/* One (row, head) pair of decode attention, the whole block: orow[0..hs) = softmax(scale qr . k_j, j < len) v_j, with
 * kh, vh the head's (len, hs) keys and values; sm: (hs + len + AD_SMEM_EXTRA) floats of dynamic shared memory. Both
 * attention kernels below run exactly this code, so a row's bits do not depend on which of them computed it. */
__device__ static void ad_row_head(int64_t hs, int64_t len, float scale, const float *__restrict__ qr, const float *__restrict__ kh,
                                   const float *__restrict__ vh, float *__restrict__ orow, float *sm) {
    float *qs = sm, *red = sm + hs, *s = red + AD_SMEM_EXTRA;
    for (int64_t e = threadIdx.x; e < hs; e += blockDim.x) qs[e] = qr[e];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int64_t j = warp; j < len; j += nw) {
        const float *kj = kh + j * hs;
        float d = 0.0f;
        for (int64_t e = lane; e < hs; e += 32) d = fmaf(qs[e], kj[e], d);
        d = lt_warp_sum(d);
        if (lane == 0) s[j] = d * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const float v = s[j];
        if (v > mx || v != v) mx = v;
    }
    mx = lt_block_max(mx, red);   /* fmaxf drops a NaN score: its exp below is NaN anyway, so the row is NaN, as on the CPU */
    float part = 0.0f;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const float w = expf(s[j] - mx);
        s[j] = w;
        part += w;
    }
    const float sum = lt_block_sum(part, red);   /* its trailing barrier also publishes the weights in s */
    const float inv = 1.0f / sum;
    for (int64_t e = threadIdx.x; e < hs; e += blockDim.x) {
        float acc = 0.0f;
        for (int64_t j = 0; j < len; j++) acc = fmaf(s[j], vh[j * hs + e], acc);
        orow[e] = acc * inv;
    }
}

LT_KERNEL void __launch_bounds__(AD_THREADS) ltk_attention_decode(int64_t rows, int64_t nh, int64_t hs, int64_t ctx, int64_t p0,
                                                                  float scale, const float *__restrict__ q, int64_t ldq,
                                                                  const float *__restrict__ kc, const float *__restrict__ vc,
                                                                  float *__restrict__ o, int64_t ldo) {
    LT_DYNAMIC_SHARED(float, sm);
    const int64_t r = blockIdx.x / nh, h = blockIdx.x - r * nh;
    if (r >= rows) return;
    ad_row_head(hs, p0 + r + 1, scale, q + r * ldq + h * hs, kc + h * ctx * hs, vc + h * ctx * hs, o + r * ldo + h * hs, sm);
}

LT_KERNEL void __launch_bounds__(AD_THREADS) ltk_attention_decode_rows(int64_t rows, int64_t nh, int64_t hs, int64_t ctx, int64_t slots,
                                                                       int64_t maxlen, const int32_t *__restrict__ slot,
                                                                       const int32_t *__restrict__ pos, float scale,
                                                                       const float *__restrict__ q, int64_t ldq,
                                                                       const float *__restrict__ kc, const float *__restrict__ vc,
                                                                       float *__restrict__ o, int64_t ldo) {
    LT_DYNAMIC_SHARED(float, sm);
    const int64_t r = blockIdx.x / nh, h = blockIdx.x - r * nh;
    if (r >= rows) return;
    const int64_t sl = slot[r], len = (int64_t)pos[r] + 1;
    if (sl < 0 || sl >= slots || len < 1 || len > maxlen || len > ctx) return;   /* the caller checked; never read past shared memory */
    const int64_t head = (sl * nh + h) * ctx * hs;
    ad_row_head(hs, len, scale, q + r * ldq + h * hs, kc + head, vc + head, o + r * ldo + h * hs, sm);
}

LT_KERNEL void __launch_bounds__(AD_THREADS) ltk_argmax_rows(int64_t rows, int64_t n, const float *__restrict__ x, int32_t *__restrict__ out) {
    __shared__ int64_t bi[AD_THREADS];
    __shared__ float bv[AD_THREADS];
    const int64_t r = blockIdx.x;
    if (r >= rows) return;
    const float *xr = x + r * n;
    int64_t best = -1;
    float bx = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = xr[i];
        if (v == v && (best < 0 || v > bx)) { best = i; bx = v; }   /* in index order: the first of equal maxima */
    }
    bi[threadIdx.x] = best;
    bv[threadIdx.x] = bx;
    __syncthreads();
    for (int w = AD_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            const int64_t a = bi[threadIdx.x], b = bi[threadIdx.x + w];
            const float va = bv[threadIdx.x], vb = bv[threadIdx.x + w];
            if (b >= 0 && (a < 0 || vb > va || (vb == va && b < a))) { bi[threadIdx.x] = b; bv[threadIdx.x] = vb; }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        const float x0 = xr[0];
        out[r] = (x0 != x0 || bi[0] < 0) ? 0 : (int32_t)bi[0];
    }
}
