package dev.latent.autograd;

import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToIntFunction;

/**
 * A set of parameters packed into one contiguous buffer, with their gradients in a second one of the same layout:
 * {@link dev.latent.optim.AdamW} packs the parameters it is given, so every model trained through it has one
 * parameter buffer and one gradient buffer per optimizer, on the CPU or the CUDA device.
 *
 * <p><b>Layout.</b> Parameter {@code i} occupies {@code [offset(i), offset(i) + numel(i))} of {@link #values()}
 * and of {@link #grads()}; offsets are multiples of 16 floats (64 bytes, the alignment of every tensor), and
 * the gaps between parameters are zero and stay zero. Parameters are laid out group by group (the
 * {@code group} function given to {@link #pack}; inside a group in the order of the map), so an elementwise
 * update that differs per group (AdamW's weight decay on matrices only) is one call per group over
 * {@link #groupRange}: with one group, one call for the whole model.
 *
 * <p><b>Parameters.</b> {@link #pack} copies each parameter's current value into the buffer and makes the
 * {@link Var} hold a view of it ({@link Var#value()} returns the view from then on: read parameters through their
 * Var, not through a Tensor taken before packing). {@link Var#to} (a model moved to another device) replaces the
 * view with a standalone copy; {@link #intact()} then says false and the owner packs again.
 *
 * <p><b>Gradients.</b> While packed, a backward pass ({@link Graph#backward}) writes each parameter's gradient
 * into its slot of {@link #grads()}: the first gradient a parameter receives in a graph is copied there, later ones
 * added in place (the bits of {@code F.add}), and {@link Var#grad()} is a Var over the slot. Gradients that
 * reach a parameter only through a {@code createGraph} pass (WGAN-GP's penalty) stay graph Vars; the optimizer
 * copies them into the slots ({@link #syncGrads()}). A slot's content is this graph's gradient only while
 * {@link #hasGrad} is true (the Var's grad is cleared when the graph closes; the slot is not), so readers use
 * {@link #hasGrad} or {@link #gradSegments()}; {@link #zeroGrad()} is one memset for code that wants zeros.
 *
 * <p><b>Norm.</b> {@link #gradSumOfSquares()} is the global squared L2 norm of the gradients that exist, in one
 * pass: on the CPU one native call (lt_sumsq_segments) whose bits equal the old per-parameter loop (each
 * parameter chunked from its own start, per-parameter sums added in map order). On CUDA the per-parameter sums
 * (sumsq.cu) come back in one copy (one host synchronisation); {@code Kernels.gradClip} over {@link #grads()} and
 * {@link #gradSegments()} keeps the same double, and AdamW's clip factor, on the device instead (what
 * {@code AdamW.update(lr, clip)} uses on CUDA).
 */
public final class FlatParams {
    /** Parameter offsets are multiples of this many floats (64 bytes). */
    public static final int ALIGN_FLOATS = 16;

    private final String[] names;
    private final Var[] vars;
    private final Tensor[] valueViews, gradViews;
    private final long[] offsets, numels;
    private final long[][] groups;   /* [from, to) in floats, per group; to is the end of the group's last parameter */
    private final int[] groupOf;
    private final Tensor values, grads;

    private FlatParams(String[] names, Var[] vars, long[] offsets, long[] numels, int[] groupOf, long[][] groups, Tensor values, Tensor grads) {
        this.names = names;
        this.vars = vars;
        this.offsets = offsets;
        this.numels = numels;
        this.groupOf = groupOf;
        this.groups = groups;
        this.values = values;
        this.grads = grads;
        valueViews = new Tensor[vars.length];
        gradViews = new Tensor[vars.length];
        for (int i = 0; i < vars.length; i++) {
            long[] shape = vars[i].value.shape();
            valueViews[i] = values.slice(0, offsets[i], offsets[i] + numels[i]).reshape(shape);
            gradViews[i] = grads.slice(0, offsets[i], offsets[i] + numels[i]).reshape(shape);
        }
    }

