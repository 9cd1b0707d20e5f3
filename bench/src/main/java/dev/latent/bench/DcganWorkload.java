package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.gan.GanTrainer;
import dev.latent.nativ.LatentNative;

import java.nio.file.Files;
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
        double med = ImageStepBench.medianMs(steps, i -> t.step(data, perm, (Math.max(i, 0) % 4) * 64, i + 3));
        return ImageStepBench.report("dcgan-train-step", "1x32x32 nz100 ngf64 ndf64 B64", "dcgan step", threads, 64, med,
                peer, "E2", "E2.dcgan32_train", log);
    }
}
