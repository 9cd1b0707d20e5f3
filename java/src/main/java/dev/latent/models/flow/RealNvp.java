package dev.latent.models.flow;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Conv2d;
import dev.latent.nn.Init;
import dev.latent.nn.Module;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * RealNVP for 1-channel H x W images as ../shared/reference/realnvp_fmnist.py: uniform dequantization x =
 * (pixel + u) / 256, the logit transform y = logit(a + (1 - 2a) x) with its log-det, then K affine couplings with
 * alternating checkerboard masks (layer k: b[i, j] = 1 where (i + j) % 2 == k % 2). Coupling k: h = net(b y) with
 * net = conv3x3(1 -> C) ReLU conv3x3(C -> C) ReLU conv3x3(C -> 2) (last conv zero-initialised, so each coupling
 * starts as the identity), s = tanh(h0) scale (1 - b), t = h1 (1 - b) (the fused kernel F.coupling), scale a learned
 * scalar (init 1). Prior N(0, I); the loss is bits per dimension of the discrete pixels.
 */
public final class RealNvp implements ImageFlow {
    public final int h, w, couplings, hidden;
    public final double alpha;
    final Conv2d[][] nets;
    final Var[] scales;
    final Tensor[] masks;

    public RealNvp(Scope scope, int h, int w, int couplings, int hidden, double alpha, long seed) {
        this.h = h; this.w = w; this.couplings = couplings; this.hidden = hidden; this.alpha = alpha;
        nets = new Conv2d[couplings][3];
        scales = new Var[couplings];
        masks = new Tensor[couplings];
        for (int k = 0; k < couplings; k++) {
            long st = 100L * (k + 1);
            nets[k][0] = Conv2d.torchDefault(scope, 1, hidden, 3, 1, 1, true, seed, st);
            nets[k][1] = Conv2d.torchDefault(scope, hidden, hidden, 3, 1, 1, true, seed, st + 2);
            nets[k][2] = new Conv2d(Init.constant(scope, 0f, 2, hidden, 3, 3), Init.constant(scope, 0f, 2), 1, 1);
            scales[k] = Var.param(Init.constant(scope, 1f, 1));
            masks[k] = Tensor.zeros(scope, (long) h * w);
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) if ((i + j) % 2 == k % 2) masks[k].segment().setAtIndex(JAVA_FLOAT, (long) i * w + j, 1f);
        }
    }

    /** The device the parameters are on. */
    Device device() { return scales[0].value().device(); }

    /** Device copies of the masks (per coupling, and broadcast per batch size), made once in the masks' scope. */
    private final Map<String, Tensor> deviceMasks = new java.util.HashMap<>();

    /** The mask of coupling k (HW) on the parameters' device. */
    Tensor mask(int k) {
        Device d = device();
        if (d == Device.CPU) return masks[k];
        return deviceMasks.computeIfAbsent(k + ":" + d, key -> masks[k].to(masks[k].scope(), d));
    }

    /** The mask of coupling k broadcast to (n, 1, h, w): in the current graph on the CPU, cached per n on a device. */
    Tensor batchMask(int k, long n) {
        Device d = device();
        if (d != Device.CPU)
            return deviceMasks.computeIfAbsent(k + ":" + n + ":" + d, key -> hostBatchMask(k, n, masks[k].scope()).to(masks[k].scope(), d));
        return hostBatchMask(k, n, Graph.current().scope());
    }

    private Tensor hostBatchMask(int k, long n, Scope scope) {
        Tensor m = Tensor.empty(scope, n, 1, h, w);
        long hw = (long) h * w;
        for (long i = 0; i < n; i++) MemorySegment.copy(masks[k].segment(), 0, m.segment(), i * hw * 4, hw * 4);
        return m;
    }

    Var net(int k, Var masked) {
        Var a = F.relu(nets[k][0].forward(masked));
        a = F.relu(nets[k][1].forward(a));
        return nets[k][2].forward(a);
    }

    /** Forward through the couplings: {z, sum of coupling log-dets per image (n)}. */
    public Var[] forward(Var y) {
        long n = y.shape()[0];
        Var logdet = null;
        for (int k = 0; k < couplings; k++) {
            Var masked = F.mul(y, Var.constant(batchMask(k, n)));
            F.Coupling c = F.coupling(y, net(k, masked), scales[k], mask(k));
            y = c.out();
            logdet = logdet == null ? c.logdet() : F.add(logdet, c.logdet());
        }
        return new Var[] {y, logdet};
    }

    /** Inverse of {@link #forward} (in an inference graph): y from z. */
    public Tensor inverse(Tensor z) {
        long n = z.size(0);
        Tensor y = z;
        for (int k = couplings - 1; k >= 0; k--) {
            Tensor m = batchMask(k, n), masked = Graph.current().empty(y.device(), y.shape());
            dev.latent.ops.Kernels.mul(y, m, masked);   // b y' = b y: the net sees the same input as in the forward
            Tensor hk = net(k, Var.constant(masked)).value();
            y = F.couplingInverse(y, hk, scales[k].value().toArray()[0], mask(k));
        }
        return y;
    }

    /**
     * Mean bits/dim of the batch: (-(log N(z) + logdet_couplings + logdet_pre) / D + log 256) / log 2, averaged.
     * Differentiable in the couplings (logdet_pre is a constant of the data).
     */
    public Var bitsPerDim(Var z, Var logdet, Tensor logdetPre) {
        long n = z.shape()[0], d = z.value().numel() / n;
        return ImageFlow.bitsPerDim(F.scale(F.sum(F.mul(z, z)), 0.5f), F.sum(logdet), logdetPre, n, d);
    }

    @Override public String kind() { return "realnvp"; }
    @Override public int height() { return h; }
    @Override public int width() { return w; }
    @Override public double alpha() { return alpha; }

    @Override
    public Var bitsPerDim(Var y, Tensor ldPre) {
        Var[] zl = forward(y);
        return bitsPerDim(zl[0], zl[1], ldPre);
    }

    @Override
    public Tensor sampleLogits(int n, double temperature, long seed) {
        Tensor z = dev.latent.nn.Init.normal(Graph.current().scope(), seed, 5, temperature, n, 1, h, w);
        return inverse(device() == Device.CPU ? z : z.to(Graph.current().scope(), device()));
    }

    @Override
    public Tensor roundTrip(Tensor y) { return inverse(forward(Var.constant(y))[0].value()); }

    @Override
    public Map<String, Object> config() { return Map.of("h", h, "w", w, "couplings", couplings, "hidden", hidden); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        for (int k = 0; k < couplings; k++) {
            nets[k][0].collect(prefix + "couplings." + k + ".net.0.", out);
            nets[k][1].collect(prefix + "couplings." + k + ".net.2.", out);
            nets[k][2].collect(prefix + "couplings." + k + ".net.4.", out);
            out.put(prefix + "couplings." + k + ".scale", scales[k]);
        }
    }
}
