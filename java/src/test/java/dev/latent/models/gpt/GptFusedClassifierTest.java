package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The classifier fused with the loss (F.crossEntropyInPlace, what Gpt.loss uses): the softmax-cross-entropy kernel writes
 * d loss / d logits over the logits. Against F.crossEntropy (the gradient in a buffer of its own): the same loss bits and
 * the same gradient bits for the head's input and weight, with ignored targets and a vocabulary that is no SIMD multiple;
 * the logits' buffer holds exactly that gradient afterwards (computed apart by the kernel on a copy); the step allocates
 * at least one logits-sized buffer less (Scope.liveBytes, or liveDeviceBytes on the device). Refused: logits that are a
 * leaf (their values would be lost). Left alone: logits under an inference graph (no gradient), and a transposed view
 * (the copy dense() makes is overwritten, not the producing op's output). Gpt.loss against the separate-buffer loss of
 * the unfused model, bit for bit, is GptFusedResidualTest's (GptUnfused keeps F.crossEntropy).
 */
public class GptFusedClassifierTest {
    static final int N = 37, C = 24, V = 67;

    static float[] rnd(SplittableRandom r, int n, double s) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (s * r.nextGaussian());
        return a;
    }

    static void sameBits(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                fail(what + "[" + i + "]: got " + got[i] + ", expected " + want[i] + " (bits differ)");
    }

    /** {loss, dx, dw, logits after the loss, bytes the loss call allocated} for logits = x w^T on {@code dev}. */
    static Object[] run(Device dev, boolean inPlace, MemorySegment targets) {
        SplittableRandom r = new SplittableRandom(5);
        float[] xv = rnd(r, N * C, 1), wv = rnd(r, V * C, 1.5);
        try (Scope s = Scope.shared(); Graph g = Graph.open()) {
            Var x = Var.param(Tensor.of(s, dev, xv, N, C)), w = Var.param(Tensor.of(s, dev, wv, V, C));
            Var logits = F.matmul(x, F.transpose(w));
            float[] before = logits.value().toArray();
            long b0 = dev == Device.CPU ? Scope.liveBytes() : Scope.liveDeviceBytes();
            Var l = inPlace ? F.crossEntropyInPlace(logits, targets) : F.crossEntropy(logits, targets);
            long used = (dev == Device.CPU ? Scope.liveBytes() : Scope.liveDeviceBytes()) - b0;
            float[] after = logits.value().toArray();
            float loss = F.item(l);
            g.backward(l);
            // the gradient the kernel computes apart, on a copy of the logits
            Tensor copy = Tensor.of(g.scope(), dev, before, N, V), d = Tensor.empty(g.scope(), dev, N, V), losses = Tensor.empty(g.scope(), dev, N);
            long counted = 0;
            for (int i = 0; i < N; i++) if (targets.getAtIndex(JAVA_INT, i) >= 0) counted++;
            Kernels.softmaxCrossEntropy(copy, targets, losses, d, 1f / counted);
            return new Object[] {new float[] {loss}, x.grad().value().toArray(), w.grad().value().toArray(), after, used, d.toArray(), before};
        }
    }

    /** The whole check on {@code dev} (also run on CUDA by dev.latent.cuda.CudaFusedClassifierTest). */
    public static void inPlaceKeepsTheBitsAndSavesTheBuffer(Device dev) {
        try (Arena a = Arena.ofConfined()) {
            SplittableRandom r = new SplittableRandom(9);
            int[] t = new int[N];
            for (int i = 0; i < N; i++) t[i] = i % 7 == 3 ? -1 : r.nextInt(V);   // some rows ignored
            MemorySegment targets = a.allocateFrom(JAVA_INT, t);
            Object[] sep = run(dev, false, targets), inp = run(dev, true, targets);
            sameBits("loss", (float[]) sep[0], (float[]) inp[0]);
            sameBits("d x", (float[]) sep[1], (float[]) inp[1]);
            sameBits("d w", (float[]) sep[2], (float[]) inp[2]);
            sameBits("separate buffer: the logits untouched", (float[]) sep[6], (float[]) sep[3]);
            sameBits("in place: the logits' buffer holds d loss / d logits", (float[]) inp[5], (float[]) inp[3]);
            long saved = (long) sep[4] - (long) inp[4];
            assertTrue(saved >= 4L * N * V, "in place allocated " + inp[4] + " bytes, the separate buffer " + sep[4] + ": expected at least "
                    + 4L * N * V + " (the logits' size) less, saved " + saved);
        }
    }

    @Test
    void inPlaceKeepsTheBitsAndSavesTheBuffer() { inPlaceKeepsTheBitsAndSavesTheBuffer(Device.CPU); }

    @Test
    void leafLogitsAreRefusedAndLogitsWithoutAGradientKept() {
        try (Arena a = Arena.ofConfined(); Scope s = Scope.shared()) {
            MemorySegment targets = a.allocateFrom(JAVA_INT, 1, 0, 2);
            float[] v = {0.5f, -1f, 2f, 3f, 0f, -0.25f, 1f, 1f, 1f};
            try (Graph g = Graph.open()) {
                Var leaf = Var.param(Tensor.of(s, v, 3, 3));
                var e = assertThrows(IllegalArgumentException.class, () -> F.crossEntropyInPlace(leaf, targets));
                assertTrue(e.getMessage().contains("crossEntropyInPlace") && e.getMessage().contains("leaf"), e.getMessage());
                sameBits("a refused leaf's values", v, leaf.value().toArray());
            }
            Var w = Var.param(Tensor.of(s, v, 3, 3));
            try (Graph g = Graph.inference()) {   // no gradient: nothing is written over the logits
                Var logits = F.matmul(w, w);
                float[] before = logits.value().toArray();
                float want;
                try (Graph g2 = Graph.inference()) { want = F.item(F.crossEntropy(F.matmul(w, w), targets)); }
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(F.item(F.crossEntropyInPlace(logits, targets))));
                sameBits("logits under inference", before, logits.value().toArray());
            }
            try (Graph g = Graph.open()) {   // a transposed view: dense() copies it, the copy becomes the gradient
                Var prod = F.matmul(w, w);
                float[] before = prod.value().toArray();
                Var l = F.crossEntropyInPlace(F.transpose(prod), targets);
                sameBits("the op output under a transposed view", before, prod.value().toArray());
                g.backward(l);
                assertNotNull(w.grad());
            }
        }
    }
}
