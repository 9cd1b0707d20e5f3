package dev.latent.autograd;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

/**
 * A tensor in the autograd graph: its value, whether gradients flow to it, the node that made it (null
 * for leaves such as parameters and inputs), and its accumulated gradient after {@link Graph#backward}.
 * The gradient is itself a Var, so with {@code createGraph} it can be differentiated again.
 */
public final class Var {
    Tensor value;   /* replaced only by to(): a leaf moving between devices */
    final boolean requiresGrad;
    final Node node;
    Var grad;
    /** While packed by {@link FlatParams}: this parameter's slot in the flat gradient buffer (backward writes there). */
    Tensor gradSlot;
    /**
     * The bf16 copy of value that the op producing it wrote for a GEMM reading it as A (h-bf16act: GPT's LayerNorms and
     * GELU at BF16 on CUDA, dev.latent.ops.GemmInputs), or null; the consuming F.linear / F.matmul reads it and releases it.
     */
    dev.latent.ops.KeptOperands bf16;

    Var(Tensor value, boolean requiresGrad, Node node) {
        this.value = value;
        this.requiresGrad = requiresGrad;
        this.node = node;
    }

    /** A leaf that gradients flow to (a parameter). */
    public static Var param(Tensor value) { return new Var(value, true, null); }

    /** A leaf without gradient (data). */
    public static Var constant(Tensor value) { return new Var(value, false, null); }

    /** A leaf that gradients flow to but that is not a parameter (e.g. an input whose gradient we want). */
    public static Var input(Tensor value) { return new Var(value, true, null); }

    public Tensor value() { return value; }
    public boolean requiresGrad() { return requiresGrad; }
    public long[] shape() { return value.shape(); }
    public long size(int dim) { return value.size(dim); }

    /** The accumulated gradient, or null if none reached this Var. */
    public Var grad() { return grad; }

    /**
     * Moves a leaf (a parameter) to {@code device}: its value becomes a copy in {@code scope} (the old one stays in
     * its own scope until that closes), its gradient is forgotten. Between steps only: Vars made from it keep the old value.
     */
    public void to(Scope scope, Device device) {
        if (node != null) throw new IllegalStateException("only leaves move between devices, not the result of " + node.op() + ": " + this);
        if (value.device() != device) {
            value = value.to(scope, device);
            gradSlot = null;   /* the flat buffer stayed behind: its owner packs again (FlatParams.intact) */
        }
        grad = null;
    }

    /** Forgets the gradient (parameters between steps). */
    public void zeroGrad() { grad = null; }

    @Override
    public String toString() { return "Var" + value; }

    /**
     * How a non-leaf Var was made: its inputs and the rule mapping its gradient to theirs. A node with several
     * outputs ({@code outputs != null}, {@code multi} its rule) is recorded once per output, all at once; the
     * backward pass runs its rule a single time, when it reaches the first output (by then every output's
     * gradient is complete, since all consumers were recorded after all outputs).
     */
    record Node(String op, Var[] inputs, Backward rule, Var[] outputs, MultiBackward multi) {
        Node(String op, Var[] inputs, Backward rule) { this(op, inputs, rule, null, null); }
    }

    /**
     * The backward rule of a one-output op: given d(loss)/d(output), returns d(loss)/d(input) for each input, in
     * the order of the op's inputs (null where an input gets no gradient). Write it with differentiable ops
     * ({@link F}, or other custom ops) and it supports double backward too. See {@link Graph#custom}.
     */
    @FunctionalInterface
    public interface Backward {
        Var[] apply(Var gradOut);
    }

    /**
     * The backward rule of a multi-output op: {@code gradOuts[k]} is d(loss)/d(output k), or null where no
     * gradient reached output k (the rule must treat null as zero). Returns one gradient per input, as
     * {@link Backward} does. See {@link Graph#custom(String, Tensor[], MultiBackward, Var...)}.
     */
    @FunctionalInterface
    public interface MultiBackward {
        Var[] apply(Var[] gradOuts);
    }
}
