package dev.latent.autograd;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static dev.latent.autograd.GradCheckTest.ATOL;
import static dev.latent.autograd.GradCheckTest.RTOL;
import static dev.latent.autograd.GradCheckTest.eval;
import static dev.latent.autograd.GradCheckTest.numeric;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Gradients and gradients of gradients of the GAN family's ops by central differences (same budget as
 * GradCheckTest): conv2d, transposed conv, BatchNorm, the activations, BCE, LayerNorm, mean; and the WGAN-GP
 * penalty's gradient with respect to the critic's weights through conv2d, LeakyReLU, LayerNorm, linear and mean.
 */
class ConvGradTest {
    static Tensor rnd(Scope s, long seed, double scale, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        float[] v = TestUtil.randn(seed, (int) n);
        for (int i = 0; i < v.length; i++) v[i] *= (float) scale;
        return Tensor.of(s, v, shape);
    }

    static void check(String what, Var v, Tensor t, Supplier<Var> f) {
        TestUtil.assertClose(what, v.grad().value().contiguous().toArray(), numeric(t, () -> eval(f)), ATOL, RTOL);
    }

    @Test
    void conv2dWithBiasAllGradients() {
        int[][] cases = {{2, 3, 7, 6, 4, 3, 2, 1}, {1, 2, 5, 5, 3, 1, 1, 0}, {1, 1, 6, 7, 2, 4, 3, 2}};  // n c h w k r stride pad
        for (int[] c : cases)
            try (Scope s = Scope.shared()) {
                Tensor x = rnd(s, 1, 1, c[0], c[1], c[2], c[3]), w = rnd(s, 2, 0.5, c[4], c[1], c[5], c[5]), b = rnd(s, 3, 1, c[4]);
                Var xv = Var.input(x), wv = Var.param(w), bv = Var.param(b);
                Tensor r = null;
                try (Graph g = Graph.inference()) { r = rnd(s, 4, 1, F.conv2d(Var.constant(x), Var.constant(w), null, c[6], c[7]).shape()); }
                Var rv = Var.constant(r);
                Supplier<Var> f = () -> F.sum(F.mul(F.conv2d(xv, wv, bv, c[6], c[7]), rv));
                try (Graph g = Graph.open()) {
                    g.backward(f.get());
                    check("conv dx " + java.util.Arrays.toString(c), xv, x, f);
                    check("conv dw", wv, w, f);
                    check("conv db", bv, b, f);
                }
            }
    }

