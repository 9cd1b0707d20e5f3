package dev.latent.models;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.models.pixelcnn.PixelCnnTrainer;
import dev.latent.models.wavenet.WaveNet;
import dev.latent.models.wavenet.WaveNetTrainer;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The training losses of Classifier, GatedPixelCnn (PixelCnnTrainer) and WaveNet write d loss / d logits over their
 * logits (F.crossEntropyInPlace, as Gpt.loss). Against F.crossEntropy on the same logits (the gradient in a buffer of
 * its own), on each model: the loss and every parameter's gradient bit for bit, and the loss call allocating exactly
 * one logits-sized buffer less (Scope.liveBytes, or liveDeviceBytes on the device); then two optimizer steps of the
 * models' own training steps (Classifier.trainStep, PixelCnnTrainer.trainStep, WaveNetTrainer.train) against the
 * same steps written here with F.crossEntropy: the losses they return and the weights after, bit for bit (a step that
 * read the logits after the loss, which now hold the gradient, would differ). On CUDA: CudaInPlaceLossTest.
 */
public class InPlaceLossTest {
    /** A loss and backward in a fresh graph: the loss, each parameter's gradient, the bytes the loss call allocated. */
    record Run(float loss, Map<String, float[]> grads, long bytes) {}

    static long live(Device dev) { return dev == Device.CPU ? Scope.liveBytes() : Scope.liveDeviceBytes(); }

    static Run run(Device dev, Map<String, Var> params, Supplier<Var> loss) {
        for (Var p : params.values()) p.zeroGrad();
        try (Graph g = Graph.open()) {
            long b0 = live(dev);
            Var l = loss.get();
            long used = live(dev) - b0;
            g.backward(l);
            Map<String, float[]> grads = new LinkedHashMap<>();
            for (var e : params.entrySet())   /* a parameter no gradient reaches (a last layer's residual convolution): none */
                grads.put(e.getKey(), e.getValue().grad() == null ? new float[0] : e.getValue().grad().value().toArray());
            return new Run(F.item(l), grads, used);
        }
    }

    static void sameBits(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                fail(what + "[" + i + "]: got " + got[i] + ", expected " + want[i] + " (bits differ)");
    }

    /** The in-place run against the separate-buffer one: same loss and gradients, {@code logitsBytes} fewer bytes. */
    static void sameRun(String model, Run plain, Run inPlace, long logitsBytes) {
        sameBits(model + " loss", new float[] {plain.loss}, new float[] {inPlace.loss});
        assertEquals(plain.grads.keySet(), inPlace.grads.keySet());
        for (String k : plain.grads.keySet()) sameBits(model + " d " + k, plain.grads.get(k), inPlace.grads.get(k));
        long saved = plain.bytes - inPlace.bytes;   /* the scopes round a block up (64-byte lines, bigger pieces for big ones) */
        assertTrue(saved >= logitsBytes && saved < 2 * logitsBytes, model + ": the loss call allocated " + inPlace.bytes + " bytes in place, "
                + plain.bytes + " with a separate gradient buffer: expected one logits buffer (" + logitsBytes + " bytes, rounded up) less");
    }

    static void sameWeights(String model, Map<String, Var> want, Map<String, Var> got) {
        for (var e : want.entrySet()) sameBits(model + " " + e.getKey() + " after the steps", e.getValue().value().toArray(), got.get(e.getKey()).value().toArray());
    }

