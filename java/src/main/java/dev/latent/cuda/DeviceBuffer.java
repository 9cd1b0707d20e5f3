package dev.latent.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;

/**
 * Device memory (cuMemAlloc_v2). Freed by {@link #close}; a Cleaner frees a buffer that was dropped without
 * closing, as a safety net only (DESIGN.md, "Memory"). Copies are synchronous and bounds-checked on both sides.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();
    private final Cuda cuda;
    private final long ptr, bytes;
    private final Cleaner.Cleanable cleanable;
    private volatile boolean closed;

    DeviceBuffer(Cuda cuda, long ptr, long bytes) {
        this.cuda = cuda;
        this.ptr = ptr;
        this.bytes = bytes;
        this.cleanable = CLEANER.register(this, () -> cuda.free(ptr));
    }

    /** The CUdeviceptr, for kernel arguments. */
    public long address() {
        if (closed) throw new IllegalStateException("device buffer of " + bytes + " bytes is closed");
        return ptr;
    }

    public long byteSize() { return bytes; }

    /** Host -> device: src.byteSize() bytes to offset 0. */
    public void copyFrom(MemorySegment src) {
        if (src.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + src.byteSize() + " bytes into a " + bytes + "-byte device buffer");
        cuda.copyHtoD(address(), src);
    }

    /** Device -> host: dst.byteSize() bytes from offset 0. */
    public void copyTo(MemorySegment dst) {
        if (dst.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + dst.byteSize() + " bytes out of a " + bytes + "-byte device buffer");
        cuda.copyDtoH(dst, address());
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        cleanable.clean();
    }
}
