package dev.latent.models.gan;

import dev.latent.Latent;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * bf16 convolutions in training (issue 15): DCGAN and the conv VAE with {@code precision(BF16)} run their convolutions
 * through lt_conv2d_*_bf16 and their linear layers through lt_gemm_bf16. A few steps are bit-identical on 1 and 2
 * threads, differ from fp32 (so bf16 really runs) and stay close to it.
 * <p>
 * Tolerance on the losses after a few steps: each conv or linear layer's output errs by at most (2^-7 + 2^-16) of its
 * sum |w x| (bf16 operands, conv2d_test's bound), which the following layers carry, so with the 4 to 5 such layers of
 * these nets the forward moves a loss by a few 2^-7 relative; Adam's update is lr times a normalized gradient, so the
 * weights after k steps differ by at most ~2 k lr per element whatever the gradient's rounding. Hence 5% of the loss
 * (relative) after 3 to 4 steps: wide against the first-order estimate (4 x 2^-7 = 3%, measured far less), tight
 * against a wrong convolution (a lost tap, a wrong gradient) or a diverging run.
 */
class Bf16ConvTrainingTest {
    @TempDir static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 256, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 64, 2);
    }

    static void needBf16() {
        String why = Gemm.bf16Unavailable();
        assumeTrue(why == null, () -> "skipped: " + why);
    }

    static final double REL = 0.05;

    static GanTrainer.Config dcgan(Path out, int iters) {
        GanTrainer.Config b = GanTrainer.Config.dcgan("", out);
        return new GanTrainer.Config(b.loss(), data.toString(), out, iters, 16, 16, 16, 16, b.lr(), b.beta1(), b.beta2(),
                1, b.lambda(), b.criticNorm(), 3, 1, 0, 0, 1234, true);
    }

    record GanRun(GanTrainer.Result r, float[] samples) {}

    static GanRun gan(String name, Precision p, int threads) throws IOException {
        int before = Latent.threads();
        Latent.setThreads(threads);
        try {
            Path out = dir.resolve(name);
            GanTrainer t = new GanTrainer(dcgan(out, 4)).precision(p);
            GanTrainer.Result r = t.run();
            try (Graph g = Graph.inference(); Scope s = Scope.confined()) {
                return new GanRun(r, t.g.forward(Var.constant(GanTrainer.latent(s, 9, 9, 4, 16))).value().toArray());
            }
        } finally {
            Latent.setThreads(before);
        }
    }

    @Test
    void dcganBf16SameBitsOnOneAndTwoThreadsAndCloseToFp32() throws IOException {
        needBf16();
        GanRun one = gan("bf16-1", Precision.BF16, 1), two = gan("bf16-2", Precision.BF16, 2), fp = gan("fp32", Precision.FP32, 2);
        assertTrue(one.r().finite() && fp.r().finite());
        assertEquals(one.r().lossD(), two.r().lossD(), 0.0, "bf16 lossD must not depend on the thread count");
        assertEquals(one.r().lossG(), two.r().lossG(), 0.0, "bf16 lossG must not depend on the thread count");
        assertArrayEquals(one.samples(), two.samples(), "bf16 weights after training must not depend on the thread count");
        assertFalse(Arrays.equals(one.samples(), fp.samples()), "bf16 training gave the fp32 bits: the bf16 path did not run");
        System.out.printf("dcgan 4 steps: lossD fp32 %.6f bf16 %.6f, lossG fp32 %.6f bf16 %.6f%n", fp.r().lossD(), one.r().lossD(),
                fp.r().lossG(), one.r().lossG());
        assertEquals(fp.r().lossD(), one.r().lossD(), REL * Math.abs(fp.r().lossD()), "bf16 lossD far from fp32");
        assertEquals(fp.r().lossG(), one.r().lossG(), REL * Math.abs(fp.r().lossG()), "bf16 lossG far from fp32");
    }

    static VaeTrainer.Config vae(Path out) {
        return new VaeTrainer.Config(data.toString(), out, 4, 1.0, 1, 32, 2e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 0,
                0, 1, 0, 1234, 8, 20, 4, true);
    }

    static double[] vaeSteps(Precision p, int threads) throws IOException {
        int before = Latent.threads();
        Latent.setThreads(threads);
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(vae(dir.resolve("vae")), s).precision(p);
            ImageData train = ImageData.load(data.toString(), "train");
            int[] perm = new int[train.n];
            for (int i = 0; i < perm.length; i++) perm[i] = i;
            double[] losses = new double[3];
            for (int i = 0; i < losses.length; i++) losses[i] = t.trainStep(train, perm, 32 * i, 32);
            return losses;
        } finally {
            Latent.setThreads(before);
        }
    }

    @Test
    void vaeBf16SameBitsOnOneAndTwoThreadsAndCloseToFp32() throws IOException {
        needBf16();
        double[] one = vaeSteps(Precision.BF16, 1), two = vaeSteps(Precision.BF16, 2), fp = vaeSteps(Precision.FP32, 2);
        assertArrayEquals(one, two, "bf16 VAE losses must not depend on the thread count");
        assertFalse(Arrays.equals(one, fp), "bf16 VAE gave the fp32 losses: the bf16 path did not run");
        System.out.printf("vae 3 steps: -elbo fp32 %s bf16 %s%n", Arrays.toString(fp), Arrays.toString(one));
        for (int i = 0; i < fp.length; i++)
            assertEquals(fp[i], one[i], REL * Math.abs(fp[i]), "bf16 VAE step " + i + " far from fp32");
    }

    /** wgan-gp (double backward through the critic) is not checked in bf16 and is refused; without AVX512_BF16 every
     * bf16 trainer is refused naming it. */
    @Test
    void refusals() {
        GanTrainer.Config w = GanTrainer.Config.wganGp("", dir.resolve("w"));
        GanTrainer wgan = new GanTrainer(new GanTrainer.Config(w.loss(), data.toString(), dir.resolve("w"), 1, 8, 16, 8, 8, w.lr(),
                w.beta1(), w.beta2(), 1, 10f, w.criticNorm(), 1, 1, 0, 0, 1234, true));
        var e = assertThrows(IllegalArgumentException.class, () -> wgan.precision(Precision.BF16));
        assertTrue(e.getMessage().contains("wgan-gp"), e.getMessage());
        if (Gemm.bf16Unavailable() != null) {
            var f = assertThrows(IllegalStateException.class, () -> new GanTrainer(dcgan(dir.resolve("r"), 1)).precision(Precision.BF16));
            assertTrue(f.getMessage().contains("AVX512_BF16"), f.getMessage());
        }
    }
}
