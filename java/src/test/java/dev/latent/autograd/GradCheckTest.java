package dev.latent.autograd;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Gradients by central differences. The ops run in fp32, so the loss is evaluated in fp32 too; h = 1e-2 on
 * O(1) inputs keeps the truncation error (~h^2) and the rounding error (~eps/h) both near 1e-4, so we
 * compare with atol 2e-3 + rtol 2e-2: a wrong rule (a missing term, a transposed operand) is off by O(1).
 */
class GradCheckTest {
    static final double H = 1e-2, ATOL = 2e-3, RTOL = 2e-2;

    /** d(loss)/d(x) numerically, loss a scalar computed in a fresh inference graph each time. */
    static double[] numeric(Tensor x, Supplier<Float> loss) { return numeric(x, loss, H); }

    /** With step h (smaller than H for functions with kinks, e.g. the input gradient through LeakyReLU). */
    static double[] numeric(Tensor x, Supplier<Float> loss, double H) {
        double[] g = new double[(int) x.numel()];
        float[] v = x.toArray();
        for (int i = 0; i < v.length; i++) {
            float keep = v[i];
            x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (float) (keep + H));
            double up = loss.get();
            x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (float) (keep - H));
            double dn = loss.get();
            x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, keep);
            g[i] = (up - dn) / (2 * H);
        }
        return g;
    }

    static Var sum(Var y) {
        // sum of all elements = sumRows to one row, then to one element
        Var r = F.sumRows(F.reshape(y, -1, 1), 1, 1);
        return F.reshape(r, 1);
    }

    static float eval(Supplier<Var> f) {
        try (Graph g = Graph.inference()) { return F.item(f.get()); }
    }

    @Test
    void linearGeluMatchesFiniteDifferences() {
        try (Scope s = Scope.shared()) {
            Tensor x = Tensor.of(s, TestUtil.randn(1, 3 * 5), 3, 5), w = Tensor.of(s, TestUtil.randn(2, 4 * 5), 4, 5),
                    b = Tensor.of(s, TestUtil.randn(3, 4), 4), r = Tensor.of(s, TestUtil.randn(4, 12), 3, 4);
            Var xv = Var.input(x), wv = Var.param(w), bv = Var.param(b), rv = Var.constant(r);
            Supplier<Var> f = () -> sum(F.mul(F.gelu(F.linear(xv, wv, bv)), rv));
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                TestUtil.assertClose("dL/dx", xv.grad().value().toArray(), numeric(x, () -> eval(f)), ATOL, RTOL);
                TestUtil.assertClose("dL/dW", wv.grad().value().toArray(), numeric(w, () -> eval(f)), ATOL, RTOL);
                TestUtil.assertClose("dL/db", bv.grad().value().toArray(), numeric(b, () -> eval(f)), ATOL, RTOL);
            }
        }
    }

    @Test
    void doubleBackwardThroughLinearGelu() {
        // P(W) = || d/dx sum(r * gelu(x W^T + b)) ||^2, WGAN-GP's shape of penalty; check dP/dW numerically.
        try (Scope s = Scope.shared()) {
            Tensor x = Tensor.of(s, TestUtil.randn(5, 2 * 3), 2, 3), w = Tensor.of(s, TestUtil.randn(6, 4 * 3), 4, 3),
                    b = Tensor.of(s, TestUtil.randn(7, 4), 4), r = Tensor.of(s, TestUtil.randn(8, 8), 2, 4);
            Var wv = Var.param(w), bv = Var.param(b), rv = Var.constant(r);
            Supplier<Float> penalty = () -> {
                try (Graph g = Graph.open()) {
                    Var xv = Var.input(x);
                    g.backward(sum(F.mul(F.gelu(F.linear(xv, wv, bv)), rv)), true);
                    Var gx = xv.grad();
                    return F.item(sum(F.mul(gx, gx)));
                }
            };
            try (Graph g = Graph.open()) {
                Var xv = Var.input(x);
                g.backward(sum(F.mul(F.gelu(F.linear(xv, wv, bv)), rv)), true);
                Var gx = xv.grad();
                wv.zeroGrad();
                bv.zeroGrad();
                Var p = sum(F.mul(gx, gx));
                g.backward(p);
                float[] got = wv.grad().value().toArray();
                wv.zeroGrad();
                bv.zeroGrad();
                TestUtil.assertClose("dP/dW", got, numeric(w, penalty), ATOL, RTOL);
            }
        }
    }

    @Test
    void fusedOpsRefuseDoubleBackwardClearly() {
        try (Scope s = Scope.shared(); Graph g = Graph.open()) {
            Var x = Var.input(Tensor.of(s, TestUtil.randn(1, 8), 2, 4));
            Var y = sum(F.tanh(x));
            var e = assertThrows(UnsupportedOperationException.class, () -> g.backward(y, true));
            assertTrue(e.getMessage().contains("tanh"), e.getMessage());
        }
    }

    @Test
    void opsNeedAnOpenGraph() {
        try (Scope s = Scope.shared()) {
            Var x = Var.constant(Tensor.zeros(s, 2, 2));
            var e = assertThrows(IllegalStateException.class, () -> F.add(x, x));
            assertTrue(e.getMessage().contains("Graph"), e.getMessage());
        }
    }
}
