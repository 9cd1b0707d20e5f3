package dev.latent.models.flow;

import dev.latent.autograd.Var;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Map;

/**
 * A normalizing flow over 1-channel H x W images in logit space, as {@link FlowTrainer} trains it: RealNVP
 * ({@link RealNvp}) and Glow ({@link Glow}). Inputs come from {@link #preprocess} (uniform dequantization, then the
 * logit transform with its log-det), the loss is exact bits per dimension of the discrete pixels.
 */
public interface ImageFlow extends Module {
    /** "realnvp" or "glow": the checkpoint's model kind. */
    String kind();

    int height();

    int width();

    /** The logit transform's margin: y = logit(alpha + (1 - 2 alpha) x). */
    double alpha();

    /** Mean bits/dim of the batch y (n, 1, h, w), differentiable in the parameters; ldPre: per-image log-det of the preprocessing. */
    Var bitsPerDim(Var y, Tensor ldPre);

    /** n samples in logit space (n, 1, h, w), z ~ N(0, T^2 I), in the current (inference) graph. */
    Tensor sampleLogits(int n, double temperature, long seed);

    /** inverse(forward(y)), in the current (inference) graph: the invertibility check. */
    Tensor roundTrip(Tensor y);

    /** The architecture's integers (for the checkpoint's config). */
    Map<String, Object> config();

    /**
     * Dequantized logit inputs of pixel bytes: y (n, 1, h, w) and the per-image log-det of x -> y (n), with u from
     * Philox (seed, stream); {@code seed < 0} means u = 0.5 (no noise).
     */
    default Tensor[] preprocess(Scope s, byte[] pixels, int[] idx, int from, int n, long seed, long stream) {
        long hw = (long) height() * width();
        Tensor y = Tensor.empty(s, n, 1, height(), width()), ld = Tensor.empty(s, n);
        Tensor u = seed >= 0 ? Tensor.rand(s, seed, stream, n * hw) : null;
        double a = alpha(), c = Math.log(1 - 2 * a);
        for (int i = 0; i < n; i++) {
            int img = idx == null ? from + i : idx[from + i];
            double acc = 0;
            for (long j = 0; j < hw; j++) {
                double uu = u == null ? 0.5 : u.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i * hw + j);
                double x = ((pixels[(int) (img * hw + j)] & 0xff) + uu) / 256.0, p = a + (1 - 2 * a) * x;
                y.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i * hw + j, (float) (Math.log(p) - Math.log1p(-p)));
                acc += c - Math.log(p) - Math.log1p(-p);
            }
            ld.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (float) acc);
        }
        return new Tensor[] {y, ld};
    }

    /**
     * Bits/dim from the prior's quadratic term 0.5 sum z^2 and the batch's summed log-det (both scalars). {@code ldPre}
     * is the per-image log-det of the preprocessing (n, on the host), or, on a device, the batch's constant term
     * {@link #bpdConstant} already computed and staged into a one-element device tensor (a step captured into a CUDA
     * graph reads it there: it changes with every batch's noise). Both give the same bits.
     */
    static Var bitsPerDim(Var halfQuad, Var logdetSum, Tensor ldPre, long n, long d) {
        double ln2 = Math.log(2);
        // sum_i bpd_i / n = [0.5 sum z^2 + n D 0.5 log 2 pi - sum logdet - preSum] / (n D ln 2) + log2(256)
        Var num = dev.latent.autograd.F.sub(halfQuad, logdetSum);
        Var scaled = dev.latent.autograd.F.scale(num, (float) (1.0 / (n * d * ln2)));
        dev.latent.tensor.Device on = scaled.value().device();
        if (ldPre.device() != dev.latent.tensor.Device.CPU) {
            if (ldPre.numel() != 1 || ldPre.device() != on)
                throw new IllegalArgumentException("bitsPerDim: a device ldPre must be the staged constant (one element on " + on + "), got " + ldPre);
            return dev.latent.autograd.F.add(scaled, Var.constant(ldPre.reshape(scaled.value().shape())));
        }
        float constant = bpdConstant(ldPre, n, d);
        if (on == dev.latent.tensor.Device.CPU) return dev.latent.autograd.F.addScalar(scaled, constant);
        /* on a device: x + c as a two-tensor add (the same float rounding as addScalar), c uploaded for this batch */
        Tensor c = Tensor.of(dev.latent.autograd.Graph.current().scope(), on, new float[] {constant}, scaled.value().shape());
        return dev.latent.autograd.F.add(scaled, Var.constant(c));
    }

    /** The constant term of {@link #bitsPerDim}: (n D 0.5 log 2 pi - sum ldPre) / (n D ln 2) + 8, rounded to float. */
    static float bpdConstant(Tensor ldPre, long n, long d) {
        double preSum = 0;
        for (long i = 0; i < n; i++) preSum += ldPre.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i);
        return (float) ((n * d * 0.5 * Math.log(2 * Math.PI) - preSum) / (n * d * Math.log(2)) + 8.0);
    }
}
