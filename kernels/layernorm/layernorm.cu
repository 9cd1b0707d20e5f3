/* LayerNorm forward and backward on the GPU (the CUDA siblings of layernorm_ref.c; the math is in its header).
 *
 *   ltk_layernorm_fwd(rows, c, eps, x, w, b, y, mean, rstd)     one warp per row, 8 rows per 256-thread block
 *       (ltk_layernorm_fwd_bf16: the same, plus y16 = bf16(y) for a bf16 GEMM that reads y; residual alike)
 *       two passes over the row in float (mean, then sum of squared deviations: no E[x^2] - E[x]^2 cancellation);
 *       the CPU reference sums in double, so the test allows float summation error (~ sqrt(C) u relative).
 *   ltk_layernorm_bwd_dx(rows, c, x, w, mean, rstd, dy, dx)     one warp per row; dx may equal dy
 *   ltk_layernorm_bwd_dwdb_part(rows, c, x, mean, rstd, dy, part)  grid (ceil(c / 256), ceil(rows / LN_CHUNK)):
 *       thread j of chunk k sums dy xhat and dy over the chunk's rows in order into part[k][0][j], part[k][1][j]
 *   ltk_layernorm_bwd_dwdb_sum(chunks, c, part, dw, db)            dw[j] += sum_k part[k][0][j] in order (db alike)
 * dw, db accumulate and the reduction order is fixed by LN_CHUNK alone: the same bits on every run, no atomics.
 * Shapes: x, y, dy, dx (rows, C); w, b, dw, db (C); mean, rstd (rows); part (chunks, 2, C) scratch. */
#include "lt_cuda.cuh"

#define LN_CHUNK 256 /* rows per partial sum of dw / db (the Java backend sizes `part` with it) */

/* The forward of one row per warp; y16 not null (ltk_layernorm_fwd_bf16): each y also stored as bf16 (to nearest even,
 * __float2bfloat16_rn, ltk_f32_to_bf16's rounding) for a bf16 GEMM that reads y as its A operand. ltk_layernorm_fwd
 * passes nullptr, so its code and bits are what they were before the bf16 variant. */
