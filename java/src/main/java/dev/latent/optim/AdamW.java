package dev.latent.optim;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW with decoupled weight decay (PyTorch's order), applied per parameter by one fused native pass
 * over (param, grad, m, v). Weight decay applies to 2-D+ tensors only (matrices and embedding tables), as
 * nanoGPT and the reference do. Global-norm clipping is folded into the same pass as a gradient scale.
 */
public final class AdamW {
    public final float beta1, beta2, eps, weightDecay;
    private final Map<String, Var> params;
    private final Map<String, Tensor[]> state = new LinkedHashMap<>();
    private long step;

    public AdamW(Scope scope, Map<String, Var> params, float beta1, float beta2, float eps, float weightDecay) {
        this.params = params;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        for (var e : params.entrySet()) {
            long[] shape = e.getValue().shape();
            var dev = e.getValue().value().device();   /* state lives where its parameter does */
            state.put(e.getKey(), new Tensor[] {Tensor.zeros(scope, dev, shape), Tensor.zeros(scope, dev, shape)});
        }
    }

    public long step() { return step; }

    /** Moves the moment estimates to {@code device} (copies in {@code scope}), after the parameters moved there. */
    public void to(Scope scope, dev.latent.tensor.Device device) {
        for (Tensor[] mv : state.values())
            for (int i = 0; i < mv.length; i++) if (mv[i].device() != device) mv[i] = mv[i].to(scope, device);
    }

    public void setStep(long s) { step = s; }

    /** (m, v) of each parameter by name, for checkpoints. */
    public Map<String, Tensor[]> state() { return state; }

    /**
     * One update at learning rate {@code lr}. With {@code clip > 0} the gradients are scaled so their
     * global L2 norm is at most {@code clip}. Returns the norm before clipping.
     */
    public double update(float lr, double clip) {
        return update(lr, clip, gradNorm());
    }

    /** The global L2 norm of the gradients (what {@link #update} clips). */
    public double gradNorm() {
        return Math.sqrt(Graph.sumOfSquares(params.values().stream().toList()));
    }

    /** {@link #update(float, double)} with the gradient norm already computed by {@link #gradNorm()}. */
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
