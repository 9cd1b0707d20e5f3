package dev.latent.models.pixelcnn;

import dev.latent.TestUtil;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The gated PixelCNN: its receptive field by gradients (causal, and no blind spot), the cached sampler against the
 * naive one (the same bytes), the sampler's arithmetic against the autograd forward, and a short training run on a
 * slice of Fashion-MNIST that must beat the uniform model's 8 bits/dim clearly, then a checkpoint round trip.
 */
class GatedPixelCnnTest {
    static final GatedPixelCnn.Arch TINY = new GatedPixelCnn.Arch(4, 4, 3, 3, 8);

    /** Whether pixel (y, x) is in the receptive field of (i, j) for L blocks of half-width c (the design's claim). */
    static boolean expected(int L, int c, int i, int j, int y, int x) {
        if (y == i) return x < j && x >= j - L * c;
        return y < i && y >= i - L * c && Math.abs(x - j) <= L * c;
    }

    @Test
    void receptiveFieldIsCausalWithoutBlindSpot() {
        int h = 9, w = 9, L = TINY.layers(), c = 1;
        try (Scope s = Scope.shared()) {
            GatedPixelCnn m = new GatedPixelCnn(s, TINY, 3);
            float[] xs = TestUtil.randn(5, h * w);
            for (int i = 0; i < xs.length; i++) xs[i] = 0.5f + 0.25f * xs[i];
            Tensor x = Tensor.of(s, xs, 1, 1, h, w);
            float[] coef = TestUtil.randn(6, TINY.channels());
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    float[] sel = new float[TINY.channels() * h * w];
                    for (int ch = 0; ch < TINY.channels(); ch++) sel[(ch * h + i) * w + j] = coef[ch];
                    Var xv = Var.input(x);
                    float[] g;
                    try (Graph gr = Graph.open()) {
                        gr.backward(F.sum(F.mul(m.features(xv), Var.constant(Tensor.of(gr.scope(), sel, 1, TINY.channels(), h, w)))));
                        g = xv.grad().value().toArray();
                    }
                    for (int y = 0; y < h; y++)
                        for (int xx = 0; xx < w; xx++) {
                            boolean dep = g[y * w + xx] != 0f, exp = expected(L, c, i, j, y, xx);
                            if (dep != exp)
                                fail("features at (" + i + ", " + j + ") " + (dep ? "depend" : "do not depend") + " on pixel (" + y + ", " + xx + ")");
                        }
                }
        }
    }

    @Test
    void logitsAreCausal() {
        int h = 6, w = 5;
        try (Scope s = Scope.shared()) {
            GatedPixelCnn m = new GatedPixelCnn(s, TINY, 4);
            Tensor x = Tensor.of(s, TestUtil.randn(8, h * w), 1, 1, h, w);
            for (int p = 0; p < h * w; p++) {
                float[] sel = new float[h * w * GatedPixelCnn.LEVELS];
                float[] r = TestUtil.randn(100 + p, GatedPixelCnn.LEVELS);
                System.arraycopy(r, 0, sel, p * GatedPixelCnn.LEVELS, GatedPixelCnn.LEVELS);
                Var xv = Var.input(x);
                float[] g;
                try (Graph gr = Graph.open()) {
                    gr.backward(F.sum(F.mul(m.logits(xv), Var.constant(Tensor.of(gr.scope(), sel, h * w, GatedPixelCnn.LEVELS)))));
                    g = xv.grad().value().toArray();
                }
                for (int q = p; q < h * w; q++) assertEquals(0f, g[q], "logits of pixel " + p + " depend on pixel " + q);
            }
        }
    }

    @Test
    void cachedSamplerGivesTheNaiveSamplersBytesAndMatchesTheForward() {
        int h = 7, w = 6;
        try (Scope s = Scope.shared()) {
            GatedPixelCnn m = new GatedPixelCnn(s, new GatedPixelCnn.Arch(6, 3, 5, 3, 12), 9);
            PixelCnnSampler sampler = new PixelCnnSampler(m);
            byte[] naive = sampler.sample(3, h, w, 42, PixelCnnSampler.Mode.NAIVE);
            byte[] cached = sampler.sample(3, h, w, 42, PixelCnnSampler.Mode.CACHED);
            assertArrayEquals(naive, cached, "cached and naive samplers differ");
            assertFalse(java.util.Arrays.equals(cached, sampler.sample(3, h, w, 43, PixelCnnSampler.Mode.CACHED)), "the seed changes nothing");
            byte[] one = sampler.sample(1, h, w, 42, PixelCnnSampler.Mode.CACHED);
            assertArrayEquals(one, java.util.Arrays.copyOf(cached, h * w), "image 0 depends on the batch");
            byte[] img = java.util.Arrays.copyOfRange(cached, h * w, 2 * h * w);
            float[] mine = sampler.logits(img, h, w);
            float[] px = new float[h * w];
            for (int i = 0; i < px.length; i++) px[i] = (img[i] & 0xff) / 255f;
            try (Graph g = Graph.inference()) {
                float[] ref = m.logits(Var.constant(Tensor.of(g.scope(), px, 1, 1, h, w))).value().toArray();
                double[] refd = new double[ref.length];
                for (int i = 0; i < ref.length; i++) refd[i] = ref[i];
                TestUtil.assertClose("sampler logits vs autograd forward", mine, refd, 1e-4, 1e-4);
            }
        }
    }

    @Test
    void shortTrainingBeatsUniformAndCheckpointRoundTrips(@TempDir Path dir) throws Exception {
        var cfg = new PixelCnnTrainer.Config("fashion-mnist", dir, new GatedPixelCnn.Arch(16, 3, 5, 3, 32), 1, 32, 3e-3f, 1, 1920, 64, 0, 1, 1, true);
        try (Scope s = Scope.shared()) {
            PixelCnnTrainer t = new PixelCnnTrainer(cfg, s);
            ImageData test = ImageData.load("fashion-mnist", "test");
            double before = t.bitsPerDim(test, 64);
            assertEquals(8.0, before, 0.5, "an untrained model should be near uniform");
            var results = t.listener(dev.latent.train.TrainingListener.LOG).run();
            double after = results.get(0).testBitsPerDim();
            assertTrue(after < 5.5, "test bits/dim after 60 steps " + after + " (uniform is 8, before training " + before + ")");
            assertEquals(after, t.bitsPerDim(test, 64), 1e-9);
            assertTrue(Files.size(dir.resolve("metrics.jsonl")) > 0);
            PixelCnnTrainer back = PixelCnnTrainer.load(dir, s);
            assertEquals(after, back.bitsPerDim(test, 64), 1e-6, "the checkpoint gives another model");
            assertEquals(t.step(), back.step());
        }
    }
}
