/* Operand rounding for reduced-precision math on the GPU (--precision tf32 | bf16 on CUDA, docs/cuda.md):
 *
 *   ltk_round_operand — y[i] = x[i] rounded to TF32 (mode CAST_TF32: 10-bit mantissa, to nearest with ties away from
 *                       zero, cvt.rna.tf32.f32, the rounding ltk_gemm_tf32 applies) or to bfloat16 (mode CAST_BF16:
 *                       8 significant bits, to nearest even, __float2bfloat16_rn), kept as float. y may be x. Used
 *                       where an op has no reduced-precision kernel of its own (convolution, attention): the fp32
 *                       kernel then runs on the rounded operands, which is the same arithmetic as a bf16 / TF32
 *                       tensor-core op with fp32 accumulation (a product of two bf16 or TF32 values is exact in fp32).
 *   ltk_f32_to_bf16   — y[i] = bf16(x[i]) (to nearest even), stored as 2-byte bf16: the operands of cublasGemmEx with
 *                       CUDA_R_16BF inputs and of ltk_gemm_bf16.
 *   ltk_bf16_to_f32   — y[i] = float(x[i]) for 2-byte bf16 x: exact (the bf16 bits become the float's high half), so a
 *                       value through ltk_f32_to_bf16 and back is the bf16 rounding of the original. Brings cuDNN SDPA's
 *                       bf16 O, dQ, dK, dV back to the fp32 tensors of the model (CudaBackend's bf16 attention).
 * All three are grid-stride loops over n elements (any grid); inf stays inf, NaN stays NaN. cast_cuda_test.cc checks every
 * rounding case (ties to even / away, the carry into the exponent, overflow to inf, subnormals, NaN) against the C
 * definition and against the CPU's bf16 conversion. */
#include "lt_cuda.cuh"

#define CAST_TF32 1
#define CAST_BF16 2

LT_KERNEL void ltk_round_operand(const float *__restrict__ x, float *y, int64_t n, int32_t mode) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        y[i] = mode == CAST_TF32 ? lt_to_tf32(x[i]) : mode == CAST_BF16 ? lt_round_bf16(x[i]) : x[i];
}

LT_KERNEL void ltk_f32_to_bf16(const float *__restrict__ x, __nv_bfloat16 *__restrict__ y, int64_t n) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) y[i] = __float2bfloat16_rn(x[i]);
}

LT_KERNEL void ltk_bf16_to_f32(const __nv_bfloat16 *__restrict__ x, float *__restrict__ y, int64_t n) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) y[i] = __bfloat162float(x[i]);
}

/* ltk_bf16_to_f32_acc — y[i] = float(x[i]) (accumulate 0) or y[i] += float(x[i]) (accumulate 1), x 2-byte bf16
 * (widened exactly). The way back from a bf16 result of cuDNN's PSEUDO_BFLOAT16 convolutions (x, w, y bf16,
 * compute fp32: docs/cuda.md "Mixed precision") into the fp32 tensors; accumulate adds a weight gradient into
 * the fp32 one in fp32, so nothing accumulates in bf16. Grid-stride over n. */
LT_KERNEL void ltk_bf16_to_f32_acc(const __nv_bfloat16 *__restrict__ x, float *__restrict__ y, int64_t n, int32_t accumulate) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const float v = __bfloat162float(x[i]);
        y[i] = accumulate ? y[i] + v : v;
    }
}
