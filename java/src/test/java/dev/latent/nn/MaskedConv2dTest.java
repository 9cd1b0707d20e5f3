package dev.latent.nn;

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
 * MaskedConv2d: which inputs each output depends on (by gradients, for every shape, mask A and B, one and three
 * channel groups), the gradients against central differences, and that masked taps get no gradient.
 */
class MaskedConv2dTest {
    static Tensor rnd(Scope s, long seed, double scale, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        float[] v = TestUtil.randn(seed, (int) n);
        for (int i = 0; i < v.length; i++) v[i] *= (float) scale;
        return Tensor.of(s, v, shape);
    }

    /** Whether input (group gi, y, x) may reach output (group go, i, j): the masks' definition, written independently. */
    static boolean allowed(MaskedConv2d.Shape shape, boolean a, int k, int go, int i, int j, int gi, int y, int x) {
        int c = k / 2;
        if (Math.abs(x - j) > c) return false;
        return switch (shape) {
            case VERTICAL -> y >= i - c && (a ? y < i : y <= i);
            case HORIZONTAL -> y == i && (x < j || (x == j && (a ? gi < go : gi <= go)));
            case FULL -> y >= i - c && (y < i || (y == i && (x < j || (x == j && (a ? gi < go : gi <= go)))));
        };
    }

    @Test
    void everyOutputDependsExactlyOnTheMaskedWindow() {
        int h = 6, w = 7;
        for (MaskedConv2d.Shape shape : MaskedConv2d.Shape.values())
            for (boolean a : new boolean[] {true, false})
                for (int groups : shape == MaskedConv2d.Shape.VERTICAL ? new int[] {1} : new int[] {1, 3})
                    for (int k : new int[] {3, 5})
                        try (Scope s = Scope.shared()) {
                            int cin = 2 * groups, cout = 2 * groups;
                            MaskedConv2d m = new MaskedConv2d(s, cin, cout, k, shape, a, groups, 7, 100);
                            Tensor x = rnd(s, 3, 1, 1, cin, h, w);
                            String what = shape + (a ? " A" : " B") + " groups " + groups + " k " + k;
                            for (int go = 0; go < groups; go++)
                                for (int i = 0; i < h; i++)
                                    for (int j = 0; j < w; j++) {
                                        float[] sel = new float[cout * h * w];
                                        for (int o = go * 2; o < go * 2 + 2; o++) sel[(o * h + i) * w + j] = 1f + o;
                                        Var xv = Var.input(x);
                                        float[] gx;
                                        try (Graph g = Graph.open()) {
                                            g.backward(F.sum(F.mul(m.forward(xv), Var.constant(Tensor.of(g.scope(), sel, 1, cout, h, w)))));
                                            gx = xv.grad().value().toArray();
                                        }
                                        for (int ci = 0; ci < cin; ci++)
                                            for (int y = 0; y < h; y++)
                                                for (int xx = 0; xx < w; xx++) {
                                                    boolean dep = gx[(ci * h + y) * w + xx] != 0f;
                                                    boolean exp = allowed(shape, a, k, go, i, j, ci / 2, y, xx);
                                                    if (dep != exp)
                                                        fail(what + ": output group " + go + " at (" + i + ", " + j + ") " + (dep ? "depends" : "does not depend")
                                                                + " on input channel " + ci + " at (" + y + ", " + xx + ")");
                                                }
                                    }
                        }
    }

