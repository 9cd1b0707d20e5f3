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
}
