package dev.latent.train;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * A training step's scalars (its losses, a KL term; or a few small tensors, a batch's logits) kept where they were computed until someone reads them: on CUDA
 * {@link #capture} copies each one-element tensor into a small buffer this object owns (device-to-device copies: the
 * host does not wait) and the returned {@link Values} reads them back together in ONE device-to-host copy when asked,
 * so a step that is not logged makes no host synchronisation for its losses (issue 18's budget: one scalar read per
 * logging interval). On the CPU capture copies the floats at once.
 *
 * <p>One buffer, overwritten by the next capture: read a {@link Values} before capturing again
 * ({@link IllegalStateException} after that).
 */
public final class StepScalars {
    private final Tensor buf;
    private long captures;
    private long[] lastAt;   /* the layout of the last capture (again) */

    /** Room for {@code capacity} floats on {@code device}, allocated in {@code scope}. */
    public StepScalars(Scope scope, Device device, int capacity) {
        if (capacity < 1) throw new IllegalArgumentException("StepScalars: capacity must be >= 1, got " + capacity);
        buf = Tensor.zeros(scope, device, capacity);
    }

    /**
     * Copies the tensors (contiguous, on this buffer's device; one-element ones are the step's scalars, larger ones such
     * as a batch of logits are kept whole) into the buffer, one after another; nothing is read back yet.
     */
    public Values capture(Tensor... ts) {
        long total = 0;
        long[] at = new long[ts.length + 1];
        for (int i = 0; i < ts.length; i++) {
            Tensor t = ts[i];
            if (t.device() != buf.device() || !t.isContiguous())
                throw new IllegalArgumentException("StepScalars: tensor " + i + " must be contiguous and on " + buf.device() + ", got " + t);
            total += t.numel();
            at[i + 1] = total;
        }
        if (total > buf.numel()) throw new IllegalArgumentException("StepScalars: " + total + " floats, room for " + buf.numel());
        captures++;
        lastAt = at;
        if (buf.device() == Device.CPU) {
            float[] v = new float[(int) total];
            for (int i = 0; i < ts.length; i++) MemorySegment.copy(ts[i].segment(), JAVA_FLOAT, 0, v, (int) at[i], (int) ts[i].numel());
            return new Values(this, captures, at, v);
        }
        for (int i = 0; i < ts.length; i++)
            if (ts[i].numel() > 0) buf.deviceBuffer().slice(4L * at[i], 4L * ts[i].numel()).copyFrom(ts[i].deviceBuffer());
        return new Values(this, captures, at, null);
    }

    /**
     * CUDA graphs: the values the last {@link #capture}'s copies wrote again, as a step replayed from a graph rewrites
     * this buffer without running the Java code that called capture: a new {@link Values} with that capture's layout
     * (earlier ones become stale, as after a capture).
     */
    public Values again() {
        if (buf.device() == Device.CPU) throw new IllegalStateException("StepScalars.again: for a device buffer (CUDA graphs), this one is on the CPU");
        if (lastAt == null) throw new IllegalStateException("StepScalars.again: nothing was captured yet");
        captures++;
        return new Values(this, captures, lastAt, null);
    }

    /** The tensors of one capture; the first read copies them all back (on CUDA one synchronising copy), then cached. */
    public static final class Values {
        private final StepScalars owner;
        private final long id;
        private final long[] at;
        private float[] v;

        Values(StepScalars owner, long id, long[] at, float[] v) {
            this.owner = owner;
            this.id = id;
            this.at = at;
            this.v = v;
        }

        /** Scalars already on the host (a CPU step's values, read as it always read them): nothing to copy. */
        public static Values known(float... v) {
            long[] at = new long[v.length + 1];
            for (int i = 0; i < v.length; i++) at[i + 1] = i + 1;
            return new Values(null, 0, at, v.clone());
        }

        private float[] all() {
            if (v == null) {
                if (owner.captures != id)
                    throw new IllegalStateException("StepScalars: capture " + id + " was overwritten by capture " + owner.captures
                            + "; read it before the next step");
                v = owner.buf.slice(0, 0, Math.max(1, at[at.length - 1])).toArray();   // one device-to-host copy for all of them
            }
            return v;
        }

        /** The value of captured tensor i, a one-element one. */
        public float get(int i) {
            Objects.checkIndex(i, at.length - 1);
            if (at[i + 1] - at[i] != 1) throw new IllegalArgumentException("StepScalars: tensor " + i + " has " + (at[i + 1] - at[i]) + " elements");
            return all()[(int) at[i]];
        }

        /** The elements of captured tensor i. */
        public float[] floats(int i) {
            Objects.checkIndex(i, at.length - 1);
            return java.util.Arrays.copyOfRange(all(), (int) at[i], (int) at[i + 1]);
        }

        /** Whether a read still has to copy from the device. */
        public boolean onDevice() { return v == null; }
    }
}
