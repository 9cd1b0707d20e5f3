/* Elementwise and row-broadcast kernels on the GPU (the CUDA siblings of elementwise_ref.c).
 *
 *   ltk_axpby(n, a, x, b, y)          y = a x + b y;  b == 0 makes y write-only (NaN in y must not leak)
 *   ltk_mul(n, x, z, y)               y = x * z
 *   ltk_add_rows(n, c, period, x, rows, y)   y[i, :] = x[i, :] + rows[i % period, :]   x, y (N, C); rows (period, C)
 *   ltk_sum_rows(n, c, period, x, out)       out[p, :] += sum over i = p, p + period, ... of x[i, :], in row order
 *   ltk_copy_strided(d, src, dst)            dst[idx . dst_stride] = src[idx . src_stride] over every index of
 *       d.shape (lt_copy_desc by value, rank <= 6): permutes and contiguous copies of views. One thread per element
 *       in dst's row-major index order; the rank loop is unrolled over LT_MAX_RANK with constant indices (runtime
 *       indexing into a by-value struct would copy it to local memory). ltk_copy_strided_bf16(d, src, dst, dst16):
 *       the same, plus dst16 = bf16(dst) (to nearest even) at dst's offsets, for a bf16 GEMM that reads dst.
 *   ltk_f64_to_f32(n, x, y)   y = (float) x (round to nearest)   |  ltk_f32_to_f64(n, x, y)   y = (double) x (exact)
 *       (device-side hand-over of double sums, e.g. the coupling's per-image log-determinants, to float tensors)
 * Launch: 256 threads, grid-stride loops, any grid (the Java backend uses min(ceil(n / 256), 4 * SMs * 8) blocks).
 * sum_rows gives one thread per output element and walks its rows in order: deterministic, no atomics, and only
 * period * C threads of parallelism (enough for bias gradients of C >= 768; a split into row chunks is the
 * obvious next step). Memory-bound: one load per operand and one store, coalesced.
 * Checked by elementwise_cuda_test.cc (emulation) against elementwise_ref.c: same float operations, so exact except
 * where nvcc contracts a*x + b*y into one fma (one rounding of difference, the CPU test's tolerance). */
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}

/*@ launch=axpby grid=stride(n) block=256 */
LT_KERNEL void ltk_axpby(int64_t n, float a, const float *__restrict__ x, float b, float *__restrict__ y) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = b == 0.0f ? a * x[i] : a * x[i] + b * y[i];
}

/* Not __restrict__: y may alias x or z. */
/*@ launch=mul grid=stride(n) block=256 */
LT_KERNEL void ltk_mul(int64_t n, const float *x, const float *z, float *y) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = x[i] * z[i];
}

/* y may alias x. */
/*@ launch=addRows grid=stride(n*c) block=128 check=n>=0,c>=0,period>=1 x[n*c] rows[period*c] y[n*c] */
LT_KERNEL void ltk_add_rows(int64_t n, int64_t c, int64_t period, const float *x, const float *__restrict__ rows,
                            float *y) {
    const int64_t total = n * c, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t i = e / c, j = e - i * c;
        y[e] = x[e] + rows[(i % period) * c + j];
    }
}

/*@ launch=sumRows grid=stride(period*c) block=64 check=n>=0,c>=0,period>=1 x[n*c] out[period*c] */
LT_KERNEL void ltk_sum_rows(int64_t n, int64_t c, int64_t period, const float *__restrict__ x, float *__restrict__ out) {
    const int64_t total = period * c, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t p = e / c, j = e - p * c;
        float s = out[e];
        for (int64_t i = p; i < n; i += period) s += x[i * c + j];
        out[e] = s;
    }
}

/* The strided copy's loop; dst16 not null (ltk_copy_strided_bf16): each element also stored as bf16 at dst16[its dst
 * offset] (to nearest even, ltk_f32_to_bf16's rounding). ltk_copy_strided passes nullptr: its code is what it was. */
static __device__ __forceinline__ void copy_strided(const lt_copy_desc &d, const float *__restrict__ src, float *__restrict__ dst,
                                                    __nv_bfloat16 *__restrict__ dst16) {
    int64_t total = 1;
#pragma unroll
    for (int k = 0; k < LT_MAX_RANK; k++)
        if (k < d.rank) total *= d.shape[k];
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        int64_t r = e, so = 0, dof = 0;
#pragma unroll
        for (int k = LT_MAX_RANK - 1; k >= 0; k--)
            if (k < d.rank) {
                const int64_t q = r / d.shape[k], i = r - q * d.shape[k];
                r = q;
                so += i * d.src_stride[k];
                dof += i * d.dst_stride[k];
            }
        const float v = src[so];
        dst[dof] = v;
        if (dst16 != nullptr) dst16[dof] = __float2bfloat16_rn(v);
    }
}

LT_KERNEL void ltk_copy_strided(lt_copy_desc d, const float *__restrict__ src, float *__restrict__ dst) {
    copy_strided(d, src, dst, nullptr);
}

/* ltk_copy_strided that also writes dst16 = bf16(dst) at dst's offsets (GPT's attention output permuted for c_proj at
 * --precision bf16: the projection's bf16 A operand). dst16 holds as many elements as dst spans. */
LT_KERNEL void ltk_copy_strided_bf16(lt_copy_desc d, const float *__restrict__ src, float *__restrict__ dst,
                                     __nv_bfloat16 *__restrict__ dst16) {
    copy_strided(d, src, dst, dst16);
}

LT_KERNEL void ltk_f64_to_f32(int64_t n, const double *__restrict__ x, float *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) y[i] = (float)x[i];
}

LT_KERNEL void ltk_f32_to_f64(int64_t n, const float *__restrict__ x, double *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) y[i] = (double)x[i];
}
