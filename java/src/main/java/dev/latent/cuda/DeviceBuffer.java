package dev.latent.cuda;

import dev.latent.tensor.DeviceMemory;

import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;

/**
 * Device memory from {@link Cuda#alloc} (its caching allocator). {@link #close} hands the block back to that cache; a
 * Cleaner does so for a buffer that was dropped without closing, as a safety net only (DESIGN.md, "Memory"). Copies are synchronous and bounds-checked on both sides.
 * {@link #slice} makes a view (a tensor view's elements start at an offset into its storage): it shares the
 * allocation, owns nothing, and dies with its root buffer.
 */
public final class DeviceBuffer implements DeviceMemory {
    private static final Cleaner CLEANER = Cleaner.create();
    private final Cuda cuda;
    private final long ptr, bytes;
    private final DeviceBuffer root;                /* this, or the allocation a slice views */
    private final Cleaner.Cleanable cleanable;      /* null for slices */
    private volatile boolean closed;

    DeviceBuffer(Cuda cuda, long ptr, long bytes, long sizeClass) {
        this.cuda = cuda;
        this.ptr = ptr;
        this.bytes = bytes;
        this.root = this;
        this.cleanable = CLEANER.register(this, () -> cuda.release(ptr, sizeClass));
    }

    private DeviceBuffer(DeviceBuffer root, long ptr, long bytes) {
        this.cuda = root.cuda;
        this.ptr = ptr;
        this.bytes = bytes;
        this.root = root;
        this.cleanable = null;
    }

    /** The CUdeviceptr, for kernel arguments. */
    public long address() {
        if (root.closed) throw new IllegalStateException("device buffer of " + root.bytes + " bytes is closed");
        return ptr;
    }

    public long byteSize() { return bytes; }

    public boolean isAlive() { return !root.closed; }

    /** Bytes [offset, offset + length) of this buffer, as a view (never freed by itself). */
    public DeviceBuffer slice(long offset, long length) {
        if (offset < 0 || length < 0 || offset > bytes - length)
            throw new IllegalArgumentException("slice [" + offset + ", " + (offset + length) + ") of a " + bytes + "-byte device buffer");
        address();
        return offset == 0 && length == bytes ? this : new DeviceBuffer(root, ptr + offset, length);
    }

    /**
     * The {@code length} bytes of this buffer's allocation that start where this buffer starts: a view that may reach past
     * this slice's end into the same allocation (h-sdpaconv: q, k, v slices of one packed qkv seen as one run);
     * IllegalArgumentException when the allocation ends first.
     */
    public DeviceBuffer widen(long length) {
        return root.slice(ptr - root.ptr, length);
    }

    /** Host -> device: src.byteSize() bytes to offset 0. */
    public void copyFrom(MemorySegment src) {
        if (src.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + src.byteSize() + " bytes into a " + bytes + "-byte device buffer");
        cuda.copyHtoD(address(), src);
    }

    /**
     * Host -> device without blocking the host: src must be page-locked ({@link Cuda#hostAlloc}) and left untouched
     * until an event recorded after this call has completed (from pageable memory the driver would block instead).
     */
    public void copyFromAsync(MemorySegment src) {
        if (src.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + src.byteSize() + " bytes into a " + bytes + "-byte device buffer");
        cuda.copyHtoDAsync(address(), src);
    }

    /** Device -> host: dst.byteSize() bytes from offset 0. */
    public void copyTo(MemorySegment dst) {
        if (dst.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + dst.byteSize() + " bytes out of a " + bytes + "-byte device buffer");
        cuda.copyDtoH(dst, address());
    }

    /** Device -> device: src.byteSize() bytes from src to offset 0 of this buffer. */
    public void copyFrom(DeviceMemory src) {
        if (src.byteSize() > bytes)
            throw new IllegalArgumentException("copy of " + src.byteSize() + " bytes into a " + bytes + "-byte device buffer");
        cuda.copyDtoD(address(), src.address(), src.byteSize());
    }

    /** Sets every byte to zero (cuMemsetD8). */
    public void zero() { cuda.memsetZero(address(), bytes); }

    /**
     * {@code m} as this backend's buffer: every {@link DeviceMemory} of a CUDA tensor is one (the library's allocator
     * hands them out); anything else is an IllegalArgumentException naming it.
     */
    public static DeviceBuffer of(DeviceMemory m) {
        if (m == null || m instanceof DeviceBuffer) return (DeviceBuffer) m;
        throw new IllegalArgumentException("not CUDA device memory of this backend: " + m);
    }

    /** Returns the allocation to the allocator's cache; on a slice, does nothing (the root owns the memory). */
    @Override
    public void close() {
        if (cleanable == null || closed) return;
        closed = true;
        cleanable.clean();
    }

    @Override
    public String toString() { return "DeviceBuffer[" + bytes + " bytes" + (root != this ? ", slice" : "") + (root.closed ? ", closed" : "") + "]"; }
}
