package dev.latent.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The part E2-E4 share: time a training step (two warm-up steps, then the median of {@code steps}), record it in
 * images/s, and, when asked, run the same step in PyTorch's bench_e2e.py in the same run and record the ratio.
 */
final class ImageStepBench {
    private ImageStepBench() {}

    /** One training step; {@code i} counts from -2 (the warm-up steps are -2 and -1). */
    interface Step {
        void run(int i) throws Exception;
    }

    /** The median wall time of {@code steps} calls of {@code step} in ms, after two warm-up calls. */
    static double medianMs(int steps, Step step) throws Exception {
        double[] ms = new double[steps];
        for (int i = -2; i < steps; i++) {
            long t0 = System.nanoTime();
            step.run(i);
            if (i >= 0) ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        Arrays.sort(ms);
        return ms[steps / 2];
    }

    /**
     * The records of one workload: ours, and PyTorch's when {@code peer} and the reference is found.
     *
     * @param workload  the record's workload name, e.g. "vae-train-step"
     * @param shape     the record's shape text
     * @param label     the log line's name of the step, e.g. "vae step"
     * @param batch     images per step
     * @param section   bench_e2e.py's section to run, e.g. "E3"
     * @param key       the figure bench_e2e.py reports for it, e.g. "E3.convvae28_train"
     */
    static List<Map<String, Object>> report(String workload, String shape, String label, int threads, int batch, double med,
                                            boolean peer, String section, String key, Consumer<String> log) throws Exception {
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("workload", workload);
        rec.put("shape", shape);
        rec.put("impl", "latent");
        rec.put("threads", threads);
        rec.put("ms", med);
        rec.put("images_per_s", batch / (med / 1e3));
        out.add(rec);
        log.accept(String.format("%s, %d thread(s): %.2f ms, %.0f images/s", label, threads, med, batch / (med / 1e3)));
        if (!peer) return out;
        TorchPeer tp = TorchPeer.find();
        if (tp == null) {
            log.accept("PyTorch reference not found ($LATENT_REFERENCE or ../shared/reference with its .venv): ours only");
            return out;
        }
        Double pms = tp.run("bench_e2e.py", section, threads).get(key);
        if (pms == null) {
            log.accept("PyTorch ran but reported no " + key + " figure");
            return out;
        }
        Map<String, Object> p = new LinkedHashMap<>(rec);
        p.put("impl", "pytorch");
        p.put("ms", pms);
        p.put("images_per_s", batch / (pms / 1e3));
        out.add(p);
        rec.put("latent_speedup", pms / med);
        log.accept(String.format("pytorch: %.2f ms, %.0f images/s; latent is %.2fx", pms, batch / (pms / 1e3), pms / med));
        return out;
    }
}
