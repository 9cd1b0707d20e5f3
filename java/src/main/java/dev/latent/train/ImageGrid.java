package dev.latent.train;

import dev.latent.io.AtomicFiles;
import dev.latent.tensor.Tensor;

import dev.latent.io.Png;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/** Grayscale image grids as PNG: sample sheets, reconstructions, interpolations. */
public final class ImageGrid {
    private ImageGrid() {}

    /** Maps a pixel value in [lo, hi] to 0..255 (rounded, clamped). */
    public static int toByte(float v, float lo, float hi) {
        double u = (v - lo) / (double) (hi - lo) * 255.0;
        return (int) Math.max(0, Math.min(255, Math.round(u)));
    }

    /**
     * Writes the first rows x cols images of {@code images} (B, 1, H, W) (or (B, H, W)) as one PNG with a
     * 2-pixel border, values in [lo, hi] mapped to black..white, cropping {@code crop} pixels off each side.
     */
    public static void write(Path file, Tensor images, int rows, int cols, float lo, float hi, int crop) throws IOException {
        long b = images.size(0), h = images.size(-2), w = images.size(-1);
        int ih = (int) (h - 2 * crop), iw = (int) (w - 2 * crop), pad = 2;
        if (ih < 1 || iw < 1) throw new IllegalArgumentException("ImageGrid: crop " + crop + " leaves nothing of " + h + "x" + w);
        Png.Image img = Png.Image.grey(cols * (iw + pad) + pad, rows * (ih + pad) + pad);
        MemorySegment s = images.contiguous().segment();
        for (int k = 0; k < Math.min(b, (long) rows * cols); k++) {
            int r = k / cols, c = k % cols;
            for (int y = 0; y < ih; y++)
                for (int x = 0; x < iw; x++) {
                    float v = s.getAtIndex(JAVA_FLOAT, k * h * w + (y + crop) * w + (x + crop));
                    img.set(pad + c * (iw + pad) + x, pad + r * (ih + pad) + y, 0, toByte(v, lo, hi));
                }
        }
        AtomicFiles.writePng(file, img);
    }
}
