package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Map;

/** y = x W^T + b; W (out, in) ~ N(0, std), b = 0 (nanoGPT's init). */
public final class Linear implements Module {
    public final Var weight, bias;

    public Linear(Scope scope, long in, long out, boolean bias, long seed, long stream, double std) {
        this.weight = Var.param(Init.normal(scope, seed, stream, std, out, in));
        this.bias = bias ? Var.param(Init.constant(scope, 0f, out)) : null;
    }

    /** From given tensors: weight (out, in), bias (out) or null. */
    public Linear(Scope scope, Tensor weight, Tensor bias) {
        this.weight = Var.param(weight);
        this.bias = bias == null ? null : Var.param(bias);
    }

    public Var forward(Var x) { return F.linear(x, weight, bias); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", weight);
        if (bias != null) out.put(prefix + "bias", bias);
    }
}
