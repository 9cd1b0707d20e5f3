/* The VAE reparameterization sampler on the GPU (the CUDA sibling of reparam_ref.c): the same float operations in
 * the same order (reparam_bm.h, written here with the __*_rn intrinsics, which nvcc never contracts or
 * approximates, whatever -fmad / -use_fast_math say), so eps, z, dmu, dlogvar and the KL sum have the CPU's bits.
 *
 *   ltk_reparam_fwd(n, mu, logvar, seed, stream, z, part)   grid ceil(n / 4096), block RP_THREADS = 256 (required):
 *       block c does chunk c (elements [4096 c, 4096 c + 4096)), i.e. Philox blocks 1024 c .. 1024 c + 1023; thread
 *       j takes blocks 1024 c + j + 256 r, r < 4, each the four elements 32 g + l + 8 t (g = b >> 3, l = b & 7).
 *       KL (part may be NULL): each Philox block's float sum of its 4 terms goes to shared memory; 8 threads add
 *       lane l's 128 sums in group order in double, thread 0 combines the 8 lanes in reparam_ref.c's order into
 *       part[c]: exactly the CPU's chunk sum.
 *   ltk_reparam_kl_sum(chunks, part, kl)   one thread: kl = 0.5 * (part[0] + part[1] + ...), in order (as reparam.c).
 *   ltk_reparam_bwd(n, mu, logvar, seed, stream, dz, kl_scale, dmu, dlogvar)   256 threads, any grid, grid-stride
 *       over the Philox blocks.
 *   ltk_reparam_fwd_key / ltk_reparam_bwd_key: the same with (seed, stream) read from key[0..1] in device memory (CUDA
 *       graphs: the key is staged before each replay).
 * Memory: a warp's 32 threads touch 4 runs of 8 consecutive floats per operand (32-byte sectors): coalesced.
 * Checked by reparam_cuda_test.cc (emulation) bit for bit against lt_reparam_* at ISA ref. */
#include "lt_cuda.cuh"

#define RP_CHUNK 4096
#define RP_THREADS 256

static __device__ __forceinline__ void rp_philox(uint64_t b, uint64_t seed, uint64_t stream, uint32_t w[4]) {
    uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        const uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    }
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}

/* bm_pair of reparam_bm.h (constants there, in hex: the same floats). */
static __device__ __forceinline__ void rp_bm_pair(uint32_t wa, uint32_t wb, float *c_out, float *s_out) {
    const float u1 = __fmaf_rn((float)(int32_t)(wa >> 8), 0x1p-24f, 0x1p-25f);
    const uint32_t ix = __float_as_uint(u1) + (0x3f800000u - 0x3f3504f3u);
    const float e = (float)((int32_t)(ix >> 23) - 127);
    const float m = __uint_as_float((ix & 0x007fffffu) + 0x3f3504f3u);
    const float f = __fdiv_rn(__fsub_rn(m, 1.0f), __fadd_rn(m, 1.0f)), s = __fmul_rn(f, f);
    float p = __fmaf_rn(0x1.c71c72p-4f, s, 0x1.24924ap-3f);
    p = __fmaf_rn(p, s, 0x1.99999ap-3f);
    p = __fmaf_rn(p, s, 0x1.555556p-2f);
    const float f2 = __fadd_rn(f, f), lnm = __fmaf_rn(f2, __fmul_rn(s, p), f2);
    const float ln = __fmaf_rn(e, 0x1.62e430p-1f, __fmaf_rn(e, -0x1.05c610p-29f, lnm));
    const float r = __fsqrt_rn(__fmul_rn(ln, -2.0f));
    const float x = __fmaf_rn((float)(int32_t)(wb >> 8), 0x1p-22f, 0x1p-23f);
    const float xm = __fadd_rn(x, 12582912.0f), y = __fsub_rn(x, __fsub_rn(xm, 12582912.0f)), y2 = __fmul_rn(y, y);
    float sp = __fmaf_rn(0x1.507834p-13f, y2, -0x1.32d2ccp-8f);
    sp = __fmaf_rn(sp, y2, 0x1.466bc6p-4f);
    sp = __fmaf_rn(sp, y2, -0x1.4abbcep-1f);
    const float sn = __fmaf_rn(y, 0x1.921fb6p+0f, __fmaf_rn(y, -0x1.777a5cp-25f, __fmul_rn(__fmul_rn(y, y2), sp)));
    float cp = __fmaf_rn(-0x1.a6d1f2p-16f, y2, 0x1.e1f506p-11f);
    cp = __fmaf_rn(cp, y2, -0x1.55d3c8p-6f);
    cp = __fmaf_rn(cp, y2, 0x1.03c1f0p-2f);
    cp = __fmaf_rn(cp, y2, -0x1.3bd3ccp+0f);
    const float cs = __fmaf_rn(cp, y2, 1.0f);
    const uint32_t q = __float_as_uint(xm);
    const float c = (q & 1) ? sn : cs, sv = (q & 1) ? cs : sn;
    *c_out = __fmul_rn(r, __uint_as_float(__float_as_uint(c) ^ (((q + 1) << 30) & 0x80000000u)));
    *s_out = __fmul_rn(r, __uint_as_float(__float_as_uint(sv) ^ ((q << 30) & 0x80000000u)));
}

