package dev.latent.train;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

/**
 * A training step's scalars (its losses, a KL term) kept where they were computed until someone reads them: on CUDA
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

    /** Room for {@code capacity} scalars on {@code device}, allocated in {@code scope}. */
    public StepScalars(Scope scope, Device device, int capacity) {
        if (capacity < 1) throw new IllegalArgumentException("StepScalars: capacity must be >= 1, got " + capacity);
        buf = Tensor.zeros(scope, device, capacity);
    }

    /** Copies the one-element tensors (on this buffer's device) into the buffer; nothing is read back yet. */
    public Values capture(Tensor... scalars) {
        if (scalars.length > buf.numel())
            throw new IllegalArgumentException("StepScalars: " + scalars.length + " scalars, room for " + buf.numel());
        for (int i = 0; i < scalars.length; i++) {
            Tensor t = scalars[i];
            if (t.numel() != 1 || t.device() != buf.device() || !t.isContiguous())
                throw new IllegalArgumentException("StepScalars: scalar " + i + " must be a one-element contiguous tensor on " + buf.device()
                        + ", got " + t);
        }
        captures++;
        if (buf.device() == Device.CPU) {
            float[] v = new float[scalars.length];
            for (int i = 0; i < v.length; i++) v[i] = scalars[i].segment().get(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0);
            return new Values(this, captures, v);
        }
        for (int i = 0; i < scalars.length; i++) buf.deviceBuffer().slice(4L * i, 4).copyFrom(scalars[i].deviceBuffer());
        return new Values(this, captures, scalars.length);
    }

    /** The scalars of one capture; {@link #get} reads them (on CUDA one synchronising copy, then cached). */
    public static final class Values {
        private final StepScalars owner;
        private final long id;
        private final int n;
        private float[] v;

        Values(StepScalars owner, long id, float[] v) {
            this.owner = owner;
            this.id = id;
            this.n = v.length;
            this.v = v;
        }

        Values(StepScalars owner, long id, int n) {
            this.owner = owner;
            this.id = id;
            this.n = n;
        }

        /** Scalar i of the capture, in the order given. */
        public float get(int i) {
            if (i < 0 || i >= n) throw new IndexOutOfBoundsException("StepScalars: scalar " + i + " of " + n);
            if (v == null) {
                if (owner.captures != id)
                    throw new IllegalStateException("StepScalars: capture " + id + " was overwritten by capture " + owner.captures
                            + "; read it before the next step");
                v = owner.buf.slice(0, 0, n).toArray();   // one device-to-host copy for all of them
            }
            return v[i];
        }

        /** Whether {@link #get} still has to copy from the device. */
        public boolean onDevice() { return v == null; }
    }
}