    static ImageData images(int n, int h, int w, int classes, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] px = new byte[n * h * w];
        int[] labels = new int[n];
        for (int i = 0; i < px.length; i++) px[i] = (byte) r.nextInt(256);
        for (int i = 0; i < n; i++) labels[i] = r.nextInt(classes);
        return new ImageData(n, h, w, px, labels, "random");
    }

    static Tensor input(Scope s, Device dev, ImageData d, int from, int m, float scale, float offset) {
        Tensor x = Tensor.empty(s, m, 1, d.h, d.w);
        d.fill(x, null, from, m, scale, offset, 0);
        return dev == Device.CPU ? x : x.to(s, dev);
    }

    // ---- Classifier ----

    static final int CLASSES = 10, CB = 5;

    public static void classifier(Device dev) {
        ImageData data = images(2 * CB, 28, 28, CLASSES, 3);
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
            Classifier m = new Classifier(s, CLASSES, 7).on(dev);
            MemorySegment t = a.allocate(JAVA_INT, CB);
            for (int i = 0; i < CB; i++) t.setAtIndex(JAVA_INT, i, data.labels[i]);
            Tensor x = input(s, dev, data, 0, CB, 1f / 127.5f, -1f);
            Run plain = run(dev, m.namedParameters(), () -> F.crossEntropy(m.logits(Var.constant(x)), t));
            Run inPlace = run(dev, m.namedParameters(), () -> m.loss(Var.constant(x), t));
            sameRun("classifier", plain, inPlace, 4L * CB * CLASSES);

            // two of trainStep's AdamW steps against the same steps with F.crossEntropy
            Classifier mine = new Classifier(s, CLASSES, 7).on(dev), ref = new Classifier(s, CLASSES, 7).on(dev);
            AdamW optMine = new AdamW(s, mine.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f), optRef = new AdamW(s, ref.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
            for (int step = 0; step < 2; step++) {
                float got = mine.trainStep(data, null, step * CB, CB, optMine, 1e-2f);
                float want;
                try (Graph g = Graph.open()) {
                    for (int i = 0; i < CB; i++) t.setAtIndex(JAVA_INT, i, data.labels[step * CB + i]);
                    Var l = F.crossEntropy(ref.logits(Var.constant(input(g.scope(), dev, data, step * CB, CB, 1f / 127.5f, -1f))), t);
                    g.backward(l);
                    optRef.update(1e-2f, 0);
                    want = F.item(l);
                }
                sameBits("classifier trainStep " + step + " loss", new float[] {want}, new float[] {got});
            }
            sameWeights("classifier", ref.namedParameters(), mine.namedParameters());
        }
    }

    @Test
    void classifier() { classifier(Device.CPU); }

    // ---- PixelCNN ----

    static final GatedPixelCnn.Arch ARCH = new GatedPixelCnn.Arch(4, 3, 5, 3, 8);
    static final int PB = 2, H = 5, W = 7;

    static MemorySegment pixels(Arena a, ImageData d, int from, int m) {
        MemorySegment t = a.allocate(JAVA_INT, (long) m * d.h * d.w);
        for (int i = 0; i < m * d.h * d.w; i++) t.setAtIndex(JAVA_INT, i, d.pixels[from * d.h * d.w + i] & 0xff);
        return t;
    }

    public static void pixelCnn(Device dev) {
        ImageData data = images(2 * PB, H, W, 1, 5);
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
            GatedPixelCnn m = new GatedPixelCnn(s, ARCH, 11);
            if (dev != Device.CPU) m.to(s, dev);
            MemorySegment t = pixels(a, data, 0, PB);
            Tensor x = input(s, dev, data, 0, PB, 1f / 255f, 0f);
            Run plain = run(dev, m.namedParameters(), () -> F.crossEntropy(m.logits(Var.constant(x)), t));
            Run inPlace = run(dev, m.namedParameters(), () -> m.loss(Var.constant(x), t));
            sameRun("pixelcnn", plain, inPlace, 4L * PB * H * W * 256);

            // two of PixelCnnTrainer's Adam steps against the same steps with F.crossEntropy
            var cfg = new PixelCnnTrainer.Config("random", Path.of("unused"), ARCH, 1, PB, 3e-3f, 13, 0, 0, 0, 1, 1, true);
            PixelCnnTrainer mine = new PixelCnnTrainer(cfg, s, dev);
            GatedPixelCnn ref = new GatedPixelCnn(s, ARCH, 13);
            if (dev != Device.CPU) ref.to(s, dev);
            AdamW opt = new AdamW(s, ref.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
            for (int step = 0; step < 2; step++) {
                double got = mine.trainStep(data, null, step * PB, PB);
                double want;
                try (Graph g = Graph.open()) {
                    Var l = F.crossEntropy(ref.logits(Var.constant(input(g.scope(), dev, data, step * PB, PB, 1f / 255f, 0f))), pixels(a, data, step * PB, PB));
                    g.backward(l);
                    opt.update(cfg.lr(), 0);
                    want = F.item(l) / Math.log(2);
                }
                assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(got), "pixelcnn trainStep " + step + ": " + got + " vs " + want);
            }
            sameWeights("pixelcnn", ref.namedParameters(), mine.model.namedParameters());
        }
    }

    @Test
    void pixelCnn() { pixelCnn(Device.CPU); }

    // ---- WaveNet ----

    static final int WN = 3, WT = 9;

    /** WaveNet.loss with F.crossEntropy: the logits permuted to (N T, 256) rows against the next bytes. */
    static Var plainWaveNetLoss(WaveNet m, byte[] bytes, int[] offsets, int t) {
        int n = offsets.length;
        Var rows = F.reshape(F.permute(m.logits(bytes, offsets, t), new long[] {n, WaveNet.VOCAB, t}, 0, 2, 1), (long) n * t, WaveNet.VOCAB);
        MemorySegment targets = Arena.ofAuto().allocate(JAVA_INT, (long) n * t);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < t; i++) targets.setAtIndex(JAVA_INT, (long) b * t + i, bytes[offsets[b] + i + 1] & 0xff);
        return F.crossEntropy(rows, targets);
    }

    public static void waveNet(Device dev) {
        byte[] bytes = new byte[200];
        new SplittableRandom(17).nextBytes(bytes);
        try (Scope s = Scope.shared()) {
            WaveNet m = new WaveNet(s, WaveNet.Config.doubling(6, 8, 1, 3, 2), 19);
            if (dev != Device.CPU) m.to(s, dev);
            int[] offsets = {0, 37, 101};
            Run plain = run(dev, m.namedParameters(), () -> plainWaveNetLoss(m, bytes, offsets, WT));
            Run inPlace = run(dev, m.namedParameters(), () -> m.loss(bytes, offsets, WT));
            sameRun("wavenet", plain, inPlace, 4L * WN * WT * WaveNet.VOCAB);

            // two of WaveNetTrainer's AdamW steps against the same steps with F.crossEntropy
            var o = new WaveNetTrainer.Options(WN, WT, 2, 1e-2, 1.0, 0, 1, 23);
            WaveNet mine = new WaveNet(s, WaveNet.Config.doubling(6, 8, 1, 3, 2), 29), ref = new WaveNet(s, WaveNet.Config.doubling(6, 8, 1, 3, 2), 29);
            if (dev != Device.CPU) { mine.to(s, dev); ref.to(s, dev); }
            double[] got = WaveNetTrainer.train(s, mine, bytes, bytes, o, null).trainLoss();
            AdamW opt = new AdamW(s, ref.namedParameters(), 0.9f, 0.99f, 1e-8f, 0f);
            SplittableRandom rng = new SplittableRandom(o.seed());
            for (int step = 0; step < o.steps(); step++) {
                int[] offs = new int[o.batch()];
                for (int b = 0; b < offs.length; b++) offs[b] = rng.nextInt(bytes.length - o.window());
                try (Graph g = Graph.open()) {
                    Var l = plainWaveNetLoss(ref, bytes, offs, o.window());
                    double want = F.item(l);
                    g.backward(l);
                    opt.update((float) o.lr(), o.clip());
                    assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(got[step]), "wavenet step " + step + ": " + got[step] + " vs " + want);
                }
            }
            sameWeights("wavenet", ref.namedParameters(), mine.namedParameters());
        }
    }

    @Test
    void waveNet() { waveNet(Device.CPU); }
}
