package dev.latent.tensor;

import dev.latent.ops.Gemm;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * 10,000 steps of allocate / compute / release in a per-step scope, beside model-owned parameters: the
 * native bytes held return to the baseline after every step, and the process's resident memory does not
 * grow (a leak of one 64x64 activation per step would add 160 MB; we allow 32 MB of allocator slack).
 */
class MemoryFlatTest {
    static long rssBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status")))
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void nativeMemoryStaysFlatOver10000Steps() throws IOException {
        try (Scope model = Scope.shared()) {
            Tensor w = Tensor.rand(model, 1, 0, 64, 64);
            long baseline = Scope.liveBytes();
            long rss0 = 0;
            for (int step = 0; step < 10_000; step++) {
                try (Scope stepScope = Scope.confined()) {
                    Tensor x = Tensor.rand(stepScope, 2, step, 32, 64);
                    Tensor h = Gemm.matmul(stepScope, x, w);
                    Tensor y = Gemm.matmul(stepScope, h, w.transpose(0, 1));
                    assertEquals(32 * 64, y.numel());
                }
                assertEquals(baseline, Scope.liveBytes(), "step " + step + " left native memory behind");
                if (step == 999) rss0 = rssBytes();  // after warm-up (JIT, allocator arenas)
            }
            long growth = rssBytes() - rss0;
            assertTrue(growth < 32L << 20, "resident memory grew by " + growth / 1024 + " KiB over 9,000 steps");
        }
    }

    /**
     * Scope.allocateHugePages: from 2 MiB on, 2 MiB aligned, counted like any block, usable, pooled apart (a later huge
     * request of the size reuses the block, an ordinary one does not get it), and flat over repeated use; below 2 MiB an
     * ordinary block. Whether Linux backs it with huge pages is the kernel's choice (THP mode), not checked here.
     */
    @Test
    void hugePageBlocksAreAlignedCountedAndPooledApart() {
        long bytes = (5L << 20) + 4096, before = Scope.liveBytes();
        long addr;
        try (Scope s = Scope.confined()) {
            MemorySegmentCheck.fill(s.allocateHugePages(bytes));
            java.lang.foreign.MemorySegment m = s.allocateHugePages(bytes);
            addr = m.address();
            assertEquals(bytes, m.byteSize());
            assertEquals(0, addr % (2L << 20), "a huge-page block is 2 MiB aligned");
            assertTrue(Scope.liveBytes() - before >= 2 * bytes, "counted in liveBytes");
            m.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, bytes - 4, 1.5f);
            assertEquals(1.5f, m.get(java.lang.foreign.ValueLayout.JAVA_FLOAT, bytes - 4));
            assertTrue(s.allocateHugePages(1000).byteSize() == 1000, "a small request is an ordinary block");
        }
        assertEquals(before, Scope.liveBytes());
        try (Scope s = Scope.confined()) {
            java.lang.foreign.MemorySegment plain = s.allocateUninitialized(bytes);
            assertNotEquals(addr, plain.address(), "an ordinary request got the pooled huge block");
            java.lang.foreign.MemorySegment again = s.allocateHugePages(bytes), third = s.allocateHugePages(bytes);
            assertTrue(again.address() == addr || third.address() == addr, "the freed huge block is reused by a huge request");
        }
        for (int i = 0; i < 200; i++)
            try (Scope s = Scope.confined()) { s.allocateHugePages(bytes); }
        assertEquals(before, Scope.liveBytes());
    }

    /** Writes every page of a segment. */
    private static final class MemorySegmentCheck {
        static void fill(java.lang.foreign.MemorySegment m) { for (long o = 0; o < m.byteSize(); o += 4096) m.set(java.lang.foreign.ValueLayout.JAVA_BYTE, o, (byte) 1); }
    }
}
