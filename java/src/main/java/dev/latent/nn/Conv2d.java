package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Map;

/** PyTorch's nn.Conv2d (square kernel, equal stride and padding): weight (out, in, k, k), optional bias (out). */
public final class Conv2d implements Module {
    public final Var weight, bias;
    public final int stride, pad;

    /** Weights from {@code init} (shape (out, in, k, k)); bias zero-initialised unless {@code biasInit} given. */
    public Conv2d(Tensor weight, Tensor bias, int stride, int pad) {
        this.weight = Var.param(weight);
        this.bias = bias == null ? null : Var.param(bias);
        this.stride = stride;
        this.pad = pad;
    }

    /** PyTorch's default initialisation (U(+-1/sqrt(in k k)) for weight and bias). */
    public static Conv2d torchDefault(Scope scope, long in, long out, int k, int stride, int pad, boolean bias, long seed, long stream) {
        long fan = in * k * k;
        return new Conv2d(Init.torchDefault(scope, seed, stream, fan, out, in, k, k),
                bias ? Init.torchDefault(scope, seed, stream + 1, fan, out) : null, stride, pad);
    }

    /** Weights N(0, std^2), no bias (the DCGAN paper's init). */
    public static Conv2d normal(Scope scope, long in, long out, int k, int stride, int pad, double std, long seed, long stream) {
        return new Conv2d(Init.normal(scope, seed, stream, std, out, in, k, k), null, stride, pad);
    }

    public Var forward(Var x) { return F.conv2d(x, weight, bias, stride, pad); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", weight);
        if (bias != null) out.put(prefix + "bias", bias);
    }
}
