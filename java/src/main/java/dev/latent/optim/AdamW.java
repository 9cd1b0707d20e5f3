package dev.latent.optim;

import dev.latent.autograd.FlatParams;
import dev.latent.autograd.Var;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

/**
 * AdamW with decoupled weight decay (PyTorch's order), one fused native pass over (param, grad, m, v). Weight decay
 * applies to 2-D+ tensors only (matrices and embedding tables), as nanoGPT and the reference do. Global-norm
 * clipping is folded into the same pass as a gradient scale.
 *
 * <p><b>One buffer per model.</b> The constructor packs the parameters it is given into one {@link FlatParams}
 * (one parameter buffer, one gradient buffer; the Vars now hold views of it) and keeps m and v as two buffers of
 * the same layout. A step is then one gradient-norm pass (only when clipping is on, or when {@link #gradNorm()} is
 * asked for; on CUDA on the device, see {@link #update(float, double)}) and one lt_adamw call per group: parameters without weight decay (vectors) and with it (matrices) are
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
    private Tensor clipBuf;      /* CUDA: bytes [0, 8) the last device norm's sum of squares (a double), float 2 its clip factor */
    private long deviceNorms;    /* clipped updates on CUDA so far: a GradNorm reads only the latest */

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
     * The global gradient norm of one {@link #update(float, double)}, read when asked: on the CPU it is already a
     * double; on CUDA it stays on the device until {@link #value()} copies it back (one device-to-host copy, the only
     * host synchronisation a clipped step would make; a training loop reads it once per logging interval, or never).
     * Read it before this optimizer's next clipped update, which overwrites the device copy
     * ({@link IllegalStateException} after that).
     */
    public static final class GradNorm {
        private final AdamW owner;
        private final long id;
        private double value;
        private boolean known;

        private GradNorm(double value) {
            this.owner = null;
            this.id = 0;
            this.value = value;
            this.known = true;
        }

        private GradNorm(AdamW owner, long id) {
            this.owner = owner;
            this.id = id;
        }

        /** The norm before clipping (NaN when the update did not clip, as {@code clip <= 0} computes no norm). */
        public double value() {
            if (known) return value;
            if (owner.deviceNorms != id)
                throw new IllegalStateException("AdamW: this gradient norm (update " + id + ") was overwritten by a later clipped update ("
                        + owner.deviceNorms + "); read value() before the next update");
            try (Arena a = Arena.ofConfined()) {
                MemorySegment h = a.allocate(JAVA_DOUBLE);
                owner.clipBuf.deviceBuffer().slice(0, 8).copyTo(h);   // one synchronising copy
                value = Math.sqrt(h.get(JAVA_DOUBLE, 0));                // gradNorm()'s expression on the same double
            }
            known = true;
            return value;
        }

        /** Whether {@link #value()} still has to copy the norm from the device. */
        public boolean onDevice() { return !known; }

        @Override
        public String toString() { return known ? "GradNorm[" + value + "]" : "GradNorm[on the device]"; }
    }

    /**
     * One update at learning rate {@code lr}. With {@code clip > 0} the gradients are scaled so their global L2 norm is
     * at most {@code clip} (factor {@code clip / (norm + 1e-6)} when the norm exceeds it), and the norm before clipping
     * is returned. On CUDA the norm and the factor are computed on the device ({@link Kernels#gradClip}: one pass over
     * the gradient buffer) and the update kernels read the factor there, so the step makes no host synchronisation; the
     * returned norm stays on the device until {@link GradNorm#value()}. The bits equal {@code update(lr, clip,
     * gradNorm())} on either device. With {@code clip <= 0} no norm is computed (no pass over the gradients) and the
     * result is NaN: call {@link #gradNorm()} when the norm is wanted anyway.
     */
    public GradNorm update(float lr, double clip) {
        if (!(clip > 0)) return new GradNorm(update(lr, clip, Double.NaN));
        ensurePacked();
        if (flat.device() != Device.CUDA) return new GradNorm(update(lr, clip, gradNorm()));
        checkDevices();
        flat.syncGrads();
        long[][] seg = flat.gradSegments();
        if (seg.length == 0) {   // no gradient: nothing to clip or update (the host path's norm is 0 then)
            step++;
            return new GradNorm(0.0);
        }
        long[] off = new long[seg.length], len = new long[seg.length];
        for (int k = 0; k < seg.length; k++) { off[k] = seg[k][0]; len[k] = seg[k][1]; }
        if (clipBuf == null || clipBuf.device() != Device.CUDA) clipBuf = Tensor.zeros(scope, Device.CUDA, 4);
        Kernels.gradClip(flat.grads(), off, len, clip, clipBuf);
        deviceNorms++;
        step++;
        apply(lr, 1f, clipBuf.slice(0, 2, 3));
        return new GradNorm(this, deviceNorms);
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
        apply(lr, scale, null);
        return norm;
    }

    /** The update kernels, one per run of parameters holding a gradient, scaled by deviceScale (CUDA) or else by scale. */
    private void apply(float lr, float scale, Tensor deviceScale) {
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
                    adamw(p, g, from, to, lr, wd, scale, deviceScale);
                    from = -1;
                }
            }
            if (from >= 0) adamw(p, g, from, to, lr, wd, scale, deviceScale);
        }
    }

    private void adamw(Tensor p, Tensor g, long from, long to, float lr, float wd, float scale, Tensor deviceScale) {
        if (to <= from) return;
        if (deviceScale != null)
            Kernels.adamw(p.slice(0, from, to), g.slice(0, from, to), m.slice(0, from, to), v.slice(0, from, to),
                    lr, beta1, beta2, eps, wd, deviceScale, step);
        else
            Kernels.adamw(p.slice(0, from, to), g.slice(0, from, to), m.slice(0, from, to), v.slice(0, from, to),
                    lr, beta1, beta2, eps, wd, scale, step);
    }
}
