package dev.latent.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A block of accelerator memory (or a slice of one) that a {@link Tensor} on a non-CPU {@link Device} stores its
 * elements in: a device address, a size, copies to and from the host, and an explicit close. The library's CUDA backend
 * implements it; {@link Scope#allocateDevice} hands them out and frees them at close. The tensor package knows device
 * memory only through this interface, so it does not depend on the backend that provides it.
 */
public interface DeviceMemory extends AutoCloseable {
    /** The device address of the first byte; IllegalStateException once the block is closed. */
    long address();

    /** Size in bytes. */
    long byteSize();

    /** False once the block (or, for a slice, the block it views) is closed. */
    boolean isAlive();

    /** A view of {@code length} bytes from {@code offset}; IllegalArgumentException when it does not fit. */
    DeviceMemory slice(long offset, long length);

    /** Copies {@code src} (at most {@link #byteSize()} bytes) to the start of this block, synchronously. */
    void copyFrom(MemorySegment src);

    /** {@link #copyFrom(MemorySegment)} queued on the device's stream (src must stay valid until the stream passes it). */
    void copyFromAsync(MemorySegment src);

    /** Copies the first {@code dst.byteSize()} bytes of this block into {@code dst}, synchronously. */
    void copyTo(MemorySegment dst);

    /** Copies all of {@code src} (device to device) to the start of this block. */
    void copyFrom(DeviceMemory src);

    /** Sets every byte to zero. */
    void zero();

    /** Frees the block (a no-op for slices and when already closed). */
    @Override
    void close();
}
