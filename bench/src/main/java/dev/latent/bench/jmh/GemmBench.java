package dev.latent.bench.jmh;

import dev.latent.bench.peer.OneDnnGemm;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Tensor;
import org.openjdk.jmh.annotations.*;

import java.util.concurrent.TimeUnit;

/**
 * W1: sgemm, Latent vs oneDNN, interleaved in one JMH run (same fork parameters, same machine state).
 * GFLOP/s = 2*M*N*K / time; {@link RunAll} turns the scores into % of the FMA peak it measures in the same run.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class GemmBench {
    @Param({"1024x1024x1024", "4096x1536x384"})
    public String shape;   // M x N x K

    @Param({"1", "2"})
    public int threads;

    @Param({"latent", "onednn"})
    public String impl;

    private dev.latent.tensor.Scope scope;
    private Tensor a, b, c;
    private OneDnnGemm dnnl;
    private long m, n, k;

    @Setup
    public void setup() {
        String[] p = shape.split("x");
        m = Long.parseLong(p[0]); n = Long.parseLong(p[1]); k = Long.parseLong(p[2]);
        scope = dev.latent.tensor.Scope.shared();
        a = Tensor.rand(scope, 1, 1, m, k);
        b = Tensor.rand(scope, 1, 2, k, n);
        c = Tensor.zeros(scope, m, n);
        LatentNative.get().setNumThreads(threads);
        if (impl.equals("onednn")) dnnl = new OneDnnGemm();
    }

    @TearDown
    public void tearDown() { scope.close(); }

    @Benchmark
    public void sgemm() {
        if (dnnl != null) {
            dnnl.setThreads(threads);   // OpenMP's thread count is per calling thread: set it on this one
            dnnl.sgemm(m, n, k, a.segment(), b.segment(), c.segment());
        }
        else Gemm.matmul(a, b, c, 1f, 0f);
    }
}
