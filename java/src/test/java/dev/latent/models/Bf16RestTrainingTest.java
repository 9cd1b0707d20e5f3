package dev.latent.models;

import dev.latent.Latent;
import dev.latent.SyntheticImages;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.SafeTensors;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.flow.GlowLayers;
import dev.latent.models.flow.ToyFlow;
import dev.latent.models.gan.ToyGan;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.models.pixelcnn.PixelCnnTrainer;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.TrainingListener;
import dev.latent.train.TrainingPrecision;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.IntFunction;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * bf16 for the remaining training families (issue 15): RealNVP and Glow (coupling networks), PixelCNN (masked
 * convolutions), the FID classifier, and the 2-D toy GAN and flow (linear layers). Each: a few steps at bf16 are
 * bit-identical on 1 and 2 threads, differ from fp32 (so bf16 runs) and track fp32's losses within {@link #REL}; the
 * precision is recorded in the checkpoints (old ones read as fp32) and a resume at another one is refused. Also
 * {@link Graph#at}: an op recorded inside an FP32 scope of a BF16 graph runs fp32 forward and backward (Glow's
 * invertible 1x1 convolution relies on it).
 * <p>
 * The tolerance, as Bf16ConvTrainingTest's: each conv or linear layer's output errs by at most (2^-7 + 2^-16) of its
 * sum |w x|, carried through the net's few layers, so a loss moves by a few 2^-7 relative to first order; Adam's
 * update is bounded by lr per element per step whatever the gradient's rounding, so a few steps cannot separate the
 * runs further. 5% of the loss is wide against that (measured values are printed: far less), tight against a lost
 * tap, a wrong gradient or a diverging run. Tests that run bf16 need AVX512_BF16 and skip with the reason elsewhere.
 */
