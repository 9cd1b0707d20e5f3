package dev.latent.data;

import dev.latent.io.Png;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * A set of single-channel 8-bit images (N, H, W) with optional labels: Fashion-MNIST (or any IDX image/label pair)
 * and folders of PNGs. Pixels stay bytes in memory (47 MB for Fashion-MNIST's train split); batches are converted
 * to float tensors on the way out with {@link #fill}.
 */
public final class ImageData {
    /** Where Debian's dataset-fashion-mnist package puts the files. */
    public static final Path DEBIAN_FASHION_MNIST = Path.of("/usr/share/datasets/fashion-mnist");

    public final int n, h, w;
    public final byte[] pixels;
    public final int[] labels;   // null when unlabelled
    public final String source;

    public ImageData(int n, int h, int w, byte[] pixels, int[] labels, String source) {
        if ((long) n * h * w != pixels.length) throw new IllegalArgumentException("ImageData: " + n + "x" + h + "x" + w + " != " + pixels.length + " bytes");
        if (labels != null && labels.length != n) throw new IllegalArgumentException("ImageData: " + labels.length + " labels for " + n + " images");
        this.n = n; this.h = h; this.w = w; this.pixels = pixels; this.labels = labels; this.source = source;
    }

    /**
     * Loads a split. {@code spec} is "fashion-mnist" (Debian's package location, or $LATENT_FASHION_MNIST), a folder
     * holding IDX files ({@code train-images-idx3-ubyte[.gz]} / {@code t10k-...}, with labels beside them when present),
     * an IDX image file, or a folder of PNG images (split ignored). split: "train" or "test".
     */
    public static ImageData load(String spec, String split) throws IOException {
        if (!split.equals("train") && !split.equals("test")) throw new IllegalArgumentException("split must be train or test, got " + split);
        Path p;
        if (spec == null || spec.equals("fashion-mnist") || spec.equals("fmnist")) {
            String env = System.getenv("LATENT_FASHION_MNIST");
            p = env != null && !env.isEmpty() ? Path.of(env) : DEBIAN_FASHION_MNIST;
            if (!Files.isDirectory(p))
                throw new IOException("Fashion-MNIST not found at " + p + ": install Debian's package (apt-get install dataset-fashion-mnist), "
                        + "or pass --data DIR with the IDX files (train-images-idx3-ubyte.gz, ...), or set LATENT_FASHION_MNIST");
        } else {
            p = Path.of(spec);
            if (!Files.exists(p)) throw new IOException("data not found: " + p);
        }
        if (Files.isRegularFile(p)) return fromIdx(p, null);
        String stem = split.equals("train") ? "train" : "t10k";
        Path images = find(p, stem + "-images-idx3-ubyte");
        if (images != null) return fromIdx(images, find(p, stem + "-labels-idx1-ubyte"));
        try (Stream<Path> s = Files.list(p)) {
            if (s.anyMatch(f -> f.getFileName().toString().toLowerCase().endsWith(".png"))) return fromPngFolder(p);
        }
        throw new IOException(p + ": no " + stem + "-images-idx3-ubyte[.gz] and no PNG files in it");
    }

    private static Path find(Path dir, String name) {
        for (String cand : new String[] {name + ".gz", name, name.replace("-idx", ".idx")})
            if (Files.isRegularFile(dir.resolve(cand))) return dir.resolve(cand);
        return null;
    }

    /** An IDX image file (N, H, W) of unsigned bytes, with an optional IDX label file (N). */
    public static ImageData fromIdx(Path images, Path labels) throws IOException {
        Idx im = Idx.read(images);
        if (im.type() != Idx.U8 || im.dims().length != 3)
            throw new IOException(images + ": expected unsigned-byte images (N, H, W), got type 0x" + Integer.toHexString(im.type())
                    + " dims " + java.util.Arrays.toString(im.dims()));
        int[] lab = null;
        if (labels != null) {
            Idx l = Idx.read(labels);
            if (l.type() != Idx.U8 || l.dims().length != 1 || l.count() != im.count())
                throw new IOException(labels + ": expected " + im.count() + " unsigned-byte labels, got dims " + java.util.Arrays.toString(l.dims()));
            lab = new int[l.count()];
            for (int i = 0; i < lab.length; i++) lab[i] = l.u8()[i] & 0xff;
        }
        return new ImageData(im.dims()[0], im.dims()[1], im.dims()[2], im.u8(), lab, images.toString());
    }

    /**
     * Every *.png in a folder (sorted by name), converted to 8-bit gray; all must have the same size. Decoded by
     * {@link Png#read} (pure Java: non-interlaced grey, grey + alpha, RGB, RGBA and palette images, 1-16 bits per
     * sample); colour becomes {@code round(0.299 R + 0.587 G + 0.114 B)}, alpha is ignored.
     */
    public static ImageData fromPngFolder(Path dir) throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(f -> f.getFileName().toString().toLowerCase().endsWith(".png")).sorted().toList();
        }
        if (files.isEmpty()) throw new IOException(dir + ": no PNG files");
        int h = -1, w = -1;
        List<byte[]> imgs = new ArrayList<>();
        for (Path f : files) {
            Png.Image img;
            try {
                img = Png.read(f);
            } catch (RuntimeException e) {
                throw new IOException(f + ": unreadable PNG: " + e.getMessage(), e);
            }
            if (h < 0) { h = img.height(); w = img.width(); }
            if (img.height() != h || img.width() != w)
                throw new IOException(f + ": " + img.width() + "x" + img.height() + " differs from the first image's " + w + "x" + h);
            byte[] px = new byte[h * w];
            boolean gray = img.channels() <= 2;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    px[y * w + x] = (byte) (gray ? img.get(x, y, 0)
                            : (int) Math.round(0.299 * img.get(x, y, 0) + 0.587 * img.get(x, y, 1) + 0.114 * img.get(x, y, 2)));
            imgs.add(px);
        }
        byte[] all = new byte[imgs.size() * h * w];
        for (int i = 0; i < imgs.size(); i++) System.arraycopy(imgs.get(i), 0, all, i * h * w, h * w);
        return new ImageData(imgs.size(), h, w, all, null, dir.toString());
    }

    /** The first {@code m} images (a smaller split for quick runs and tests). */
    public ImageData head(int m) {
        m = Math.min(m, n);
        byte[] px = java.util.Arrays.copyOf(pixels, m * h * w);
        return new ImageData(m, h, w, px, labels == null ? null : java.util.Arrays.copyOf(labels, m), source + "[:" + m + "]");
    }

    /** The images whose label is (keep = true) or is not (keep = false) {@code cls}, in their order; needs labels. */
    public ImageData filterClass(int cls, boolean keep) {
        if (labels == null) throw new IllegalArgumentException(source + ": has no labels, so class " + cls + " cannot be selected");
        int m = 0;
        for (int l : labels) if ((l == cls) == keep) m++;
        byte[] px = new byte[m * h * w];
        int[] lab = new int[m];
        for (int i = 0, j = 0; i < n; i++)
            if ((labels[i] == cls) == keep) {
                System.arraycopy(pixels, i * h * w, px, j * h * w, h * w);
                lab[j++] = labels[i];
            }
        return new ImageData(m, h, w, px, lab, source + (keep ? "[class " : "[without class ") + cls + "]");
    }

    /**
     * Writes images {@code idx[from .. from + count)} into {@code dst} (count, 1, h + 2 pad, w + 2 pad) as
     * {@code pixel * scale + offset}, the border set to {@code offset} (pixel value 0).
     */
    public void fill(Tensor dst, int[] idx, int from, int count, float scale, float offset, int pad) {
        int hh = h + 2 * pad, ww = w + 2 * pad;
        if (dst.numel() != (long) count * hh * ww || !dst.isContiguous())
            throw new IllegalArgumentException("fill: destination " + dst + " is not (" + count + ", 1, " + hh + ", " + ww + ")");
        MemorySegment s = dst.segment();
        for (int b = 0; b < count; b++) {
            int img = idx == null ? from + b : idx[from + b];
            long base = (long) b * hh * ww;
            for (int y = 0; y < hh; y++)
                for (int x = 0; x < ww; x++) {
                    int sy = y - pad, sx = x - pad;
                    float v = sy >= 0 && sy < h && sx >= 0 && sx < w ? (pixels[img * h * w + sy * w + sx] & 0xff) * scale + offset : offset;
                    s.setAtIndex(JAVA_FLOAT, base + (long) y * ww + x, v);
                }
        }
    }

    /** A permutation of 0..n-1 from Philox (seed, stream): Fisher-Yates, the same on every machine. */
    public static int[] permutation(int n, long seed, long stream) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        if (n < 2) return p;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment u = a.allocate(4L * n, 64);
            LatentNative.get().randUniform(u, n, seed, stream);
            for (int i = n - 1; i > 0; i--) {
                int j = (int) Math.min(i, (long) (u.getAtIndex(JAVA_FLOAT, i) * (i + 1)));
                int t = p[i]; p[i] = p[j]; p[j] = t;
            }
        }
        return p;
    }
}