static __device__ __forceinline__ void ln_fwd(int64_t rows, int64_t c, float eps, const float *__restrict__ x,
                                              const float *__restrict__ w, const float *__restrict__ b,
                                              float *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd,
                                              __nv_bfloat16 *__restrict__ y16) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; /* whole warps leave together: no barrier below, only warp shuffles */
    const float *xr = x + row * c;
    float s = 0.0f;
    for (int64_t j = lane; j < c; j += 32) s += xr[j];
    const float m = lt_warp_sum(s) / (float)c;
    float v = 0.0f;
    for (int64_t j = lane; j < c; j += 32) {
        const float d = xr[j] - m;
        v += d * d;
    }
    const float r = 1.0f / sqrtf(lt_warp_sum(v) / (float)c + eps);
    float *yr = y + row * c;
    for (int64_t j = lane; j < c; j += 32) {
        const float o = (xr[j] - m) * r * w[j] + b[j];
        yr[j] = o;
        if (y16 != nullptr) y16[row * c + j] = __float2bfloat16_rn(o);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

/*@ launch=layerNorm grid=ceil(rows,8) block=256 check=rows>=0,c>=1 x[rows*c] w[c] b[c] y[rows*c] mean[rows] rstd[rows] */
LT_KERNEL void ltk_layernorm_fwd(int64_t rows, int64_t c, float eps, const float *__restrict__ x,
                                 const float *__restrict__ w, const float *__restrict__ b, float *__restrict__ y,
                                 float *__restrict__ mean, float *__restrict__ rstd) {
    ln_fwd(rows, c, eps, x, w, b, y, mean, rstd, nullptr);
}

/* ltk_layernorm_fwd that also writes y16 = bf16(y) (rows, C; 2 bytes each): GPT's LayerNorms at --precision bf16 on
 * CUDA, whose output is the A operand of the next linear's bf16 GEMM (docs/cuda.md "bf16 GEMM inputs written by their
 * producers"). y, mean, rstd: ltk_layernorm_fwd's bits. */
/*@ launch=layerNormBf16 grid=ceil(rows,8) block=256 check=rows>=0,c>=1 x[rows*c] w[c] b[c] y[rows*c] mean[rows] rstd[rows] y16[rows*c] */
LT_KERNEL void ltk_layernorm_fwd_bf16(int64_t rows, int64_t c, float eps, const float *__restrict__ x,
                                      const float *__restrict__ w, const float *__restrict__ b, float *__restrict__ y,
                                      float *__restrict__ mean, float *__restrict__ rstd, __nv_bfloat16 *__restrict__ y16) {
    ln_fwd(rows, c, eps, x, w, b, y, mean, rstd, y16);
}

LT_KERNEL void ltk_layernorm_bwd_dx(int64_t rows, int64_t c, const float *__restrict__ x, const float *__restrict__ w,
                                    const float *__restrict__ mean, const float *__restrict__ rstd, const float *dy,
                                    float *dx) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *xr = x + row * c, *dyr = dy + row * c;
    float *dxr = dx + row * c;
    const float m = mean[row], r = rstd[row];
    float sa = 0.0f, sb = 0.0f;
    for (int64_t j = lane; j < c; j += 32) {
        const float dn = dyr[j] * w[j], xh = (xr[j] - m) * r;
        sa += dn;
        sb += dn * xh;
    }
    const float a = lt_warp_sum(sa) / (float)c, bb = lt_warp_sum(sb) / (float)c;
    for (int64_t j = lane; j < c; j += 32) {
        const float xh = (xr[j] - m) * r;
        dxr[j] = r * (dyr[j] * w[j] - a - xh * bb);
    }
}

LT_KERNEL void ltk_layernorm_bwd_dwdb_part(int64_t rows, int64_t c, const float *__restrict__ x,
                                           const float *__restrict__ mean, const float *__restrict__ rstd,
                                           const float *__restrict__ dy, float *__restrict__ part) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
    if (j >= c) return;
    const int64_t i0 = k * LN_CHUNK, i1 = i0 + LN_CHUNK < rows ? i0 + LN_CHUNK : rows;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t i = i0; i < i1; i++) {
        const float g = dy[i * c + j];
        sw += g * ((x[i * c + j] - mean[i]) * rstd[i]);
        sb += g;
    }
    part[(k * 2) * c + j] = sw;
    part[(k * 2 + 1) * c + j] = sb;
}

LT_KERNEL void ltk_layernorm_bwd_dwdb_sum(int64_t chunks, int64_t c, const float *__restrict__ part,
                                          float *__restrict__ dw, float *__restrict__ db) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t k = 0; k < chunks; k++) {
        sw += part[(k * 2) * c + j];
        sb += part[(k * 2 + 1) * c + j];
    }
    dw[j] += sw;
    db[j] += sb;
}

/* Residual add fused with LayerNorm (lt_layernorm_residual_fwd / _bwd's CUDA siblings):
 *   ltk_layernorm_residual_fwd(rows, c, eps, x, a, w, b, s, y, mean, rstd)   s = x + a, then ltk_layernorm_fwd's
 *       arithmetic on s (each lane re-reads its own s elements): the bits of ltk_axpby's add then ltk_layernorm_fwd.
 *       s may equal x or a (each element read then written by one thread), so those three are not __restrict__.
 *   ltk_layernorm_residual_bwd_dx(rows, c, s, w, mean, rstd, dy, ds, dx)   dx = ds + ltk_layernorm_bwd_dx's value,
 *       the add rounded on its own (__fadd_rn: never contracted into the product before it), so the bits of
 *       ltk_layernorm_bwd_dx then ltk_axpby's add. dw / db: ltk_layernorm_bwd_dwdb_part / _sum on s unchanged. */
