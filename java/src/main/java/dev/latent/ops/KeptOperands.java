package dev.latent.ops;

import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Scope;

import java.util.Objects;

/**
 * Operands a reduced-precision forward keeps for its backward, so the backward need not convert them again (h-sdpaconv,
 * issue 18). The bf16 q, k, v and o of an attention forward that cuDNN's SDPA served on CUDA at
 * {@code Precision.BF16} (one device block of 4 x 2 n bytes, n = B NH T HS), read by the same node's backward
 * ({@link AttentionKernels#attention(dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, boolean, float,
 * dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, dev.latent.tensor.Precision, KeptOperands)}); and (h-linconv) the
 * bf16 copies of a CUDA bf16 GEMM's A and / or B that F.linear's and F.matmul's forward converted, read by their backward
 * ({@link Gemm#matmul(dev.latent.tensor.Tensor, dev.latent.tensor.Tensor, dev.latent.tensor.Tensor,
 * dev.latent.tensor.Precision, KeptOperands, boolean, boolean)}, {@link Gemm#matmulBackward}).
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
    private long[] key = {};

    /** An empty holder whose block, if a forward keeps one, is allocated in {@code scope}. */
    public KeptOperands(Scope scope) { this.scope = Objects.requireNonNull(scope, "scope"); }

    /** Whether a forward left operands here that a backward has not released. */
    public boolean holds() { return block != null && block.isAlive(); }

    /** Bytes held (0 when empty). */
    public long byteSize() { return holds() ? block.byteSize() : 0; }

    /** A new block of {@code bytes} in the scope, held here; IllegalStateException if one is held already. */
    DeviceMemory hold(long bytes) { return hold(bytes, new long[0]); }

    /**
     * {@link #hold(long)} labelled with {@code key} (h-linconv): what the block holds and where (Gemm: the operands' device
     * addresses and extents), so that a backward reads it only through {@link #block(long...)} with the same key.
     */
    DeviceMemory hold(long bytes, long... key) {
        if (block != null) throw new IllegalStateException("kept operands: a block of " + block.byteSize() + " bytes is already held");
        long m = scope.deviceMark();
        DeviceMemory b = scope.allocateDevice(bytes);
        mark = m;
        address = b.address();
        block = b;
        this.key = key.clone();
        return b;
    }

    /** The held block, or null (nothing held, or the scope has closed). */
    DeviceMemory block() { return holds() ? block : null; }

    /** The key the held block was held with (a copy; empty when nothing is held or it was held without one). */
    long[] key() { return holds() ? key.clone() : new long[0]; }

    /** The held block when it was held with exactly this key, else null (nothing held, another key, or the scope has closed). */
    DeviceMemory block(long... key) { return holds() && java.util.Arrays.equals(this.key, key) ? block : null; }

    /** Frees the held block now (a no-op when empty or once the scope has closed); the holder is empty afterwards. */
    public void release() {
        if (block == null) return;
        block = null;
        key = new long[0];
        scope.releaseDeviceSince(mark, address);
    }

    @Override public String toString() { return "KeptOperands[" + (holds() ? block.byteSize() + " bytes" : "empty") + "]"; }
}
