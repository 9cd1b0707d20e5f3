package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * E4: one training step of the reference RealNVP (1 x 28 x 28, 6 checkerboard affine couplings, 64-channel 3x3
 * coupling nets, batch 64: dequantize, logit, forward with log-det, bits/dim, backward, Adam), random pixels, as
 * PyTorch's bench_e2e.py E4; images/s, ours and PyTorch's in the same run.
 */
public final class RealNvpWorkload {
    private RealNvpWorkload() {}

    public static List<Map<String, Object>> run(int threads, int steps, boolean peer, Consumer<String> log) throws Exception {
        LatentNative.get().setNumThreads(threads);
        int n = 256, b = 64;
        byte[] px = new byte[n * 784];
        new SplittableRandom(1).nextBytes(px);
        ImageData data = new ImageData(n, 28, 28, px, null, "random");
        double[] ms = new double[steps];
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(FlowTrainer.Config.reference("random", java.nio.file.Path.of(".")), s, 28, 28);
            int[] perm = ImageData.permutation(n, 1, 0);
            for (int i = -2; i < steps; i++) {
                long t0 = System.nanoTime();
                double bpd = t.trainStep(data, perm, (Math.max(i, 0) % (n / b)) * b, b);
                if (i >= 0) ms[i] = (System.nanoTime() - t0) / 1e6;
                if (!Double.isFinite(bpd)) throw new IllegalStateException("realnvp bench step " + i + ": bits/dim is " + bpd);
            }
        }
        java.util.Arrays.sort(ms);
        double med = ms[steps / 2];
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("workload", "realnvp-train-step");
        rec.put("shape", "RealNVP 1x28x28 6 couplings hidden 64 B64");
        rec.put("impl", "latent");
        rec.put("threads", threads);
        rec.put("ms", med);
        rec.put("images_per_s", b / (med / 1e3));
        out.add(rec);
        log.accept(String.format("realnvp step, %d thread(s): %.2f ms, %.0f images/s", threads, med, b / (med / 1e3)));
        if (peer) {
            TorchPeer tp = TorchPeer.find();
            if (tp != null) {
                Double pms = tp.run("bench_e2e.py", "E4", threads).get("E4.realnvp28_train");
                if (pms != null) {
                    Map<String, Object> p = new LinkedHashMap<>(rec);
                    p.put("impl", "pytorch");
                    p.put("ms", pms);
                    p.put("images_per_s", b / (pms / 1e3));
                    out.add(p);
                    rec.put("latent_speedup", pms / med);
                    log.accept(String.format("pytorch: %.2f ms, %.0f images/s; latent is %.2fx", pms, b / (pms / 1e3), pms / med));
                } else log.accept("PyTorch ran but reported no E4.realnvp28_train figure");
            } else log.accept("PyTorch reference not found ($LATENT_REFERENCE or ../shared/reference with its .venv): ours only");
        }
        return out;
    }
}
