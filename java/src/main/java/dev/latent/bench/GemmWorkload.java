package dev.latent.bench;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.spi.GemmPeer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.function.Consumer;

/**
 * W1: sgemm on the shapes, ours and every {@link GemmPeer} on the classpath, interleaved in one
 * run, each graded against the FMA peak measured just before its thread count's series.
 */
public final class GemmWorkload {
    /** {M, N, K}: W1a 1024^3 and W1b (4096x384)x(384x1536). */
    public static final long[][] SHAPES = {{1024, 1024, 1024}, {4096, 1536, 384}};

    private GemmWorkload() {}

    public static List<Map<String, Object>> run(int[] threadCounts, int reps, Consumer<String> log) {
        List<GemmPeer> peers = new ArrayList<>();
        ServiceLoader.load(GemmPeer.class).forEach(peers::add);
        LatentNative nat = LatentNative.get();
        int savedThreads = nat.numThreads();
        List<Map<String, Object>> out = new ArrayList<>();
        try (Scope scope = Scope.confined()) {
            for (int threads : threadCounts) {
                nat.setNumThreads(threads);
                for (GemmPeer p : peers) p.setThreads(threads);
                double peak = Ceilings.fmaPeak(threads, 5);
                log.accept(String.format("fma peak, %d thread(s): %.1f GFLOP/s", threads, peak));
                for (long[] s : SHAPES) {
                    long m = s[0], n = s[1], k = s[2];
                    Tensor a = Tensor.rand(scope, 1, 1, m, k), b = Tensor.rand(scope, 1, 2, k, n), c = Tensor.zeros(scope, m, n);
                    double flops = 2.0 * m * n * k;
                    Runnable ours = () -> Gemm.matmul(a, b, c, 1f, 0f);
                    double oursMs = time(ours, reps);
                    out.add(record(s, "latent", threads, oursMs, flops, peak, null));
                    log.accept(line(s, "latent", threads, oursMs, flops, peak));
                    for (GemmPeer p : peers) {
                        double ms = time(() -> p.sgemm(m, n, k, a.segment(), b.segment(), c.segment()), reps);
                        out.add(record(s, p.name(), threads, ms, flops, peak, ms / oursMs));
                        log.accept(line(s, p.name(), threads, ms, flops, peak) + String.format("  (latent is %.2fx)", ms / oursMs));
                    }
                }
            }
        } finally {
            nat.setNumThreads(savedThreads);
        }
        return out;
    }

    /** Median of {@code reps} timed calls after 3 warm-up calls, milliseconds. */
    static double time(Runnable r, int reps) {
        for (int i = 0; i < 3; i++) r.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e6;
        }
        Arrays.sort(t);
        return t[reps / 2];
    }

    private static String shape(long[] s) { return s[0] + "x" + s[1] + "x" + s[2]; }

    private static Map<String, Object> record(long[] s, String impl, int threads, double ms, double flops, double peak, Double ratio) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("workload", "gemm");
        r.put("shape", shape(s));
        r.put("impl", impl);
        r.put("threads", threads);
        r.put("ms", ms);
        r.put("gflops", flops / ms / 1e6);
        r.put("pct_peak", 100.0 * flops / ms / 1e6 / peak);
        r.put("peak_gflops", peak);
        if (ratio != null) r.put("latent_speedup", ratio);
        return r;
    }

    private static String line(long[] s, String impl, int threads, double ms, double flops, double peak) {
        double gf = flops / ms / 1e6;
        return String.format("gemm %-16s %-10s %d thr  %8.3f ms  %7.1f GFLOP/s  %5.1f%% of peak", shape(s), impl, threads, ms, gf, 100 * gf / peak);
    }
}
