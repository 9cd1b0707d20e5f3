package dev.latent.optim;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW as it was before the flat buffer (commit 4416b84): one lt_sumsq per parameter for the norm, one lt_adamw per
 * parameter for the update, parameters left where they are. The oracle the flat optimizer must match bit for bit.
 */
public final class LegacyAdamW {
    final float beta1, beta2, eps, weightDecay;
    final Map<String, Var> params;
    public final Map<String, Tensor[]> state = new LinkedHashMap<>();
    long step;

    public LegacyAdamW(Scope scope, Map<String, Var> params, float beta1, float beta2, float eps, float weightDecay) {
        this.params = params;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        for (var e : params.entrySet()) {
            long[] shape = e.getValue().shape();
            var dev = e.getValue().value().device();
            state.put(e.getKey(), new Tensor[] {Tensor.zeros(scope, dev, shape), Tensor.zeros(scope, dev, shape)});
        }
    }

    public double gradNorm() { return Math.sqrt(Graph.sumOfSquares(params.values().stream().toList())); }

    public double update(float lr, double clip, double norm) {
        float scale = clip > 0 && norm > clip ? (float) (clip / (norm + 1e-6)) : 1f;
        step++;
        for (var e : params.entrySet()) {
            Var p = e.getValue();
            if (p.grad() == null) continue;
            Tensor[] mv = state.get(e.getKey());
            float wd = p.value().rank() >= 2 ? weightDecay : 0f;
            Tensor g = p.grad().value();
            Kernels.adamw(p.value(), g.isContiguous() ? g : g.contiguous(), mv[0], mv[1], lr, beta1, beta2, eps, wd, scale, step);
        }
        return norm;
    }
}