    @Test
    void gradientsMatchCentralDifferencesAndMaskedTapsGetNone() {
        for (MaskedConv2d.Shape shape : MaskedConv2d.Shape.values())
            try (Scope s = Scope.shared()) {
                MaskedConv2d m = new MaskedConv2d(s, 2, 3, 3, shape, shape != MaskedConv2d.Shape.VERTICAL, 1, 11, 0);
                Tensor x = rnd(s, 4, 1, 2, 2, 5, 4), r = rnd(s, 5, 1, 2, 3, 5, 4);
                Var xv = Var.input(x), rv = Var.constant(r);
                Supplier<Var> f = () -> F.sum(F.mul(m.forward(xv), rv));
                try (Graph g = Graph.open()) {
                    g.backward(f.get());
                    TestUtil.assertClose(shape + " dx", xv.grad().value().toArray(), GradCheckTestAccess.numeric(x, f), 2e-3, 2e-2);
                    float[] dw = m.weight.grad().value().toArray(), mask = m.mask().toArray();
                    double[] num = GradCheckTestAccess.numeric(m.weight.value(), f);
                    for (int i = 0; i < dw.length; i++) {
                        if (mask[i] == 0f) {
                            assertTrue(dw[i] == 0f, shape + ": masked tap " + i + " got a gradient " + dw[i]);
                            assertEquals(0.0, num[i], 1e-6, shape + ": masked tap " + i + " changes the output");
                        } else {
                            assertEquals(num[i], dw[i], 2e-3 + 2e-2 * Math.abs(num[i]), shape + " dw[" + i + "]");
                        }
                    }
                    TestUtil.assertClose(shape + " db", m.bias.grad().value().toArray(), GradCheckTestAccess.numeric(m.bias.value(), f), 2e-3, 2e-2);
                }
            }
    }

    @Test
    void maskedTapsStartAtZeroAndBadArgumentsAreRefused() {
        try (Scope s = Scope.shared()) {
            MaskedConv2d m = new MaskedConv2d(s, 1, 4, 5, MaskedConv2d.Shape.FULL, true, 1, 1, 0);
            float[] w = m.weight.value().toArray(), mask = m.mask().toArray();
            int kept = 0;
            for (int i = 0; i < w.length; i++) {
                if (mask[i] == 0f) assertTrue(w[i] == 0f, "masked weight " + i + " = " + w[i]);
                else kept++;
            }
            assertEquals(4 * 12, kept);   // 5 x 5 mask A: two full rows and two taps of the centre row
            assertThrows(IllegalArgumentException.class, () -> new MaskedConv2d(s, 1, 4, 4, MaskedConv2d.Shape.FULL, true, 1, 1, 0));
            assertThrows(IllegalArgumentException.class, () -> new MaskedConv2d(s, 3, 4, 3, MaskedConv2d.Shape.FULL, true, 3, 1, 0));
            assertThrows(IllegalArgumentException.class, () -> new MaskedConv2d(s, 3, 3, 3, MaskedConv2d.Shape.VERTICAL, true, 3, 1, 0));
        }
    }

    @Test
    void rectangularStrideAndPaddingConv2dGradients() {
        try (Scope s = Scope.shared()) {
            Tensor x = rnd(s, 21, 1, 2, 2, 7, 6), w = rnd(s, 22, 0.5, 3, 2, 3, 2), b = rnd(s, 23, 1, 3);
            Var xv = Var.input(x), wv = Var.param(w), bv = Var.param(b);
            Tensor r;
            try (Graph g = Graph.inference()) {
                Var y = F.conv2d(Var.constant(x), Var.constant(w), null, 2, 1, 1, 0);
                assertArrayEquals(new long[] {2, 3, 4, 5}, y.shape());   // (7 + 2 - 3) / 2 + 1 = 4, (6 - 2) / 1 + 1 = 5
                r = rnd(s, 24, 1, y.shape());
            }
            Var rv = Var.constant(r);
            Supplier<Var> f = () -> F.sum(F.mul(F.conv2d(xv, wv, bv, 2, 1, 1, 0), rv));
            try (Graph g = Graph.open()) {
                g.backward(f.get());
                TestUtil.assertClose("dx", xv.grad().value().toArray(), GradCheckTestAccess.numeric(x, f), 2e-3, 2e-2);
                TestUtil.assertClose("dw", wv.grad().value().toArray(), GradCheckTestAccess.numeric(w, f), 2e-3, 2e-2);
                TestUtil.assertClose("db", bv.grad().value().toArray(), GradCheckTestAccess.numeric(b, f), 2e-3, 2e-2);
            }
        }
    }
}