/* rp_exp of reparam_bm.h: e^y for y in [-15, 15] or NaN. */
static __device__ __forceinline__ float rp_exp_dev(float y) {
    const float t = __fmaf_rn(y, 1.44269502f, 12583039.0f), kf = __fsub_rn(t, 12583039.0f);
    float f = __fmaf_rn(-kf, 0x1.62e430p-1f, y);
    f = __fmaf_rn(-kf, -0x1.05c610p-29f, f);
    float p = __fmaf_rn(0x1.6a4f70p-10f, f, 0x1.123980p-7f);
    p = __fmaf_rn(p, f, 0x1.5558aep-5f);
    p = __fmaf_rn(p, f, 0x1.555492p-3f);
    p = __fmaf_rn(p, f, 0x1.fffffcp-2f);
    p = __fadd_rn(__fmaf_rn(p, __fmul_rn(f, f), f), 1.0f);
    return __fmul_rn(p, __uint_as_float(__float_as_uint(t) << 23));
}

static __device__ __forceinline__ float rp_clamp(float x) { return x < -30.0f ? -30.0f : x > 30.0f ? 30.0f : x; }

/* eps of the four elements of Philox block b: e[t] is element 32 (b >> 3) + (b & 7) + 8 t. */
static __device__ __forceinline__ void rp_eps4(uint64_t b, uint64_t seed, uint64_t stream, float e[4]) {
    uint32_t w[4];
    rp_philox(b, seed, stream, w);
    rp_bm_pair(w[0], w[1], &e[0], &e[1]);
    rp_bm_pair(w[2], w[3], &e[2], &e[3]);
}

/* The forward's body for Philox key (seed, stream); sums (RP_CHUNK / 4 floats) and lanes (8 doubles) in shared memory. */
static __device__ __forceinline__ void rp_fwd(int64_t n, const float *__restrict__ mu, const float *__restrict__ logvar,
                                              uint64_t seed, uint64_t stream, float *__restrict__ z,
                                              double *__restrict__ part, float *sums, double *lanes) {
    const int64_t chunk = blockIdx.x;
    for (int r = 0; r < RP_CHUNK / 4 / RP_THREADS; r++) {
        const int jb = threadIdx.x + RP_THREADS * r;
        const uint64_t b = (uint64_t)chunk * (RP_CHUNK / 4) + (uint64_t)jb;
        float e[4], t[4];
        rp_eps4(b, seed, stream, e);
        for (int h = 0; h < 4; h++) {
            const int64_t i = (int64_t)(b >> 3) * 32 + (int64_t)(b & 7) + 8 * h;
            t[h] = 0.0f;
            if (i < n) {
                const float lv = rp_clamp(logvar[i]), m = mu[i], s = rp_exp_dev(__fmul_rn(0.5f, lv));
                z[i] = __fmaf_rn(s, e[h], m);
                t[h] = __fsub_rn(__fmaf_rn(m, m, __fmaf_rn(s, s, -1.0f)), lv);
            }
        }
        sums[jb] = __fadd_rn(__fadd_rn(__fadd_rn(t[0], t[1]), t[2]), t[3]);
    }
    if (part == nullptr) return; /* uniform over the block: no thread is left waiting at the barrier */
    __syncthreads();
    if (threadIdx.x < 8) {
        double a = 0.0;
        for (int g = 0; g < RP_CHUNK / 32; g++) a = __dadd_rn(a, (double)sums[g * 8 + threadIdx.x]);
        lanes[threadIdx.x] = a;
    }
    __syncthreads();
    if (threadIdx.x == 0)
        part[chunk] = __dadd_rn(__dadd_rn(__dadd_rn(lanes[0], lanes[4]), __dadd_rn(lanes[2], lanes[6])),
                                __dadd_rn(__dadd_rn(lanes[1], lanes[5]), __dadd_rn(lanes[3], lanes[7])));
}

