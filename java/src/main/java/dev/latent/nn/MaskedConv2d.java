package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * A causally masked 2-D convolution (PixelCNN, van den Oord et al. 2016): stride 1, "same" output size, the mask
 * folded into the weights. The forward convolves with {@code weight * mask} (one pass over the weights, none over
 * the activations), so the weight gradient is masked by the same product's backward and masked taps never train.
 * The masked taps are also zeroed at construction, so a checkpoint holds the effective weights.
 *
 * <p>Three shapes, each with mask A (the centre tap excluded: the first layer, which sees the image) or B (the
 * centre included: later layers, which see features of the pixels before):
 * <ul>
 *   <li>{@link Shape#FULL}: k x k, the rows above the centre and, on the centre row, the columns left of the centre
 *       (the original PixelCNN's mask; it has a blind spot when stacked).</li>
 *   <li>{@link Shape#VERTICAL}: k x k, the rows above the centre (A) or up to and including the centre row (B), every
 *       column: the gated PixelCNN's vertical stack, whose features at row i depend only on image rows before i.</li>
 *   <li>{@link Shape#HORIZONTAL}: 1 x k, the columns left of the centre (A) or up to and including it (B): the
 *       horizontal stack.</li>
 * </ul>
 * With {@code groups > 1} (colour images, PixelCNN's R, G, B ordering) the input and output channels are split into
 * that many equal groups; at the centre tap output group g sees input groups before g (A) or up to g (B). Other taps
 * see every channel. Grey images use one group.
 */
public final class MaskedConv2d implements Module {
    /** Which taps a mask keeps; see the class comment. */
    public enum Shape { FULL, VERTICAL, HORIZONTAL }

    public final Var weight, bias;
    public final Shape shape;
    public final boolean maskA;
    public final int kernel, groups;
    private Tensor mask;

    /**
     * A masked convolution from {@code in} to {@code out} channels with a k x k (1 x k for HORIZONTAL) kernel, k odd,
     * PyTorch's default initialisation (U(+-1/sqrt(fan in)) for weight and bias, fan in = in k k, or in k for 1 x k:
     * as for an nn.Conv2d of that size).
     */
    public MaskedConv2d(Scope scope, long in, long out, int k, Shape shape, boolean maskA, int groups, long seed, long stream) {
        if (k < 1 || k % 2 == 0) throw new IllegalArgumentException("MaskedConv2d: kernel size must be odd and >= 1, got " + k);
        if (groups < 1 || in % groups != 0 || out % groups != 0)
            throw new IllegalArgumentException("MaskedConv2d: " + groups + " groups must divide in (" + in + ") and out (" + out + ") channels");
        if (shape == null) throw new IllegalArgumentException("MaskedConv2d: shape is null");
        if (shape == Shape.VERTICAL && groups != 1)
            throw new IllegalArgumentException("MaskedConv2d: the vertical mask has no centre tap, so no channel groups (got " + groups + ")");
        if (maskA && k == 1 && groups == 1)
            throw new IllegalArgumentException("MaskedConv2d: a 1 x 1 mask A with one group keeps no tap");
        this.shape = shape;
        this.maskA = maskA;
        this.kernel = k;
        this.groups = groups;
        int r = shape == Shape.HORIZONTAL ? 1 : k;
        long fan = in * r * k;
        Tensor w = Init.torchDefault(scope, seed, stream, fan, out, in, r, k);
        mask = buildMask(scope, shape, maskA, groups, out, in, k);
        MemorySegment ws = w.segment(), ms = mask.segment();
        for (long i = 0; i < w.numel(); i++) ws.setAtIndex(JAVA_FLOAT, i, ws.getAtIndex(JAVA_FLOAT, i) * ms.getAtIndex(JAVA_FLOAT, i));
        weight = Var.param(w);
        bias = Var.param(Init.torchDefault(scope, seed, stream + 1, fan, out));
    }

    /** The 0/1 mask of shape (out, in, r, k) (r = 1 for HORIZONTAL, else k), on the CPU. */
    public static Tensor buildMask(Scope scope, Shape shape, boolean maskA, int groups, long out, long in, int k) {
        int r = shape == Shape.HORIZONTAL ? 1 : k, c = k / 2, cr = shape == Shape.HORIZONTAL ? 0 : c;
        Tensor m = Tensor.zeros(scope, out, in, r, k);
        MemorySegment s = m.segment();
        long og = out / groups, ig = in / groups;
        for (long o = 0; o < out; o++)
            for (long i = 0; i < in; i++)
                for (int y = 0; y < r; y++)
                    for (int x = 0; x < k; x++) {
                        boolean keep = switch (shape) {
                            case VERTICAL -> maskA ? y < c : y <= c;
                            case FULL, HORIZONTAL -> y < cr || (y == cr && (x < c || (x == c && centre(o / og, i / ig, maskA))));
                        };
                        if (keep) s.setAtIndex(JAVA_FLOAT, ((o * in + i) * r + y) * k + x, 1f);
                    }
        return m;
    }

    private static boolean centre(long outGroup, long inGroup, boolean maskA) { return maskA ? inGroup < outGroup : inGroup <= outGroup; }

    /** The mask (out, in, r, k) on the weights' device. */
    public Tensor mask() { return mask; }

    /** x (N, in, H, W) to (N, out, H, W). */
    public Var forward(Var x) {
        int c = kernel / 2;
        Var w = F.mul(weight, Var.constant(mask));
        return shape == Shape.HORIZONTAL ? F.conv2d(x, w, bias, 1, 1, 0, c) : F.conv2d(x, w, bias, 1, 1, c, c);
    }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", weight);
        out.put(prefix + "bias", bias);
    }

    @Override
    public void to(Scope scope, Device device) {
        Module.super.to(scope, device);
        if (mask.device() != device) mask = mask.to(scope, device);
    }
}
