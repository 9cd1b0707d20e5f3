package dev.latent.autograd;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.function.Supplier;

import static dev.latent.autograd.ConvGradTest.rnd;
import static dev.latent.autograd.GradCheckTest.ATOL;
import static dev.latent.autograd.GradCheckTest.RTOL;
import static dev.latent.autograd.GradCheckTest.eval;
import static dev.latent.autograd.GradCheckTest.numeric;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 21: F.conv1dCausal (WaveNet's dilated causal convolution) by central differences, as GradCheckTest: dx, dw, db
 * on shapes with K 1..5, dilations 1..8 (taps reaching before t = 0, a kernel longer than the sequence), odd channel
 * counts and T at SIMD tails; the second-order gradient through the adjoint rules (d/dw of a loss of dL/dx); the
 * output against a naive double sum written here; and causality of the op itself.
 */
class Conv1dGradTest {
    /** The definition, in double: y[n,o,t] = b[o] + sum_{i,j} w[o,i,j] x[n,i,t-(K-1-j)d]. */
    static double[] naive(float[] x, float[] w, float[] b, int n, int ci, int t, int co, int k, int d) {
        double[] y = new double[n * co * t];
        for (int bb = 0; bb < n; bb++)
            for (int o = 0; o < co; o++)
                for (int tt = 0; tt < t; tt++) {
                    double s = b == null ? 0 : b[o];
                    for (int i = 0; i < ci; i++)
                        for (int j = 0; j < k; j++) {
                            int src = tt - (k - 1 - j) * d;
                            if (src >= 0) s += (double) w[(o * ci + i) * k + j] * x[(bb * ci + i) * t + src];
                        }
                    y[(bb * co + o) * t + tt] = s;
                }
        return y;
    }

    @Test
    void allGradientsMatchFiniteDifferences() {
        int[][] cases = {{2, 3, 9, 4, 2, 1}, {1, 2, 17, 3, 3, 4}, {2, 1, 7, 2, 5, 2}, {1, 3, 5, 2, 4, 8}, {1, 4, 12, 5, 1, 1}};
        for (int[] c : cases)   // n cin t cout k dilation
            try (Scope s = Scope.shared()) {
                Tensor x = rnd(s, 1, 1, c[0], c[1], c[2]), w = rnd(s, 2, 0.5, c[3], c[1], c[4]), b = rnd(s, 3, 1, c[3]);
                Tensor r = rnd(s, 4, 1, c[0], c[3], c[2]);
                Var xv = Var.input(x), wv = Var.param(w), bv = Var.param(b), rv = Var.constant(r);
                Supplier<Var> f = () -> F.sum(F.mul(F.conv1dCausal(xv, wv, bv, c[5]), rv));
                String what = Arrays.toString(c);
                try (Graph g = Graph.open()) {
                    Var y = F.conv1dCausal(xv, wv, bv, c[5]);
                    double[] want = naive(x.toArray(), w.toArray(), b.toArray(), c[0], c[1], c[2], c[3], c[4], c[5]);
                    TestUtil.assertClose("conv1d y " + what, y.value().toArray(), want, 1e-5, 1e-5);
                    g.backward(f.get());
                    TestUtil.assertClose("conv1d dx " + what, xv.grad().value().toArray(), numeric(x, () -> eval(f)), ATOL, RTOL);
                    TestUtil.assertClose("conv1d dw " + what, wv.grad().value().toArray(), numeric(w, () -> eval(f)), ATOL, RTOL);
                    TestUtil.assertClose("conv1d db " + what, bv.grad().value().toArray(), numeric(b, () -> eval(f)), ATOL, RTOL);
                }
            }
    }

    /** Without bias, only the weight trained (x a constant), and only the input (w frozen). */
    @Test
    void partialGradients() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 5, 1, 2, 3, 11), w = rnd(s, 6, 0.5, 2, 3, 2), r = rnd(s, 7, 1, 2, 2, 11);
            Var xv = Var.param(x), wv = Var.param(w), rv = Var.constant(r);
            Supplier<Var> f = () -> F.sum(F.mul(F.conv1dCausal(xv, wv, null, 3), rv));
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                TestUtil.assertClose("dx (no bias)", xv.grad().value().toArray(), numeric(x, () -> eval(f)), ATOL, RTOL);
                TestUtil.assertClose("dw (no bias)", wv.grad().value().toArray(), numeric(w, () -> eval(f)), ATOL, RTOL);
            }
        }
    }

    /** d/dw of P = sum((dL/dx)^2), L = sum(r * conv(x, w)^2): the adjoint ops' own backward rules (second order). */
    @Test
    void secondOrderThroughTheAdjointRules() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 8, 1, 2, 3, 10), w = rnd(s, 9, 0.5, 4, 3, 3), r = rnd(s, 10, 1, 2, 4, 10);
            Var wv = Var.param(w), rv = Var.constant(r);
            java.util.function.Function<Graph, Var> penalty = g -> {
                Var xv = Var.input(x);
                Var gx = g.gradient(F.sum(F.mul(F.mul(y2(xv, wv), y2(xv, wv)), rv)), xv);
                return F.sum(F.mul(gx, gx));
            };
            Supplier<Float> value = () -> { try (Graph g = Graph.open()) { return F.item(penalty.apply(g)); } };
            try (Graph g = Graph.open()) {
                g.backward(penalty.apply(g));
                TestUtil.assertClose("dP/dw", wv.grad().value().toArray(), numeric(w, value, 1e-3), 5e-3, 3e-2);
            }
        }
    }

    private static Var y2(Var x, Var w) { return F.conv1dCausal(x, w, null, 2); }

    @Test
    void outputsNeverSeeTheFuture() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 11, 1, 1, 2, 40), w = rnd(s, 12, 1, 3, 2, 3);
            float[] y0, y1;
            try (Graph g = Graph.inference()) { y0 = F.conv1dCausal(Var.constant(x), Var.constant(w), null, 4).value().toArray(); }
            for (int i = 0; i < 2; i++) x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i * 40 + 25, 100f);
            try (Graph g = Graph.inference()) { y1 = F.conv1dCausal(Var.constant(x), Var.constant(w), null, 4).value().toArray(); }
            for (int o = 0; o < 3; o++)
                for (int t = 0; t < 40; t++) {
                    boolean same = y0[o * 40 + t] == y1[o * 40 + t];
                    if (t < 25) assertTrue(same, "output " + o + " at t=" + t + " changed with the input at t=25");
                    else if (t == 25) assertFalse(same, "output " + o + " at t=25 did not see its own input");
                }
        }
    }

    @Test
    void badShapesAreClearErrors() {
        try (Scope s = Scope.shared(); Graph g = Graph.inference()) {
            Var x = Var.constant(rnd(s, 1, 1, 2, 3, 8)), w = Var.constant(rnd(s, 2, 1, 4, 2, 2));
            var e = assertThrows(IllegalArgumentException.class, () -> F.conv1dCausal(x, w, null, 1));
            assertTrue(e.getMessage().contains("input channels"), e.getMessage());
            Var w3 = Var.constant(rnd(s, 3, 1, 4, 3, 2));
            e = assertThrows(IllegalArgumentException.class, () -> F.conv1dCausal(x, w3, null, 0));
            assertTrue(e.getMessage().contains("dilation"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> F.conv1dCausal(x, w3, Var.constant(rnd(s, 4, 1, 3)), 1));
            assertTrue(e.getMessage().contains("bias"), e.getMessage());
        }
    }
}
