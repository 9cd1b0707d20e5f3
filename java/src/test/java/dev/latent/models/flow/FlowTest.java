package dev.latent.models.flow;

import dev.latent.SyntheticImages;
import dev.latent.TestUtil;
import dev.latent.autograd.F;
import dev.latent.autograd.GradCheckTestAccess;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * RealNVP: the fused coupling's gradients by finite differences, inverse(forward(x)) == x for a layer and the whole
 * model, each log-determinant against the brute-force log|det J| of the full Jacobian in double on a tiny image,
 * the loss falling over a CI-sized run, and deterministic sampling at temperature 0.
 */
class FlowTest {
    @TempDir Path dir;

    /** Randomises every parameter (the last convs start at zero, which makes couplings the identity). */
    static void randomize(RealNvp m, long seed) {
        int k = 0;
        for (Var p : m.parameters()) {
            float[] r = TestUtil.randn(seed + k++, (int) p.value().numel());
            for (int i = 0; i < r.length; i++) p.value().segment().setAtIndex(JAVA_FLOAT, i, 0.3f * r[i] + (p.value().numel() == 1 ? 1f : 0f));
        }
    }

    @Test
    void couplingGradientsMatchFiniteDifferences() {
        try (Scope s = Scope.shared()) {
            Tensor y = Tensor.of(s, TestUtil.randn(1, 2 * 9), 2, 1, 3, 3), h = Tensor.of(s, TestUtil.randn(2, 2 * 18), 2, 2, 3, 3);
            Tensor sc = Tensor.of(s, new float[] {0.8f}, 1), r = Tensor.of(s, TestUtil.randn(3, 18), 2, 1, 3, 3), w = Tensor.of(s, new float[] {0.7f, -0.3f}, 2);
            Tensor mask = Tensor.of(s, new float[] {1, 0, 1, 0, 1, 0, 1, 0, 1}, 9);
            Var yv = Var.input(y), hv = Var.input(h), sv = Var.param(sc), rv = Var.constant(r), wv = Var.constant(w);
            Supplier<Var> f = () -> {
                F.Coupling c = F.coupling(yv, hv, sv, mask);
                return F.add(F.sum(F.mul(c.out(), rv)), F.sum(F.mul(c.logdet(), wv)));
            };
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                TestUtil.assertClose("dy", yv.grad().value().toArray(), GradCheckTestAccess.numeric(y, f), 2e-3, 2e-2);
                TestUtil.assertClose("dh", hv.grad().value().toArray(), GradCheckTestAccess.numeric(h, f), 2e-3, 2e-2);
                TestUtil.assertClose("dscale", sv.grad().value().toArray(), GradCheckTestAccess.numeric(sc, f), 2e-3, 2e-2);
            }
        }
    }

    @Test
    void modelInvertsAndLogDetEqualsBruteForceJacobian() {
        try (Scope s = Scope.shared()) {
            RealNvp m = new RealNvp(s, 4, 4, 3, 5, 0.05, 1);
            randomize(m, 10);
            Tensor y = Tensor.of(s, TestUtil.randn(4, 16), 1, 1, 4, 4);
            float ld;
            float[] z;
            try (Graph g = Graph.inference()) {
                Var[] zl = m.forward(Var.constant(y));
                z = zl[0].value().toArray();
                ld = zl[1].value().segment().getAtIndex(JAVA_FLOAT, 0);
                float[] back = m.inverse(zl[0].value()).toArray();
                float[] y0 = y.toArray();
                for (int i = 0; i < 16; i++) assertEquals(y0[i], back[i], 1e-4, "inverse(forward(y))[" + i + "]");
            }
            // Jacobian dz/dy by central differences, column by column, then log|det| by LU in double
            double[][] jac = new double[16][16];
            double hstep = 1e-3;
            for (int j = 0; j < 16; j++) {
                float keep = y.segment().getAtIndex(JAVA_FLOAT, j);
                float[][] zz = new float[2][];
                for (int sgn = 0; sgn < 2; sgn++) {
                    y.segment().setAtIndex(JAVA_FLOAT, j, (float) (keep + (sgn == 0 ? hstep : -hstep)));
                    try (Graph g = Graph.inference()) { zz[sgn] = m.forward(Var.constant(y))[0].value().toArray(); }
                }
                y.segment().setAtIndex(JAVA_FLOAT, j, keep);
                for (int i = 0; i < 16; i++) jac[i][j] = (zz[0][i] - zz[1][i]) / (2 * hstep);
            }
            assertEquals(logAbsDet(jac), ld, 2e-2, "sum of coupling log-dets vs log|det J| of the full Jacobian");
            assertTrue(Math.abs(ld) > 0.1, "the test must exercise a non-trivial Jacobian: " + ld);
        }
    }

    static double logAbsDet(double[][] a) {
        int n = a.length;
        double[][] m = new double[n][];
        for (int i = 0; i < n; i++) m[i] = a[i].clone();
        double acc = 0;
        for (int c = 0; c < n; c++) {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
            double[] t = m[c]; m[c] = m[p]; m[p] = t;
            acc += Math.log(Math.abs(m[c][c]));
            for (int r = c + 1; r < n; r++) {
                double f = m[r][c] / m[c][c];
                for (int k = c; k < n; k++) m[r][k] -= f * m[c][k];
            }
        }
        return acc;
    }

    @Test
    void logitPreprocessingLogDetIsTheDiagonalJacobian() {
        try (Scope s = Scope.shared()) {
            RealNvp m = new RealNvp(s, 2, 2, 1, 2, 0.05, 1);
            byte[] px = {0, (byte) 100, (byte) 200, (byte) 255};
            Tensor[] pre = m.preprocess(s, px, null, 0, 1, -1, 0);   // u = 0.5
            double want = 0;
            for (byte b : px) {
                double x = ((b & 0xff) + 0.5) / 256, p = 0.05 + 0.9 * x;   // d logit(p) / dx = 0.9 / (p (1 - p))
                want += Math.log(0.9 / (p * (1 - p)));
            }
            assertEquals(want, pre[1].segment().getAtIndex(JAVA_FLOAT, 0), 1e-4);
        }
    }

    @Test
    void lossFallsSamplesAreDeterministicAtZeroTemperatureAndCheckpointReloads() throws Exception {
        Path data = Files.createDirectories(dir.resolve("synthetic"));
        SyntheticImages.write(data, "train", 256, 1);
        SyntheticImages.write(data, "t10k", 64, 2);
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(new FlowTrainer.Config(data.toString(), dir.resolve("out"), 2, 8, 2, 32, 2e-3f, 0, 1, 0, 0, true), s, 28, 28);
            var test = dev.latent.data.ImageData.load(data.toString(), "test");
            double before = t.testBpd(test);
            FlowTrainer.Result r = t.run();
            assertTrue(r.testBpd() < before - 0.05, "test bits/dim must fall: " + before + " -> " + r.testBpd());
            assertTrue(r.invertibilityError() < 1e-3, "invertibility " + r.invertibilityError());
            for (String f : new String[] {"metrics.jsonl", "samples.png", "samples-epoch-002.png", "checkpoint.safetensors"})
                assertTrue(Files.isRegularFile(dir.resolve("out").resolve(f)), f);
            t.writeSamples(dir.resolve("a.png"), 4, 0.0, 1);
            t.writeSamples(dir.resolve("b.png"), 4, 0.0, 99);
            assertArrayEquals(Files.readAllBytes(dir.resolve("a.png")), Files.readAllBytes(dir.resolve("b.png")), "temperature 0 ignores the seed");
            FlowTrainer back = FlowTrainer.load(dir.resolve("out"), s);
            assertEquals(t.testBpd(test), back.testBpd(test), 0.0);
        }
    }

    /**
     * {@code --clip}: a threshold above every gradient norm leaves the steps bit for bit those of no clipping (the
     * reference recipe); a tiny one changes them from the second step on (the first loss is computed before any
     * update); a negative one is refused.
     */
    @Test
    void gradientClippingIsOffByDefaultAndChangesTheStepsWhenItBites() throws Exception {
        Path data = Files.createDirectories(dir.resolve("synthetic"));
        SyntheticImages.write(data, "train", 128, 1);
        var train = dev.latent.data.ImageData.load(data.toString(), "train");
        int[] idx = new int[train.n];
        for (int i = 0; i < idx.length; i++) idx[i] = i;
        double[][] loss = new double[3][4];
        double[] clips = {0, 1e9, 1e-6};
        for (int c = 0; c < 3; c++)
            try (Scope s = Scope.shared()) {
                FlowTrainer.Config cfg = new FlowTrainer.Config(data.toString(), dir.resolve("out" + c), 2, 8, 1, 32, 2e-3f, 0, 1, 0, 0, true);
                assertEquals(0.0, cfg.clip(), "no clipping unless asked");
                FlowTrainer t = new FlowTrainer(cfg.withClip(clips[c]), s, 28, 28);
                for (int k = 0; k < 4; k++) loss[c][k] = t.trainStep(train, idx, 32 * k, 32);
            }
        assertArrayEquals(loss[0], loss[1], 0.0, "a clip above every norm is no clipping");
        assertEquals(loss[0][0], loss[2][0], 0.0, "the first loss precedes any update");
        assertNotEquals(loss[0][3], loss[2][3], "a clip of 1e-6 must change the updates");
        assertThrows(IllegalArgumentException.class, () -> new FlowTrainer.Config(data.toString(), dir, 2, 8, 1, 32, 2e-3f, 0, 1, 0, 0, true).withClip(-1));
    }

    /** log|det| of the Jacobian of f: R^d -> R^d at x by central differences (h = 1e-3) and LU in double. */
    static double bruteLogDet(Tensor x, java.util.function.Function<Tensor, float[]> f) {
        int d = (int) x.numel();
        double[][] jac = new double[d][d];
        for (int j = 0; j < d; j++) {
            float keep = x.segment().getAtIndex(JAVA_FLOAT, j);
            x.segment().setAtIndex(JAVA_FLOAT, j, keep + 1e-3f);
            float[] up = f.apply(x);
            x.segment().setAtIndex(JAVA_FLOAT, j, keep - 1e-3f);
            float[] dn = f.apply(x);
            x.segment().setAtIndex(JAVA_FLOAT, j, keep);
            for (int i = 0; i < d; i++) jac[i][j] = (up[i] - dn[i]) / 2e-3;
        }
        return logAbsDet(jac);
    }

    @Test
    void glowLayersInvertAndTheirLogDetsMatchBruteForce() {
        try (Scope s = Scope.shared()) {
            Tensor x = Tensor.of(s, TestUtil.randn(31, 2 * 4 * 4), 1, 2, 4, 4);
            // squeeze: exact round trip, volume preserving
            try (Graph g = Graph.inference()) {
                Var sq = GlowLayers.squeeze(Var.constant(x));
                assertArrayEquals(new long[] {1, 8, 2, 2}, sq.shape());
                assertArrayEquals(x.toArray(), GlowLayers.unsqueeze(sq).value().toArray());
            }
            GlowLayers.ActNorm an = new GlowLayers.ActNorm(s, 2);
            GlowLayers.InvConv1x1 ic = new GlowLayers.InvConv1x1(s, 2, 5);
            try (Graph g = Graph.inference()) { an.forward(Var.constant(x)); }   // data-dependent init on this "batch"
            an.logs.value().segment().setAtIndex(JAVA_FLOAT, 0, 0.3f);        // and away from it, so the log-det is not ~0
            for (int layer = 0; layer < 2; layer++) {
                java.util.function.Function<Tensor, Var[]> fwd = layer == 0 ? t -> an.forward(Var.constant(t)) : t -> ic.forward(Var.constant(t));
                float ld;
                try (Graph g = Graph.inference()) {
                    Var[] r = fwd.apply(x);
                    ld = F.item(r[1]);
                    Tensor back = layer == 0 ? an.inverse(r[0].value()) : ic.inverse(r[0].value());
                    float[] a = x.toArray(), b = back.toArray();
                    for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-4, "layer " + layer + " inverse(forward(x))[" + i + "]");
                }
                double brute = bruteLogDet(x, t -> {
                    try (Graph g = Graph.inference()) { return fwd.apply(t)[0].value().toArray(); }
                });
                assertEquals(brute, ld, 2e-2, "layer " + layer + " log-det");
            }
            // gradients reach the LU parameters
            try (Graph g = Graph.open()) {
                Var[] r = ic.forward(Var.input(x));
                g.backward(F.add(F.sum(F.mul(r[0], r[0])), r[1]));
                assertNotNull(ic.lower.grad());
                assertNotNull(ic.logS.grad());
            }
        }
    }

    @Test
    void toyFlowLearnsMoonsAndInverts() throws Exception {
        try (Scope s = Scope.shared()) {
            ToyFlow f = new ToyFlow(new ToyFlow.Config("moons", 4, 32, 150, 128, 3e-3f, 1), s);
            double before = f.evalNll(1000);
            f.train();
            double after = f.evalNll(1000);
            assertTrue(after < before - 0.3, "toy NLL must fall: " + before + " -> " + after);
            try (Graph g = Graph.inference()) {
                Tensor x = f.sampleData(g.scope(), 3, 0, 64);
                // forward to z then back
                Var[] dummy = null;
                long n = 64;
                Tensor y = x;
                for (int k = 0; k < f.cfg.couplings(); k++)
                    y = F.coupling(Var.constant(y), f.net(k, F.mul(Var.constant(y), Var.constant(f.batchMask(k, n)))), f.scales[k], f.masks[k]).out().value();
                float[] a = x.toArray(), b = f.inverse(y).toArray();
                for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-4);
            }
            f.writePictures(dir.resolve("toy"), 32, 100);
            assertTrue(Files.isRegularFile(dir.resolve("toy/density.png")) && Files.isRegularFile(dir.resolve("toy/samples.png")));
        }
    }

    /** A tiny Glow with every parameter random (ActNorm marked initialised, so forward does not reset it). */
    static Glow tinyGlow(Scope s, int levels, int depth, long seed) {
        Glow m = new Glow(s, 4, 4, levels, depth, 3, 0.05, 1);
        int k = 0;
        for (Var p : m.parameters()) {
            float[] r = TestUtil.randn(seed + k++, (int) p.value().numel());
            for (int i = 0; i < r.length; i++) p.value().segment().setAtIndex(JAVA_FLOAT, i, 0.3f * r[i] + (p.value().numel() == 1 ? 1f : 0f));
        }
        m.markInitialized();
        return m;
    }

    static float[] latents(Glow m, Tensor y) {
        try (Graph g = Graph.inference()) {
            Var[] f = m.forward(Var.constant(y));
            int d = 0;
            for (int i = 0; i < f.length - 1; i++) d += (int) f[i].value().numel();
            float[] out = new float[d];
            for (int i = 0, o = 0; i < f.length - 1; i++) {
                float[] z = Kernels.contiguous(g.scope(), f[i].value()).toArray();
                System.arraycopy(z, 0, out, o, z.length);
                o += z.length;
            }
            return out;
        }
    }

    @Test
    void glowInvertsAndItsLogDetEqualsBruteForceJacobian() {
        try (Scope s = Scope.shared()) {
            Glow m = tinyGlow(s, 2, 2, 40);
            Tensor y = Tensor.of(s, TestUtil.randn(41, 16), 1, 1, 4, 4);
            float ld;
            try (Graph g = Graph.inference()) {
                Var[] f = m.forward(Var.constant(y));
                assertEquals(3, f.length, "two latents and the log-det");
                assertArrayEquals(new long[] {1, 2, 2, 2}, f[0].shape(), "level 0 factors out half of its 4 channels");
                assertArrayEquals(new long[] {1, 8, 1, 1}, f[1].shape(), "level 1 keeps all 8");
                ld = F.item(f[2]);
                float[] a = y.toArray(), b = m.roundTrip(y).toArray();
                for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-4, "glow inverse(forward(y))[" + i + "]");
            }
            double brute = bruteLogDet(y, t -> latents(m, t));
            assertEquals(brute, ld, 2e-2, "Glow log-det (ActNorm + 1x1 conv + couplings, both levels) vs log|det J|");
            assertTrue(Math.abs(ld) > 0.1, "the test must exercise a non-trivial Jacobian: " + ld);
        }
    }

    @Test
    void glowGradientsMatchFiniteDifferences() {
        try (Scope s = Scope.shared()) {
            Glow m = tinyGlow(s, 2, 1, 50);
            Tensor y = Tensor.of(s, TestUtil.randn(51, 2 * 16), 2, 1, 4, 4), pre = Tensor.of(s, new float[] {0.5f, -0.25f}, 2);
            Supplier<Var> f = () -> m.bitsPerDim(Var.constant(y), pre);
            var named = m.namedParameters();
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                for (String name : new String[] {"levels.0.steps.0.net.0.weight", "levels.0.steps.0.net.4.weight", "levels.0.steps.0.actnorm.logs",
                        "levels.0.steps.0.invconv.lower", "levels.1.steps.0.invconv.log_s", "levels.1.steps.0.scale", "levels.1.steps.0.net.2.bias"}) {
                    Var p = named.get(name);
                    assertNotNull(p, name);
                    TestUtil.assertClose(name, p.grad().value().toArray(), GradCheckTestAccess.numeric(p.value(), f), 2e-3, 3e-2);
                }
            }
        }
    }

    @Test
    void glowTrainsSamplesDeterministicallyAndReloads() throws Exception {
        Path data = Files.createDirectories(dir.resolve("synthetic-glow"));
        SyntheticImages.write(data, "train", 256, 1);
        SyntheticImages.write(data, "t10k", 64, 2);
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(new FlowTrainer.Config(data.toString(), dir.resolve("glow"), "glow", 0, 2, 2, 16, 2, 32, 2e-3f, 0, 1, 0, 0, true), s, 28, 28);
            var test = dev.latent.data.ImageData.load(data.toString(), "test");
            double before = t.testBpd(test);
            FlowTrainer.Result r = t.run();
            assertTrue(r.testBpd() < before - 0.05, "glow test bits/dim must fall: " + before + " -> " + r.testBpd());
            assertTrue(r.invertibilityError() < 1e-3, "invertibility " + r.invertibilityError());
            t.writeSamples(dir.resolve("ga.png"), 4, 0.0, 1);
            t.writeSamples(dir.resolve("gb.png"), 4, 0.0, 99);
            assertArrayEquals(Files.readAllBytes(dir.resolve("ga.png")), Files.readAllBytes(dir.resolve("gb.png")), "temperature 0 ignores the seed");
            FlowTrainer back = FlowTrainer.load(dir.resolve("glow"), s);
            assertTrue(back.model instanceof Glow, "the checkpoint says glow");
            assertEquals(t.testBpd(test), back.testBpd(test), 0.0);
        }
    }

    @Test
    void glowRefusesSidesThatCannotBeSqueezed() {
        try (Scope s = Scope.shared()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Glow(s, 28, 28, 3, 1, 4, 0.05, 1));
            assertTrue(e.getMessage().contains("2^L"), e.getMessage());
        }
    }
}
