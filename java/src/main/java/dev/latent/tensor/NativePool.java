package dev.latent.tensor;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A caching allocator for tensor memory (what PyTorch's CPU caching allocator does): blocks freed by a
 * closed {@link Scope} are kept by size class and handed to the next scope asking for that size. A training
 * step allocates the same shapes every time, so after the first step no malloc, no page fault and no
 * munmap happens on the hot path; the profile before this showed 65% of the Java-side time in fresh
 * allocations' page faults and zeroing. Resident memory stays at the step's peak (flat), and at most
 * {@link #MAX_CACHED} bytes of free blocks are kept (the rest go back to the C allocator).
 * <p>
 * Blocks of at least {@link #HUGE_PAGE} bytes can be asked for on huge pages ({@link #acquireHuge}): aligned to 2 MiB
 * and advised {@code MADV_HUGEPAGE}, so Linux's transparent huge pages (mode {@code madvise} or {@code always}) back
 * every whole 2 MiB of them. They are pooled apart from the others (a huge request never gets a 4 KiB-page block).
 */
final class NativePool {
    static final long MAX_CACHED = 4L << 30;
    /** A transparent huge page on x86-64 Linux. */
    static final long HUGE_PAGE = 2L << 20;
    private static final int MADV_HUGEPAGE = 14;
    private static final MethodHandle ALIGNED_ALLOC, FREE, MADVISE;

    static {
        Linker l = Linker.nativeLinker();
        ALIGNED_ALLOC = l.downcallHandle(l.defaultLookup().find("aligned_alloc").orElseThrow(),
                FunctionDescriptor.of(ADDRESS, JAVA_LONG, JAVA_LONG));
        FREE = l.downcallHandle(l.defaultLookup().find("free").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS));
        MADVISE = l.defaultLookup().find("madvise")
                .map(f -> l.downcallHandle(f, FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, ADDRESS, JAVA_LONG, java.lang.foreign.ValueLayout.JAVA_INT)))
                .orElse(null);
    }

    /** Addresses of the huge-page blocks in use or cached (keyed by -size in FREE_BLOCKS); guarded by FREE_BLOCKS. */
    private static final java.util.Set<Long> HUGE = new java.util.HashSet<>();

    private static final Map<Long, ArrayDeque<MemorySegment>> FREE_BLOCKS = new HashMap<>();
    private static long cached;

    private NativePool() {}

    /** Size class: multiples of 64 B up to 4 KiB, of 4 KiB up to 1 MiB, then of 64 KiB. */
    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 64);
        long q = b <= 4096 ? 64 : b <= (1 << 20) ? 4096 : 65536;
        return (b + q - 1) / q * q;
    }

    /** A 64-byte aligned block of at least {@code bytes} (contents undefined), global lifetime. */
    static MemorySegment acquire(long bytes) {
        long size = sizeClass(bytes);
        synchronized (FREE_BLOCKS) {
            ArrayDeque<MemorySegment> q = FREE_BLOCKS.get(size);
            if (q != null && !q.isEmpty()) {
                cached -= size;
                return q.pop();
            }
        }
        MemorySegment p;
        try {
            p = (MemorySegment) ALIGNED_ALLOC.invokeExact(Scope.ALIGNMENT, size);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (p.equals(MemorySegment.NULL)) throw new OutOfMemoryError("native allocation of " + size + " bytes failed");
        return p.reinterpret(size);
    }

    /** Returns a block to the cache (or to the C allocator past the cap). */
    /**
     * A block of at least {@code bytes} (>= {@link #HUGE_PAGE}) aligned to 2 MiB and advised for transparent huge pages:
     * for big buffers a hot loop streams through again and again (a decoder's packed weights and KV caches), where 4 KiB
     * pages cost a TLB miss (a nested page walk in a VM) every 64 cache lines and stop the hardware prefetchers at every
     * page end. Whole 2 MiB pieces get huge pages when the kernel has them; the tail keeps 4 KiB pages. The advice is a
     * hint: where the system refuses it (no THP, THP off), the block is an ordinary one and only slower.
     */
    static MemorySegment acquireHuge(long bytes) {
        long size = sizeClass(bytes);
        synchronized (FREE_BLOCKS) {
            ArrayDeque<MemorySegment> q = FREE_BLOCKS.get(-size);
            if (q != null && !q.isEmpty()) {
                cached -= size;
                return q.pop();
            }
        }
        MemorySegment p;
        try {
            p = (MemorySegment) ALIGNED_ALLOC.invokeExact(HUGE_PAGE, size);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (p.equals(MemorySegment.NULL)) throw new OutOfMemoryError("native allocation of " + size + " bytes (2 MiB aligned) failed");
        long whole = size / HUGE_PAGE * HUGE_PAGE;   // the advice covers whole huge pages inside the block only
        if (MADVISE != null && whole > 0) {
            try {
                int ignored = (int) MADVISE.invokeExact(p, whole, MADV_HUGEPAGE);   // a hint: refused means 4 KiB pages
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }
        synchronized (FREE_BLOCKS) { HUGE.add(p.address()); }
        return p.reinterpret(size);
    }

    static void release(MemorySegment block) {
        long size = block.byteSize();
        synchronized (FREE_BLOCKS) {
            long key = HUGE.contains(block.address()) ? -size : size;
            if (cached + size <= MAX_CACHED) {
                FREE_BLOCKS.computeIfAbsent(key, k -> new ArrayDeque<>()).push(block);
                cached += size;
                return;
            }
            HUGE.remove(block.address());
        }
        try {
            FREE.invokeExact(block);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Bytes of free blocks kept for reuse. */
    static long cachedBytes() {
        synchronized (FREE_BLOCKS) { return cached; }
    }

    /** Frees every cached block (a service can call this after a burst). */
    static void trim() {
        synchronized (FREE_BLOCKS) {
            for (ArrayDeque<MemorySegment> q : FREE_BLOCKS.values())
                for (MemorySegment b : q) {
                    HUGE.remove(b.address());   // blocks in use stay in HUGE
                    try {
                        FREE.invokeExact(b);
                    } catch (Throwable t) {
                        throw new IllegalStateException(t);
                    }
                }
            FREE_BLOCKS.clear();
            cached = 0;
        }
    }

}