class Bf16RestTrainingTest {
    static final double REL = 0.05;
    @TempDir static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        SyntheticImages.write(data, "train", 256, 1);
        SyntheticImages.write(data, "t10k", 64, 2);
    }

    static void needBf16() {
        String why = Gemm.bf16Unavailable();
        assumeTrue(why == null, () -> "skipped: " + why);
    }

    /** steps(p) at 1 and 2 threads at bf16 and at fp32: same bits across threads, not fp32's, within REL of fp32. */
    static void tracksFp32(String what, IntFunction<double[]> bf16AtThreads, java.util.function.Supplier<double[]> fp32) {
        double[] one = withThreads(1, bf16AtThreads), two = withThreads(2, bf16AtThreads), fp = fp32.get();
        System.out.printf("%s: fp32 %s bf16 %s%n", what, Arrays.toString(fp), Arrays.toString(one));
        assertArrayEquals(one, two, what + ": bf16 losses must not depend on the thread count");
        assertFalse(Arrays.equals(one, fp), what + ": bf16 gave the fp32 losses, the bf16 path did not run");
        for (int i = 0; i < fp.length; i++) {
            assertTrue(Double.isFinite(one[i]), what + " step " + i + " is not finite");
            assertEquals(fp[i], one[i], REL * Math.abs(fp[i]), what + " step " + i + " far from fp32");
        }
    }

    static double[] withThreads(int threads, IntFunction<double[]> f) {
        int before = Latent.threads();
        Latent.setThreads(threads);
        try {
            return f.apply(threads);
        } finally {
            Latent.setThreads(before);
        }
    }

    static int[] identity(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        return p;
    }

    // ---- flows ----

    static FlowTrainer.Config realnvp(Path out) { return new FlowTrainer.Config(data.toString(), out, 2, 8, 1, 32, 2e-3f, 0, 1, 0, 0, true); }

    static FlowTrainer.Config glow(Path out) {
        return new FlowTrainer.Config(data.toString(), out, "glow", 0, 2, 2, 16, 1, 32, 2e-3f, 0, 1, 0, 0, true);
    }

    static double[] flowSteps(FlowTrainer.Config c, Precision p) {
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(c, s, 28, 28).precision(p);
            ImageData train = ImageData.load(data.toString(), "train");
            double[] l = new double[3];
            for (int i = 0; i < l.length; i++) l[i] = t.trainStep(train, identity(train.n), 32 * i, 32);
            return l;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void realnvpBf16TracksFp32() {
        needBf16();
        tracksFp32("realnvp bits/dim, 3 steps", n -> flowSteps(realnvp(dir.resolve("rn")), Precision.BF16),
                () -> flowSteps(realnvp(dir.resolve("rn")), Precision.FP32));
    }

    @Test
    void glowBf16TracksFp32() {
        needBf16();
        tracksFp32("glow bits/dim, 3 steps", n -> flowSteps(glow(dir.resolve("gl")), Precision.BF16),
                () -> flowSteps(glow(dir.resolve("gl")), Precision.FP32));
    }

    /**
     * Glow's invertible 1x1 convolution stays exact in a BF16 graph: its output and the gradients of its parameters
     * are bit-identical to the FP32 graph's (its log-det is that of the fp32 W), while a plain conv2d in the same BF16
     * graph rounds.
     */
    @Test
    void invertibleConvIsExactInABf16Graph() {
        needBf16();
        try (Scope s = Scope.shared()) {
            GlowLayers.InvConv1x1 inv = new GlowLayers.InvConv1x1(s, 8, 3);
            Tensor x = Tensor.rand(s, 4, 1, 2, 8, 6, 6);
            float[][] fp = invConv(inv, x, Precision.FP32), bf = invConv(inv, x, Precision.BF16);
            for (int i = 0; i < fp.length; i++) assertArrayEquals(fp[i], bf[i], "InvConv1x1 output / gradient " + i + " rounded in a BF16 graph");
            try (Graph g = Graph.open().precision(Precision.BF16)) {
                float[] plain = F.conv2d(Var.constant(x), F.reshape(inv.weight(), 8, 8, 1, 1), null, 1, 0).value().toArray();
                assertFalse(Arrays.equals(plain, fp[0]), "a conv2d outside the scope must run bf16");
            }
        }
    }

    static float[][] invConv(GlowLayers.InvConv1x1 inv, Tensor x, Precision p) {
        try (Graph g = Graph.open().precision(p)) {
            for (Var v : inv.parameters()) v.zeroGrad();
            Var[] r = inv.forward(Var.constant(x));
            Var w = Var.constant(Tensor.rand(g.scope(), 9, 9, x.shape()));
            g.backward(F.add(F.sum(F.mul(r[0], w)), r[1]));
            float[][] out = {r[0].value().toArray(), inv.lower.grad().value().toArray(), inv.upper.grad().value().toArray(),
                    inv.logS.grad().value().toArray()};
            for (Var v : inv.parameters()) v.zeroGrad();
            return out;
        }
    }

    /** Graph.at: inside an FP32 scope of a BF16 graph a matmul and its backward (run after the scope closed) are fp32. */
    @Test
    void precisionScopeCoversTheBackward() {
        needBf16();
        try (Scope s = Scope.shared()) {
            Var a = Var.param(Tensor.rand(s, 1, 1, 16, 24)), b = Var.param(Tensor.rand(s, 1, 2, 24, 8));
            float[][] fp = matmulAndGrads(a, b, Precision.FP32, false), scoped = matmulAndGrads(a, b, Precision.BF16, true),
                    bf = matmulAndGrads(a, b, Precision.BF16, false);
            for (int i = 0; i < 3; i++) assertArrayEquals(fp[i], scoped[i], "value / gradient " + i + " inside Graph.at(FP32)");
            assertFalse(Arrays.equals(fp[2], bf[2]), "the BF16 graph's backward must round");
        }
    }

    static float[][] matmulAndGrads(Var a, Var b, Precision p, boolean exact) {
        try (Graph g = Graph.open().precision(p)) {
            a.zeroGrad(); b.zeroGrad();
            Var y;
            if (exact) try (var scope = g.at(Precision.FP32)) { y = F.matmul(a, b); }
            else y = F.matmul(a, b);
            g.backward(F.sum(F.mul(y, y)));   /* the backward runs after the scope closed, at the graph's BF16 */
            float[][] r = {y.value().toArray(), a.grad().value().toArray(), b.grad().value().toArray()};
            a.zeroGrad(); b.zeroGrad();
            return r;
        }
    }

    // ---- PixelCNN ----

    static PixelCnnTrainer.Config pixelcnn(Path out) {
        return new PixelCnnTrainer.Config(data.toString(), out, new GatedPixelCnn.Arch(8, 2, 5, 3, 16), 1, 16, 3e-3f, 1, 0, 16, 0, 1, 1, true);
    }

    static double[] pixelcnnSteps(Precision p) {
        try (Scope s = Scope.shared()) {
            PixelCnnTrainer t = new PixelCnnTrainer(pixelcnn(dir.resolve("pc")), s).precision(p);
            ImageData train = ImageData.load(data.toString(), "train");
            double[] l = new double[3];
            for (int i = 0; i < l.length; i++) l[i] = t.trainStep(train, identity(train.n), 16 * i, 16);
            return l;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void pixelcnnBf16TracksFp32() {
        needBf16();
        tracksFp32("pixelcnn bits/dim, 3 steps", n -> pixelcnnSteps(Precision.BF16), () -> pixelcnnSteps(Precision.FP32));
    }

    // ---- the classifier ----

    /** Mean test cross-entropy (nats, fp32 evaluation) after 6 steps trained at p. */
    static double[] classifierLoss(Precision p) {
        try (Scope s = Scope.shared()) {
            ImageData train = ImageData.load(data.toString(), "train"), test = ImageData.load(data.toString(), "test");
            Classifier c = new Classifier(s, 10, 4).precision(p);
            Path out = Files.createDirectories(dir.resolve("clf-" + p.id() + "-" + Latent.threads()));
            c.train(train, test, out, 6, false, Long.MAX_VALUE, 1, 32, 2e-3f, 4, true, TrainingListener.NONE);
            double[][] probs = c.featuresAndProbs(test)[1];
            double nll = 0;
            for (int i = 0; i < test.n; i++) nll -= Math.log(Math.max(probs[i][test.labels[i]], 1e-30));
            return new double[] {nll / test.n};
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void classifierBf16TracksFp32() {
        needBf16();
        tracksFp32("classifier test cross-entropy after 6 steps", n -> classifierLoss(Precision.BF16), () -> classifierLoss(Precision.FP32));
    }

    // ---- the 2-D toys (linear layers) ----

    @Test
    void toyGanAndToyFlowBf16TrackFp32() {
        needBf16();
        ToyGan.Config c = new ToyGan.Config("ring8", true, 4, 64, 32, 1e-3f, true, 2, 0.1f, 1);
        tracksFp32("toy-gan wgan-gp {lossD, lossG} after 4 steps", n -> new ToyGan(c).precision(Precision.BF16).train(),
                () -> new ToyGan(c).train());
        ToyFlow.Config f = new ToyFlow.Config("moons", 4, 32, 20, 128, 3e-3f, 1);
        tracksFp32("flow-toy NLL after 20 steps", n -> toyFlow(f, Precision.BF16), () -> toyFlow(f, Precision.FP32));
    }

    static double[] toyFlow(ToyFlow.Config c, Precision p) {
        try (Scope s = Scope.shared()) {
            return new double[] {new ToyFlow(c, s).precision(p).train()};
        }
    }

    // ---- checkpoints record the precision ----

    @Test
    void checkpointsRecordThePrecisionAndOldOnesReadAsFp32() throws IOException {
        needBf16();
        Path out = dir.resolve("pc-ckpt");
        try (Scope s = Scope.shared()) {
            PixelCnnTrainer t = new PixelCnnTrainer(pixelcnn(out), s).precision(Precision.BF16);
            t.run(2, false, Long.MAX_VALUE);
            assertEquals(Precision.BF16, PixelCnnTrainer.load(out, s).precision());
            var e = assertThrows(IOException.class, () -> new PixelCnnTrainer(pixelcnn(out), s).run(3, true, Long.MAX_VALUE));
            assertTrue(e.getMessage().contains("keeps its precision") && e.getMessage().contains("bf16"), e.getMessage());
            PixelCnnTrainer resumed = new PixelCnnTrainer(pixelcnn(out), s).precision(Precision.BF16);
            resumed.run(3, true, Long.MAX_VALUE);   /* the same precision resumes */
            assertEquals(3, resumed.step());
            // the same file without the key (as written before it was recorded) reads as fp32
            Path file = out.resolve(PixelCnnTrainer.CHECKPOINT);
            SafeTensors.Loaded l = SafeTensors.read(file, s);
            Map<String, String> meta = new LinkedHashMap<>(l.metadata());
            assertEquals("bf16", meta.remove(TrainingPrecision.KEY));
            Path old = Files.createDirectories(dir.resolve("pc-old")).resolve(PixelCnnTrainer.CHECKPOINT);
            SafeTensors.write(old, l.tensors(), meta);
            assertEquals(Precision.FP32, PixelCnnTrainer.load(old, s).precision());
            meta.put(TrainingPrecision.KEY, "fp16");
            SafeTensors.write(old, l.tensors(), meta);
            var bad = assertThrows(IOException.class, () -> PixelCnnTrainer.load(old, s));
            assertTrue(bad.getMessage().contains("fp16"), bad.getMessage());
        }
        Path fo = dir.resolve("flow-ckpt");
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(realnvp(fo), s, 28, 28).precision(Precision.BF16);
            Files.createDirectories(fo);
            t.save(fo.resolve(FlowTrainer.CHECKPOINT));
            assertEquals(Precision.BF16, FlowTrainer.load(fo, s).precision());
            Classifier c = new Classifier(s, 10, 1).precision(Precision.BF16);
            c.save(fo.resolve("clf.safetensors"), Map.of());
            assertEquals(Precision.BF16, Classifier.load(fo.resolve("clf.safetensors"), s).precision());
            assertEquals(Precision.FP32, Classifier.load(fo.resolve("clf.safetensors"), s).precision(Precision.FP32).precision());
        }
    }
}
