package dev.latent.ops;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.cuda.Staging;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.tensor.TensorSupport;

import java.lang.foreign.MemorySegment;

/**
 * The library's {@link TensorSupport}: device memory from the CUDA backend's caching allocator, Philox uniforms from the
 * native kernels, device strided copies from {@link Kernels#contiguous}. Registered in module-info ({@code provides})
 * and in {@code META-INF/services} for the class path.
 */
public final class TensorSupportProvider implements TensorSupport {
    /** For ServiceLoader. */
    public TensorSupportProvider() {}

    @Override
    public DeviceMemory allocateDevice(long bytes) { return Cuda.get().alloc(bytes); }

    @Override
    public void randUniform(MemorySegment dst, long n, long seed, long stream) { LatentNative.get().randUniform(dst, n, seed, stream); }

    @Override
    public boolean uploadStaged(DeviceMemory dst, long bytes, java.util.function.Consumer<MemorySegment> fill) {
        if (bytes > Staging.MAX_BYTES) return false;
        Staging.upload(DeviceBuffer.of(dst), bytes, fill);
        return true;
    }

    @Override
    public Tensor contiguousOnDevice(Scope scope, Tensor x) { return Kernels.contiguous(scope, x); }
}
