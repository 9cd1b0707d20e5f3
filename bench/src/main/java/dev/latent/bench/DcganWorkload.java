package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.gan.GanTrainer;
import dev.latent.nativ.LatentNative;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * E2: one DCGAN iteration (one D step on a real and a fake batch, one G step), 1 x 32 x 32, nz 100, ngf = ndf = 64,
 * batch 64, Adam, random data, as PyTorch's bench_e2e.py E2; images/s, ours and PyTorch's in the same run.
 */
public final class DcganWorkload {
    private DcganWorkload() {}

    public static List<Map<String, Object>> run(int threads, int steps, boolean peer, Consumer<String> log) throws Exception {
        LatentNative.get().setNumThreads(threads);
        byte[] px = new byte[256 * 784];
        new SplittableRandom(1).nextBytes(px);
        ImageData data = new ImageData(256, 28, 28, px, null, "random");
        var tmp = Files.createTempDirectory("latent-bench-dcgan");
        GanTrainer t = new GanTrainer(GanTrainer.Config.dcgan("random", tmp));
        int[] perm = ImageData.permutation(256, 1, 0);
        double[] ms = new double[steps];
        for (int i = -2; i < steps; i++) {
            long t0 = System.nanoTime();
            t.step(data, perm, (Math.max(i, 0) % 4) * 64, i + 3);
            if (i >= 0) ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        java.util.Arrays.sort(ms);
        double med = ms[steps / 2];
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("workload", "dcgan-train-step");
        rec.put("shape", "1x32x32 nz100 ngf64 ndf64 B64");
        rec.put("impl", "latent");
        rec.put("threads", threads);
        rec.put("ms", med);
        rec.put("images_per_s", 64 / (med / 1e3));
        out.add(rec);
        log.accept(String.format("dcgan step, %d thread(s): %.1f ms, %.0f images/s", threads, med, 64 / (med / 1e3)));
        if (peer) {
            TorchPeer tp = TorchPeer.find();
            if (tp != null) {
                Double pms = tp.run("bench_e2e.py", "E2", threads).get("E2.dcgan32_train");
                if (pms != null) {
                    Map<String, Object> p = new LinkedHashMap<>(rec);
                    p.put("impl", "pytorch");
                    p.put("ms", pms);
                    p.put("images_per_s", 64 / (pms / 1e3));
                    out.add(p);
                    rec.put("latent_speedup", pms / med);
                    log.accept(String.format("pytorch: %.1f ms, %.0f images/s; latent is %.2fx", pms, 64 / (pms / 1e3), pms / med));
                }
            } else log.accept("PyTorch reference not found ($LATENT_REFERENCE or ../shared/reference with its .venv): ours only");
        }
        return out;
    }
}
