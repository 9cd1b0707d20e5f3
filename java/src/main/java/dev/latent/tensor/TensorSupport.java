package dev.latent.tensor;

import java.lang.foreign.MemorySegment;
import java.util.ServiceLoader;

/**
 * What the tensor layer needs from the layers above it: device memory (the allocator), the Philox generator behind
 * {@link Tensor#rand}, and the strided copy behind {@link Tensor#contiguous()} on a device. The tensor package sits at
 * the bottom of the library and calls none of the kernels, the binding or the CUDA backend directly; the library
 * provides this service from {@code dev.latent.ops} ({@code provides} in module-info, {@code META-INF/services} on the
 * class path), found once with {@link ServiceLoader}. Internal plumbing, not an extension point: exactly one provider
 * must be present.
 */
public interface TensorSupport {
    /** {@code bytes} of memory on the accelerator (contents undefined); UnsupportedOperationException with the reason when there is none. */
    DeviceMemory allocateDevice(long bytes);

    /** Fills the {@code n} floats of {@code dst} with uniforms in (0, 1) from Philox stream (seed, stream). */
    void randUniform(MemorySegment dst, long n, long seed, long stream);

    /**
     * Starts an upload of {@code bytes} into {@code dst} from page-locked staging memory that {@code fill} writes, without
     * the host waiting for the copy; false (nothing done) when {@code bytes} is above what staging holds, and the caller
     * copies synchronously instead.
     */
    boolean uploadStaged(DeviceMemory dst, long bytes, java.util.function.Consumer<MemorySegment> fill);

    /** A contiguous copy of the device tensor {@code x} in {@code scope}. */
    Tensor contiguousOnDevice(Scope scope, Tensor x);
}
