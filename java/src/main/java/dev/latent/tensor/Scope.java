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
 * can show memory stays flat.
 */
public final class Scope implements AutoCloseable {
    /** Tensors are 64-byte aligned: a cache line, and what the AVX2 kernels prefer. */
    public static final long ALIGNMENT = 64;
    private static final AtomicLong LIVE = new AtomicLong();

    private final Arena arena;
    private final String name;
    private long bytes;               // guarded by this (shared scopes may allocate from several threads)
    private volatile boolean closed;

    private Scope(Arena arena, String name) {
        this.arena = arena;
        this.name = name;
    }

    public static Scope shared() { return new Scope(Arena.ofShared(), "shared"); }

    public static Scope confined() { return new Scope(Arena.ofConfined(), "confined"); }

    /** Bytes held by all open scopes of this process. */
    public static long liveBytes() { return LIVE.get(); }

    public boolean isAlive() { return !closed && arena.scope().isAlive(); }

    /** A 64-byte aligned, zeroed segment of {@code bytes}. */
    public MemorySegment allocate(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes + " bytes");
        ensureAlive();
        MemorySegment s = arena.allocate(Math.max(bytes, 1), ALIGNMENT);
        synchronized (this) { this.bytes += s.byteSize(); }
        LIVE.addAndGet(s.byteSize());
        return s;
    }

    void ensureAlive() {
        if (!isAlive()) throw new IllegalStateException("scope '" + name + "' is closed: its tensors are freed");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        long b;
        synchronized (this) { b = bytes; bytes = 0; }
        arena.close();
        LIVE.addAndGet(-b);
    }

    @Override
    public String toString() { return "Scope[" + name + (closed ? ", closed" : "") + "]"; }
}
