package dev.latent.ops;

import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import dev.latent.TestUtil;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Many Java threads calling kernels at once while others resize the pool (lt_set_num_threads racing the
 * calls): every output has the bits of a run on one thread.
 */
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

    /**
     * Every kernel family the models use (GEMM on the batch and the threaded path, attention forward and
     * backward on both backward schedules, LayerNorm, GELU, softmax cross-entropy, sum of squares), from
     * fixed inputs; returns each output's bits.
     */
    static List<float[]> workload(Scope s, Tensor[] in, MemorySegment targets) {
        List<float[]> out = new ArrayList<>();
        out.add(Gemm.matmul(s, in[0], in[1]).toArray());                                  // (129, 77): threaded path
        out.add(Gemm.matmul(s, in[2], in[3]).toArray());                                  // (6, 64) @ (64, 192): small
        for (int a = 4; a <= 5; a++) {                                                    // (1,1,130,64) and (2,3,33,16)
            Tensor q = in[a];
            long[] sh = q.shape();
            Tensor o = Tensor.empty(s, sh), lse = Tensor.empty(s, sh[0], sh[1], sh[2]);
            Tensor dq = Tensor.empty(s, sh), dk = Tensor.empty(s, sh), dv = Tensor.empty(s, sh);
            float scale = (float) (1 / Math.sqrt(sh[3]));
            AttentionKernels.attention(q, q, q, true, scale, o, lse);
            AttentionKernels.attentionBackward(q, q, q, o, lse, q, true, scale, dq, dk, dv);
            out.add(o.toArray()); out.add(lse.toArray()); out.add(dq.toArray()); out.add(dk.toArray()); out.add(dv.toArray());
        }
        Tensor x = in[6], w = in[7], b = in[8];                                           // (300, 96), (96), (96)
        Tensor y = Tensor.empty(s, 300, 96), mean = Tensor.empty(s, 300), rstd = Tensor.empty(s, 300);
        Kernels.layerNorm(x, w, b, 1e-5f, y, mean, rstd);
        Tensor dx = Tensor.empty(s, 300, 96), dw = Tensor.zeros(s, 96), db = Tensor.zeros(s, 96);
        Kernels.layerNormBackward(x, w, mean, rstd, y, dx, dw, db);
        out.add(y.toArray()); out.add(dx.toArray()); out.add(dw.toArray()); out.add(db.toArray());
        Tensor g = Tensor.empty(s, 300, 96), dg = Tensor.empty(s, 300, 96);
        Kernels.gelu(x, g);
        Kernels.geluBackward(x, y, dg);
        out.add(g.toArray()); out.add(dg.toArray());
        Tensor losses = Tensor.empty(s, 300), dl = Tensor.empty(s, 300, 96);
        Kernels.softmaxCrossEntropy(x, targets, losses, dl, 1f / 300);
        out.add(losses.toArray()); out.add(dl.toArray());
        out.add(new float[] {(float) Kernels.sumOfSquares(x)});
        return out;
    }

    @Test
    void everyKernelGivesOneThreadsBitsWhileThePoolIsResizedUnderLoad() throws Exception {
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        try (Scope shared = Scope.shared(); Arena ar = Arena.ofShared()) {
            Tensor[] in = {
                    Tensor.rand(shared, 3, 0, 129, 300), Tensor.rand(shared, 3, 1, 300, 77),
                    Tensor.rand(shared, 3, 2, 6, 64), Tensor.rand(shared, 3, 3, 64, 192),
                    Tensor.of(shared, TestUtil.randn(4, 130 * 64), 1, 1, 130, 64), Tensor.of(shared, TestUtil.randn(5, 2 * 3 * 33 * 16), 2, 3, 33, 16),
                    Tensor.of(shared, TestUtil.randn(6, 300 * 96), 300, 96), Tensor.rand(shared, 3, 7, 96), Tensor.rand(shared, 3, 8, 96)};
            MemorySegment targets = ar.allocate(JAVA_INT, 300);
            for (int i = 0; i < 300; i++) targets.setAtIndex(JAVA_INT, i, (i * 37) % 96 - (i % 50 == 0 ? 97 : 0));   // some ignored (negative)
            nat.setNumThreads(1);
            List<float[]> expected;
            try (Scope s = Scope.confined()) { expected = workload(s, in, targets); }

            AtomicBoolean stop = new AtomicBoolean();
            Thread resizer = Thread.ofPlatform().start(() -> {     // lt_set_num_threads racing the kernels
                for (int i = 0; !stop.get(); i++) {
                    nat.setNumThreads(1 + i % 4);
                    Thread.onSpinWait();
                }
            });
            ExecutorService ex = Executors.newFixedThreadPool(6);
            List<Future<List<float[]>>> fs = new ArrayList<>();
            for (int i = 0; i < 96; i++)
                fs.add(ex.submit(() -> {
                    try (Scope s = Scope.confined()) { return workload(s, in, targets); }
                }));
            try {
                for (Future<List<float[]>> f : fs) {
                    List<float[]> got = f.get();
                    for (int k = 0; k < expected.size(); k++) assertArrayEquals(expected.get(k), got.get(k), "output " + k);
                }
            } finally {
                stop.set(true);
                resizer.join();
                ex.shutdown();
            }
        } finally {
            nat.setNumThreads(saved);
        }
    }
}