/* The residual forward of one row per warp; y16 as in ln_fwd (nullptr from ltk_layernorm_residual_fwd). */
static __device__ __forceinline__ void ln_residual_fwd(int64_t rows, int64_t c, float eps, const float *x, const float *a,
                                                       const float *__restrict__ w, const float *__restrict__ b, float *s,
                                                       float *__restrict__ y, float *__restrict__ mean,
                                                       float *__restrict__ rstd, __nv_bfloat16 *__restrict__ y16) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return; /* whole warps leave together: no barrier below, only warp shuffles */
    const float *xr = x + row * c, *ar = a + row * c;
    float *sr = s + row * c;
    float t = 0.0f;
    for (int64_t j = lane; j < c; j += 32) {
        const float v = __fadd_rn(xr[j], ar[j]);
        sr[j] = v;
        t += v;
    }
    const float m = lt_warp_sum(t) / (float)c;
    float v = 0.0f;
    for (int64_t j = lane; j < c; j += 32) {
        const float d = sr[j] - m;
        v += d * d;
    }
    const float r = 1.0f / sqrtf(lt_warp_sum(v) / (float)c + eps);
    float *yr = y + row * c;
    for (int64_t j = lane; j < c; j += 32) {
        const float o = (sr[j] - m) * r * w[j] + b[j];
        yr[j] = o;
        if (y16 != nullptr) y16[row * c + j] = __float2bfloat16_rn(o);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

/*@ launch=layerNormResidual grid=ceil(rows,8) block=256 check=rows>=0,c>=1 x[rows*c] a[rows*c] w[c] b[c] s[rows*c] y[rows*c] mean[rows] rstd[rows] */
LT_KERNEL void ltk_layernorm_residual_fwd(int64_t rows, int64_t c, float eps, const float *x, const float *a,
                                          const float *__restrict__ w, const float *__restrict__ b, float *s,
                                          float *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd) {
    ln_residual_fwd(rows, c, eps, x, a, w, b, s, y, mean, rstd, nullptr);
}

/* ltk_layernorm_residual_fwd that also writes y16 = bf16(y) (rows, C), as ltk_layernorm_fwd_bf16. */
/*@ launch=layerNormResidualBf16 grid=ceil(rows,8) block=256 check=rows>=0,c>=1 x[rows*c] a[rows*c] w[c] b[c] s[rows*c] y[rows*c] mean[rows] rstd[rows] y16[rows*c] */
LT_KERNEL void ltk_layernorm_residual_fwd_bf16(int64_t rows, int64_t c, float eps, const float *x, const float *a,
                                               const float *__restrict__ w, const float *__restrict__ b, float *s,
                                               float *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd,
                                               __nv_bfloat16 *__restrict__ y16) {
    ln_residual_fwd(rows, c, eps, x, a, w, b, s, y, mean, rstd, y16);
}

LT_KERNEL void ltk_layernorm_residual_bwd_dx(int64_t rows, int64_t c, const float *__restrict__ s,
                                             const float *__restrict__ w, const float *__restrict__ mean,
                                             const float *__restrict__ rstd, const float *dy,
                                             const float *__restrict__ ds, float *dx) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *sr = s + row * c, *dyr = dy + row * c, *dsr = ds + row * c;
    float *dxr = dx + row * c;
    const float m = mean[row], r = rstd[row];
    float sa = 0.0f, sb = 0.0f;
    for (int64_t j = lane; j < c; j += 32) {
        const float dn = dyr[j] * w[j], xh = (sr[j] - m) * r;
        sa += dn;
        sb += dn * xh;
    }
    const float a = lt_warp_sum(sa) / (float)c, bb = lt_warp_sum(sb) / (float)c;
    for (int64_t j = lane; j < c; j += 32) {
        const float xh = (sr[j] - m) * r;
        const float g = r * (dyr[j] * w[j] - a - xh * bb);
        dxr[j] = __fadd_rn(dsr[j], g);
    }
}
