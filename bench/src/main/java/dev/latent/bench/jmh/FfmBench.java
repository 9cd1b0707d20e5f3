package dev.latent.bench.jmh;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.openjdk.jmh.annotations.*;

import java.util.concurrent.TimeUnit;

/**
 * The bare cost of crossing the FFM boundary: a no-op downcall with and without Linker.Option.critical,
 * and a 1x1x1 GEMM through the full Java-side validation. Tells which calls may use critical and what a
 * tiny kernel call costs before it does any work.
 */
@State(org.openjdk.jmh.annotations.Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class FfmBench {
    private LatentNative nat;
    private Scope scope;
    private Tensor a, b, c;

    @Setup
    public void setup() {
        nat = LatentNative.get();
        scope = Scope.shared();
        a = Tensor.rand(scope, 1, 1, 1, 1);
        b = Tensor.rand(scope, 1, 2, 1, 1);
        c = Tensor.zeros(scope, 1, 1);
    }

    @TearDown
    public void tearDown() { scope.close(); }

    @Benchmark
    public int downcall() { return nat.numThreads(); }

    @Benchmark
    public int downcallCritical() { return nat.abiVersionCritical(); }

    @Benchmark
    public void gemm1x1x1() { Gemm.matmul(a, b, c, 1f, 0f); }
}
