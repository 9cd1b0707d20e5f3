package dev.latent.models.flow;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Conv2d;
import dev.latent.nn.Init;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;
import dev.latent.tensor.Scope;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Glow (Kingma and Dhariwal 2018) for 1-channel H x W images in logit space: L levels, each a squeeze, K steps of
 * flow and (but the last) a split that factors out half the channels as latent z_l. A step is ActNorm
 * (data-dependent init) -> invertible 1x1 convolution (LU form, log-det O(C)) -> affine coupling with a channel mask
 * (the first half of the channels conditions the second). The coupling is the fused kernel F.coupling with
 * s = scale tanh(h_s) and t = h_t (the stabilised scale the issue allows in place of Glow's sigmoid); its net is
 * conv3x3(C -> hidden) ReLU conv1x1(hidden -> hidden) ReLU conv3x3(hidden -> 2C), the last zero-initialised so each
 * step starts as ActNorm + 1x1 conv. The net sees the masked input b y (C channels, the transformed half zero) and
 * its 2C outputs are s for every channel then t, masked by (1 - b) inside the kernel: the layout F.coupling and its
 * checkerboard RealNVP use, at the cost of a wider first and last conv. Every z has an N(0, I) prior (Glow's learned
 * conditional prior for the split is not used; see docs/decisions.md).
 */
public final class Glow implements ImageFlow {
    public final int h, w, levels, depth, hidden;
    public final double alpha;
    final int[] ch;     // channels after level l's squeeze
    final GlowLayers.ActNorm[][] norms;
    final GlowLayers.InvConv1x1[][] mixes;
    final Conv2d[][][] nets;
    final Var[][] scales;
    final Tensor[] masks; // per level: (ch * hh * ww), 1 on the first half of the channels

    public Glow(Scope scope, int h, int w, int levels, int depth, int hidden, double alpha, long seed) {
        if (levels < 1 || depth < 1 || hidden < 1) throw new IllegalArgumentException("glow: levels, depth (K), hidden must be >= 1");
        if (h % (1 << levels) != 0 || w % (1 << levels) != 0)
            throw new IllegalArgumentException("glow: " + h + "x" + w + " images cannot be squeezed " + levels + " times (H and W must be multiples of 2^L)");
        this.h = h; this.w = w; this.levels = levels; this.depth = depth; this.hidden = hidden; this.alpha = alpha;
        ch = new int[levels];
        norms = new GlowLayers.ActNorm[levels][depth];
        mixes = new GlowLayers.InvConv1x1[levels][depth];
        nets = new Conv2d[levels][depth][3];
        scales = new Var[levels][depth];
        masks = new Tensor[levels];
        int c = 1;
        for (int l = 0; l < levels; l++) {
            c *= 4;
            ch[l] = c;
            long hw = (long) (h >> (l + 1)) * (w >> (l + 1));
            masks[l] = Tensor.zeros(scope, c * hw);
            for (long i = 0; i < (c / 2) * hw; i++) masks[l].segment().setAtIndex(JAVA_FLOAT, i, 1f);
            for (int k = 0; k < depth; k++) {
                long st = 1000L * (l + 1) + 10L * k;
                norms[l][k] = new GlowLayers.ActNorm(scope, c);
                mixes[l][k] = new GlowLayers.InvConv1x1(scope, c, seed * 7919 + st);
                nets[l][k][0] = Conv2d.torchDefault(scope, c, hidden, 3, 1, 1, true, seed, st + 1);
                nets[l][k][1] = Conv2d.torchDefault(scope, hidden, hidden, 1, 1, 0, true, seed, st + 2);
                nets[l][k][2] = new Conv2d(Init.constant(scope, 0f, 2L * c, hidden, 3, 3), Init.constant(scope, 0f, 2L * c), 1, 1);
                scales[l][k] = Var.param(Init.constant(scope, 1f, 1));
            }
            if (l < levels - 1) c /= 2;
        }
    }

    @Override public String kind() { return "glow"; }
    @Override public int height() { return h; }
    @Override public int width() { return w; }
    @Override public double alpha() { return alpha; }

    @Override
    public Map<String, Object> config() { return Map.of("h", h, "w", w, "levels", levels, "depth", depth, "hidden", hidden); }

    /** ActNorm's data-dependent init has happened (a trained or loaded model): the next forward must not redo it. */
    public void markInitialized() {
        for (GlowLayers.ActNorm[] a : norms) for (GlowLayers.ActNorm n : a) n.markInitialized();
    }

    /** The device the parameters are on. */
    Device device() { return scales[0][0].value().device(); }

    /** Device copies of the masks (per level, and broadcast per batch size), made once in the masks' scope. */
    private final Map<String, Tensor> deviceMasks = new java.util.HashMap<>();

    private Tensor mask(int l) {
        Device d = device();
        if (d == Device.CPU) return masks[l];
        return deviceMasks.computeIfAbsent(l + ":" + d, key -> masks[l].to(masks[l].scope(), d));
    }

    private Tensor batchMask(int l, long n) {
        Device d = device();
        if (d != Device.CPU)
            return deviceMasks.computeIfAbsent(l + ":" + n + ":" + d, key -> hostBatchMask(l, n, masks[l].scope()).to(masks[l].scope(), d));
        return hostBatchMask(l, n, Graph.current().scope());
    }

    private Tensor hostBatchMask(int l, long n, Scope scope) {
        long d = masks[l].numel();
        Tensor m = Tensor.empty(scope, n, ch[l], h >> (l + 1), w >> (l + 1));
        for (long i = 0; i < n; i++) java.lang.foreign.MemorySegment.copy(masks[l].segment(), 0, m.segment(), i * d * 4, d * 4);
        return m;
    }

    /** The parameters and the 1x1 convolutions' constant matrices to {@code device}. */
    @Override
    public void to(Scope scope, Device device) {
        ImageFlow.super.to(scope, device);
        for (GlowLayers.InvConv1x1[] ms : mixes) for (GlowLayers.InvConv1x1 m : ms) m.to(scope, device);
    }

    private Var net(int l, int k, Var masked) {
        Var a = F.relu(nets[l][k][0].forward(masked));
        a = F.relu(nets[l][k][1].forward(a));
        return nets[l][k][2].forward(a);
    }

    /** The forward pass: {z_0, ..., z_{L-1}, per-image log-det sum over the whole batch (scalar)}. */
    public Var[] forward(Var y) {
        long n = y.shape()[0];
        List<Var> out = new ArrayList<>();
        Var perImage = null, shared = null; // coupling log-dets (n) and the ActNorm / 1x1 ones (the same for every image)
        for (int l = 0; l < levels; l++) {
            y = GlowLayers.squeeze(y);
            Tensor bm = batchMask(l, n);
            for (int k = 0; k < depth; k++) {
                Var[] a = norms[l][k].forward(y);
                Var[] m = mixes[l][k].forward(a[0]);
                Var s2 = F.add(a[1], m[1]);
                shared = shared == null ? s2 : F.add(shared, s2);
                Var masked = F.mul(m[0], Var.constant(bm));
                F.Coupling c = F.coupling(m[0], net(l, k, masked), scales[l][k], mask(l));
                y = c.out();
                perImage = perImage == null ? c.logdet() : F.add(perImage, c.logdet());
            }
            if (l < levels - 1) {
                long half = ch[l] / 2;
                out.add(F.narrowChannels(y, half, half));
                y = F.narrowChannels(y, 0, half);
            }
        }
        out.add(y);
        out.add(F.add(F.sum(perImage), F.scale(shared, (float) n)));
        return out.toArray(new Var[0]);
    }

    @Override
    public Var bitsPerDim(Var y, Tensor ldPre) {
        long n = y.shape()[0];
        Var[] f = forward(y);
        Var quad = null;
        for (int i = 0; i < f.length - 1; i++) {
            Var q = F.sum(F.mul(f[i], f[i]));
            quad = quad == null ? q : F.add(quad, q);
        }
        return ImageFlow.bitsPerDim(F.scale(quad, 0.5f), f[f.length - 1], ldPre, n, (long) h * w);
    }

    /** The inverse of {@link #forward}: y (n, 1, h, w) from the latents z_0 .. z_{L-1} (tensors), in an inference graph. */
    public Tensor inverse(Tensor[] z) {
        if (z.length != levels) throw new IllegalArgumentException("glow inverse: " + levels + " latents expected, got " + z.length);
        Tensor y = z[levels - 1];
        for (int l = levels - 1; l >= 0; l--) {
            if (l < levels - 1) y = catChannels(y, z[l]);
            long n = y.size(0);
            Tensor bm = batchMask(l, n);
            for (int k = depth - 1; k >= 0; k--) {
                Tensor masked = Graph.current().empty(y.device(), y.shape());
                Kernels.mul(y.contiguous(), bm, masked);   // b y' = b y: the net sees the same input as in the forward
                Tensor hk = net(l, k, Var.constant(masked)).value();
                y = F.couplingInverse(y, hk, scales[l][k].value().toArray()[0], mask(l));
                y = mixes[l][k].inverse(y);
                y = norms[l][k].inverse(y);
            }
            y = GlowLayers.unsqueeze(Var.constant(y)).value();
        }
        return y;
    }

    private static Tensor catChannels(Tensor a, Tensor b) {
        long[] s = a.shape().clone();
        long ca = s[1];
        s[1] += b.size(1);
        Tensor out = Graph.current().empty(a.device(), s);
        Kernels.copy(a, out.slice(1, 0, ca));
        Kernels.copy(b, out.slice(1, ca, s[1]));
        return out;
    }

    /** The latents' shapes for n images: level {@code l < L-1} factors out ch_l / 2 channels, the last keeps ch_{L-1}. */
    public long[][] latentShapes(long n) {
        long[][] s = new long[levels][];
        for (int l = 0; l < levels; l++) s[l] = new long[] {n, l < levels - 1 ? ch[l] / 2 : ch[l], h >> (l + 1), w >> (l + 1)};
        return s;
    }

    @Override
    public Tensor sampleLogits(int n, double temperature, long seed) {
        long[][] shapes = latentShapes(n);
        Tensor[] z = new Tensor[levels];
        for (int l = 0; l < levels; l++) {
            z[l] = Init.normal(Graph.current().scope(), seed, 5 + l, temperature, shapes[l]);
            if (device() != Device.CPU) z[l] = z[l].to(Graph.current().scope(), device());
        }
        return inverse(z);
    }

    @Override
    public Tensor roundTrip(Tensor y) {
        Var[] f = forward(Var.constant(y));
        Tensor[] z = new Tensor[levels];
        for (int l = 0; l < levels; l++) z[l] = f[l].value().isContiguous() ? f[l].value() : Kernels.contiguous(Graph.current().scope(), f[l].value());
        return inverse(z);
    }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        for (int l = 0; l < levels; l++)
            for (int k = 0; k < depth; k++) {
                String p = prefix + "levels." + l + ".steps." + k + ".";
                norms[l][k].collect(p + "actnorm.", out);
                mixes[l][k].collect(p + "invconv.", out);
                nets[l][k][0].collect(p + "net.0.", out);
                nets[l][k][1].collect(p + "net.2.", out);
                nets[l][k][2].collect(p + "net.4.", out);
                out.put(p + "scale", scales[l][k]);
            }
    }
}
