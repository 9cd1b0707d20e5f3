package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * E3: one training step of the convolutional VAE (1 x 28 x 28, latent 32, batch 128: encode, sample, decode, BCE +
 * KL, backward, Adam), random pixels, as PyTorch's bench_e2e.py E3; images/s, ours and PyTorch's in the same run.
 */
public final class VaeWorkload {
    private VaeWorkload() {}

    public static List<Map<String, Object>> run(int threads, int steps, boolean peer, Consumer<String> log) throws Exception {
        LatentNative.get().setNumThreads(threads);
        byte[] px = new byte[512 * 784];
        new SplittableRandom(1).nextBytes(px);
        ImageData data = new ImageData(512, 28, 28, px, null, "random");
        int b = 128;
        double[] ms = new double[steps];
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(VaeTrainer.Config.reference("random", java.nio.file.Path.of(".")), s);
            int[] perm = ImageData.permutation(512, 1, 0);
            for (int i = -2; i < steps; i++) {
                long t0 = System.nanoTime();
                t.trainStep(data, perm, (Math.max(i, 0) % 4) * b, b);
                if (i >= 0) ms[i] = (System.nanoTime() - t0) / 1e6;
            }
        }
        java.util.Arrays.sort(ms);
        double med = ms[steps / 2];
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("workload", "vae-train-step");
        rec.put("shape", "conv VAE 1x28x28 latent 32 B128");
        rec.put("impl", "latent");
        rec.put("threads", threads);
        rec.put("ms", med);
        rec.put("images_per_s", b / (med / 1e3));
        out.add(rec);
        log.accept(String.format("vae step, %d thread(s): %.2f ms, %.0f images/s", threads, med, b / (med / 1e3)));
        if (peer) {
            TorchPeer tp = TorchPeer.find();
            if (tp != null) {
                Double pms = tp.run("bench_e2e.py", "E3", threads).get("E3.convvae28_train");
                if (pms != null) {
                    Map<String, Object> p = new LinkedHashMap<>(rec);
                    p.put("impl", "pytorch");
                    p.put("ms", pms);
                    p.put("images_per_s", b / (pms / 1e3));
                    out.add(p);
                    rec.put("latent_speedup", pms / med);
                    log.accept(String.format("pytorch: %.2f ms, %.0f images/s; latent is %.2fx", pms, b / (pms / 1e3), pms / med));
                }
            } else log.accept("PyTorch reference not found ($LATENT_REFERENCE or ../shared/reference with its .venv): ours only");
        }
        return out;
    }
}
