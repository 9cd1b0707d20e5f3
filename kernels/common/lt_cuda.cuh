/*
 * lt_cuda.cuh — what every kernels/<op>/<op>.cu includes: the same source compiles with nvcc (the fatbin the
 * Java CUDA backend loads) and with g++ against native/cuda_emu (the emulation tests). Also the small shared
 * device helpers: warp / block reductions, and the inline PTX (mma.sync TF32) each with a portable twin.
 *
 * The compile-time switch: LT_PTX is 1 when nvcc compiles device code for sm_80 or newer and LT_NO_PTX is not
 * defined; otherwise every PTX helper takes its portable path (plain CUDA: shuffles and float math), which is
 * what the emulation runs and what a GPU also runs with -DLT_NO_PTX, so the two paths can be compared on a
 * device. Kernel names are extern "C" (ltk_<op>_<dir>) so cuModuleGetFunction finds them unmangled.
 */
#ifndef LT_CUDA_CUH
#define LT_CUDA_CUH

#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_bf16.h> /* __nv_bfloat16, __float2bfloat16_rn, __bfloat162float: header-only device code */
#define LT_KERNEL extern "C" __global__
/* Dynamic shared memory: `extern __shared__` on a GPU; a per-block heap buffer in the emulation. */
#define LT_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(LT_NO_PTX)
#define LT_PTX 1
#else
#define LT_PTX 0
#endif
#else
#include "cuda_emu.h"
#define LT_KERNEL extern "C" __global__
#define LT_DYNAMIC_SHARED(T, name) T *name = static_cast<T *>(::cuda_emu::dynamic_shared())
#define LT_PTX 0
#endif

#define LT_FULL_MASK 0xffffffffu

/* Sum / max over the 32 lanes of a warp (every lane gets the result). Butterfly order: the same bits on
 * every lane, and the same on a GPU as in the emulation. */
__device__ __forceinline__ float lt_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(LT_FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ float lt_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(LT_FULL_MASK, v, o));
    return v;
}

/* Sum / max over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets the
 * result. `red` is a __shared__ float[32] owned by the caller; the trailing barrier lets the caller reuse it. */
__device__ __forceinline__ float lt_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = lt_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    t = lt_warp_sum(t);
    __syncthreads();
    return t;
}
__device__ __forceinline__ float lt_block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = lt_warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : -INFINITY;
    t = lt_warp_max(t);
    __syncthreads();
    return t;
}

/* Round a float to TF32 (10-bit mantissa), round-to-nearest with ties away from zero, as cvt.rna.tf32.f32.
 * Inf and NaN pass through. */
__device__ __forceinline__ float lt_to_tf32(float x) {
#if LT_PTX
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
#else
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
#endif
}

/* Round a float to bfloat16 (8 significant bits), to nearest even, kept as a float (the value a bf16 operand
 * has): the same bits as widening __float2bfloat16_rn's result. NaN stays NaN. */
__device__ __forceinline__ float lt_round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

/* D = A * B + C for one m16n8k8 tile, TF32 inputs (already rounded with lt_to_tf32), fp32 accumulate, as
 * PTX mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32. Warp-collective: all 32 lanes call it together.
 * Fragments, with g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix fragments for mma.m16n8k8", .tf32):
 *   a[0] = A[g][t]   a[1] = A[g+8][t]   a[2] = A[g][t+4]   a[3] = A[g+8][t+4]
 *   b[0] = B[t][g]   b[1] = B[t+4][g]
 *   c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
 * The twin gathers each lane's A row and B columns with shuffles and sums k = 0..7 in order with fmaf;
 * the tensor core's order within the 8 products is unspecified, so the two agree to fp32 rounding. */
