package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Map;

/** PyTorch's nn.ConvTranspose2d (square kernel): weight (in, out, k, k), optional bias (out). */
public final class ConvTranspose2d implements Module {
    public final Var weight, bias;
    public final int stride, pad, outputPadding;

    public ConvTranspose2d(Tensor weight, Tensor bias, int stride, int pad, int outputPadding) {
        this.weight = Var.param(weight);
        this.bias = bias == null ? null : Var.param(bias);
        this.stride = stride;
        this.pad = pad;
        this.outputPadding = outputPadding;
    }

    /** PyTorch's default initialisation: fan_in is computed from weight.size(1) * k * k, as torch does for transposed convs. */
    public static ConvTranspose2d torchDefault(Scope scope, long in, long out, int k, int stride, int pad, int outputPadding,
                                               boolean bias, long seed, long stream) {
        long fan = out * k * k;
        return new ConvTranspose2d(Init.torchDefault(scope, seed, stream, fan, in, out, k, k),
                bias ? Init.torchDefault(scope, seed, stream + 1, fan, out) : null, stride, pad, outputPadding);
    }

    /** Weights N(0, std^2), no bias (the DCGAN paper's init). */
    public static ConvTranspose2d normal(Scope scope, long in, long out, int k, int stride, int pad, double std, long seed, long stream) {
        return new ConvTranspose2d(Init.normal(scope, seed, stream, std, in, out, k, k), null, stride, pad, 0);
    }

    public Var forward(Var x) { return F.convTranspose2d(x, weight, bias, stride, pad, outputPadding); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", weight);
        if (bias != null) out.put(prefix + "bias", bias);
    }
}
