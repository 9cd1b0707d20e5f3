package dev.latent.autograd;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** {@link Graph#onGradientReady}: once per leaf that got a gradient, after its last accumulation, last layers first. */
class GradientReadyTest {
    /**
     * A two-layer net whose first weight w1 is used twice (at the start and again at the end), so its gradient is
     * accumulated from two places and is final only at the very end; w3 is never used, b2 is frozen.
     */
    private static Var loss(Var x, Var w1, Var b1, Var w2, Var b2, Var w3) {
        Var h = F.tanh(F.linear(x, w1, b1));            // w1's first use (forward): its last accumulation (backward)
        Var y = F.linear(h, w2, b2);
        Var z = F.add(y, F.linear(h, w1, null));        // w1's second use: accumulated first in the backward
        return F.sum(F.mul(z, z));
    }

    private record Run(List<String> order, Map<String, float[]> atFire, Map<String, float[]> atEnd) {}

    private static Run run(boolean pack) {
        try (Scope s = Scope.shared()) {
            Var x = Var.input(Tensor.of(s, TestUtil.randn(1, 3 * 4), 3, 4));
            Var w1 = Var.param(Tensor.of(s, TestUtil.randn(2, 4 * 4), 4, 4)), b1 = Var.param(Tensor.of(s, TestUtil.randn(3, 4), 4));
            Var w2 = Var.param(Tensor.of(s, TestUtil.randn(4, 4 * 4), 4, 4)), b2 = Var.param(Tensor.of(s, TestUtil.randn(5, 4), 4));
            Var w3 = Var.param(Tensor.of(s, TestUtil.randn(6, 4 * 4), 4, 4));
            Map<String, Var> params = new LinkedHashMap<>();
            params.put("w1", w1); params.put("b1", b1); params.put("w2", w2); params.put("b2", b2); params.put("w3", w3);
            Map<Var, String> names = new java.util.IdentityHashMap<>();
            params.forEach((n, v) -> names.put(v, n));
            names.put(x, "x");
            if (pack) FlatParams.pack(s, params, v -> 0);
            List<String> order = new ArrayList<>();
            Map<String, float[]> atFire = new LinkedHashMap<>(), atEnd = new LinkedHashMap<>();
            try (Graph g = Graph.open()) {
                g.freeze(List.of(b2));
                g.onGradientReady(v -> {
                    String n = names.get(v);
                    assertNotNull(n, "the listener got a Var that is not a leaf of this net");
                    assertNotNull(v.grad(), n + " reported without a gradient");
                    order.add(n);
                    atFire.put(n, v.grad().value().toArray());
                });
                g.backward(loss(x, w1, b1, w2, b2, w3));
                names.forEach((v, n) -> { if (order.contains(n)) atEnd.put(n, v.grad().value().toArray()); });
            }
            return new Run(order, atFire, atEnd);
        }
    }

    @Test
    void firesOncePerLeafAfterItsLastAccumulationLastLayersFirst() {
        for (boolean pack : new boolean[] {false, true}) {
            Run r = run(pack);
            // each once; w3 (unused) and b2 (frozen) never; w2 (used once, late) before the first layer's inputs, which come in
            // the order of that op's inputs
            assertEquals(List.of("w2", "x", "w1", "b1"), r.order(), "order (packed " + pack + ")");
            for (String n : r.order())
                assertArrayEquals(r.atEnd().get(n), r.atFire().get(n), n + ": the gradient changed after the listener saw it (packed " + pack + ")");
            // the same order and values every time
            Run again = run(pack);
            assertEquals(r.order(), again.order());
            for (String n : r.order()) assertArrayEquals(r.atFire().get(n), again.atFire().get(n), n);
        }
    }

    @Test
    void withoutListenerTheGradientsAreTheSame() {
        try (Scope s = Scope.shared()) {
            Var x = Var.input(Tensor.of(s, TestUtil.randn(1, 3 * 4), 3, 4));
            Var w1 = Var.param(Tensor.of(s, TestUtil.randn(2, 4 * 4), 4, 4)), b1 = Var.param(Tensor.of(s, TestUtil.randn(3, 4), 4));
            Var w2 = Var.param(Tensor.of(s, TestUtil.randn(4, 4 * 4), 4, 4)), b2 = Var.param(Tensor.of(s, TestUtil.randn(5, 4), 4));
            Var w3 = Var.param(Tensor.of(s, TestUtil.randn(6, 4 * 4), 4, 4));
            float[] plain, heard;
            try (Graph g = Graph.open()) {
                g.backward(loss(x, w1, b1, w2, b2, w3));
                plain = w1.grad().value().toArray();
            }
            int[] calls = {0};
            try (Graph g = Graph.open()) {
                g.onGradientReady(v -> calls[0]++);
                g.backward(loss(x, w1, b1, w2, b2, w3));
                heard = w1.grad().value().toArray();
                g.onGradientReady(null);
                g.backward(loss(x, w1, b1, w2, b2, w3));   // cleared: the second pass reports nothing
            }
            assertArrayEquals(plain, heard);
            assertEquals(5, calls[0], "x, w1, b1, w2, b2 once each (w3 is unused), and nothing from the pass without listener");
        }
    }
}
