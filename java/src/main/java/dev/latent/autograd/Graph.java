package dev.latent.autograd;

import dev.latent.tensor.Precision;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * One step's tape and memory. Ops record the Vars they make, in creation order (which is a topological
 * order); {@link #backward} walks it in reverse. Every activation, gradient and scratch tensor of the step
 * lives in the graph's confined {@link Scope}, freed at {@link #close()}; parameters live elsewhere and
 * only receive {@code grad} Vars pointing into this scope, cleared at close. One graph per thread at a
 * time (a thread-local makes it current for the ops in {@link F}).
 */
public final class Graph implements AutoCloseable {
    private static final ThreadLocal<Graph> CURRENT = new ThreadLocal<>();

    final Scope scope;
    private final List<Var> tape = new ArrayList<>();
    private final List<Var> leavesWithGrad = new ArrayList<>();
    private final Graph previous;
    boolean recording = true;

    private Graph(Scope scope) {
        this.scope = scope;
        this.previous = CURRENT.get();
        CURRENT.set(this);
    }

    /** Opens a graph with a fresh confined scope and makes it current on this thread. */
    public static Graph open() { return new Graph(Scope.confined()); }

    /** A graph that records nothing: forward passes for evaluation and sampling. */
    public static Graph inference() {
        Graph g = open();
        g.recording = false;
        return g;
    }

    /** The graph current on this thread; ops need one for their outputs' memory. */
    public static Graph current() {
        Graph g = CURRENT.get();
        if (g == null) throw new IllegalStateException("no open Graph on this thread: wrap the step in try (Graph g = Graph.open())");
        return g;
    }

    public Scope scope() { return scope; }

    private Precision precision = Precision.FP32;

    /**
     * Operand precision of this graph's matmul GEMMs ({@link F#matmul}, {@link F#linear}, forward and the backward
     * dX = dY W, dW = dY^T X, which run while this graph is current): FP32 (default), TF32 (CUDA only: tensor-core
     * math, operands rounded to TF32) or BF16 (operands rounded to bf16, round to nearest even, products summed in fp32;
     * on the CPU with AVX512_BF16 only, on CUDA always). Everything else stays fp32: reductions, LayerNorm, BatchNorm,
     * softmax and attention's statistics, biases, the optimizer and the master weights. {@link F#attention} rounds the
     * operands of its matmuls (Q K^T, P V and the backward's) the same way, and {@link F#conv2d} /
     * {@link F#convTranspose2d} those of their three passes. Scoped to this graph (one step), not process-wide.
     * The device decides at each op: BF16 on a CPU tensor where this CPU cannot run it is an IllegalStateException
     * naming AVX512_BF16 and the ISA in use ({@link Gemm#bf16Unavailable}), TF32 on a CPU tensor an
     * IllegalArgumentException; nothing emulates either. Setting BF16 already fails here when neither the CPU nor a
     * CUDA device could run it.
     */
    public Graph precision(Precision p) {
        if (p == null) throw new IllegalArgumentException("graph precision is null (FP32, TF32 or BF16)");
        if (p == Precision.BF16 && Gemm.bf16Unavailable() != null && !dev.latent.cuda.Cuda.available()) Gemm.requireBf16();
        precision = p;
        basePrecision = p;
        return this;
    }

    /** The precision set by {@link #precision(Precision)}; ops recorded at another one (inside {@link #at}) carry theirs. */
    private Precision basePrecision = Precision.FP32;

    /**
     * Runs the ops made until {@link PrecisionScope#close()} at {@code p} instead of this graph's precision, and their
     * backward rules too (however much later {@link #backward} runs them): a model keeps a part exact inside a BF16
     * graph (Glow's invertible 1x1 convolution, whose log-determinant is computed from the fp32 weight), or the other
     * way round. Scopes nest; closing restores the precision in force before. BF16 where it cannot run is refused as
     * by {@link #precision(Precision)}. (An op recorded at the graph's own precision runs its backward rule at the
     * precision current when {@link #backward} reaches it: the graph's, unless the backward itself runs inside a scope.)
     */
    public PrecisionScope at(Precision p) {
        if (p == null) throw new IllegalArgumentException("graph precision is null (FP32 or BF16)");
        if (p == Precision.BF16) Gemm.requireBf16();
        PrecisionScope s = new PrecisionScope(precision);
        precision = p;
        return s;
    }

    /** What {@link #at} returns: closing it restores the precision in force before. */
    public final class PrecisionScope implements AutoCloseable {
        private final Precision saved;
        private PrecisionScope(Precision saved) { this.saved = saved; }
        @Override public void close() { precision = saved; }
    }

    /** {@code rule}, run at the precision in force now when that is not the graph's own (see {@link #at}). */
    private Var.Backward atRecordPrecision(Var.Backward rule) {
        if (precision == basePrecision || rule == null) return rule;
        Precision p = precision;
        return gy -> {
            Precision saved = precision;
            precision = p;
            try { return rule.apply(gy); } finally { precision = saved; }
        };
    }

    /** This graph's matmul operand precision (see {@link #precision(Precision)}). */
    public Precision precision() { return precision; }

    final java.util.Set<Var> frozen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());

    /*
     * One-element tensors whose value the host knows without reading the device: the backward's seed (1), and what
     * F.scale makes of a known value (the same float product the device computes). A loss's backward rule that needs
     * its incoming gradient as a number takes it from here instead of copying it back (a host synchronisation on CUDA).
     */
    private final Map<Tensor, Float> known = new IdentityHashMap<>();

    /** The value of a one-element tensor the host knows (see above), or null. */
    Float known(Tensor t) { return known.get(t); }

    void noteKnown(Tensor t, float v) { known.put(t, v); }

    /**
     * Parameters whose gradients the next backward passes may skip (a GAN's generator step back-propagates through
     * the discriminator only for its input gradient): weight-gradient kernels are not run for them. Gradients
     * still flow through them to their inputs.
     */
    public void freeze(java.util.Collection<Var> params) { frozen.addAll(params); }

    public void unfreeze() { frozen.clear(); }

    /** Whether ops record backward rules (false in {@link #inference()} graphs). */
    public boolean isRecording() { return recording; }

    /** A new tensor in this step's scope, contents undefined (the op writes all of it). */
    public Tensor empty(long... shape) { return Tensor.empty(scope, shape); }

    /** A new zeroed tensor in this step's scope. */
    public Tensor zeros(long... shape) { return Tensor.zeros(scope, shape); }

    /** A new tensor on {@code device} in this step's scope, contents undefined. */
    public Tensor empty(dev.latent.tensor.Device device, long... shape) { return Tensor.empty(scope, device, shape); }

    /** A new zeroed tensor on {@code device} in this step's scope. */
    public Tensor zeros(dev.latent.tensor.Device device, long... shape) { return Tensor.zeros(scope, device, shape); }

    /** Records {@code out} if gradients must flow through it; returns it. */
    Var record(Tensor value, String op, Var[] inputs, Var.Backward rule) {
        boolean needs = false;
        if (recording) for (Var v : inputs) needs |= v != null && v.requiresGrad;
        if (!needs) return new Var(value, false, null);
        Var out = new Var(value, true, new Var.Node(op, inputs, atRecordPrecision(rule)));
        tape.add(out);
        return out;
    }

    /**
     * A differentiable op defined outside the library: {@code value} is the forward result (computed by the caller,
     * with any ops or kernels; allocate it in {@link #scope()} so it lives as long as the step), {@code rule}
     * maps d(loss)/d(value) to one gradient per input. Nothing is recorded when no input requires a gradient or
     * the graph is {@link #inference()}. Example (softplus, whose derivative is sigmoid):
     * <pre>{@code
     * Var y = g.custom("softplus", softplusValue(x.value()), gy -> new Var[] {F.mul(gy, F.sigmoid(x))}, x);
     * }</pre>
     * The rule is checked at backward time: it must return exactly one entry per input, each null or shaped as
     * that input. docs/extending.md walks through a complete op.
     */
    public Var custom(String name, Tensor value, Var.Backward rule, Var... inputs) {
        checkCustom(name, rule, inputs);
        if (value == null) throw new IllegalArgumentException("custom op '" + name + "': value is null");
        Var.Backward checked = gy -> checkGrads(name, inputs, rule.apply(gy));
        return record(value, name, inputs.clone(), checked);
    }

    /**
     * A differentiable op with several outputs (e.g. a fused kernel that returns a result and a statistic): one
     * Var per value, and one rule that receives every output's gradient at once (null where none reached it).
     */
    public Var[] custom(String name, Tensor[] values, Var.MultiBackward rule, Var... inputs) {
        checkCustom(name, rule, inputs);
        if (values == null || values.length == 0) throw new IllegalArgumentException("custom op '" + name + "': no output values");
        for (int k = 0; k < values.length; k++)
            if (values[k] == null) throw new IllegalArgumentException("custom op '" + name + "': value " + k + " is null");
        return recordMulti(values, name, inputs.clone(), gys -> checkGrads(name, inputs, rule.apply(gys)));
    }

    private static void checkCustom(String name, Object rule, Var[] inputs) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("custom op: name is empty");
        if (rule == null) throw new IllegalArgumentException("custom op '" + name + "': rule is null");
        if (inputs == null || inputs.length == 0) throw new IllegalArgumentException("custom op '" + name + "': no inputs");
        for (int i = 0; i < inputs.length; i++)
            if (inputs[i] == null) throw new IllegalArgumentException("custom op '" + name + "': input " + i + " is null");
    }

    private static Var[] checkGrads(String name, Var[] inputs, Var[] gs) {
        if (gs == null || gs.length != inputs.length)
            throw new IllegalStateException("custom op '" + name + "': its backward rule returned "
                    + (gs == null ? "null" : gs.length + " gradients") + " for " + inputs.length + " inputs");
        for (int i = 0; i < gs.length; i++)
            if (gs[i] != null && !java.util.Arrays.equals(gs[i].shape(), inputs[i].shape()))
                throw new IllegalStateException("custom op '" + name + "': gradient " + i + " has shape "
                        + java.util.Arrays.toString(gs[i].shape()) + ", input " + i + " has "
                        + java.util.Arrays.toString(inputs[i].shape()));
        return gs;
    }

    /** Records the outputs of one multi-output node (all requiring a gradient, or none). */
    Var[] recordMulti(Tensor[] values, String op, Var[] inputs, Var.MultiBackward rule) {
        boolean needs = false;
        if (recording) for (Var v : inputs) needs |= v != null && v.requiresGrad;
        Var[] outs = new Var[values.length];
        if (!needs) {
            for (int k = 0; k < values.length; k++) outs[k] = new Var(values[k], false, null);
            return outs;
        }
        Var.MultiBackward r = rule;
        if (precision != basePrecision && rule != null) {   /* as atRecordPrecision, for a multi-output rule */
            Precision p = precision;
            r = gys -> {
                Precision saved = precision;
                precision = p;
                try { return rule.apply(gys); } finally { precision = saved; }
            };
        }
        Var.Node node = new Var.Node(op, inputs, null, outs, r);
        for (int k = 0; k < values.length; k++) {
            outs[k] = new Var(values[k], true, node);
            tape.add(outs[k]);
        }
        return outs;
    }

    /** Back-propagates d(loss)/d(everything) from a scalar loss; gradients land in {@link Var#grad()}. */
    public void backward(Var loss) { backward(loss, false); }

    /**
     * Back-propagates from a scalar. With {@code createGraph} the backward ops are themselves recorded, so
     * the gradients can be differentiated again (WGAN-GP's penalty); ops without a differentiable backward
     * say so when that is asked of them.
     */
    public void backward(Var loss, boolean createGraph) {
        if (loss.value.numel() != 1) throw new IllegalArgumentException("backward needs a scalar loss, got " + loss.value);
        if (!loss.requiresGrad) throw new IllegalStateException("loss does not depend on anything that requires grad");
        for (Var v : tape) v.grad = null;   // a second backward (after createGraph) starts clean
        // Gradients born in this pass are freed as soon as no Var holds them (counted per storage block).
        // With createGraph they may be captured by recorded rules, so nothing is freed early then.
        Refs refs = createGraph ? null : new Refs(scope.mark(), scope.deviceMark());
        Tensor one;
        if (loss.value.device() == dev.latent.tensor.Device.CPU) {
            one = zeros(loss.value.shape());
            one.segment().set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 1f);
        } else {
            one = Tensor.empty(scope, loss.value.device(), loss.value.shape());
            Kernels.setOne(one);   // a device-to-device copy of a resident 1f: no host synchronisation
        }
        known.put(one, 1f);
        Map<Var, Boolean> seen = new IdentityHashMap<>();
        accumulate(loss, new Var(one, false, null), seen, refs);
        java.util.function.Consumer<Var> listener = gradientListener;
        if (listener != null && loss.node == null) {   // a leaf loss: its gradient is the seed, and nothing else gets one
            listener.accept(loss);
            listener = null;
        }
        List<Var>[] due = listener == null ? null : lastUses();
        boolean saved = recording;
        recording = createGraph;
        try {
            for (int i = tape.size() - 1; i >= 0; i--) {
                propagate(tape.get(i), createGraph, seen, refs);
                if (due != null && due[i] != null)   // every use of these leaves is behind us: their gradients are final
                    for (Var leaf : due[i]) if (seen.containsKey(leaf)) listener.accept(leaf);
            }
        } finally {
            recording = saved;
        }
    }

    /** Runs one tape entry's backward rule and accumulates into its inputs (nothing when no gradient reached it). */
    private void propagate(Var v, boolean createGraph, Map<Var, Boolean> seen, Refs refs) {
        if (v.node == null) return;
        Var[] outs = v.node.outputs();
        Var[] gs;
        if (outs == null) {
            if (v.grad == null) return;
            gs = v.node.rule().apply(v.grad);
            outs = new Var[] {v};
        } else {
            // A multi-output node runs once, at its first output: every output's gradient is complete then.
            if (v != outs[0]) return;
            Var[] gys = new Var[outs.length];
            boolean any = false;
            for (int k = 0; k < outs.length; k++) any |= (gys[k] = outs[k].grad) != null;
            if (!any) return;
            gs = v.node.multi().apply(gys);
        }
        Var[] ins = v.node.inputs();
        if (refs != null) for (Var gv : gs) refs.hold(gv);
        for (int j = 0; j < ins.length; j++)
            if (ins[j] != null && ins[j].requiresGrad && gs[j] != null) accumulate(ins[j], gs[j], seen, refs);
        if (refs != null) for (Var gv : gs) refs.drop(gv);
        if (!createGraph) {
            for (Var o : outs) {
                if (refs != null) refs.drop(o.grad);
                o.grad = null;   // intermediate grads are dead once propagated
            }
        }
    }

    /**
     * For each tape index i, the gradient-requiring leaves whose lowest-indexed consumer is entry i (in the order of
     * their first appearance there), or null: the backward walks the tape downwards, so once it has passed entry i
     * nothing accumulates into those leaves any more.
     */
    @SuppressWarnings("unchecked")
    private List<Var>[] lastUses() {
        List<Var>[] due = new List[tape.size()];
        Map<Var, Boolean> placed = new IdentityHashMap<>();
        for (int i = 0; i < tape.size(); i++) {
            Var.Node node = tape.get(i).node;
            if (node == null) continue;
            for (Var in : node.inputs()) {
                if (in == null || in.node != null || !in.requiresGrad || placed.put(in, Boolean.TRUE) != null) continue;
                if (due[i] == null) due[i] = new ArrayList<>(2);
                due[i].add(in);
            }
        }
        return due;
    }

    private java.util.function.Consumer<Var> gradientListener;

    /**
     * Sets (null: clears) a listener that this graph's {@link #backward} passes call once for each leaf that requires a
     * gradient (parameters and {@link Var#input} leaves) and received one in that pass, as soon as its gradient is
     * final: after its last accumulation of the pass, while the backward continues with the rest of the tape. It runs
     * on the backward's thread, in a deterministic order (the order in which the walk from the loss passes the leaves'
     * first uses in the forward, so the last layers' parameters come first) and before backward returns; an exception
     * it throws ends the backward. Leaves that no gradient reached (unused or {@link #freeze frozen}) are not reported.
     * From the call on, nothing in this pass writes the leaf's {@link Var#grad()} again (for a parameter packed by
     * {@link FlatParams}, its slot of {@link FlatParams#grads()}), so another thread may read it, or replace its
     * contents with values of the same shape (a data-parallel all-reduce of finished gradient buckets overlapping the
     * rest of the backward). Costs one pass over the tape per backward when set, nothing when not.
     */
    public Graph onGradientReady(java.util.function.Consumer<Var> listener) {
        this.gradientListener = listener;
        return this;
    }

    /**
     * d(y)/d(wrt) as a differentiable Var (PyTorch's {@code autograd.grad(y, wrt, create_graph=True)}): the
     * backward ops are recorded, so a loss built from the result (WGAN-GP's gradient penalty) can be
     * back-propagated to the parameters. Gradients that leaves already held are left as they were.
     */
    public Var gradient(Var y, Var wrt) {
        // Every leaf the backward can reach (inputs of recorded nodes without a node of their own), plus wrt:
        // their gradients are set aside and restored, so this call leaves no trace on parameters.
        Map<Var, Var> saved = new IdentityHashMap<>();
        saved.put(wrt, wrt.grad);
        for (Var v : tape)
            for (Var in : v.node.inputs())
                if (in != null && in.node == null && !saved.containsKey(in)) saved.put(in, in.grad);
        for (Var v : saved.keySet()) v.grad = null;
        try {
            backward(y, true);
            Var g = wrt.grad;
            if (g == null) throw new IllegalArgumentException("gradient: the output does not depend on " + wrt);
            return g;
        } finally {
            saved.forEach((v, old) -> v.grad = old);
            for (Var v : tape) v.grad = null;
        }
    }

    /** x.grad += g, out of place (a rule may hand the same gradient to two inputs). */
    private void accumulate(Var x, Var g, Map<Var, Boolean> seen, Refs refs) {
        if (x.node == null && seen.put(x, Boolean.TRUE) == null && x.grad == null) leavesWithGrad.add(x);
        Tensor slot = x.gradSlot;
        if (slot != null && refs != null && slot.device() == g.value.device()) {
            // A packed parameter (FlatParams): its gradient lives in the flat buffer. The first one is copied in, later
            // ones added in place (axpby(1, g, 1, slot): F.add's bits); g itself is not held, so it is freed early.
            if (x.grad == null) {
                Kernels.copy(g.value, slot);
            } else {
                if (x.grad.value != slot) Kernels.copy(x.grad.value, slot);   /* left by a createGraph pass */
                Kernels.axpby(1f, g.value.isContiguous() ? g.value : Kernels.contiguous(scope, g.value), 1f, slot);
            }
            if (x.grad == null || x.grad.value != slot) x.grad = new Var(slot, false, null);
            return;
        }
        if (x.grad == null) {
            x.grad = g;
            if (refs != null) refs.hold(g);
        } else {
            Var old = x.grad;
            x.grad = F.add(old, g);
            if (refs != null) {
                refs.hold(x.grad);
                refs.drop(old);
            }
        }
    }

    /** Holders per storage block of the gradients made during one backward pass. */
    private final class Refs {
        final int mark;
        final long deviceMark;
        final Map<Long, Integer> count = new java.util.HashMap<>();

        Refs(int mark, long deviceMark) {
            this.mark = mark;
            this.deviceMark = deviceMark;
        }

        void hold(Var v) {
            if (v != null) count.merge(v.value.storageAddress(), 1, Integer::sum);
        }

        void drop(Var v) {
            if (v == null) return;
            long a = v.value.storageAddress();
            Integer n = count.get(a);
            if (n == null) return;
            if (n > 1) count.put(a, n - 1);
            else {
                count.remove(a);
                if (v.value.device() == dev.latent.tensor.Device.CPU) scope.releaseSince(mark, a);
                else scope.releaseDeviceSince(deviceMark, a);
            }
        }
    }

    /**
     * Sum of squares of every leaf gradient (for global-norm clipping), one reduction per parameter, added in list
     * order. {@link FlatParams#gradSumOfSquares()} gives the same bits in one pass over a packed model.
     */
    public static double sumOfSquares(List<Var> params) {
        double s = 0;
        for (Var p : params) if (p.grad != null) s += Kernels.sumOfSquares(p.grad.value);
        return s;
    }

    /** Frees the step's memory and clears the gradients it gave to leaves. */
    @Override
    public void close() {
        for (Var v : leavesWithGrad) v.grad = null;
        tape.clear();
        scope.close();
        if (CURRENT.get() == this) {
            if (previous == null) CURRENT.remove();
            else CURRENT.set(previous);
        }
    }
}
