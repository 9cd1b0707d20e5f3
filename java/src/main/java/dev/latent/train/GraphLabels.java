package dev.latent.train;

import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * One set of class labels a training step captured into a CUDA graph reads (a conditional VAE's labels, a conditional
 * DCGAN's real and fake labels): a fixed host segment the step's code passes to the nets as its int32 ids, bound
 * ({@link Kernels#bindIds}) to two slots of a {@link GraphInputs} (the ids and the embedding backward's grouping of
 * them), which {@link #stage} fills with the batch's labels beside the images, in the step's one staged upload. The
 * embedding forward and backward then read the slots and upload nothing, so each replay sees its own step's labels.
 */
public final class GraphLabels {
    private final MemorySegment host;
    private final long n, vocab;

    /** n labels in [0, vocab), the host segment allocated in {@code scope} (it lives as long as the graph). */
    public GraphLabels(Scope scope, long n, long vocab) {
        if (n < 1 || vocab < 1) throw new IllegalArgumentException("GraphLabels: " + n + " labels over " + vocab + " classes");
        this.n = n;
        this.vocab = vocab;
        host = scope.allocate(4 * n);
    }

    /** The shapes of the two slots to give {@link GraphInputs}: the ids, then their grouping (int32s held in float slots). */
    public long[][] slotShapes() { return new long[][] {{n}, {Kernels.embeddingGroupInts(n, vocab)}}; }

    /** Binds the host segment to the two slots (after the GraphInputs is made; {@link #close} unbinds). */
    public GraphLabels bind(Tensor idsSlot, Tensor groupsSlot) {
        Kernels.bindIds(host, n, vocab, idsSlot, groupsSlot);
        return this;
    }

    /** The ids the step's code passes to the nets: this batch's labels, on the host (the device reads the bound slots). */
    public MemorySegment ids() { return host; }

    /**
     * Writes {@code labels} (n ids; IllegalArgumentException naming one outside [0, vocab)) into the host segment and
     * returns the two CPU tensors (in {@code sc}) that {@link GraphInputs#stage} uploads into the bound slots: the ids
     * and their grouping, as raw int32 bits.
     */
    public Tensor[] stage(Scope sc, MemorySegment labels) {
        MemorySegment.copy(labels, 0, host, 0, 4 * n);
        long[][] shapes = slotShapes();
        Tensor ids = Tensor.empty(sc, shapes[0]), groups = Tensor.empty(sc, shapes[1]);
        Kernels.embeddingGroups(host, n, vocab, groups.segment());   /* checks the ids first */
        MemorySegment.copy(host, 0, ids.segment(), 0, 4 * n);
        return new Tensor[] {ids, groups};
    }

    /** As {@link #stage(Scope, MemorySegment)} from an int array. */
    public Tensor[] stage(Scope sc, int[] labels) {
        if (labels.length != n) throw new IllegalArgumentException("GraphLabels.stage: " + labels.length + " labels for " + n);
        MemorySegment s = sc.allocate(4 * n);
        MemorySegment.copy(labels, 0, s, JAVA_INT, 0, labels.length);
        return stage(sc, s);
    }

    /** Unbinds the host segment (the graph is being released). */
    public void close() { Kernels.unbindIds(host); }
}
