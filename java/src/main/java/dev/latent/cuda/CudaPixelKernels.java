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

    /**
     * Column {@code pos[0] mod w} of {@code h} (n, c, 1, w floats) into {@code col} (n, c floats), exactly; the position
     * is read on the device (an int32 in {@code pos}), so a CUDA graph replays it for whatever pixel is current.
     */
    public static void pixelColumnAt(Cuda cu, long n, long c, long w, DeviceBuffer pos, DeviceBuffer h, DeviceBuffer col) {
        if (n < 1 || c < 1 || w < 1) throw new IllegalArgumentException("pixelColumnAt: n=" + n + ", c=" + c + ", w=" + w + " must be >= 1");
        CudaKernels.need(pos, 4, "pixelColumnAt", "pos");
        CudaKernels.need(h, 4 * n * c * w, "pixelColumnAt", "h");
        CudaKernels.need(col, 4 * n * c, "pixelColumnAt", "col");
        int threads = 256;
        Ltk.ltk_pixel_column_at(cu, CudaKernels.dim(Math.min(1024, (n * c + threads - 1) / threads)), CudaKernels.dim(threads), 0, n, c, w, pos, h, col);
    }

    /**
     * {@link #pixelDraw} at the pixel p = {@code pos[0]} read on the device (int32), which also writes
     * row[r w + p mod w] = v / denom (the current image row, (n, w) floats) and then sets pos[0] = p + 1: the step of a
     * CUDA graph replayed once per pixel. One block (the kernel's barrier orders the read of pos before its update). A
     * p outside [0, hw) draws nothing and leaves pos alone; the caller bounds the replays.
     */
    public static void pixelDrawAt(Cuda cu, long n, long levels, long hw, long w, DeviceBuffer pos, DeviceBuffer logits, DeviceBuffer u, float denom,
                                   DeviceBuffer img, DeviceBuffer row, DeviceBuffer codes) {
        if (n < 1 || levels < 1 || hw < 1 || w < 1 || hw % w != 0)
            throw new IllegalArgumentException("pixelDrawAt: n=" + n + ", levels=" + levels + ", hw=" + hw + ", w=" + w
                    + ": n, levels, hw, w must be >= 1 and w must divide hw");
        if (!(denom > 0) || !Float.isFinite(denom)) throw new IllegalArgumentException("pixelDrawAt: denom " + denom + " must be finite and > 0");
        CudaKernels.need(pos, 4, "pixelDrawAt", "pos");
        CudaKernels.need(logits, 4 * n * levels, "pixelDrawAt", "logits");
        CudaKernels.need(u, 8 * n * hw, "pixelDrawAt", "u");
        CudaKernels.need(img, 4 * n * hw, "pixelDrawAt", "img");
        CudaKernels.need(row, 4 * n * w, "pixelDrawAt", "row");
        CudaKernels.need(codes, 4 * n * hw, "pixelDrawAt", "codes");
        int threads = (int) Math.min(256, ((n + 31) / 32) * 32);
        Ltk.ltk_pixel_draw_at(cu, CudaKernels.dim(1), CudaKernels.dim(threads), 0, n, levels, hw, w, pos, logits, u, denom, img, row, codes);
    }

    /**
     * The taps x = j + lo .. j + lo + nt - 1 (j = {@code pos[0]} mod w, read on the device; 0 outside [0, w), the
     * convolution's padding) of {@code row} (n, cin, 1, w floats) into {@code out} (n, cin nt floats: [image][channel][tap]),
     * exactly: a 1 x k convolution's input at one position as GEMM rows (DevicePixelCnnSampler's position path).
     */
    public static void pixelTapsAt(Cuda cu, long n, long cin, long w, long lo, long nt, DeviceBuffer pos, DeviceBuffer row, DeviceBuffer out) {
        if (n < 1 || cin < 1 || w < 1 || nt < 1)
            throw new IllegalArgumentException("pixelTapsAt: n=" + n + ", cin=" + cin + ", w=" + w + ", nt=" + nt + " must be >= 1");
        CudaKernels.need(pos, 4, "pixelTapsAt", "pos");
        CudaKernels.need(row, 4 * n * cin * w, "pixelTapsAt", "row");
        CudaKernels.need(out, 4 * n * cin * nt, "pixelTapsAt", "out");
        int threads = 256;
        Ltk.ltk_pixel_taps_at(cu, CudaKernels.dim(Math.min(1024, (n * cin * nt + threads - 1) / threads)), CudaKernels.dim(threads), 0, n, cin, w,
                lo, nt, pos, row, out);
    }

    /** {@code col} (n, c floats) into column {@code pos[0]} mod w of {@code row} (n, c, 1, w floats), exactly: the inverse of {@link #pixelColumnAt}. */
    public static void pixelColumnPutAt(Cuda cu, long n, long c, long w, DeviceBuffer pos, DeviceBuffer col, DeviceBuffer row) {
        if (n < 1 || c < 1 || w < 1) throw new IllegalArgumentException("pixelColumnPutAt: n=" + n + ", c=" + c + ", w=" + w + " must be >= 1");
        CudaKernels.need(pos, 4, "pixelColumnPutAt", "pos");
        CudaKernels.need(col, 4 * n * c, "pixelColumnPutAt", "col");
        CudaKernels.need(row, 4 * n * c * w, "pixelColumnPutAt", "row");
        int threads = 256;
        Ltk.ltk_pixel_column_put_at(cu, CudaKernels.dim(Math.min(1024, (n * c + threads - 1) / threads)), CudaKernels.dim(threads), 0, n, c, w, pos, col, row);
    }
}
