package dev.latent.bench;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * W4: the VAE sampler on 2^24 elements, forward (reads mu, logvar, writes z: 12 B/element) and backward
 * (reads mu, logvar, dz, writes dmu, dlogvar: 20 B/element), against the triad bandwidth of the same run.
 */
public final class ReparamWorkload {
    private ReparamWorkload() {}

    public static List<Map<String, Object>> run(int threads, int reps, Consumer<String> log) {
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        nat.setNumThreads(threads);
        List<Map<String, Object>> out = new ArrayList<>();
        long n = 1L << 24;
        try (Scope s = Scope.confined()) {
            Tensor mu = Tensor.rand(s, 1, 0, n), lv = Tensor.rand(s, 1, 1, n), dz = Tensor.rand(s, 1, 2, n);
            Tensor z = Tensor.empty(s, n), dmu = Tensor.empty(s, n), dlv = Tensor.empty(s, n);
            double triad = Ceilings.triad(threads, 5);
            double f = GemmWorkload.time(() -> Kernels.reparam(mu, lv, 7, 0, z), reps);
            double b = GemmWorkload.time(() -> Kernels.reparamBackward(mu, lv, 7, 0, dz, 1f, dmu, dlv), reps);
            for (Object[] r : new Object[][] {{"fwd", f, 12.0}, {"bwd", b, 20.0}}) {
                double ms = (double) r[1], gbs = (double) r[2] * n / ms / 1e6;
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("workload", "reparam");
                m.put("shape", "n=2^24");
                m.put("pass", r[0]);
                m.put("impl", "latent");
                m.put("threads", threads);
                m.put("ms", ms);
                m.put("gbs", gbs);
                m.put("pct_triad", 100 * gbs / triad);
                out.add(m);
                log.accept(String.format("reparam %s, %d thread(s): %.2f ms, %.1f GB/s, %.1f%% of triad (%.1f GB/s)", r[0], threads, ms, gbs, 100 * gbs / triad, triad));
            }
        } finally {
            nat.setNumThreads(saved);
        }
        return out;
    }
}
