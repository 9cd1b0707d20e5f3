package dev.latent.ops;

import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

/** Many Java threads calling kernels at once, while another resizes the pool: same bits as one thread. */
class ConcurrencyTest {
    @Test
    void concurrentCallersGetTheSameBitsAsOneThread() throws Exception {
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        try (Scope shared = Scope.shared()) {
            Tensor a = Tensor.rand(shared, 9, 0, 129, 300), b = Tensor.rand(shared, 9, 1, 300, 77);
            nat.setNumThreads(1);
            float[] expected = Gemm.matmul(shared, a, b).toArray();
            ExecutorService ex = Executors.newFixedThreadPool(8);
            List<Future<float[]>> fs = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                fs.add(ex.submit(() -> {
                    try (Scope s = Scope.confined()) { return Gemm.matmul(s, a, b).toArray(); }
                }));
                if (i % 8 == 0) nat.setNumThreads(1 + (i / 8) % 3);   // resize under load: must not deadlock
            }
            for (Future<float[]> f : fs) assertArrayEquals(expected, f.get());
            ex.shutdown();
        } finally {
            nat.setNumThreads(saved);
        }
    }
}