    /**
     * Packs {@code params} (leaves, all on one device, each at most once) into a new value buffer and a zeroed
     * gradient buffer in {@code scope}, on the parameters' device, and rebinds every Var to its view. Groups are
     * {@code group.applyAsInt(var)} >= 0, laid out in increasing order.
     */
    public static FlatParams pack(Scope scope, Map<String, Var> params, ToIntFunction<Var> group) {
        int n = params.size();
        String[] names = params.keySet().toArray(new String[0]);
        Var[] vars = params.values().toArray(new Var[0]);
        Map<Var, String> seen = new IdentityHashMap<>();
        Device device = n == 0 ? Device.CPU : vars[0].value.device();
        int[] groupOf = new int[n];
        int maxGroup = -1;
        for (int i = 0; i < n; i++) {
            Var v = vars[i];
            if (v == null) throw new IllegalArgumentException("parameter " + names[i] + " is null");
            if (v.node != null || !v.requiresGrad)
                throw new IllegalArgumentException("parameter " + names[i] + " is not a parameter leaf: " + v);
            String other = seen.put(v, names[i]);
            if (other != null) throw new IllegalArgumentException("the same parameter is listed twice, as " + other + " and " + names[i]);
            if (v.value.device() != device)
                throw new IllegalArgumentException("parameters on two devices: " + names[0] + " on " + device + ", " + names[i]
                        + " on " + v.value.device() + "; move the model first (Module.to)");
            groupOf[i] = group.applyAsInt(v);
            if (groupOf[i] < 0) throw new IllegalArgumentException("group of " + names[i] + " is " + groupOf[i] + ", must be >= 0");
            maxGroup = Math.max(maxGroup, groupOf[i]);
        }
        long[] offsets = new long[n], numels = new long[n];
        long[][] groups = new long[maxGroup + 1][];
        long at = 0;
        for (int g = 0; g <= maxGroup; g++) {
            long from = at, end = at;
            for (int i = 0; i < n; i++) {
                if (groupOf[i] != g) continue;
                offsets[i] = at;
                numels[i] = vars[i].value.numel();
                end = at + numels[i];
                at = Math.addExact(at, (numels[i] + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS);
            }
            groups[g] = new long[] {from, end};
        }
        Tensor values = Tensor.zeros(scope, device, at), grads = Tensor.zeros(scope, device, at);
        FlatParams f = new FlatParams(names, vars, offsets, numels, groupOf, groups, values, grads);
        for (int i = 0; i < n; i++) {
            if (numels[i] > 0) Kernels.copy(vars[i].value, f.valueViews[i]);
            vars[i].value = f.valueViews[i];
            vars[i].grad = null;
            vars[i].gradSlot = f.gradViews[i];
        }
        return f;
    }

    /** The number of parameters. */
    public int size() { return vars.length; }

    /** Parameter names in map order (index {@code i} of every per-parameter method). */
    public List<String> names() { return Collections.unmodifiableList(Arrays.asList(names)); }

    /** The i-th parameter's Var. */
    public Var var(int i) { return vars[i]; }

    /** The i-th parameter's offset in the buffers, in floats (a multiple of {@link #ALIGN_FLOATS}). */
    public long offset(int i) { return offsets[i]; }

    /** The i-th parameter's element count. */
    public long numel(int i) { return numels[i]; }

    /** The i-th parameter's group (see {@link #pack}). */
    public int group(int i) { return groupOf[i]; }

    /** Number of groups. */
    public int groupCount() { return groups.length; }

    /** {@code [from, to)} in floats: the span of group {@code g}'s parameters (gaps included), empty when it has none. */
    public long[] groupRange(int g) { return groups[g].clone(); }

    /** The parameter buffer: 1-D, every parameter's view lies inside it. */
    public Tensor values() { return values; }

    /** The gradient buffer: 1-D, the same layout as {@link #values()}. */
    public Tensor grads() { return grads; }

    /** Where both buffers live. */
    public Device device() { return values.device(); }

    /** The i-th parameter's view of {@link #values()} (its shape). */
    public Tensor valueView(int i) { return valueViews[i]; }

    /** The i-th parameter's slot in {@link #grads()} (its shape). */
    public Tensor gradView(int i) { return gradViews[i]; }

    /** Whether every parameter still holds its view of this buffer (false after {@link Var#to} or a later pack). */
    public boolean intact() {
        for (int i = 0; i < vars.length; i++) if (vars[i].value != valueViews[i] || vars[i].gradSlot != gradViews[i]) return false;
        return true;
    }

    /** Whether parameter {@code i} received a gradient in the current graph. */
    public boolean hasGrad(int i) { return vars[i].grad != null; }

    /**
     * Makes every gradient that exists live in its slot: a gradient that is not the slot (made by a
     * {@code createGraph} pass, or set while unpacked) is copied in and the Var's grad becomes the slot. Returns
     * how many parameters hold a gradient.
     */
    public int syncGrads() {
        int n = 0;
        for (int i = 0; i < vars.length; i++) {
            Var g = vars[i].grad;
            if (g == null) continue;
            n++;
            if (g.value == gradViews[i]) continue;
            if (numels[i] > 0) Kernels.copy(g.value, gradViews[i]);
            vars[i].grad = new Var(gradViews[i], false, null);
        }
        return n;
    }

    /**
     * The parameters holding a gradient, in map order: {@code [k][0]} offset and {@code [k][1]} length in floats of
     * the k-th one's slot in {@link #grads()}. Call {@link #syncGrads()} first.
     */
    public long[][] gradSegments() {
        List<long[]> out = new ArrayList<>();
        for (int i = 0; i < vars.length; i++) if (vars[i].grad != null) out.add(new long[] {offsets[i], numels[i]});
        return out.toArray(new long[0][]);
    }

    /**
     * The sum of squares of the gradients that exist (the squared global norm), in one pass over {@link #grads()}:
     * the same bits as {@link Graph#sumOfSquares} over the parameters in map order.
     */
    public double gradSumOfSquares() {
        syncGrads();
        long[][] seg = gradSegments();
        long[] off = new long[seg.length], len = new long[seg.length];
        for (int k = 0; k < seg.length; k++) { off[k] = seg[k][0]; len[k] = seg[k][1]; }
        return Kernels.sumOfSquaresSegments(grads, off, len);
    }

    /** One memset of the gradient buffer; every parameter forgets its gradient. */
    public void zeroGrad() {
        for (Var v : vars) v.grad = null;
        Kernels.zero(grads);
    }

    /** Name to (view) tensor, for each parameter: the buffer as a checkpoint would name it. */
    public Map<String, Tensor> namedValues() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (int i = 0; i < vars.length; i++) m.put(names[i], valueViews[i]);
        return m;
    }

    @Override
    public String toString() {
        return "FlatParams[" + vars.length + " parameters, " + values.numel() + " floats, " + groups.length + " group(s), " + device() + "]";
    }
}
