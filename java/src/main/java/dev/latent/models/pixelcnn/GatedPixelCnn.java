package dev.latent.models.pixelcnn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.nn.Conv2d;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.nn.MaskedConv2d;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * The gated PixelCNN of van den Oord et al. 2016 ("Conditional Image Generation with PixelCNN Decoders") for grey
 * images with 256 levels: a stack of gated blocks, each with a vertical and a horizontal stack, and a 256-way softmax
 * per pixel.
 *
 * <p>Block l (l = 0 sees the image and uses mask A, later blocks mask B; see {@link MaskedConv2d}):
 * <pre>
 *   vp = vertical k x k masked conv (v)              (2C channels)
 *   v' = tanh(vp[:C]) * sigmoid(vp[C:])
 *   hp = horizontal 1 x k masked conv (h) + 1x1 (vp)   (2C channels: the vertical stack feeds the horizontal one)
 *   h' = 1x1 (tanh(hp[:C]) * sigmoid(hp[C:])) + h     (the residual from block 1 on)
 * </pre>
 * The vertical mask keeps only the rows above the centre in block 0 and up to the centre row after, so v at row i
 * depends on the image rows before i only, and the 1x1 link needs no shift; the horizontal stack adds the current
 * row left of the pixel. Together they cover every pixel before (i, j) in raster order: no blind spot (tested by
 * gradients in the unit tests). The head is ReLU, 1x1 to {@code head} channels, ReLU, 1x1 to 256 logits, written
 * as two linear layers on the (N H W, C) features so the logits come out as (N H W, 256) rows for the fused
 * softmax cross-entropy kernel.
 *
 * <p>Input: pixels / 255 in [0, 1], shape (N, 1, H, W); any H, W (Fashion-MNIST is 28 x 28).
 */
public final class GatedPixelCnn implements Module {
    public static final int LEVELS = 256;

    /**
     * The architecture: C = {@code channels} per stack, {@code layers} gated blocks (the first included), kernel
     * sizes of the first block and of the others (odd), {@code head} channels of the output's hidden layer.
     */
    public record Arch(int channels, int layers, int firstKernel, int kernel, int head) {
        public Arch {
            if (channels < 1 || layers < 1 || head < 1) throw new IllegalArgumentException("PixelCNN: channels, layers and head must be >= 1, got " + this);
            if (firstKernel < 3 || firstKernel % 2 == 0 || kernel < 3 || kernel % 2 == 0)
                throw new IllegalArgumentException("PixelCNN: kernel sizes must be odd and >= 3, got " + this);
            if ((long) channels * channels * kernel * kernel * layers > 1L << 31)
                throw new IllegalArgumentException("PixelCNN: " + this + " has too many weights");
        }

        /** The default: 64 channels, 7 blocks, a 7 x 7 first block then 3 x 3, head 256. */
        public static Arch standard() { return new Arch(64, 7, 7, 3, 256); }
    }

    /** One gated block's weights. */
    public static final class Block implements Module {
        public final MaskedConv2d vconv, hconv;
        public final Conv2d v2h, hout;
        public final boolean residual;

        Block(Scope s, long in, int c, int k, boolean first, long seed, long stream) {
            vconv = new MaskedConv2d(s, in, 2L * c, k, MaskedConv2d.Shape.VERTICAL, first, 1, seed, stream);
            hconv = new MaskedConv2d(s, in, 2L * c, k, MaskedConv2d.Shape.HORIZONTAL, first, 1, seed, stream + 2);
            v2h = Conv2d.torchDefault(s, 2L * c, 2L * c, 1, 1, 0, true, seed, stream + 4);
            hout = Conv2d.torchDefault(s, c, c, 1, 1, 0, true, seed, stream + 6);
            residual = !first;
        }

