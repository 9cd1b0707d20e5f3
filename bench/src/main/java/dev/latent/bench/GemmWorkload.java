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
 * run, each graded against the FMA ceiling of the ISA level Latent runs at (AVX-512 at avx512, else AVX2), measured
 * just before its thread count's series and named on every line. The peer's name carries its ISA (oneDNN runs
 * uncapped unless -Dlatent.peer.onednn.isa=avx2).
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
                Ceilings.Peak ceiling = Ceilings.levelFmaPeak(threads, 5);
                double peak = ceiling.gflops();
                log.accept(String.format("fma peak, %d thread(s): %s (latent at ISA %s)", threads, ceiling,
                        LatentNative.isaName(nat.isa())));
                for (long[] s : SHAPES) {
                    long m = s[0], n = s[1], k = s[2];
                    Tensor a = Tensor.rand(scope, 1, 1, m, k), b = Tensor.rand(scope, 1, 2, k, n), c = Tensor.zeros(scope, m, n);
                    double flops = 2.0 * m * n * k;
                    Runnable ours = () -> Gemm.matmul(a, b, c, 1f, 0f);
                    double oursMs = time(ours, reps);
                    out.add(record(s, "latent", threads, oursMs, flops, ceiling, null));
                    log.accept(line(s, "latent-" + LatentNative.isaName(nat.isa()), threads, oursMs, flops, ceiling));
                    for (GemmPeer p : peers) {
                        double ms = time(() -> p.sgemm(m, n, k, a.segment(), b.segment(), c.segment()), reps);
                        out.add(record(s, p.name(), threads, ms, flops, ceiling, ms / oursMs));
                        log.accept(line(s, p.name(), threads, ms, flops, ceiling) + String.format("  (latent is %.2fx)", ms / oursMs));
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

    private static Map<String, Object> record(long[] s, String impl, int threads, double ms, double flops, Ceilings.Peak peak, Double ratio) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("workload", "gemm");
        r.put("shape", shape(s));
        r.put("impl", impl);
        if (impl.equals("latent")) r.put("isa", LatentNative.isaName(LatentNative.get().isa())); // a peer's name carries its ISA
        r.put("threads", threads);
        r.put("ms", ms);
        r.put("gflops", flops / ms / 1e6);
        r.put("pct_peak", 100.0 * flops / ms / 1e6 / peak.gflops());
        r.put("peak_gflops", peak.gflops());
        r.put("peak_name", peak.name());
        if (ratio != null) r.put("latent_speedup", ratio);
        return r;
    }

    private static String line(long[] s, String impl, int threads, double ms, double flops, Ceilings.Peak peak) {
        double gf = flops / ms / 1e6;
        return String.format("gemm %-16s %-28s %d thr  %8.3f ms  %7.1f GFLOP/s  %5.1f%% of the %s peak", shape(s), impl, threads, ms, gf,
                100 * gf / peak.gflops(), peak.name());
    }
}
