package dev.latent.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An explicit lifetime for native memory: every tensor belongs to one scope and dies when it closes.
 * <ul>
 *   <li>{@link #shared()}: parameters and optimizer state, owned by a model, usable from any thread;</li>
 *   <li>{@link #confined()}: one training step's activations and scratch, owned by one thread, freed at
 *       {@link #close()} (cheap: no cross-thread handshake).</li>
 * </ul>
 * Nothing waits for the garbage collector. {@link #liveBytes()} counts what all open scopes hold, so tests
 * can show memory stays flat. A scope also owns the device memory of its CUDA tensors ({@link #allocateDevice}),
 * freed at close like the rest (the buffers' Cleaner is only a safety net); {@link #liveDeviceBytes()} counts it.
 */
public final class Scope implements AutoCloseable {
    /** Tensors are 64-byte aligned: a cache line, and what the AVX2 kernels prefer. */
    public static final long ALIGNMENT = 64;
    private static final AtomicLong LIVE = new AtomicLong(), LIVE_DEVICE = new AtomicLong();

    private final Arena arena;
    private final String name;
    private long bytes;               // guarded by this (shared scopes may allocate from several threads)
    private final java.util.ArrayList<MemorySegment> blocks = new java.util.ArrayList<>();   // guarded by this
    // Device buffers and their allocation numbers (0, 1, 2, ... in this scope, never reused: see deviceMark()).
    private final java.util.ArrayList<DeviceMemory> deviceBlocks = new java.util.ArrayList<>();   // guarded by this
    private final java.util.ArrayList<Long> deviceSeq = new java.util.ArrayList<>();             // guarded by this
    private long deviceAllocations;                                                               // guarded by this
    private volatile boolean closed;
    private final boolean counted;   /* false: the process-resident scope, left out of liveDeviceBytes */

    private Scope(Arena arena, String name) { this(arena, name, true); }

    private Scope(Arena arena, String name, boolean counted) {
        this.arena = arena;
        this.name = name;
        this.counted = counted;
    }

    private static volatile Scope resident;

    /**
     * The process-resident scope, never closed: small read-only device constants an op keeps for the life of the process
     * (a one-element constant per value, a vector of ones per length), made the first time they are asked for. Its device
     * memory is not counted in {@link #liveDeviceBytes()}, which callers use to check that a run's scopes free what they
     * made.
     */
    public static Scope resident() {
        Scope r = resident;
        if (r == null) {
            synchronized (Scope.class) {
                if (resident == null) resident = new Scope(Arena.ofShared(), "resident", false);
                r = resident;
            }
        }
        return r;
    }

    public static Scope shared() { return new Scope(Arena.ofShared(), "shared"); }

    public static Scope confined() { return new Scope(Arena.ofConfined(), "confined"); }

    /** Bytes held by all open scopes of this process. */
    public static long liveBytes() { return LIVE.get(); }

    /**
     * Bytes of freed tensor memory the allocator keeps for reuse (see {@link NativePool}): with
     * {@link #liveBytes()}, all the native memory tensors hold. Both flat over time = no leak.
     */
    public static long cachedBytes() { return NativePool.cachedBytes(); }

    public boolean isAlive() { return !closed && arena.scope().isAlive(); }

    /** A 64-byte aligned, zeroed segment of {@code bytes}. */
    public MemorySegment allocate(long bytes) {
        MemorySegment s = allocateUninitialized(bytes);
        s.fill((byte) 0);
        return s;
    }

    /**
     * A 64-byte aligned segment of {@code bytes} whose contents are undefined (for outputs a kernel writes
     * whole). Memory comes from {@link NativePool}, so a step that repeats the last step's shapes does not
     * touch the C allocator; the segment is tied to this scope's arena, so using it after close throws.
     */
    public MemorySegment allocateUninitialized(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes + " bytes");
        ensureAlive();
        MemorySegment block = NativePool.acquire(Math.max(bytes, 1));
        synchronized (this) {
            blocks.add(block);
            this.bytes += block.byteSize();
        }
        LIVE.addAndGet(block.byteSize());
        return block.asSlice(0, Math.max(bytes, 1)).reinterpret(arena, null);
    }

    /**
     * As {@link #allocateUninitialized}, on transparent huge pages where the size allows (at least 2 MiB): the block is
     * 2 MiB aligned and advised {@code MADV_HUGEPAGE}, so its whole 2 MiB pieces get huge pages when Linux has them (THP
     * in mode {@code madvise} or {@code always}; elsewhere it is an ordinary block). For big buffers a hot loop streams
     * through every step, such as a decoder's packed weights and KV caches: with 4 KiB pages each 64 cache lines cost a
     * TLB miss and stop the hardware prefetchers (BENCHMARKS.md S2: ~1 ms of a 6.5 ms decode step at 16 sequences). The
     * bytes counted are the same as {@link #allocateUninitialized}'s; resident memory may round up to whole huge pages.
     */
    public MemorySegment allocateHugePages(long bytes) {
        if (bytes < NativePool.HUGE_PAGE) return allocateUninitialized(bytes);
        ensureAlive();
        MemorySegment block = NativePool.acquireHuge(bytes);
        synchronized (this) {
            blocks.add(block);
            this.bytes += block.byteSize();
        }
        LIVE.addAndGet(block.byteSize());
        return block.asSlice(0, bytes).reinterpret(arena, null);
    }

    /** Bytes of device memory held by all open scopes of this process. */
    public static long liveDeviceBytes() { return LIVE_DEVICE.get(); }

    /**
     * Device memory of {@code bytes} (contents undefined) owned by this scope, freed at {@link #close()}. Without a
     * usable GPU: UnsupportedOperationException with {@link dev.latent.Latent#cudaUnavailableReason()}. Device memory
     * comes from the library's {@link TensorSupport} (the allocator), not from the CUDA backend directly.
     */
    public DeviceMemory allocateDevice(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes + " bytes");
        ensureAlive();
        DeviceMemory b = Support.get().allocateDevice(Math.max(bytes, 4));
        synchronized (this) {
            deviceBlocks.add(b);
            deviceSeq.add(deviceAllocations++);
        }
        if (counted) LIVE_DEVICE.addAndGet(b.byteSize());
        return b;
    }

    /** How many blocks this scope has allocated so far: a mark for {@link #releaseSince}. */
    public synchronized int mark() { return blocks.size(); }

    /** How many device buffers this scope has allocated so far: a mark for {@link #releaseDeviceSince}. */
    public synchronized long deviceMark() { return deviceAllocations; }

    /**
     * {@link #releaseSince} for device memory: frees the buffer at device {@code address} now if this scope allocated
     * it after {@code deviceMark}. The caller promises no kernel uses it any more (cuMemFree waits for the device).
     */
    public boolean releaseDeviceSince(long deviceMark, long address) {
        DeviceMemory found = null;
        synchronized (this) {
            for (int i = deviceBlocks.size() - 1; i >= 0 && deviceSeq.get(i) >= deviceMark; i--)
                if (deviceBlocks.get(i).address() == address) {
                    found = deviceBlocks.remove(i);
                    deviceSeq.remove(i);
                    break;
                }
        }
        if (found == null) return false;
        if (counted) LIVE_DEVICE.addAndGet(-found.byteSize());
        found.close();
        return true;
    }

    /**
     * Returns the block starting at {@code address} to the pool early, if this scope allocated it after
     * {@code mark}. The caller promises nothing uses it any more (autograd frees consumed gradients this way,
     * which keeps a step's peak memory near its activations instead of activations plus every gradient).
     */
    public boolean releaseSince(int mark, long address) {
        MemorySegment found = null;
        synchronized (this) {
            for (int i = blocks.size() - 1; i >= mark && i < blocks.size(); i--)
                if (blocks.get(i).address() == address) {
                    found = blocks.remove(i);
                    bytes -= found.byteSize();
                    break;
                }
        }
        if (found == null) return false;
        LIVE.addAndGet(-found.byteSize());
        NativePool.release(found);
        return true;
    }

    /** Frees the blocks cached by closed scopes (they are otherwise reused by later scopes). */
    public static void trimCache() { NativePool.trim(); }

    void ensureAlive() {
        if (!isAlive()) throw new IllegalStateException("scope '" + name + "' is closed: its tensors are freed");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        long b;
        java.util.List<MemorySegment> free;
        java.util.List<DeviceMemory> freeDevice;
        synchronized (this) {
            b = bytes;
            bytes = 0;
            free = new java.util.ArrayList<>(blocks);
            blocks.clear();
            freeDevice = new java.util.ArrayList<>(deviceBlocks);
            deviceBlocks.clear();
            deviceSeq.clear();
        }
        arena.close();
        for (MemorySegment m : free) NativePool.release(m);
        LIVE.addAndGet(-b);
        RuntimeException failed = null;
        for (DeviceMemory d : freeDevice) {   /* free them all even if one fails, then report the first failure */
            if (counted) LIVE_DEVICE.addAndGet(-d.byteSize());
            try {
                d.close();
            } catch (RuntimeException e) {
                if (failed == null) failed = e;
            }
        }
        if (failed != null) throw failed;
    }

    @Override
    public String toString() { return "Scope[" + name + (closed ? ", closed" : "") + "]"; }
}