        @Override
        public void collect(String p, Map<String, Var> out) {
            vconv.collect(p + "v.", out);
            hconv.collect(p + "h.", out);
            v2h.collect(p + "v2h.", out);
            hout.collect(p + "hout.", out);
        }
    }

    public final Arch arch;
    public final List<Block> blocks;
    public final Linear head1, head2;

    /** Weights from PyTorch's default initialisation, keyed by {@code seed} (the same seed gives the same model). */
    public GatedPixelCnn(Scope scope, Arch arch, long seed) {
        this.arch = arch;
        List<Block> b = new ArrayList<>();
        int c = arch.channels();
        for (int l = 0; l < arch.layers(); l++)
            b.add(new Block(scope, l == 0 ? 1 : c, c, l == 0 ? arch.firstKernel() : arch.kernel(), l == 0, seed, 100L * (l + 1)));
        blocks = Collections.unmodifiableList(b);
        head1 = new Linear(scope, Init.torchDefault(scope, seed, 10, c, arch.head(), c), Init.torchDefault(scope, seed, 11, c, arch.head()));
        head2 = new Linear(scope, Init.torchDefault(scope, seed, 12, arch.head(), LEVELS, arch.head()),
                Init.torchDefault(scope, seed, 13, arch.head(), LEVELS));
    }

    static Var gate(Var x, long c) { return F.mul(F.tanh(F.narrowChannels(x, 0, c)), F.sigmoid(F.narrowChannels(x, c, c))); }

    /** The horizontal stack's output (N, C, H, W) for x (N, 1, H, W) (pixels / 255). */
    public Var features(Var x) {
        if (x.value().rank() != 4 || x.value().size(1) != 1)
            throw new IllegalArgumentException("PixelCNN: input (N, 1, H, W) expected, got " + x.value());
        long c = arch.channels();
        Var v = x, h = x;
        for (Block b : blocks) {
            Var vp = b.vconv.forward(v);
            Var hp = F.add(b.hconv.forward(h), b.v2h.forward(vp));
            v = gate(vp, c);
            Var ho = b.hout.forward(gate(hp, c));
            h = b.residual ? F.add(ho, h) : ho;
        }
        return h;
    }

    /** Logits (N H W, 256): row (n H + i) W + j is pixel (i, j) of image n. */
    public Var logits(Var x) {
        Var h = F.relu(features(x));
        long n = h.size(0), c = h.size(1), hh = h.size(2), ww = h.size(3);
        Var rows = F.reshape(F.permute(h, new long[] {n, c, hh * ww}, 0, 2, 1), n * hh * ww, c);
        return head2.forward(F.relu(head1.forward(rows)));
    }

    /**
     * Mean cross-entropy (nats per pixel) of {@link #logits} against the pixels' bytes {@code targets} (N H W, in
     * logits' row order). The logits are head2's fresh (N H W, 256) output, already contiguous rows (the permute to
     * pixel-major order copies before the head), and nothing reads them after the loss: the gradient is written over
     * them ({@link F#crossEntropyInPlace}), one logits-sized buffer less per training step, crossEntropy's bits
     * (InPlaceLossTest). Without a gradient (an inference graph) the logits stay intact and nothing is saved.
     */
    public Var loss(Var x, MemorySegment targets) { return F.crossEntropyInPlace(logits(x), targets); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        for (int l = 0; l < blocks.size(); l++) blocks.get(l).collect(prefix + "block." + l + ".", out);
        head1.collect(prefix + "head1.", out);
        head2.collect(prefix + "head2.", out);
    }

    @Override
    public void to(Scope scope, dev.latent.tensor.Device device) {
        for (Block b : blocks) {
            b.vconv.to(scope, device);
            b.hconv.to(scope, device);
            b.v2h.to(scope, device);
            b.hout.to(scope, device);
        }
        head1.to(scope, device);
        head2.to(scope, device);
    }

    /** A CPU copy of a parameter's values. */
    static float[] floats(Var v) { return v.value().toArray(); }
}
