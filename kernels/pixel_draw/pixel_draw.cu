/* The per-pixel categorical draw of PixelCNN sampling on the GPU (DevicePixelCnnSampler): after the network's logits
 * for pixel p of every image in the batch, draw each image's value from softmax(logits) with a given uniform and
 * write it into the image on the device, so the next pixel's forward pass reads it there and nothing comes back to
 * the host per pixel.
 *
 *   ltk_pixel_draw(n, levels, hw, p, logits, u, denom, img, codes)   one thread per image (grid-stride over n, any
 *       grid): row r of logits (n x levels floats) and the uniform u[r hw + p] (double, in [0, 1)) give
 *           v = the first k with  sum_{i <= k} exp(x_i - max) > u * sum_i exp(x_i - max),  else levels - 1
 *       (PixelCnnSampler.draw's inverse CDF: max in float, x_i - max in float, exp and both sums in double, in index
 *       order; a NaN or +inf logit makes every comparison false and gives levels - 1, as there);
 *       img[r hw + p] = (float)v / denom  (the image plane, (n, hw) floats: the next forward's input),
 *       codes[r hw + p] = v  (int32: the bytes the host reads once at the end).
 * The same uniforms and the same rule as the CPU sampler: a draw differs from the CPU's only where the two devices'
 * logits straddle a CDF boundary at u (float rounding of the forward pass). Sequential per image on purpose (the
 * double sums in the CPU's order); n threads of 2 levels double exps each are a few microseconds beside the forward.
 * Checked by pixel_draw_cuda_test.cc (emulation) against a transcription of PixelCnnSampler.draw. */
#include "lt_cuda.cuh"

/* PixelCnnSampler.draw's inverse CDF for one row of logits at the uniform u (see above). */
static __device__ __forceinline__ int64_t pixel_draw_one(const float *__restrict__ x, int64_t levels, double u) {
    float mx = -INFINITY;
    for (int64_t k = 0; k < levels; k++) {
        const float v = x[k];
        mx = (v != v || mx != mx) ? NAN : (v > mx ? v : mx);   /* Java's Math.max: NaN wins */
    }
    double sum = 0.0;
    for (int64_t k = 0; k < levels; k++) sum += exp((double)(x[k] - mx));
    const double target = u * sum;
    double acc = 0.0;
    for (int64_t k = 0; k < levels; k++) {
        acc += exp((double)(x[k] - mx));
        if (acc > target) return k;
    }
    return levels - 1;
}

LT_KERNEL void ltk_pixel_draw(int64_t n, int64_t levels, int64_t hw, int64_t p, const float *__restrict__ logits,
                              const double *__restrict__ u, float denom, float *__restrict__ img, int32_t *__restrict__ codes) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        const int64_t v = pixel_draw_one(logits + r * levels, levels, u[r * hw + p]);
        img[r * hw + p] = (float)v / denom;
        codes[r * hw + p] = (int32_t)v;
    }
}

/* The pixel position read from device memory, for a CUDA graph of the pixel step (DevicePixelCnnSampler's captured
 * mode: one graph replayed for every pixel, so nothing in it may name the pixel by value).
 *
 *   ltk_pixel_column_at(n, c, w, pos, h, col)   grid-stride over n c: col[r c + k] = h[(r c + k) w + j] with
 *       j = pos[0] mod w: column j of the horizontal stack's output h (n, c, 1, w) as (n, c) rows, exact (a copy).
 *   ltk_pixel_draw_at(n, levels, hw, w, pos, logits, u, denom, img, row, codes)   ltk_pixel_draw at p = pos[0], which
 *       also writes row[r w + p mod w] = v / denom (the current image row, the horizontal stacks' next input), then
 *       advances pos[0] to p + 1 (the next replay's pixel). ONE block (the launcher's grid is 1; other blocks do
 *       nothing): every thread reads p before the barrier, thread 0 writes p + 1 after it. p outside [0, hw) draws
 *       nothing and leaves pos as it is (the launcher bounds the pixels; native code never traps). */
LT_KERNEL void ltk_pixel_column_at(int64_t n, int64_t c, int64_t w, const int32_t *__restrict__ pos, const float *__restrict__ h,
                                   float *__restrict__ col) {
    const int64_t j = (int64_t)pos[0] % w;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * c; e += (int64_t)gridDim.x * blockDim.x)
        col[e] = h[e * w + j];
}

LT_KERNEL void ltk_pixel_draw_at(int64_t n, int64_t levels, int64_t hw, int64_t w, int32_t *pos, const float *__restrict__ logits,
                                 const double *__restrict__ u, float denom, float *__restrict__ img, float *__restrict__ row,
                                 int32_t *__restrict__ codes) {
    if (blockIdx.x != 0) return;
    const int64_t p = (int64_t)pos[0];
    const bool ok = p >= 0 && p < hw;
    if (ok)
        for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
            const int64_t v = pixel_draw_one(logits + r * levels, levels, u[r * hw + p]);
            img[r * hw + p] = (float)v / denom;
            row[r * w + p % w] = (float)v / denom;
            codes[r * hw + p] = (int32_t)v;
        }
    __syncthreads();   /* every thread has read pos[0] */
    if (ok && threadIdx.x == 0) pos[0] = (int32_t)(p + 1);
}

/* The horizontal stacks at one position (DevicePixelCnnSampler's position path): per pixel, block l's 1 x k masked conv
 * at (i, j) is a GEMM of the n images' gathered taps, and block l's output at j goes back into the row that block l + 1
 * reads. The position j = pos[0] mod w is read from device memory (a CUDA graph replays one pixel step for every pixel).
 *
 *   ltk_pixel_taps_at(n, cin, w, lo, nt, pos, row, out)   grid-stride over n cin nt:
 *       out[(r cin + ci) nt + t] = row[(r cin + ci) w + x] with x = j + lo + t, 0 where x is outside [0, w) (the
 *       convolution's zero padding): the taps x = j + lo .. j + lo + nt - 1 of row (n, cin, 1, w) as (n, cin nt) rows,
 *       in the order of a (2C, cin, 1, k) weight's columns lo + k/2 .. (so the conv is out @ weight[:, :, 0, taps]^T).
 *       Exact (copies and zeros).
 *   ltk_pixel_column_put_at(n, c, w, pos, col, row)   grid-stride over n c: row[(r c + k) w + j] = col[r c + k], the
 *       inverse of ltk_pixel_column_at (every other element of row untouched). */
LT_KERNEL void ltk_pixel_taps_at(int64_t n, int64_t cin, int64_t w, int64_t lo, int64_t nt, const int32_t *__restrict__ pos,
                                 const float *__restrict__ row, float *__restrict__ out) {
    const int64_t j = (int64_t)pos[0] % w;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * cin * nt; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t x = j + lo + e % nt;
        out[e] = x >= 0 && x < w ? row[(e / nt) * w + x] : 0.0f;
    }
}

LT_KERNEL void ltk_pixel_column_put_at(int64_t n, int64_t c, int64_t w, const int32_t *__restrict__ pos, const float *__restrict__ col,
                                       float *__restrict__ row) {
    const int64_t j = (int64_t)pos[0] % w;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * c; e += (int64_t)gridDim.x * blockDim.x)
        row[e * w + j] = col[e];
}
