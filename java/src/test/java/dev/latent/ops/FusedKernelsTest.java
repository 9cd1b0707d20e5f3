package dev.latent.ops;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The fused training kernels through their Java ops against double-precision references written here, at
 * the suite's ISA level (CI runs it at avx2 and ref), on sizes that hit SIMD tails. Tolerances: a few fp32
 * roundings of O(1) values (1e-5), except GELU whose reference erf (Abramowitz-Stegun 7.1.26) is itself
 * good to 1.5e-7 absolute.
 */
class FusedKernelsTest {
    @ParameterizedTest
    @ValueSource(ints = {1, 3, 7, 8, 9, 15, 16, 37, 385})
    void layerNormForwardAndBackward(int c) {
        int n = 5;
        float[] x = TestUtil.randn(c, n * c), w = TestUtil.randn(c + 1, c), b = TestUtil.randn(c + 2, c), dy = TestUtil.randn(c + 3, n * c);
        double[] y = new double[n * c], dx = new double[n * c], dw = new double[c], db = new double[c];
        for (int i = 0; i < n; i++) {
            double mean = 0, var = 0;
            for (int j = 0; j < c; j++) mean += x[i * c + j];
            mean /= c;
            for (int j = 0; j < c; j++) var += (x[i * c + j] - mean) * (x[i * c + j] - mean);
            double rstd = 1 / Math.sqrt(var / c + 1e-5), gsum = 0, gxsum = 0;
            for (int j = 0; j < c; j++) {
                double xh = (x[i * c + j] - mean) * rstd;
                y[i * c + j] = xh * w[j] + b[j];
                dw[j] += dy[i * c + j] * xh;
                db[j] += dy[i * c + j];
                gsum += dy[i * c + j] * w[j];
                gxsum += dy[i * c + j] * w[j] * xh;
            }
            for (int j = 0; j < c; j++) {
                double xh = (x[i * c + j] - mean) * rstd;
                dx[i * c + j] = rstd * (dy[i * c + j] * w[j] - gsum / c - xh * gxsum / c);
            }
        }
        try (Scope s = Scope.confined()) {
            Tensor tx = Tensor.of(s, x, n, c), tw = Tensor.of(s, w, c), tb = Tensor.of(s, b, c), ty = Tensor.empty(s, n, c);
            Tensor mean = Tensor.empty(s, n), rstd = Tensor.empty(s, n), tdx = Tensor.empty(s, n, c), tdw = Tensor.zeros(s, c), tdb = Tensor.zeros(s, c);
            Kernels.layerNorm(tx, tw, tb, 1e-5f, ty, mean, rstd);
            Kernels.layerNormBackward(tx, tw, mean, rstd, Tensor.of(s, dy, n, c), tdx, tdw, tdb);
            TestUtil.assertClose("layernorm y", ty.toArray(), y, 1e-5, 1e-5);
            TestUtil.assertClose("layernorm dx", tdx.toArray(), dx, 1e-4, 1e-4);
            TestUtil.assertClose("layernorm dw", tdw.toArray(), dw, 1e-5, 1e-5);
            TestUtil.assertClose("layernorm db", tdb.toArray(), db, 1e-5, 1e-5);
        }
    }

    static double erf(double x) {   // Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
        double t = 1 / (1 + 0.3275911 * Math.abs(x));
        double y = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
        return Math.copySign(y, x);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 8, 9, 37, 1000})
    void geluForwardAndBackward(int n) {
        float[] x = TestUtil.randn(n, n), dy = TestUtil.randn(n + 1, n);
        for (int i = 0; i < n; i++) x[i] *= 6;
        double[] y = new double[n], dx = new double[n];
        for (int i = 0; i < n; i++) {
            double cdf = 0.5 * (1 + erf(x[i] / Math.sqrt(2))), pdf = Math.exp(-0.5 * x[i] * x[i]) / Math.sqrt(2 * Math.PI);
            y[i] = x[i] * cdf;
            dx[i] = dy[i] * (cdf + x[i] * pdf);
        }
        try (Scope s = Scope.confined()) {
            Tensor tx = Tensor.of(s, x, n), ty = Tensor.empty(s, n), tdx = Tensor.empty(s, n);
            Kernels.gelu(tx, ty);
            Kernels.geluBackward(tx, Tensor.of(s, dy, n), tdx);
            TestUtil.assertClose("gelu", ty.toArray(), y, 2e-6, 1e-5);
            TestUtil.assertClose("gelu'", tdx.toArray(), dx, 2e-6, 1e-5);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 8, 9, 65, 257})
    void softmaxCrossEntropyWithHardRows(int v) {
        int n = 4;
        float[] logits = TestUtil.randn(v, n * v);
        for (int j = 0; j < v; j++) { logits[v + j] = -88f + j % 3; logits[2 * v + j] = 80f; }   // all-negative row, ties
        int[] tg = {0, v - 1, v / 2, -1};                                                     // last row ignored
        double[] loss = new double[n], dl = new double[n * v];
        float scale = 1f / 3;
        for (int i = 0; i < n; i++) {
            if (tg[i] < 0) continue;
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < v; j++) mx = Math.max(mx, logits[i * v + j]);
            for (int j = 0; j < v; j++) sum += Math.exp(logits[i * v + j] - mx);
            loss[i] = mx + Math.log(sum) - logits[i * v + tg[i]];
            for (int j = 0; j < v; j++) dl[i * v + j] = (Math.exp(logits[i * v + j] - mx) / sum - (j == tg[i] ? 1 : 0)) * scale;
        }
        try (Scope s = Scope.confined()) {
            MemorySegment t = s.allocate(4L * n);
            for (int i = 0; i < n; i++) t.setAtIndex(JAVA_INT, i, tg[i]);
            Tensor tl = Tensor.of(s, logits, n, v), losses = Tensor.empty(s, n), d = Tensor.empty(s, n, v);
            Kernels.softmaxCrossEntropy(tl, t, losses, d, scale);
            TestUtil.assertClose("xent loss", losses.toArray(), loss, 1e-5, 1e-5);
            TestUtil.assertClose("xent grad", d.toArray(), dl, 1e-6, 1e-5);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 9, 1000})
    void adamwMatchesPyTorchsUpdate(int n) {
        float[] p = TestUtil.randn(n, n), g = TestUtil.randn(n + 1, n), m = TestUtil.randn(n + 2, n), v = TestUtil.randn(n + 3, n);
        for (int i = 0; i < n; i++) v[i] = Math.abs(v[i]);
        double lr = 1e-2, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1, gs = 0.5;
        long step = 3;
        double[] want = new double[n];
        for (int i = 0; i < n; i++) {
            double gi = g[i] * gs, pi = p[i] * (1 - lr * wd);
            double mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
            want[i] = pi - lr * (mi / (1 - Math.pow(b1, step))) / (Math.sqrt(vi / (1 - Math.pow(b2, step))) + eps);
        }
        try (Scope s = Scope.confined()) {
            Tensor tp = Tensor.of(s, p, n);
            Kernels.adamw(tp, Tensor.of(s, g, n), Tensor.of(s, m, n), Tensor.of(s, v, n), (float) lr, (float) b1, (float) b2,
                    (float) eps, (float) wd, (float) gs, step);
            TestUtil.assertClose("adamw", tp.toArray(), want, 1e-6, 1e-5);
            double ss = 0;
            for (float x : g) ss += (double) x * x;
            assertEquals(ss, Kernels.sumOfSquares(Tensor.of(s, g, n)), 1e-9 * Math.max(1, ss));
        }
    }
}