LT_KERNEL void __launch_bounds__(RP_THREADS) ltk_reparam_fwd(int64_t n, const float *__restrict__ mu,
                                                             const float *__restrict__ logvar, uint64_t seed,
                                                             uint64_t stream, float *__restrict__ z,
                                                             double *__restrict__ part) {
    __shared__ float sums[RP_CHUNK / 4];
    __shared__ double lanes[8];
    rp_fwd(n, mu, logvar, seed, stream, z, part, sums, lanes);
}

/* ltk_reparam_fwd with the Philox key read from device memory: key[0] = seed, key[1] = stream. A step captured into a
 * CUDA graph passes the key's address, which stays fixed, and the key staged before each replay is read there, so every
 * replay draws new eps (a key passed by value would be frozen into the graph). Same bits as ltk_reparam_fwd. */
LT_KERNEL void __launch_bounds__(RP_THREADS) ltk_reparam_fwd_key(int64_t n, const float *__restrict__ mu,
                                                                 const float *__restrict__ logvar,
                                                                 const uint64_t *__restrict__ key, float *__restrict__ z,
                                                                 double *__restrict__ part) {
    __shared__ float sums[RP_CHUNK / 4];
    __shared__ double lanes[8];
    rp_fwd(n, mu, logvar, key[0], key[1], z, part, sums, lanes);
}

LT_KERNEL void ltk_reparam_kl_sum(int64_t chunks, const double *__restrict__ part, double *__restrict__ kl) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (int64_t q = 0; q < chunks; q++) s = __dadd_rn(s, part[q]);
    *kl = 0.5 * s;
}

static __device__ __forceinline__ void rp_bwd(int64_t n, const float *__restrict__ mu, const float *__restrict__ logvar,
                                              uint64_t seed, uint64_t stream, const float *__restrict__ dz, float kl_scale,
                                              float *__restrict__ dmu, float *__restrict__ dlogvar) {
    const int64_t blocks = ((n + 31) >> 5) * 8, stride = (int64_t)gridDim.x * blockDim.x;
    const float hk = __fmul_rn(0.5f, kl_scale);
    for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < blocks; b += stride) {
        float e[4];
        rp_eps4((uint64_t)b, seed, stream, e);
        for (int h = 0; h < 4; h++) {
            const int64_t i = (b >> 3) * 32 + (b & 7) + 8 * h;
            if (i >= n) continue;
            const float lv = rp_clamp(logvar[i]), s = rp_exp_dev(__fmul_rn(0.5f, lv)), g = dz[i];
            dmu[i] = __fmaf_rn(kl_scale, mu[i], g);
            dlogvar[i] = __fmaf_rn(hk, __fmaf_rn(s, s, -1.0f), __fmul_rn(__fmul_rn(g, e[h]), __fmul_rn(0.5f, s)));
        }
    }
}

/*@ launch=reparamBackward grid=stride((n+3)/4) block=256 */
LT_KERNEL void ltk_reparam_bwd(int64_t n, const float *__restrict__ mu, const float *__restrict__ logvar, uint64_t seed,
                               uint64_t stream, const float *__restrict__ dz, float kl_scale, float *__restrict__ dmu,
                               float *__restrict__ dlogvar) {
    rp_bwd(n, mu, logvar, seed, stream, dz, kl_scale, dmu, dlogvar);
}

