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

LT_KERNEL void ltk_pixel_draw(int64_t n, int64_t levels, int64_t hw, int64_t p, const float *__restrict__ logits,
                              const double *__restrict__ u, float denom, float *__restrict__ img, int32_t *__restrict__ codes) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        const float *x = logits + r * levels;
        float mx = -INFINITY;
        for (int64_t k = 0; k < levels; k++) {
            const float v = x[k];
            mx = (v != v || mx != mx) ? NAN : (v > mx ? v : mx);   /* Java's Math.max: NaN wins */
        }
        double sum = 0.0;
        for (int64_t k = 0; k < levels; k++) sum += exp((double)(x[k] - mx));
        const double target = u[r * hw + p] * sum;
        double acc = 0.0;
        int64_t v = levels - 1;
        for (int64_t k = 0; k < levels; k++) {
            acc += exp((double)(x[k] - mx));
            if (acc > target) { v = k; break; }
        }
        img[r * hw + p] = (float)v / denom;
        codes[r * hw + p] = (int32_t)v;
    }
}