    @Test
    void convTranspose2dAllGradients() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 5, 1, 2, 3, 3, 4), w = rnd(s, 6, 0.5, 3, 2, 4, 4), b = rnd(s, 7, 1, 2);
            Var xv = Var.input(x), wv = Var.param(w), bv = Var.param(b);
            Tensor r;
            try (Graph g = Graph.inference()) { r = rnd(s, 8, 1, F.convTranspose2d(Var.constant(x), Var.constant(w), null, 2, 1, 1).shape()); }
            assertArrayEquals(new long[] {2, 2, 7, 9}, r.shape());   // (H - 1) stride - 2 pad + R + output padding
            Var rv = Var.constant(r);
            Supplier<Var> f = () -> F.sum(F.mul(F.convTranspose2d(xv, wv, bv, 2, 1, 1), rv));
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                check("convT dx", xv, x, f);
                check("convT dw", wv, w, f);
                check("convT db", bv, b, f);
            }
        }
    }

    @Test
    void batchNormActivationsAndBce() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 9, 1, 3, 4, 2, 3), gam = rnd(s, 10, 1, 4), bet = rnd(s, 11, 1, 4), r = rnd(s, 12, 1, 3, 4, 2, 3);
            Var xv = Var.input(x), gv = Var.param(gam), bv = Var.param(bet), rv = Var.constant(r);
            Supplier<Var> f = () -> {
                Var h = F.batchNorm2d(xv, gv, bv, null, null, true, 0.1f, 1e-5f);
                Var a = F.add(F.add(F.leakyRelu(h, 0.2f), F.tanh(h)), F.add(F.sigmoid(h), F.relu(h)));
                return F.add(F.sum(F.mul(a, rv)), F.add(F.bceWithLogits(h, 1f), F.bceWithLogits(h, 0f)));
            };
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                check("bn/act dx", xv, x, f);
                check("bn dgamma", gv, gam, f);
                check("bn dbeta", bv, bet, f);
            }
        }
    }

    /** A small critic: conv -> LeakyReLU -> LayerNorm over (C H W) -> linear -> per-sample score. */
    static int variant = 0;

    static Var critic(Var x, Var w1, Var lw, Var lb, Var w2, Var b2) {
        Var h = F.conv2d(x, w1, null, 2, 1);
        h = variant == 1 ? F.mul(h, h) : F.leakyRelu(h, 0.2f);
        long[] sh = h.shape();
        h = F.layerNorm(F.reshape(h, sh[0], sh[1] * sh[2] * sh[3]), lw, lb, 1e-5f);
        return F.linear(h, w2, b2);
    }

    /** The same with a smooth activation (h -> h^2) in place of LeakyReLU: no kinks for the differences to cross. */
    @Test
    void gradientPenaltyGradientSmoothCritic() {
        variant = 1;
        try { gradientPenaltyGradientMatchesFiniteDifferences(); } finally { variant = 0; }
    }

    @Test
    void gradientPenaltyGradientMatchesFiniteDifferences() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 13, 1, 3, 2, 5, 5);
            Tensor w1 = rnd(s, 14, 0.5, 3, 2, 3, 3), lw = rnd(s, 15, 1, 27), lb = rnd(s, 16, 1, 27), w2 = rnd(s, 17, 0.3, 1, 27), b2 = rnd(s, 18, 1, 1);
            Var w1v = Var.param(w1), lwv = Var.param(lw), lbv = Var.param(lb), w2v = Var.param(w2), b2v = Var.param(b2);
            // P(theta) = mean over samples of (|grad_x sum D(x)| - 1)^2, as in WGAN-GP
            java.util.function.Function<Graph, Var> penalty = g -> {
                Var xv = Var.input(x);
                Var gx = g.gradient(F.sum(critic(xv, w1v, lwv, lbv, w2v, b2v)), xv);
                Var dev = F.addScalar(F.sqrt(F.rowSum(F.mul(gx, gx))), -1f);
                return F.mean(F.mul(dev, dev));
            };
            Supplier<Float> value = () -> {
                try (Graph g = Graph.open()) { return F.item(penalty.apply(g)); }
            };
            try (Graph g = Graph.open()) {
                Var p = penalty.apply(g);
                assertNull(w1v.grad(), "gradient() must leave parameter gradients alone");
                g.backward(p);
                float[][] got = {w1v.grad().value().toArray(), lwv.grad().value().toArray(), w2v.grad().value().toArray()};
                Tensor[] ts = {w1, lw, w2};
                String[] names = {"dP/dconv", "dP/dlayernorm.w", "dP/dlinear"};
                // The input gradient jumps where a LeakyReLU input crosses 0, so the penalty has kinks in the weights:
                // a small step (1e-3) keeps the differences from straddling one; fp32 rounding is then ~1e-4.
                for (int i = 0; i < 3; i++) TestUtil.assertClose(names[i], got[i], GradCheckTest.numeric(ts[i], value, 1e-3), 5e-3, 3e-2);
                // the output bias does not change the input gradient, so its penalty gradient is absent or zero
                assertFalse(b2v.grad() != null && nonZero(b2v.grad().value().toArray()), "dP/db2 must be zero");
            }
        }
    }

    private static boolean nonZero(float[] v) {
        for (float f : v) if (f != 0) return true;
        return false;
    }

    @Test
    void meanAndLayerNormSecondOrder() {
        // d/dx of sum(r * d/dx[mean(layerNorm(x)^2 w)])-style: check the LayerNorm double backward directly.
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 19, 1, 3, 6), w = rnd(s, 20, 1, 6), b = rnd(s, 21, 1, 6), r = rnd(s, 22, 1, 3, 6);
            Var wv = Var.param(w), bv = Var.param(b), rv = Var.constant(r);
            java.util.function.Function<Graph, Var> f = g -> {
                Var xv = Var.input(x);
                Var y = F.layerNorm(xv, wv, bv, 1e-5f);
                Var gx = g.gradient(F.mean(F.mul(F.mul(y, y), rv)), xv);
                return F.sum(F.mul(gx, rv));
            };
            try (Graph g = Graph.open()) {
                g.backward(f.apply(g));
                float[] got = wv.grad().value().toArray();
                TestUtil.assertClose("d/dw of a LayerNorm input gradient", got, numeric(w, () -> {
                    try (Graph h = Graph.open()) { return F.item(f.apply(h)); }
                }), ATOL, RTOL);
            }
        }
    }
}
