package dev.latent.bench;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Conv;
import dev.latent.spi.ConvPeer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.function.Consumer;

/**
 * W3: the convolution shapes, each pass, ours and every {@link ConvPeer} on the classpath (oneDNN from the
 * bench module) interleaved in one run at each thread count, graded against the FMA peak measured just before.
 * W3c is a transposed convolution: its forward is the backward-data of the underlying convolution (K = 128 in,
 * C = 64 out, 14 x 14 -> 7 x 7), its backward-data is that convolution's forward, and its weight gradient is the
 * convolution's weight gradient with x and dy swapped; both implementations run the same underlying passes.
 */
public final class ConvWorkload {
    private ConvWorkload() {}

    /** id, description, underlying convolution, and whether it is the transposed case. */
    record Shape(String id, String desc, Conv.Geometry geo, boolean transposed) {}

    public static final List<Shape> SHAPES = List.of(
            new Shape("W3a", "conv3x3 s1 p1 N32 64->64 32x32", Conv.Geometry.of(32, 64, 32, 32, 64, 3, 1, 1), false),
            new Shape("W3b", "conv4x4 s2 p1 N64 64->128 14x14", Conv.Geometry.of(64, 64, 14, 14, 128, 4, 2, 1), false),
            new Shape("W3c", "convT4x4 s2 p1 N64 128->64 7x7", Conv.Geometry.of(64, 64, 14, 14, 128, 4, 2, 1), true));

    public static List<Map<String, Object>> run(int[] threadCounts, int reps, Consumer<String> log) {
        List<ConvPeer> peers = new ArrayList<>();
        ServiceLoader.load(ConvPeer.class).forEach(peers::add);
        if (peers.isEmpty()) log.accept("bench conv: no ConvPeer on the classpath (the bench module's oneDNN peer): ours only");
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        List<Map<String, Object>> out = new ArrayList<>();
        try (Scope scope = Scope.confined()) {
            for (int threads : threadCounts) {
                nat.setNumThreads(threads);
                for (ConvPeer p : peers) p.setThreads(threads);
                Ceilings.Peak peak = Ceilings.levelFmaPeak(threads, 5); // AVX-512 FMA at avx512, else AVX2 FMA
                log.accept(String.format("fma peak, %d thread(s): %s", threads, peak));
                for (Shape s : SHAPES) {
                    Conv.Geometry g = s.geo;
                    Tensor x = Tensor.rand(scope, 1, 1, g.inShape()), w = Tensor.rand(scope, 1, 2, g.weightShape());
                    Tensor y = Tensor.rand(scope, 1, 3, g.outShape()), dx = Tensor.zeros(scope, g.inShape());
                    Tensor dy = Tensor.zeros(scope, g.outShape()), dw = Tensor.zeros(scope, g.weightShape());
                    for (ConvPeer.Pass pass : ConvPeer.Pass.values()) {
                        Runnable ours = switch (pass) {
                            case FWD -> () -> Conv.forward(g, x, w, null, dy);
                            case BWD_DATA -> () -> Conv.backwardData(g, y, w, null, dx);
                            case BWD_WEIGHT -> () -> Conv.backwardWeight(g, x, y, dw, null, false);
                        };
                        String name = passName(s, pass);
                        double ms = GemmWorkload.time(ours, reps);
                        out.add(record(s, name, "latent", threads, ms, g.flops(), peak, null));
                        log.accept(line(s, name, "latent", threads, ms, g.flops(), peak, null));
                        for (ConvPeer p : peers) {
                            Tensor a = pass == ConvPeer.Pass.BWD_DATA ? y : x, b = pass == ConvPeer.Pass.BWD_WEIGHT ? y : w;
                            Tensor o = pass == ConvPeer.Pass.FWD ? dy : pass == ConvPeer.Pass.BWD_DATA ? dx : dw;
                            try (ConvPeer.Prepared prep = p.prepare(g.n(), g.c(), g.h(), g.w(), g.k(), g.r(), g.s(), g.strideH(), g.padH(), pass,
                                    a.segment(), b.segment(), o.segment())) {
                                double pms = GemmWorkload.time(prep::run, reps);
                                // Same answer? ours into o, then the peer's result read back over it.
                                ours.run();
                                float[] mine = o.toArray();
                                prep.run();
                                prep.readBack();
                                double diff = maxRelDiff(mine, o.toArray());
                                Map<String, Object> rec = record(s, name, p.name(), threads, pms, g.flops(), peak, pms / ms);
                                rec.put("max_rel_diff_vs_latent", diff);
                                out.add(rec);
                                log.accept(line(s, name, p.name(), threads, pms, g.flops(), peak, pms / ms) + String.format("  max rel diff %.1e", diff));
                                if (!(diff < 1e-3)) throw new IllegalStateException("conv " + s.id + " " + name + ": " + p.name() + " and latent disagree (max rel diff " + diff + ")");
                            }
                        }
                    }
                }
            }
        } finally {
            nat.setNumThreads(saved);
        }
        return out;
    }

    /** max |a - b| / max(max |b|, tiny): results of two fp32 implementations agree to ~1e-6 of the scale. */
    static double maxRelDiff(float[] a, float[] b) {
        double m = 0, scale = 1e-30;
        for (int i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
        return m / scale;
    }

    /** The pass as the issue names it: for W3c the transposed convolution's own passes. */
    static String passName(Shape s, ConvPeer.Pass p) {
        if (!s.transposed) return switch (p) { case FWD -> "fwd"; case BWD_DATA -> "bwd_data"; case BWD_WEIGHT -> "bwd_weight"; };
        return switch (p) { case FWD -> "bwd_data"; case BWD_DATA -> "fwd"; case BWD_WEIGHT -> "bwd_weight"; };
    }

    private static Map<String, Object> record(Shape s, String pass, String impl, int threads, double ms, double flops, Ceilings.Peak peak, Double ratio) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("workload", "conv");
        r.put("id", s.id + "." + pass);
        r.put("shape", s.desc);
        r.put("pass", pass);
        r.put("impl", impl);
        r.put("threads", threads);
        r.put("ms", ms);
        r.put("gflops", flops / ms / 1e6);
        r.put("pct_peak", 100.0 * flops / ms / 1e6 / peak.gflops());
        r.put("peak_gflops", peak.gflops());
        r.put("peak_name", peak.name());
        if (ratio != null) r.put("latent_speedup", ratio);
        return r;
    }

    private static String line(Shape s, String pass, String impl, int threads, double ms, double flops, Ceilings.Peak peak, Double ratio) {
        double gf = flops / ms / 1e6;
        return String.format("conv %-4s %-10s %-18s %d thr %8.3f ms %7.1f GFLOP/s %5.1f%% of the %s peak%s", s.id, pass, impl, threads, ms,
                gf, 100 * gf / peak.gflops(), peak.name(), ratio == null ? "" : String.format("  (latent is %.2fx)", ratio));
    }
}
