package dev.latent.extend;

import dev.latent.TestUtil;
import dev.latent.autograd.F;
import dev.latent.autograd.GradCheckTestAccess;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A differentiable op defined outside dev.latent.autograd, through the public {@link Graph#custom} API only (this
 * test lives in another package on purpose): gradients by central differences, a multi-output op whose rule sees
 * every output's gradient once (null for an unused output), double backward through a custom rule, and the checks
 * on a rule that returns the wrong number or shape of gradients. Tolerances as GradCheckTest's (fp32, h = 1e-2).
 */
class CustomOpTest {
    static final double ATOL = 2e-3, RTOL = 2e-2;

    /** softplus(x) = log(1 + exp(x)), forward computed by hand (any code may), backward sigmoid(x) written with F. */
    static Var softplus(Var x) {
        Graph g = Graph.current();
        float[] v = x.value().toArray();
        float[] y = new float[v.length];
        for (int i = 0; i < v.length; i++) y[i] = (float) Math.log1p(Math.exp(v[i]));
        return g.custom("softplus", Tensor.of(g.scope(), y, x.shape()), gy -> new Var[] {F.mul(gy, F.sigmoid(x))}, x);
    }

    /** Two outputs from one op: p = a * b and q = a + b (elementwise). */
    static int multiCalls;
    static Var[] prodAndSum(Var a, Var b) {
        Graph g = Graph.current();
        float[] av = a.value().toArray(), bv = b.value().toArray(), p = new float[av.length], q = new float[av.length];
        for (int i = 0; i < av.length; i++) { p[i] = av[i] * bv[i]; q[i] = av[i] + bv[i]; }
        return g.custom("prod_and_sum", new Tensor[] {Tensor.of(g.scope(), p, a.shape()), Tensor.of(g.scope(), q, a.shape())},
                gys -> {
                    multiCalls++;
                    Var gp = gys[0], gq = gys[1];
                    Var da = gp == null ? null : F.mul(gp, b), db = gp == null ? null : F.mul(gp, a);
                    if (gq != null) { da = da == null ? gq : F.add(da, gq); db = db == null ? gq : F.add(db, gq); }
                    return new Var[] {da, db};
                }, a, b);
    }

    static float eval(Supplier<Var> f) {
        try (Graph g = Graph.inference()) { return F.item(f.get()); }
    }

