package dev.latent.optim;

import dev.latent.autograd.FlatParams;
import dev.latent.autograd.Var;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW with decoupled weight decay (PyTorch's order), one fused native pass over (param, grad, m, v). Weight decay
 * applies to 2-D+ tensors only (matrices and embedding tables), as nanoGPT and the reference do. Global-norm
 * clipping is folded into the same pass as a gradient scale.
 *
 * <p><b>One buffer per model.</b> The constructor packs the parameters it is given into one {@link FlatParams}
 * (one parameter buffer, one gradient buffer; the Vars now hold views of it) and keeps m and v as two buffers of
 * the same layout. A step is then one gradient-norm pass (only when clipping is on, or when {@link #gradNorm()} is
 * asked for) and one lt_adamw call per group: parameters without weight decay (vectors) and with it (matrices) are
 * two groups when {@code weightDecay > 0}, else one; a parameter that received no gradient this step is skipped as
 * before, which splits its group's call around it. Every element sees the same float operations as the former
 * per-parameter loop, so the bits are unchanged (the norm too: see {@link FlatParams#gradSumOfSquares()}).
 * Create the optimizer after moving the model ({@code model.to}); a model moved later is packed again on its new
 * device at the next {@link #to} or update. The parameters' tensors from before packing stay allocated in their
 * scope (one extra copy of the weights) until it closes.
 */
public final class AdamW {
    public final float beta1, beta2, eps, weightDecay;
    private final Scope scope;
    private final Map<String, Var> params;
    private FlatParams flat;
    private Tensor m, v;   /* flat moments, the layout of flat */
    private final Map<String, Tensor[]> state = new LinkedHashMap<>();
    private long step;

    public AdamW(Scope scope, Map<String, Var> params, float beta1, float beta2, float eps, float weightDecay) {
        this.scope = scope;
        this.params = new LinkedHashMap<>(params);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        pack();
        m = Tensor.zeros(scope, flat.device(), flat.values().numel());   /* state lives where its parameters do */
        v = Tensor.zeros(scope, flat.device(), flat.values().numel());
        views();
    }

    private void pack() {
        flat = FlatParams.pack(scope, params, weightDecay > 0 ? p -> p.value().rank() >= 2 ? 0 : 1 : p -> 0);
    }

    private void views() {
        state.clear();
        for (int i = 0; i < flat.size(); i++) {
            long o = flat.offset(i), n = flat.numel(i);
            long[] shape = flat.var(i).shape();
            state.put(flat.names().get(i), new Tensor[] {m.slice(0, o, o + n).reshape(shape), v.slice(0, o, o + n).reshape(shape)});
        }
    }

    /** Packs again when the parameters left the buffer (a model moved after this optimizer was made). */
    private void ensurePacked() {
        if (!flat.intact()) pack();
    }

    private void checkDevices() {
        if (flat.device() != m.device())
            throw new IllegalStateException("AdamW: the parameters are on " + flat.device() + " but the moments on " + m.device()
                    + "; call to(scope, " + flat.device() + ") after moving the model");
    }

    public long step() { return step; }

    /**
     * Moves the moment estimates to {@code device} (copies in {@code scope}), after the parameters moved there; packs the
     * moved parameters into a buffer on {@code device}.
     */
    public void to(Scope scope, Device device) {
        if (m.device() != device) {
            m = m.to(scope, device);
            v = v.to(scope, device);
            views();
        }
        if (!flat.intact() && params.values().stream().allMatch(p -> p.value().device() == device)) pack();
    }

    public void setStep(long s) { step = s; }

    /**
     * (m, v) of each parameter by name, for checkpoints: views of the two moment buffers (write into them to restore;
     * the arrays are replaced by {@link #to}, so ask again after a move).
     */
    public Map<String, Tensor[]> state() { return state; }

    /**
     * The packed parameters and their gradient buffer (layout, segments, one-pass norm): for code that works on a
     * model's gradients as a whole, such as a device-side norm or an all-reduce. Replaced when the optimizer packs
     * again (a moved model).
     */
    public FlatParams flat() {
        ensurePacked();
        return flat;
    }

    /** The parameters this optimizer updates, by name (the map given to the constructor, unmodifiable). */
    public Map<String, Var> params() { return Collections.unmodifiableMap(params); }

    /**
     * One update at learning rate {@code lr}. With {@code clip > 0} the gradients are scaled so their global L2 norm is
     * at most {@code clip}, and the norm before clipping is returned. With {@code clip <= 0} no norm is computed (no
     * pass over the gradients, no device synchronisation) and the result is NaN: call {@link #gradNorm()} when the
     * norm is wanted anyway.
     */
    public double update(float lr, double clip) {
        return update(lr, clip, clip > 0 ? gradNorm() : Double.NaN);
    }

    /** The global L2 norm of the gradients (what {@link #update} clips): one pass over the gradient buffer. */
    public double gradNorm() {
        ensurePacked();
        return Math.sqrt(flat.gradSumOfSquares());
    }

    /** {@link #update(float, double)} with the gradient norm already computed by {@link #gradNorm()}. */
    public double update(float lr, double clip, double norm) {
        ensurePacked();
        checkDevices();
        float scale = clip > 0 && norm > clip ? (float) (clip / (norm + 1e-6)) : 1f;
        step++;
        int have = flat.syncGrads();
        if (have == 0) return norm;
        Tensor p = flat.values(), g = flat.grads();
        for (int grp = 0; grp < flat.groupCount(); grp++) {
            float wd = grp == 0 && weightDecay > 0 ? weightDecay : 0f;
            long from = -1, to = -1;   /* the current run of consecutive parameters holding a gradient */
            for (int i = 0; i < flat.size(); i++) {
                if (flat.group(i) != grp) continue;
                if (flat.hasGrad(i)) {
                    if (from < 0) from = flat.offset(i);
                    to = flat.offset(i) + flat.numel(i);
                } else if (from >= 0) {
                    adamw(p, g, from, to, lr, wd, scale);
                    from = -1;
                }
            }
            if (from >= 0) adamw(p, g, from, to, lr, wd, scale);
        }
        return norm;
    }

    private void adamw(Tensor p, Tensor g, long from, long to, float lr, float wd, float scale) {
        if (to <= from) return;
        Kernels.adamw(p.slice(0, from, to), g.slice(0, from, to), m.slice(0, from, to), v.slice(0, from, to),
                lr, beta1, beta2, eps, wd, scale, step);
    }
}
