package dev.latent.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * Host-to-device uploads that do not make the host wait: the bytes are written into page-locked staging memory
 * ({@link Cuda#hostAlloc}) and go up with {@code cuMemcpyHtoDAsync} on the (one, in-order) stream, so kernels launched
 * afterwards see them and the host goes on at once. A copy from pageable memory (what {@link DeviceBuffer#copyFrom}
 * does) is a host synchronisation instead (the driver synchronises the stream first).
 *
 * <p>Per thread, a ring of up to {@value #SLOTS} slots, each with an event recorded after its copy. A slot whose event
 * has completed ({@code cuEventQuery}: never blocks) is reused; when every slot is busy a new one is made, and past
 * {@value #SLOTS} the oldest is waited for ({@code cuEventSynchronize}, a counted host synchronisation; a training step
 * that uploads a batch or two never gets there). A slot too small for an upload is replaced ({@code cuMemFreeHost},
 * counted): slots grow to the largest upload and stay, so callers keep large one-off copies (a model's weights) off
 * this path ({@link #MAX_BYTES}).
 */
public final class Staging {
    private Staging() {}

    /** Slots per thread. */
    static final int SLOTS = 4;

    /** The largest upload {@code Tensor.to} sends through staging (16 MiB); larger ones are synchronous copies. */
    public static final long MAX_BYTES = 16L << 20;

    private static final class Slot {
        MemorySegment host;
        final MemorySegment event;

        Slot(MemorySegment host, MemorySegment event) { this.host = host; this.event = event; }
    }

    private static final ThreadLocal<ArrayDeque<Slot>> RING = ThreadLocal.withInitial(ArrayDeque::new);

    private static Slot slot(Cuda cu, long bytes) {
        ArrayDeque<Slot> ring = RING.get();
        Slot pick = null;
        for (Slot p : ring)
            if (cu.eventDone(p.event)) { pick = p; break; }
        if (pick == null && ring.size() < SLOTS) {
            pick = new Slot(cu.hostAlloc(Math.max(bytes, 1 << 16)), cu.eventCreate());
            ring.addLast(pick);
        }
        if (pick == null) {   // every slot in flight: wait for the oldest
            pick = ring.peekFirst();
            cu.eventSynchronize(pick.event);
        }
        ring.remove(pick);
        ring.addLast(pick);   // most recently used last: the oldest is first
        if (pick.host.byteSize() < bytes) {
            cu.hostFree(pick.host);
            pick.host = cu.hostAlloc(Math.max(bytes, 2 * pick.host.byteSize()));
        }
        return pick;
    }

    /**
     * Uploads {@code bytes} bytes into {@code dst} (from its offset 0) asynchronously: {@code fill} writes them into the
     * page-locked segment it is given (exactly {@code bytes} long), which then goes up; the host does not wait.
     */
    public static void upload(DeviceBuffer dst, long bytes, Consumer<MemorySegment> fill) {
        if (bytes < 0 || bytes > dst.byteSize())
            throw new IllegalArgumentException("staged upload of " + bytes + " bytes into a " + dst.byteSize() + "-byte device buffer");
        if (bytes == 0) return;
        Cuda cu = Cuda.get();
        cu.refuseUploadWhileCapturing(bytes);
        Slot s = slot(cu, bytes);
        MemorySegment h = s.host.asSlice(0, bytes);
        fill.accept(h);
        dst.copyFromAsync(h);      // from page-locked memory: the host does not wait
        cu.eventRecord(s.event);   // the slot is free again once this completes
    }

    /** {@link #upload(DeviceBuffer, long, Consumer)} of a host segment's bytes. */
    public static void upload(DeviceBuffer dst, MemorySegment src) {
        upload(dst, src.byteSize(), h -> MemorySegment.copy(src, 0, h, 0, src.byteSize()));
    }
}
