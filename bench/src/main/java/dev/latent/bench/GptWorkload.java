package dev.latent.bench;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.nativ.LatentNative;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * E1: one full GPT training step (forward, loss, backward, AdamW) on the 6 x 6 x 384 char model, context
 * 256, batch 8, vocab 65, tied embeddings, random tokens, as PyTorch's bench_e2e.py E1; tokens/s, ours
 * and PyTorch's in the same run, plus peak resident memory (VmHWM) of this process.
 */
public final class GptWorkload {
    private GptWorkload() {}

    public static List<Map<String, Object>> run(int threads, int steps, boolean peer, Consumer<String> log) throws Exception {
        return run(threads, steps, peer, false, log);
    }

    /** bf16: after the fp32 steps, the same steps on the same model at Graph precision BF16 (impl "latent-bf16"). */
    public static List<Map<String, Object>> run(int threads, int steps, boolean peer, boolean bf16, Consumer<String> log) throws Exception {
        LatentNative nat = LatentNative.get();
        nat.setNumThreads(threads);
        GptConfig cfg = new GptConfig(65, 6, 6, 384, 256, true);
        int b = 8, t = 256;
        List<Map<String, Object>> out = new ArrayList<>();
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
            Gpt m = new Gpt(s, cfg, 1);
            AdamW opt = new AdamW(s, m.namedParameters(), 0.9f, 0.999f, 1e-8f, 0.01f);
            MemorySegment x = a.allocate(JAVA_INT, (long) b * t), y = a.allocate(JAVA_INT, (long) b * t);
            SplittableRandom r = new SplittableRandom(1);
            for (long i = 0; i < (long) b * t; i++) { x.setAtIndex(JAVA_INT, i, r.nextInt(65)); y.setAtIndex(JAVA_INT, i, r.nextInt(65)); }
            double peak = Ceilings.fmaPeak(threads, 5);
            double med = steps(m, opt, x, y, b, t, steps, Precision.FP32), tps = b * t / (med / 1e3);
            double flops = 6.0 * m.parameterCount() * b * t + 3 * 4.0 * b * cfg.heads() * (double) t * t * cfg.headSize() * cfg.layers() / 2;
            long hwm = vmHwmKb();
            Map<String, Object> rec = new LinkedHashMap<>();
            rec.put("workload", "gpt-train-step");
            rec.put("shape", "L6 H6 C384 T256 B8 V65 tied");
            rec.put("impl", "latent");
            rec.put("threads", threads);
            rec.put("ms", med);
            rec.put("tokens_per_s", tps);
            rec.put("pct_peak", 100 * flops / med / 1e6 / peak);
            rec.put("peak_rss_mb", hwm / 1024.0);
            out.add(rec);
            log.accept(String.format("gpt step: %.1f ms, %.0f tokens/s, ~%.0f%% of peak (6N flops + causal attention), peak RSS %.0f MB",
                    med, tps, 100 * flops / med / 1e6 / peak, hwm / 1024.0));
            Map<String, Object> recBf = null;
            if (bf16) {
                double mb = steps(m, opt, x, y, b, t, steps, Precision.BF16);
                recBf = new LinkedHashMap<>(rec);
                recBf.put("impl", "latent-bf16");
                recBf.put("ms", mb);
                recBf.put("tokens_per_s", b * t / (mb / 1e3));
                recBf.put("pct_peak", 100 * flops / mb / 1e6 / peak);
                recBf.put("bf16_speedup_over_fp32", med / mb);
                recBf.remove("peak_rss_mb");
                out.add(recBf);
                log.accept(String.format("gpt step, bf16: %.1f ms, %.0f tokens/s (%.2fx our fp32)", mb, b * t / (mb / 1e3), med / mb));
            }
            if (peer) {
                TorchPeer tp = TorchPeer.find();
                if (tp != null) {
                    Double pms = tp.run("bench_e2e.py", "E1", threads).get("E1.gpt_char_train");
                    if (pms != null) {
                        Map<String, Object> p = new LinkedHashMap<>(rec);
                        p.put("impl", "pytorch");
                        p.put("ms", pms);
                        p.put("tokens_per_s", b * t / (pms / 1e3));
                        p.put("pct_peak", 100 * flops / pms / 1e6 / peak);
                        p.remove("peak_rss_mb");
                        p.put("latent_speedup", pms / med);
                        out.add(p);
                        log.accept(String.format("pytorch step: %.1f ms, %.0f tokens/s; latent is %.2fx", pms, b * t / (pms / 1e3), pms / med));
                        if (recBf != null) {
                            recBf.put("latent_speedup", pms / (double) recBf.get("ms"));
                            log.accept(String.format("latent bf16 is %.2fx pytorch", pms / (double) recBf.get("ms")));
                        }
                    }
                }
            }
        }
        return out;
    }

    /** Median ms of {@code steps} training steps (after 2 warm-up steps) at the given graph precision. */
    private static double steps(Gpt m, AdamW opt, MemorySegment x, MemorySegment y, int b, int t, int steps, Precision p) {
        double[] ms = new double[steps];
        for (int i = -2; i < steps; i++) {
            long t0 = System.nanoTime();
            try (Graph g = Graph.open()) {
                g.precision(p);
                Var loss = m.loss(x, y, b, t);
                g.backward(loss);
                opt.update(1e-3f, 0);
                F.item(loss);
            }
            if (i >= 0) ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        java.util.Arrays.sort(ms);
        return ms[steps / 2];
    }

    static long vmHwmKb() {
        try {
            for (String l : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status")))
                if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("\\D", ""));
        } catch (java.io.IOException ignored) {
            // not Linux: no figure
        }
        return -1;
    }
}