__device__ __forceinline__ void lt_mma_tf32_16x8x8(float c[4], const float a[4], const float b[2]) {
#if LT_PTX
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
                   "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#else
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const int hi = k >> 2, src = k & 3; /* A[r][k] sits in lane r*4 + k%4, register (k < 4 ? 0 : 2) + (r >= 8) */
        const float a_lo = __shfl_sync(LT_FULL_MASK, a[hi * 2], g * 4 + src);     /* A[g][k] */
        const float a_hi = __shfl_sync(LT_FULL_MASK, a[hi * 2 + 1], g * 4 + src); /* A[g+8][k] */
        const float b0 = __shfl_sync(LT_FULL_MASK, b[hi], (2 * t) * 4 + src);     /* B[k][2t] */
        const float b1 = __shfl_sync(LT_FULL_MASK, b[hi], (2 * t + 1) * 4 + src); /* B[k][2t+1] */
        c[0] = fmaf(a_lo, b0, c[0]);
        c[1] = fmaf(a_lo, b1, c[1]);
        c[2] = fmaf(a_hi, b0, c[2]);
        c[3] = fmaf(a_hi, b1, c[3]);
    }
#endif
}

/* ---- bf16 tensor cores (issue 18: our own kernels where cuBLAS / cuDNN are absent) ----
 * A bf16 pair in one 32-bit word, the element with the lower index in the low 16 bits (the mma operand registers'
 * layout). Widening is exact (a bf16 is the high half of a float). */
__device__ __forceinline__ float lt_bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float lt_bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
/* Two floats rounded to bf16 (to nearest even, as __float2bfloat16_rn) and packed: lo in the low half. */
__device__ __forceinline__ uint32_t lt_pack_bf16x2(float lo, float hi) {
#ifdef __CUDACC__
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
#else
    return (uint32_t)__float2bfloat16_rn(lo).__x | (uint32_t)__float2bfloat16_rn(hi).__x << 16;
#endif
}

/* D = A * B + C for one m16n8k16 tile, bf16 inputs, fp32 accumulate, as PTX
 * mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32. Warp-collective: all 32 lanes call it together.
 * Fragments, with g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix fragments for mma.m16n8k16", .bf16), each
 * register a bf16 pair (lt_bf16_lo / lt_bf16_hi: the lower k in the low half):
 *   a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]    a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
 *   b[0] = B[2t, 2t+1][g]    b[1] = B[2t+8, 2t+9][g]
 *   c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]   (as m16n8k8)
 * The twin gathers each lane's A rows and B columns with shuffles (one shuffle brings a k pair) and sums
 * k = 0..15 in order with fmaf: a product of two bf16 values is exact in fp32, so the twin is an fp32 fmaf chain;
 * the tensor core's order within the 16 products is unspecified, so the two agree to fp32 rounding. */
__device__ __forceinline__ void lt_mma_bf16_16x8x16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#if LT_PTX
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int kp = 0; kp < 8; kp++) { /* k = 2 kp, 2 kp + 1: in lane r*4 + kp%4, register (kp < 4 ? 0 : 2) + (r >= 8) */
        const int hi = kp >> 2, src = kp & 3;
        const uint32_t alo = __shfl_sync(LT_FULL_MASK, a[hi * 2], g * 4 + src);     /* A[g][2kp, 2kp+1] */
        const uint32_t ahi = __shfl_sync(LT_FULL_MASK, a[hi * 2 + 1], g * 4 + src); /* A[g+8][..] */
        const uint32_t b0 = __shfl_sync(LT_FULL_MASK, b[hi], (2 * t) * 4 + src);     /* B[..][2t] */
        const uint32_t b1 = __shfl_sync(LT_FULL_MASK, b[hi], (2 * t + 1) * 4 + src); /* B[..][2t+1] */
        c[0] = fmaf(lt_bf16_lo(alo), lt_bf16_lo(b0), c[0]);
        c[1] = fmaf(lt_bf16_lo(alo), lt_bf16_lo(b1), c[1]);
        c[2] = fmaf(lt_bf16_lo(ahi), lt_bf16_lo(b0), c[2]);
        c[3] = fmaf(lt_bf16_lo(ahi), lt_bf16_lo(b1), c[3]);
        c[0] = fmaf(lt_bf16_hi(alo), lt_bf16_hi(b0), c[0]);
        c[1] = fmaf(lt_bf16_hi(alo), lt_bf16_hi(b1), c[1]);
        c[2] = fmaf(lt_bf16_hi(ahi), lt_bf16_hi(b0), c[2]);
        c[3] = fmaf(lt_bf16_hi(ahi), lt_bf16_hi(b1), c[3]);
    }
#endif
}

#endif /* LT_CUDA_CUH */
