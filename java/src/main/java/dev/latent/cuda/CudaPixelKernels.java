package dev.latent.cuda;

/**
 * Typed launch of kernels/pixel_draw/pixel_draw.cu: PixelCNN's per-pixel categorical draw on the device
 * (DevicePixelCnnSampler). The launcher checks every buffer's extent before the launch (IllegalArgumentException
 * naming the operand): the kernel trusts them.
 */
public final class CudaPixelKernels {
    private CudaPixelKernels() {}

    /**
     * For every image r &lt; n: v = the inverse-CDF draw from softmax(logits[r]) (n x levels floats) at the uniform
     * u[r hw + p] (doubles), then img[r hw + p] = v / denom (floats) and codes[r hw + p] = v (int32). The rule of
     * PixelCnnSampler.draw (see the kernel's header).
     */
    public static void pixelDraw(Cuda cu, long n, long levels, long hw, long p, DeviceBuffer logits, DeviceBuffer u, float denom,
                                 DeviceBuffer img, DeviceBuffer codes) {
        if (n < 1 || levels < 1 || hw < 1 || p < 0 || p >= hw)
            throw new IllegalArgumentException("pixelDraw: n=" + n + ", levels=" + levels + ", hw=" + hw + ", p=" + p
                    + ": n, levels, hw must be >= 1 and p in [0, hw)");
        if (!(denom > 0) || !Float.isFinite(denom)) throw new IllegalArgumentException("pixelDraw: denom " + denom + " must be finite and > 0");
        CudaKernels.need(logits, 4 * n * levels, "pixelDraw", "logits");
        CudaKernels.need(u, 8 * n * hw, "pixelDraw", "u");
        CudaKernels.need(img, 4 * n * hw, "pixelDraw", "img");
        CudaKernels.need(codes, 4 * n * hw, "pixelDraw", "codes");
        int threads = 64;
        Ltk.ltk_pixel_draw(cu, CudaKernels.dim((n + threads - 1) / threads), CudaKernels.dim(threads), 0, n, levels, hw, p, logits, u, denom, img, codes);
    }
}
