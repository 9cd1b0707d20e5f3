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
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

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

        private final double clip;   /* the clip its device factor was computed for */

        private GradNorm(double value) {
            this.owner = null;
            this.id = 0;
            this.value = value;
            this.known = true;
            this.clip = Double.NaN;
        }

        private GradNorm(AdamW owner, long id, double clip) {
            this.owner = owner;
            this.id = id;
            this.clip = clip;
        }

        private void current() {
            if (owner.deviceNorms != id)
                throw new IllegalStateException("AdamW: this gradient norm (norm " + id + ") was overwritten by a later one ("
                        + owner.deviceNorms + "); read value() before the next update");
        }

        /**
         * {norm, the value of {@code scalar}} (a one-element tensor on the optimizer's device: a step's loss), read in
         * ONE device-to-host copy on CUDA (the scalar is copied beside the norm on the device first): a training loop
         * that checks both before the update then makes one host synchronisation per step.
         */
        public double[] valueWith(Tensor scalar) {
            if (scalar.numel() != 1 || !scalar.isContiguous())
                throw new IllegalArgumentException("valueWith: a one-element contiguous tensor needed, got " + scalar);
            if (known || scalar.device() != Device.CUDA) {
                float s = scalar.toArray()[0];
                return new double[] {value(), s};
            }
            current();
            owner.clipBuf.deviceBuffer().slice(12, 4).copyFrom(scalar.deviceBuffer());   // float 3, beside the norm and factor
            try (Arena a = Arena.ofConfined()) {
                MemorySegment h = a.allocate(16, 8);
                owner.clipBuf.deviceBuffer().copyTo(h);   // one synchronising copy: sum of squares, factor, scalar
                value = Math.sqrt(h.get(JAVA_DOUBLE, 0));
                known = true;
                return new double[] {value, h.get(JAVA_FLOAT, 12)};
            }
        }

        /** The norm before clipping (NaN when the update did not clip, as {@code clip <= 0} computes no norm). */
        public double value() {
            if (known) return value;
            current();
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
        return update(lr, clip, gradNorm(clip));
    }

    /**
     * The global gradient norm for an update with {@code clip} that follows ({@link #update(float, double, GradNorm)}),
     * computed before it so a caller can check it first: on the CPU {@link #gradNorm()}; on CUDA the norm and the clip
     * factor are computed on the device (no host synchronisation) and read when asked ({@link GradNorm#value()}, or
     * {@link GradNorm#valueWith} together with the step's loss in one copy).
     */
    public GradNorm gradNorm(double clip) {
        if (Double.isNaN(clip)) throw new IllegalArgumentException("gradNorm: clip is NaN");
        ensurePacked();
        if (flat.device() != Device.CUDA) return new GradNorm(gradNorm());
        checkDevices();
        flat.syncGrads();
        long[][] seg = flat.gradSegments();
        if (seg.length == 0) return new GradNorm(0.0);   // no gradient: the host path's norm is 0
        long[] off = new long[seg.length], len = new long[seg.length];
        for (int k = 0; k < seg.length; k++) { off[k] = seg[k][0]; len[k] = seg[k][1]; }
        if (clipBuf == null || clipBuf.device() != Device.CUDA) clipBuf = Tensor.zeros(scope, Device.CUDA, 4);
        Kernels.gradClip(flat.grads(), off, len, clip, clipBuf);
        deviceNorms++;
        return new GradNorm(this, deviceNorms, clip);
    }

    /**
     * {@link #update(float, double)} with the norm {@link #gradNorm(double)} computed for this {@code clip} (and not
     * replaced since): on CUDA the update kernels read the clip factor on the device. Returns {@code norm}.
     */
    public GradNorm update(float lr, double clip, GradNorm norm) {
        if (norm.owner == null) {   // a host value (the CPU, or no gradient)
            update(lr, clip, norm.value);
            return norm;
        }
        if (norm.owner != this) throw new IllegalArgumentException("update: the norm was computed by another optimizer");
        norm.current();
        if (Double.compare(norm.clip, clip) != 0 && (norm.clip > 0 || clip > 0))
            throw new IllegalArgumentException("update: the norm's clip factor was computed for clip " + norm.clip + ", not " + clip);
        ensurePacked();
        checkDevices();
        step++;
        if (flat.syncGrads() == 0) return norm;
        apply(lr, 1f, clip > 0 ? clipBuf.slice(0, 2, 3) : null);
        return norm;
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

    // ---- CUDA graphs: an update split into its host half (stage) and its device half (updateStaged) ----
    private Tensor stagedConsts;   /* CUDA: per group, the nine floats of ltk_adamw_consts for the staged step */
    private long stagedStep = -1;

    /**
     * The host half of an update for a step captured into a CUDA graph: the step count advances and this step's constants
     * (learning rate {@code lr}, bias corrections) go to device memory by an asynchronous upload (no host synchronisation).
     * Call it before every {@link #updateStaged}, outside the captured region; CUDA only.
     */
    public void stage(float lr) {
        ensurePacked();
        checkDevices();
        if (flat.device() != Device.CUDA) throw new IllegalStateException("AdamW.stage: for parameters on CUDA (CUDA graphs), these are on " + flat.device());
        if (stagedConsts == null) stagedConsts = Tensor.zeros(scope, Device.CUDA, 9L * Math.max(1, flat.groupCount()));
        step++;
        for (int grp = 0; grp < flat.groupCount(); grp++)
            Kernels.stageAdamwConsts(stagedConsts, grp, lr, beta1, beta2, eps, grp == 0 && weightDecay > 0 ? weightDecay : 0f, step);
        stagedStep = step;
    }

    /**
     * The device half of {@link #update(float, double)}, after {@link #stage}: global-norm clipping on the device when
     * {@code clip > 0} (the returned norm read only when asked) and the update kernels reading the staged constants. It
     * changes no host state that the next step depends on and passes nothing by value that changes between steps, so a
     * CUDA graph captured over it replays it; the bits equal {@code update(lr, clip)}. The parameters holding a gradient
     * must be the same every step (a graph replays the launches it captured).
     */
    public GradNorm updateStaged(double clip) {
        if (stagedStep != step) throw new IllegalStateException("AdamW.updateStaged: call stage(lr) first (staged step " + stagedStep + ", step " + step + ")");
        GradNorm norm = clip > 0 ? gradNorm(clip) : new GradNorm(Double.NaN);
        if (flat.syncGrads() == 0) return norm;
        Tensor p = flat.values(), g = flat.grads(), deviceScale = clip > 0 ? clipBuf.slice(0, 2, 3) : null;
        for (int grp = 0; grp < flat.groupCount(); grp++) {
            long from = -1, to = -1;
            for (int i = 0; i < flat.size(); i++) {
                if (flat.group(i) != grp) continue;
                if (flat.hasGrad(i)) {
                    if (from < 0) from = flat.offset(i);
                    to = flat.offset(i) + flat.numel(i);
                } else if (from >= 0) {
                    adamwStaged(p, g, from, to, grp, deviceScale);
                    from = -1;
                }
            }
            if (from >= 0) adamwStaged(p, g, from, to, grp, deviceScale);
        }
        return norm;
    }

    /**
     * CUDA: the two floats whose bytes are the double sum of squares of the last device-side norm ({@link
     * #gradNorm(double)}, {@link #updateStaged}): a view a captured step can copy into its outputs (norm = sqrt of it).
     */
    public Tensor deviceNormSumOfSquares() {
        if (clipBuf == null || clipBuf.device() != Device.CUDA) throw new IllegalStateException("AdamW: no device-side norm computed yet");
        return clipBuf.slice(0, 0, 2);
    }

    private void adamwStaged(Tensor p, Tensor g, long from, long to, int grp, Tensor deviceScale) {
        if (to <= from) return;
        Kernels.adamwStaged(p.slice(0, from, to), g.slice(0, from, to), m.slice(0, from, to), v.slice(0, from, to), stagedConsts, grp,
                deviceScale);
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