    @Test
    void softplusMatchesFiniteDifferences() {
        try (Scope s = Scope.shared()) {
            Tensor x = Tensor.of(s, TestUtil.randn(11, 3 * 7), 3, 7), r = Tensor.of(s, TestUtil.randn(12, 21), 3, 7);
            Var xv = Var.input(x), rv = Var.constant(r);
            Supplier<Var> f = () -> F.sum(F.mul(softplus(F.scale(xv, 2f)), rv));
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                TestUtil.assertClose("d softplus", xv.grad().value().toArray(), GradCheckTestAccess.numeric(x, f), ATOL, RTOL);
            }
        }
    }

    @Test
    void multiOutputRuleRunsOnceWithBothGradients() {
        try (Scope s = Scope.shared()) {
            Tensor a = Tensor.of(s, TestUtil.randn(21, 15), 15), b = Tensor.of(s, TestUtil.randn(22, 15), 15),
                    r = Tensor.of(s, TestUtil.randn(23, 15), 15);
            Var av = Var.input(a), bv = Var.input(b), rv = Var.constant(r);
            // both outputs used, one of them twice
            Supplier<Var> both = () -> {
                Var[] pq = prodAndSum(av, bv);
                return F.add(F.sum(F.mul(pq[0], rv)), F.sum(F.square(F.add(pq[1], pq[0]))));
            };
            try (Graph g = Graph.open()) {
                multiCalls = 0;
                g.backward(both.get());
                assertEquals(1, multiCalls, "the multi-output rule runs once per backward");
                TestUtil.assertClose("da", av.grad().value().toArray(), GradCheckTestAccess.numeric(a, both), ATOL, RTOL);
                TestUtil.assertClose("db", bv.grad().value().toArray(), GradCheckTestAccess.numeric(b, both), ATOL, RTOL);
            }
            // only the second output used: the rule sees null for the first
            Supplier<Var> second = () -> F.sum(F.mul(prodAndSum(av, bv)[1], rv));
            try (Graph g = Graph.open()) {
                g.backward(second.get());
                double[] rd = new double[15];
                float[] rf = r.toArray();
                for (int i = 0; i < 15; i++) rd[i] = rf[i];
                TestUtil.assertClose("da (q only)", av.grad().value().toArray(), rd, 1e-6, 0);
                TestUtil.assertClose("db (q only)", bv.grad().value().toArray(), GradCheckTestAccess.numeric(b, second), ATOL, RTOL);
            }
        }
    }

    @Test
    void doubleBackwardThroughACustomRule() {
        // P(x) = || d/dx sum(softplus(x) r) ||^2 = || sigmoid(x) r ||^2: needs the rule itself to be differentiable.
        try (Scope s = Scope.shared()) {
            Tensor x = Tensor.of(s, TestUtil.randn(31, 9), 9), r = Tensor.of(s, TestUtil.randn(32, 9), 9);
            Var rv = Var.constant(r);
            Supplier<Float> penalty = () -> {
                try (Graph g = Graph.open()) {
                    Var xv = Var.input(x);
                    g.backward(F.sum(F.mul(softplus(xv), rv)), true);
                    return F.item(F.sum(F.square(xv.grad())));
                }
            };
            Var xp = Var.param(x);
            try (Graph g = Graph.open()) {
                Var gx = g.gradient(F.sum(F.mul(softplus(xp), rv)), xp);
                g.backward(F.sum(F.square(gx)));
                double[] num = new double[9];
                float[] xs = x.toArray();
                for (int i = 0; i < 9; i++) {
                    float keep = xs[i];
                    x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, keep + 1e-2f);
                    double up = penalty.get();
                    x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, keep - 1e-2f);
                    double dn = penalty.get();
                    x.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, keep);
                    num[i] = (up - dn) / 2e-2;
                }
                TestUtil.assertClose("dP/dx", xp.grad().value().toArray(), num, ATOL, RTOL);
            }
        }
    }

    @Test
    void badRulesAreNamed() {
        try (Scope s = Scope.shared()) {
            Var x = Var.input(Tensor.of(s, new float[] {1, 2, 3}, 3));
            try (Graph g = Graph.open()) {
                Var y = g.custom("two_grads", Tensor.of(g.scope(), new float[] {1, 2, 3}, 3), gy -> new Var[] {gy, gy}, x);
                var e = assertThrows(IllegalStateException.class, () -> g.backward(F.sum(y)));
                assertTrue(e.getMessage().contains("two_grads") && e.getMessage().contains("2 gradients for 1 inputs"), e.getMessage());
            }
            try (Graph g = Graph.open()) {
                Var y = g.custom("bad_shape", Tensor.of(g.scope(), new float[] {1, 2, 3}, 3),
                        gy -> new Var[] {F.reshape(gy, 3, 1)}, x);
                var e = assertThrows(IllegalStateException.class, () -> g.backward(F.sum(y)));
                assertTrue(e.getMessage().contains("bad_shape") && e.getMessage().contains("[3, 1]"), e.getMessage());
            }
            try (Graph g = Graph.open()) {
                var e = assertThrows(IllegalArgumentException.class,
                        () -> g.custom("no_inputs", Tensor.of(g.scope(), new float[] {1}, 1), gy -> new Var[0]));
                assertTrue(e.getMessage().contains("no_inputs"), e.getMessage());
            }
            // nothing recorded in an inference graph or when no input needs a gradient
            try (Graph g = Graph.inference()) {
                Var y = g.custom("id", x.value(), gy -> new Var[] {gy}, x);
                assertFalse(y.requiresGrad());
            }
        }
    }
}
