package dev.latent.bench;

import dev.latent.data.ImageData;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

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
        double med;
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(FlowTrainer.Config.reference("random", java.nio.file.Path.of(".")), s, 28, 28);
            int[] perm = ImageData.permutation(n, 1, 0);
            med = ImageStepBench.medianMs(steps, i -> {
                double bpd = t.trainStep(data, perm, (Math.max(i, 0) % (n / b)) * b, b);
                if (!Double.isFinite(bpd)) throw new IllegalStateException("realnvp bench step " + i + ": bits/dim is " + bpd);
            });
        }
        return ImageStepBench.report("realnvp-train-step", "RealNVP 1x28x28 6 couplings hidden 64 B64", "realnvp step", threads, b, med,
                peer, "E4", "E4.realnvp28_train", log);
    }
}
