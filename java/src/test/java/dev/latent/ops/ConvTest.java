package dev.latent.ops;

import dev.latent.TestUtil;
import dev.latent.nativ.LatentNative;
import dev.latent.nativ.NativeException;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The three convolution passes against a double-precision Java reference on random shapes (kernel 1..7, stride 1..3,
 * padding 0..3, odd channels and sizes, N = 1), outputs pre-filled with NaN (write-only outputs must not propagate
 * them), with and without bias, accumulate on and off; plus the adjoint identity and clear errors.
 */
class ConvTest {
    static double[] d(Tensor t) {
        float[] f = t.toArray();
        double[] o = new double[f.length];
        for (int i = 0; i < f.length; i++) o[i] = f[i];
        return o;
    }

    static void fill(Tensor t, float v) {
        for (long i = 0; i < t.numel(); i++) t.segment().setAtIndex(JAVA_FLOAT, i, v);
    }

    /** y[n,k,p,q] = sum_{c,r,s} x[n,c,p*sh-ph+r, q*sw-pw+s] w[k,c,r,s] (+ b[k]). */
    static double[] refFwd(Conv.Geometry g, double[] x, double[] w, double[] b) {
        long oh = g.oh(), ow = g.ow();
        double[] y = new double[(int) (g.n() * g.k() * oh * ow)];
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int p = 0; p < oh; p++)
                    for (int q = 0; q < ow; q++) {
                        double acc = b == null ? 0 : b[k];
                        for (int c = 0; c < g.c(); c++)
                            for (int r = 0; r < g.r(); r++) {
                                long ih = (long) p * g.strideH() - g.padH() + r;
                                if (ih < 0 || ih >= g.h()) continue;
                                for (int s = 0; s < g.s(); s++) {
                                    long iw = (long) q * g.strideW() - g.padW() + s;
                                    if (iw < 0 || iw >= g.w()) continue;
                                    acc += x[(int) (((n * g.c() + c) * g.h() + ih) * g.w() + iw)] * w[(int) (((k * g.c() + c) * g.r() + r) * g.s() + s)];
                                }
                            }
                        y[(int) (((n * g.k() + k) * oh + p) * ow + q)] = acc;
                    }
        return y;
    }

    /** The adjoints, by scattering the same index map. out[0] = dx (+ bias per c), out[1] = dw, out[2] = db. */
    static double[][] refBwd(Conv.Geometry g, double[] x, double[] w, double[] dy, double[] biasC) {
        long oh = g.oh(), ow = g.ow();
        double[] dx = new double[(int) (g.n() * g.c() * g.h() * g.w())], dw = new double[w.length], db = new double[(int) g.k()];
        if (biasC != null)
            for (int n = 0; n < g.n(); n++)
                for (int c = 0; c < g.c(); c++)
                    for (int i = 0; i < g.h() * g.w(); i++) dx[(int) ((n * g.c() + c) * g.h() * g.w() + i)] = biasC[c];
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int p = 0; p < oh; p++)
                    for (int q = 0; q < ow; q++) {
                        double gy = dy[(int) (((n * g.k() + k) * oh + p) * ow + q)];
                        db[k] += gy;
                        for (int c = 0; c < g.c(); c++)
                            for (int r = 0; r < g.r(); r++) {
                                long ih = (long) p * g.strideH() - g.padH() + r;
                                if (ih < 0 || ih >= g.h()) continue;
                                for (int s = 0; s < g.s(); s++) {
                                    long iw = (long) q * g.strideW() - g.padW() + s;
                                    if (iw < 0 || iw >= g.w()) continue;
                                    int xi = (int) (((n * g.c() + c) * g.h() + ih) * g.w() + iw), wi = (int) (((k * g.c() + c) * g.r() + r) * g.s() + s);
                                    dx[xi] += gy * w[wi];
                                    dw[wi] += gy * x[xi];
                                }
                            }
                    }
        return new double[][] {dx, dw, db};
    }

    static Conv.Geometry randomGeometry(SplittableRandom r) {
        while (true) {
            int kh = 1 + r.nextInt(7), kw = r.nextBoolean() ? kh : 1 + r.nextInt(7);
            int sh = 1 + r.nextInt(3), sw = r.nextBoolean() ? sh : 1 + r.nextInt(3), ph = r.nextInt(4), pw = r.nextInt(4);
            long h = 1 + r.nextInt(13), w = 1 + r.nextInt(13);
            if (h + 2L * ph < kh || w + 2L * pw < kw) continue;
            long n = r.nextInt(4) == 0 ? 1 : 1 + r.nextInt(3), c = 1 + r.nextInt(9), k = 1 + r.nextInt(17);
            return new Conv.Geometry(n, c, h, w, k, kh, kw, sh, sw, ph, pw);
        }
    }

    @Test
    void allPassesMatchDoubleReferenceOnRandomShapes() {
        SplittableRandom rnd = new SplittableRandom(42);
        for (int trial = 0; trial < 60; trial++) {
            Conv.Geometry g = randomGeometry(rnd);
            try (Scope s = Scope.confined()) {
                Tensor x = Tensor.of(s, TestUtil.randn(trial, (int) (g.n() * g.c() * g.h() * g.w())), g.inShape());
                Tensor w = Tensor.of(s, TestUtil.randn(100 + trial, (int) (g.k() * g.c() * g.r() * g.s())), g.weightShape());
                Tensor b = Tensor.of(s, TestUtil.randn(200 + trial, (int) g.k()), g.k()), bc = Tensor.of(s, TestUtil.randn(300 + trial, (int) g.c()), g.c());
                Tensor dy = Tensor.of(s, TestUtil.randn(400 + trial, (int) (g.n() * g.k() * g.oh() * g.ow())), g.outShape());
                boolean bias = trial % 2 == 0;
                String what = g + (bias ? " +bias" : "");
                Tensor y = Tensor.empty(s, g.outShape()), dx = Tensor.empty(s, g.inShape()), dw = Tensor.empty(s, g.weightShape()), db = Tensor.empty(s, g.k());
                fill(y, Float.NaN); fill(dx, Float.NaN); fill(dw, Float.NaN); fill(db, Float.NaN);
                Conv.forward(g, x, w, bias ? b : null, y);
                TestUtil.assertClose("fwd " + what, y.toArray(), refFwd(g, d(x), d(w), bias ? d(b) : null), 1e-4, 1e-4);
                double[][] ref = refBwd(g, d(x), d(w), d(dy), bias ? d(bc) : null);
                Conv.backwardData(g, dy, w, bias ? bc : null, dx);
                TestUtil.assertClose("bwd_data " + what, dx.toArray(), ref[0], 1e-4, 1e-4);
                Conv.backwardWeight(g, x, dy, dw, bias ? db : null, false);
                TestUtil.assertClose("bwd_weight " + what, dw.toArray(), ref[1], 1e-4, 1e-4);
                if (bias) TestUtil.assertClose("bwd_bias " + what, db.toArray(), ref[2], 1e-4, 1e-4);
                // accumulate: dw += again
                Conv.backwardWeight(g, x, dy, dw, bias ? db : null, true);
                double[] twice = ref[1].clone();
                for (int i = 0; i < twice.length; i++) twice[i] *= 2;
                TestUtil.assertClose("bwd_weight accumulate " + what, dw.toArray(), twice, 1e-4, 1e-4);
            }
        }
    }

    @Test
    void oneAndTwoThreadsGiveTheSameBits() {
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        Conv.Geometry g = Conv.Geometry.of(5, 7, 13, 11, 9, 3, 1, 1);
        try (Scope s = Scope.confined()) {
            Tensor x = Tensor.rand(s, 1, 1, g.inShape()), w = Tensor.rand(s, 1, 2, g.weightShape()), dy = Tensor.rand(s, 1, 3, g.outShape());
            float[][][] res = new float[2][][];
            for (int t = 1; t <= 2; t++) {
                nat.setNumThreads(t);
                Tensor y = Tensor.empty(s, g.outShape()), dx = Tensor.empty(s, g.inShape()), dw = Tensor.empty(s, g.weightShape()), db = Tensor.empty(s, g.k());
                Conv.forward(g, x, w, null, y);
                Conv.backwardData(g, dy, w, null, dx);
                Conv.backwardWeight(g, x, dy, dw, db, false);
                res[t - 1] = new float[][] {y.toArray(), dx.toArray(), dw.toArray(), db.toArray()};
            }
            for (int i = 0; i < 4; i++) assertArrayEquals(res[0][i], res[1][i], "pass " + i);
        } finally {
            nat.setNumThreads(saved);
        }
    }

    @Test
    void badShapesFailClearly() {
        try (Scope s = Scope.confined()) {
            Conv.Geometry g = Conv.Geometry.of(1, 2, 5, 5, 3, 3, 1, 0);
            Tensor x = Tensor.zeros(s, 1, 2, 5, 5), w = Tensor.zeros(s, 3, 2, 3, 3), y = Tensor.zeros(s, 1, 3, 4, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> Conv.forward(g, x, w, null, y));
            assertTrue(e.getMessage().contains("y must be"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Conv.Geometry.of(1, 2, 2, 2, 3, 7, 1, 0));
            assertThrows(IllegalArgumentException.class, () -> Conv.Geometry.of(1, 2, 5, 5, 3, 3, 0, 0));
        }
    }

    @Test
    void nativeRefusesInconsistentDescriptors() {
        // a descriptor whose oh disagrees with the formula must be refused by the library itself, with a message
        try (var a = java.lang.foreign.Arena.ofConfined()) {
            var d = a.allocate(LatentNative.CONV2D_DESC);
            long[] v = {1, 1, 4, 4, 1, 3, 3, 5, 2};
            for (int i = 0; i < v.length; i++) d.set(java.lang.foreign.ValueLayout.JAVA_LONG, 8L * i, v[i]);
            for (int i = 0; i < 4; i++) d.set(java.lang.foreign.ValueLayout.JAVA_INT, 72 + 4L * i, i < 2 ? 1 : 0);
            var buf = a.allocate(4096, 64);
            var e = assertThrows(NativeException.class, () -> LatentNative.get().conv2dFwd(d, buf, buf, java.lang.foreign.MemorySegment.NULL, buf));
            assertFalse(e.getMessage().isEmpty());
        }
    }
}
