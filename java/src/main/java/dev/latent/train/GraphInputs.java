package dev.latent.train;

import dev.latent.cuda.DeviceBuffer;
import dev.latent.cuda.Staging;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

/**
 * The inputs a training step captured into a CUDA graph reads from the host (a batch of images, drawn noise, a Philox
 * key, a per-batch constant), in fixed device memory: one CUDA buffer holding a slot per input (each at a 64-byte
 * boundary), views of which the step's code uses as its input tensors, and which {@link #stage} rewrites before every
 * step in ONE asynchronous upload from page-locked staging (the host does not wait; one staging slot per step however
 * many inputs there are). A replayed graph reads whatever was staged last, in stream order.
 */
public final class GraphInputs {
    private final Tensor buf;
    private final long[] at, numel;
    private final Tensor[] views;

    /** Slots of the given shapes (floats), on CUDA, allocated in {@code scope}. */
    public GraphInputs(Scope scope, long[]... shapes) {
        at = new long[shapes.length];
        numel = new long[shapes.length];
        long total = 0;
        for (int i = 0; i < shapes.length; i++) {
            long n = 1;
            for (long d : shapes[i]) n = Math.multiplyExact(n, d);
            at[i] = total;
            numel[i] = n;
            total += (n + 15) / 16 * 16;   // 64-byte boundaries
        }
        buf = Tensor.zeros(scope, Device.CUDA, Math.max(16, total));
        views = new Tensor[shapes.length];
        for (int i = 0; i < shapes.length; i++) views[i] = buf.slice(0, at[i], at[i] + numel[i]).reshape(shapes[i]);
    }

    /** Input slot i as a CUDA tensor of its shape (a view: the same device address every step). */
    public Tensor get(int i) { return views[i]; }

    /**
     * Writes every slot from the host: {@code srcs[i]} (a contiguous CPU tensor of slot i's size, or null to leave the slot
     * as it is) in one asynchronous upload. Call it before the step that reads them, outside the captured region.
     */
    public void stage(Tensor... srcs) {
        if (srcs.length != views.length) throw new IllegalArgumentException("GraphInputs.stage: " + srcs.length + " tensors for " + views.length + " slots");
        for (int i = 0; i < srcs.length; i++)
            if (srcs[i] != null && (srcs[i].device() != Device.CPU || !srcs[i].isContiguous() || srcs[i].numel() != numel[i]))
                throw new IllegalArgumentException("GraphInputs.stage: slot " + i + " takes a contiguous CPU tensor of " + numel[i]
                        + " floats, got " + srcs[i] + " on " + srcs[i].device());
        int last = srcs.length - 1;
        while (last >= 0 && srcs[last] == null) last--;
        if (last < 0) return;
        int first = 0;
        while (srcs[first] == null) first++;
        long from = at[first] * 4, bytes = (at[last] + numel[last]) * 4 - from;
        DeviceBuffer dst = DeviceBuffer.of(buf.deviceBuffer()).slice(from, bytes);
        if (bytes > Staging.MAX_BYTES)
            throw new IllegalArgumentException("GraphInputs.stage: " + bytes + " bytes exceed what staging holds (" + Staging.MAX_BYTES + "): a smaller batch");
        for (int i = first; i <= last; i++)   // a null slot between staged ones would be overwritten by the one upload
            if (srcs[i] == null) throw new IllegalArgumentException("GraphInputs.stage: slot " + i + " is null between staged slots");
        int lo = first, hi = last;
        Staging.upload(dst, bytes, h -> {
            for (int i = lo; i <= hi; i++) MemorySegment.copy(srcs[i].segment(), 0, h, at[i] * 4 - from, numel[i] * 4);
        });
    }

    /**
     * The trainers' {@code cudaGraph(true)} guard: an IllegalArgumentException "FAMILY: --cuda-graph WHY" off CUDA, at a
     * precision other than fp32 (graphs are checked with fp32 only), or for {@code familyWhy} (a reason of the family's
     * own that its step cannot be captured; null: none).
     */
    public static void requireCapturable(String family, Device device, dev.latent.tensor.Precision precision, String familyWhy) {
        String why = device != Device.CUDA ? "needs --device cuda (running on " + device + ")"
                : precision != dev.latent.tensor.Precision.FP32 ? "is checked with fp32 only, not " + precision
                : familyWhy;
        if (why != null) throw new IllegalArgumentException(family + ": --cuda-graph " + why);
    }

    /** A CPU tensor of 4 floats whose 16 bytes are the Philox key (seed, stream) as two int64: the form the device reads. */
    public static Tensor rngKey(Scope scope, long seed, long stream) {
        Tensor k = Tensor.zeros(scope, 4);
        k.segment().set(JAVA_LONG_UNALIGNED, 0, seed);
        k.segment().set(JAVA_LONG_UNALIGNED, 8, stream);
        return k;
    }

    @Override public String toString() { return "GraphInputs" + Arrays.toString(numel); }
}
