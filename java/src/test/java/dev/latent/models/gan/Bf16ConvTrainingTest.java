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

    /** Without AVX512_BF16 (or below ISA avx512) every bf16 GAN trainer is refused naming it, wgan-gp included. */
    @Test
    void refusals() {
        if (Gemm.bf16Unavailable() == null) return;   /* nothing to refuse here: the bf16 tests above ran */
        var f = assertThrows(IllegalStateException.class, () -> new GanTrainer(dcgan(dir.resolve("r"), 1)).precision(Precision.BF16));
        assertTrue(f.getMessage().contains("AVX512_BF16"), f.getMessage());
        var w = assertThrows(IllegalStateException.class, () -> new GanTrainer(wgan(dir.resolve("rw"), 1)).precision(Precision.BF16));
        assertTrue(w.getMessage().contains("wgan-gp") && w.getMessage().contains("AVX512_BF16"), w.getMessage());
    }

    // ---- WGAN-GP: the gradient penalty differentiates through the critic's bf16 convolutions twice ----

    static GanTrainer.Config wgan(Path out, int iters) {
        GanTrainer.Config w = GanTrainer.Config.wganGp("", out);
        return new GanTrainer.Config(w.loss(), data.toString(), out, iters, 16, 16, 16, 16, w.lr(), w.beta1(), w.beta2(), 2, 10f,
                w.criticNorm(), 3, 1, 0, 0, 1234, true);
    }

    /**
     * The penalty mean((|grad_x D(x_hat)|_2 - 1)^2) and its gradient in the critic's weights at one precision; with
     * {@code forwardOnly} the BF16 graph's penalty backward and the outer backward (the double backward) run inside an
     * FP32 scope, so only the critic's forward convolutions are bf16.
     */
    static float[][] penaltyAndGrad(Dcgan.Discriminator d, Precision p, boolean forwardOnly) {
        try (Graph g = Graph.open().precision(p)) {
            Var xHat = Var.input(dev.latent.tensor.Tensor.rand(g.scope(), 5, 1, 8, 1, 32, 32));   /* the mixed images */
            for (Var v : d.parameters()) v.zeroGrad();
            Var score = dev.latent.autograd.F.sum(d.forward(xHat));
            Var pen;
            try (var scope = g.at(forwardOnly ? Precision.FP32 : p)) {   /* as GanTrainer's penaltyAt, then the outer backward */
                Var grad = g.gradient(score, xHat);
                Var norm = dev.latent.autograd.F.sqrt(dev.latent.autograd.F.addScalar(dev.latent.autograd.F.rowSum(dev.latent.autograd.F.mul(grad, grad)), 1e-12f));
                Var dev1 = dev.latent.autograd.F.addScalar(norm, -1f);
                pen = dev.latent.autograd.F.mean(dev.latent.autograd.F.mul(dev1, dev1));
                g.backward(pen);
            }
            java.util.List<Float> grads = new java.util.ArrayList<>();
            for (Var v : d.parameters()) for (float x : v.grad().value().toArray()) grads.add(x);
            float[] gr = new float[grads.size()];
            for (int i = 0; i < gr.length; i++) gr[i] = grads.get(i);
            for (Var v : d.parameters()) v.zeroGrad();
            return new float[][] {{dev.latent.autograd.F.item(pen)}, gr};
        }
    }

    static double relDiff(float[] a, float[] b) {
        double d = 0, n = 0;
        for (int i = 0; i < a.length; i++) { d += Math.pow(a[i] - b[i], 2); n += Math.pow(a[i], 2); }
        return Math.sqrt(d / n);
    }

    /**
     * The penalty's double backward in bf16 against fp32, same weights and batch. Bound: each of the critic's L = 4
     * convolutions rounds its operands (<= 2^-7 of sum |w x| per output), and the penalty's weight gradient is a
     * chain of ~4 L such passes (forward, the input gradient's backward-data, and their two adjoints in the double
     * backward), so it moves by at most ~16 x 2^-7 = 2^-3 of its norm to first order when sum |w x| ~ |sum w x|; the
     * penalty itself (2 L passes) by 2^-4 relative. A wrong adjoint in the double backward gives O(1). It must also
     * differ from both the fp32 result and the bf16-forward-only one (the backward and double backward passes round too).
     */
    @Test
    void wganGpPenaltyDoubleBackwardInBf16TracksFp32() {
        needBf16();
        try (Scope s = Scope.shared()) {
            Dcgan.Discriminator d = new Dcgan.Discriminator(s, 16, Dcgan.Norm.NONE, 3);
            float[][] fp = penaltyAndGrad(d, Precision.FP32, false), bf = penaltyAndGrad(d, Precision.BF16, false),
                    fwd = penaltyAndGrad(d, Precision.BF16, true);
            double rel = relDiff(fp[1], bf[1]);
            System.out.printf("wgan-gp penalty fp32 %.6f bf16 %.6f (bf16 forward only %.6f); weight gradient relative difference %.3g "
                    + "(bf16 forward only %.3g)%n", fp[0][0], bf[0][0], fwd[0][0], rel, relDiff(fp[1], fwd[1]));
            assertNotEquals(fp[0][0], bf[0][0], "bf16 must change the penalty's bits");
            assertEquals(fp[0][0], bf[0][0], Math.scalb(Math.abs(fp[0][0]), -4), "bf16 penalty far from fp32");
            assertTrue(rel > 0 && rel <= 0.125, "penalty gradient relative difference " + rel + " outside (0, 2^-3]");
            assertFalse(Arrays.equals(bf[1], fwd[1]), "the penalty's backward and double backward did not run in bf16");
        }
    }

    /**
     * A few WGAN-GP iterations (2 critic steps each, the penalty included) at bf16: bit-identical on 1 and 2 threads,
     * different from fp32, and the losses within 5% of the loss's scale (|E D(real)| + |E D(fake)| + lambda penalty:
     * each term moves by a few 2^-7 of its magnitude, as in the DCGAN bound above).
     */
    @Test
    void wganGpBf16SameBitsOnOneAndTwoThreadsAndCloseToFp32() {
        needBf16();
        double[][] one = wganSteps(Precision.BF16, 1), two = wganSteps(Precision.BF16, 2), fp = wganSteps(Precision.FP32, 2);
        for (int i = 0; i < fp.length; i++) {
            assertArrayEquals(one[i], two[i], "bf16 wgan-gp step " + i + " must not depend on the thread count");
            double scale = Math.abs(fp[i][0]) + Math.abs(fp[i][2]) + 10 * fp[i][3] + Math.abs(fp[i][4]);
            System.out.printf("wgan-gp step %d: fp32 %s bf16 %s%n", i, Arrays.toString(fp[i]), Arrays.toString(one[i]));
            for (int k : new int[] {0, 2, 4})
                assertEquals(fp[i][k], one[i][k], REL * scale, "bf16 wgan-gp step " + i + " value " + k + " far from fp32");
        }
        assertFalse(Arrays.deepEquals(one, fp), "bf16 wgan-gp gave the fp32 values: the bf16 path did not run");
    }

    /** Per iteration {critic loss, 0, W estimate, penalty, generator loss}: 3 iterations of 2 critic steps and a G step. */
    static double[][] wganSteps(Precision p, int threads) {
        int before = Latent.threads();
        Latent.setThreads(threads);
        try {
            GanTrainer t = new GanTrainer(wgan(dir.resolve("wsteps"), 3)).precision(p);
            ImageData train = ImageData.load(data.toString(), "train");
            int[] perm = new int[train.n];
            for (int i = 0; i < perm.length; i++) perm[i] = i;
            double[][] out = new double[3][];
            for (int it = 0; it < 3; it++) {
                double[] c = null;
                for (int j = 0; j < 2; j++) c = t.criticStep(train, perm, 16 * (2 * it + j), 2L * it + j);
                out[it] = new double[] {c[0], c[1], c[2], c[3], t.generatorStep(it)};
            }
            return out;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } finally {
            Latent.setThreads(before);
        }
    }

    /** The precision is recorded in the GAN checkpoint; load reads it, a resume at another precision is refused. */
    @Test
    void checkpointRecordsThePrecision() throws IOException {
        needBf16();
        Path out = dir.resolve("ckpt-bf16");
        new GanTrainer(wgan(out, 1)).precision(Precision.BF16).run();
        try (Scope s = Scope.shared()) {
            assertEquals(Precision.BF16, GanTrainer.load(out, s, 1).precision());
        }
        var e = assertThrows(IOException.class, () -> new GanTrainer(wgan(out, 2)).run(2, true, Long.MAX_VALUE));
        assertTrue(e.getMessage().contains("keeps its precision"), e.getMessage());
        new GanTrainer(wgan(out, 2)).precision(Precision.BF16).run(2, true, Long.MAX_VALUE);   /* the same precision resumes */
    }
}
