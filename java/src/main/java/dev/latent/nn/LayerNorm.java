package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;

import java.util.Map;

/** LayerNorm over the last dimension, weight 1 and bias 0 at init, eps 1e-5 (PyTorch's defaults). */
public final class LayerNorm implements Module {
    public final Var weight, bias;
    private final float eps;
    private final boolean gemmInput;

    public LayerNorm(Scope scope, long dim) { this(scope, dim, false); }

    /**
     * gemmInput: every output is the A operand of a linear or matmul (GPT's LayerNorms), so at BF16 on CUDA the kernel
     * writes its bf16 copy for that GEMM too ({@link F#layerNorm(Var, Var, Var, float, boolean)}); the same bits.
     */
    public LayerNorm(Scope scope, long dim, boolean gemmInput) {
        this.weight = Var.param(Init.constant(scope, 1f, dim));
        this.bias = Var.param(Init.constant(scope, 0f, dim));
        this.eps = 1e-5f;
        this.gemmInput = gemmInput;
    }

    public Var forward(Var x) { return F.layerNorm(x, weight, bias, eps, gemmInput); }

    /** {s, forward(s)} for s = x + a, in one fused pass ({@link F#layerNormResidual}): the same bits as add then forward. */
    public Var[] forwardResidual(Var x, Var a) { return F.layerNormResidual(x, a, weight, bias, eps, gemmInput); }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", weight);
        out.put(prefix + "bias", bias);
    }
}
