package dev.latent.autograd;

import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * F.layerNormResidual against F.add then F.layerNorm on the CPU: the same bits for s, y and every gradient (x, a, w, b),
 * when the loss uses both outputs, only y (the ln_f case: LayerNorm's own backward) or only s; its double backward
 * against the unfused one's; the boundary's refusals.
 */
class LayerNormResidualTest {
    static Tensor rnd(Scope s, long seed, float offset, long... shape) {
        SplittableRandom r = new SplittableRandom(seed);
        long n = 1;
        for (long d : shape) n *= d;
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextDouble() * 2 - 1) + offset;
        return Tensor.of(s, v, shape);
    }

    /** {s, y, dx, da, dw, db} as float arrays; uses: 1 y, 2 s, 3 both. */
    static float[][] run(Scope sc, boolean fused, int uses, long n, long c, float offset) {
        Var x = Var.param(rnd(sc, 1, offset, n, c)), a = Var.param(rnd(sc, 2, 0, n, c));
        Var w = Var.param(rnd(sc, 3, 1, c)), b = Var.param(rnd(sc, 4, 0, c));
        Var ry = Var.constant(rnd(sc, 5, 0, n, c)), rs = Var.constant(rnd(sc, 6, 0, n, c));
        try (Graph g = Graph.open()) {
            Var s, y;
            if (fused) {
                Var[] o = F.layerNormResidual(x, a, w, b, 1e-5f);
                s = o[0];
                y = o[1];
            } else {
                s = F.add(x, a);
                y = F.layerNorm(s, w, b, 1e-5f);
            }
            Var ly = F.sum(F.mul(y, ry)), ls = F.sum(F.mul(s, rs));
            g.backward(uses == 1 ? ly : uses == 2 ? ls : F.add(ls, ly));
            return new float[][] {s.value().toArray(), y.value().toArray(), x.grad().value().toArray(), a.grad().value().toArray(),
                    w.grad() == null ? new float[0] : w.grad().value().toArray(), b.grad() == null ? new float[0] : b.grad().value().toArray()};
        }
    }

    @Test
    void sameBitsAsAddThenLayerNorm() {
        try (Scope sc = Scope.shared()) {
            for (long c : new long[] {1, 3, 7, 17, 33, 384, 1023})
                for (long n : new long[] {1, 5, 130})
                    for (int uses = 1; uses <= 3; uses++) {
                        float offset = c == 33 ? 300f : 0f;   /* |mean| >> std */
                        float[][] f = run(sc, true, uses, n, c, offset), u = run(sc, false, uses, n, c, offset);
                        String[] names = {"s", "y", "dx", "da", "dw", "db"};
                        for (int k = 0; k < names.length; k++)
                            assertArrayEquals(u[k], f[k], names[k] + " n=" + n + " c=" + c + " uses=" + uses);   // float equality = bits here (no NaN)
                    }
        }
    }

    @Test
    void doubleBackwardMatchesTheUnfusedOne() {
        try (Scope sc = Scope.shared()) {
            float[][] out = new float[2][];
            for (int fused = 0; fused < 2; fused++) {
                Var x = Var.param(rnd(sc, 1, 0, 4, 9)), a = Var.param(rnd(sc, 2, 0, 4, 9));
                Var w = Var.param(rnd(sc, 3, 1, 9)), b = Var.param(rnd(sc, 4, 0, 9));
                Var r = Var.constant(rnd(sc, 5, 0, 4, 9));
                try (Graph g = Graph.open()) {
                    Var s, y;
                    if (fused == 1) { Var[] o = F.layerNormResidual(x, a, w, b, 1e-5f); s = o[0]; y = o[1]; }
                    else { s = F.add(x, a); y = F.layerNorm(s, w, b, 1e-5f); }
                    Var loss = F.add(F.sum(F.mul(F.mul(y, y), r)), F.sum(F.mul(s, s)));
                    Var gx = g.gradient(loss, x);                       // d loss / dx, differentiable
                    Var pen = F.sum(F.mul(gx, gx));
                    g.backward(pen);
                    out[fused] = w.grad().value().toArray();
                }
            }
            for (int i = 0; i < out[0].length; i++)
                assertEquals(out[0][i], out[1][i], 1e-5 * (1 + Math.abs(out[0][i])), "d pen / dw [" + i + "]");
        }
    }

    @Test
    void refusals() {
        try (Scope sc = Scope.shared()) {
            Tensor x = rnd(sc, 1, 0, 4, 8), a = rnd(sc, 2, 0, 4, 7), w = rnd(sc, 3, 0, 8), b = rnd(sc, 4, 0, 8);
            Tensor s = rnd(sc, 5, 0, 4, 8), y = rnd(sc, 6, 0, 4, 8), m = rnd(sc, 7, 0, 4), r = rnd(sc, 8, 0, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Kernels.layerNormResidual(x, a, w, b, 1e-5f, s, y, m, r));
            assertTrue(e.getMessage().contains("layerNormResidual"), e.getMessage());
            Tensor wShort = rnd(sc, 9, 0, 7);
            e = assertThrows(IllegalArgumentException.class,
                    () -> Kernels.layerNormResidual(x, s, wShort, b, 1e-5f, y, rnd(sc, 10, 0, 4, 8), m, r));
            assertTrue(e.getMessage().contains("layerNormResidual: expected 8 elements"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> F.layerNormResidual(Var.param(x), Var.param(a), Var.param(w), Var.param(b), 1e-5f));
            assertTrue(e.getMessage().contains("layerNormResidual"), e.getMessage());
        }
    }
}
