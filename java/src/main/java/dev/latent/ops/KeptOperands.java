package dev.latent.ops;

import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Scope;

import java.util.Objects;

/**
 * Operands a reduced-precision forward keeps for its backward, so the backward need not convert them again (h-sdpaconv,
 * issue 18). Today: the bf16 q, k, v and o of an attention forward that cuDNN's SDPA served on CUDA at
 * {@code Precision.BF16} (one device block of 4 x 2 n bytes, n = B NH T HS), read by the same node's backward
 * ({@link AttentionKernels#attention(dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, boolean, float,
 * dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, dev.latent.tensor.Precision, KeptOperands)}).
 *
 * <p>The block belongs to {@code scope} (autograd passes its graph's), so it is freed at the scope's close at the latest
 * and counted in {@link Scope#liveDeviceBytes()}; {@link #release()} frees it as soon as the backward has queued its
 * last read (the caching allocator reuses it in stream order: no host synchronisation). Where the forward keeps nothing
 * (the CPU, fp32 / tf32, our kernels instead of cuDNN's SDPA) the holder stays empty and the backward converts, as
 * before. Not thread-safe: one op's forward and backward on one thread, as autograd runs them.
 */
public final class KeptOperands {
    private final Scope scope;
    private DeviceMemory block;
    private long mark, address;

    /** An empty holder whose block, if a forward keeps one, is allocated in {@code scope}. */
    public KeptOperands(Scope scope) { this.scope = Objects.requireNonNull(scope, "scope"); }

    /** Whether a forward left operands here that a backward has not released. */
    public boolean holds() { return block != null && block.isAlive(); }

    /** Bytes held (0 when empty). */
    public long byteSize() { return holds() ? block.byteSize() : 0; }

    /** A new block of {@code bytes} in the scope, held here; IllegalStateException if one is held already. */
    DeviceMemory hold(long bytes) {
        if (block != null) throw new IllegalStateException("kept operands: a block of " + block.byteSize() + " bytes is already held");
        long m = scope.deviceMark();
        DeviceMemory b = scope.allocateDevice(bytes);
        mark = m;
        address = b.address();
        block = b;
        return b;
    }

    /** The held block, or null (nothing held, or the scope has closed). */
    DeviceMemory block() { return holds() ? block : null; }

    /** Frees the held block now (a no-op when empty or once the scope has closed); the holder is empty afterwards. */
    public void release() {
        if (block == null) return;
        block = null;
        scope.releaseDeviceSince(mark, address);
    }

    @Override public String toString() { return "KeptOperands[" + (holds() ? block.byteSize() + " bytes" : "empty") + "]"; }
}