/* ltk_reparam_bwd with the key read from device memory (key[0] = seed, key[1] = stream), as ltk_reparam_fwd_key. */
/*@ launch=reparamBackwardKeyed grid=stride((n+3)/4) block=256 check=n>=0 mu[n] logvar[n] key[2] dz[n] dmu[n] dlogvar[n] */
LT_KERNEL void ltk_reparam_bwd_key(int64_t n, const float *__restrict__ mu, const float *__restrict__ logvar,
                                   const uint64_t *__restrict__ key, const float *__restrict__ dz, float kl_scale,
                                   float *__restrict__ dmu, float *__restrict__ dlogvar) {
    rp_bwd(n, mu, logvar, key[0], key[1], dz, kl_scale, dmu, dlogvar);
}

/* Free-bits KL (Kingma et al. 2016; ProbF.klFreeBits) on the device, for mu, logvar (b, d): no copy to the host.
 *   ltk_kl_free_bits_fwd(b, d, mu, logvar, lambda, kd, out)   one block of FB_THREADS = 256 threads (required): thread t
 *       takes dims j = t, t + 256, ...: kd[j] = sum over i in order of 0.5 (mu^2 + exp(l) - 1 - l) / b in double (l =
 *       logvar clamped to [-30, 30], NaN kept); then thread 0: *out = (float) sum over j in order of max(lambda, kd[j])
 *       (NaN kept): the host loop's expression and order; exp is the device's double exp (within an ulp of Java's).
 *   ltk_kl_free_bits_bwd(b, d, mu, logvar, kd, lambda, grad, dmu, dlogvar)   any grid, grid-stride over b d: with
 *       s = (double)(grad[0] / (float) b) (float division, as the host's), dims with kd[j] > lambda get
 *       dmu = (float)(s mu), dlogvar = (float)(s 0.5 (exp(l) - 1)) (0 where logvar is outside [-30, 30]); others 0. */
#define FB_THREADS 256

LT_KERNEL void __launch_bounds__(FB_THREADS) ltk_kl_free_bits_fwd(int64_t b, int64_t d, const float *__restrict__ mu,
                                                                  const float *__restrict__ logvar, double lambda,
                                                                  double *__restrict__ kd, float *__restrict__ out) {
    for (int64_t j = threadIdx.x; j < d; j += FB_THREADS) {
        double s = 0.0;
        for (int64_t i = 0; i < b; i++) {
            const double m = mu[i * d + j];
            double l = logvar[i * d + j];
            if (l > 30.0) l = 30.0;
            if (l < -30.0) l = -30.0;
            const double t = __dsub_rn(__dsub_rn(__dadd_rn(__dmul_rn(m, m), exp(l)), 1.0), l);
            s = __dadd_rn(s, __ddiv_rn(__dmul_rn(0.5, t), (double)b));
        }
        kd[j] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double v = kd[j];
            tot = __dadd_rn(tot, v != v ? v : v > lambda ? v : lambda);
        }
        *out = (float)tot;
    }
}

LT_KERNEL void ltk_kl_free_bits_bwd(int64_t b, int64_t d, const float *__restrict__ mu, const float *__restrict__ logvar,
                                    const double *__restrict__ kd, double lambda, const float *__restrict__ grad,
                                    float *__restrict__ dmu, float *__restrict__ dlogvar) {
    const double s = (double)__fdiv_rn(grad[0], (float)b);
    const int64_t n = b * d;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x) {
        const bool on = kd[k % d] > lambda;
        const float l = logvar[k];
        const bool clamped = l < -30.0f || l > 30.0f;
        dmu[k] = on ? (float)__dmul_rn(s, (double)mu[k]) : 0.0f;
        dlogvar[k] = on && !clamped ? (float)__dmul_rn(__dmul_rn(s, 0.5), __dsub_rn(exp((double)l), 1.0)) : 0.0f;
    }
}
