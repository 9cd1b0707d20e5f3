package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

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
        double med;
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(VaeTrainer.Config.reference("random", java.nio.file.Path.of(".")), s);
            int[] perm = ImageData.permutation(512, 1, 0);
            med = ImageStepBench.medianMs(steps, i -> t.trainStep(data, perm, (Math.max(i, 0) % 4) * b, b));
        }
        return ImageStepBench.report("vae-train-step", "conv VAE 1x28x28 latent 32 B128", "vae step", threads, b, med,
                peer, "E3", "E3.convvae28_train", log);
    }
}
