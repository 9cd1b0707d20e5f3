package dev.latent.optim;

import dev.latent.autograd.FlatParams;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The flat-buffer AdamW (one norm pass, one lt_adamw per group) against the per-parameter AdamW it replaced
 * ({@link LegacyAdamW}): the same norms, parameters and moments, bit for bit, on a tied GPT (two gradients into one
 * leaf), with weight decay (two groups), clipping that bites, and a parameter that gets no gradient.
 */
class FlatAdamWTest {
    static final GptConfig CFG = new GptConfig(29, 2, 2, 24, 8, true);

    static Map<String, Var> withUnused(Gpt gpt, Scope s) {
        Map<String, Var> m = new LinkedHashMap<>(gpt.namedParameters());
        Linear unused = new Linear(s, 5, 3, true, 9, 1, 0.02);   /* in the optimizer, never in the graph */
        m.put("unused.weight", unused.weight);
        m.put("unused.bias", unused.bias);
        return m;
    }

    static void bits(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                throw new AssertionError(what + "[" + i + "]: flat " + got[i] + ", per-parameter " + want[i]);
    }

    @Test
    void flatMatchesPerParameterBitForBit() {
        int b = 2, t = CFG.context(), n = b * t;
        SplittableRandom r = new SplittableRandom(11);
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
            MemorySegment ids = a.allocate(JAVA_INT, n), tg = a.allocate(JAVA_INT, n);
            Gpt ref = new Gpt(s, CFG, 5), flat = new Gpt(s, CFG, 5);
            Map<String, Var> refP = withUnused(ref, s), flatP = withUnused(flat, s);
            LegacyAdamW oldOpt = new LegacyAdamW(s, refP, 0.9f, 0.95f, 1e-8f, 0.1f);
            AdamW opt = new AdamW(s, flatP, 0.9f, 0.95f, 1e-8f, 0.1f);
            assertEquals(2, opt.flat().groupCount(), "weight decay: matrices and vectors in two groups");
            for (int step = 0; step < 4; step++) {
                for (int i = 0; i < n; i++) { ids.setAtIndex(JAVA_INT, i, r.nextInt(CFG.vocab())); tg.setAtIndex(JAVA_INT, i, r.nextInt(CFG.vocab())); }
                double clip = step == 3 ? 0 : 0.05;   /* bites (the norm is ~1); off on the last step */
                double nOld, nNew;
                try (Graph g = Graph.open()) {
                    g.backward(ref.loss(ids, tg, b, t));
                    nOld = oldOpt.gradNorm();
                    oldOpt.update(1e-2f, clip, nOld);
                }
                try (Graph g = Graph.open()) {
                    g.backward(flat.loss(ids, tg, b, t));
                    assertNull(flatP.get("unused.weight").grad());
                    assertSame(opt.flat().gradView(0), flatP.get(opt.flat().names().get(0)).grad().value(), "gradients land in the flat buffer");
                    nNew = opt.gradNorm();
                    double ret = opt.update(1e-2f, clip).value();
                    if (clip > 0) assertEquals(Double.doubleToRawLongBits(nNew), Double.doubleToRawLongBits(ret));
                    else assertTrue(Double.isNaN(ret), "no clipping: no norm pass, NaN");
                }
                assertEquals(Double.doubleToRawLongBits(nOld), Double.doubleToRawLongBits(nNew), "norm at step " + step + ": " + nOld + " vs " + nNew);
                assertTrue(clip == 0 || nNew > clip, "the clip must bite for this test to mean something: " + nNew);
            }
            for (String k : refP.keySet()) {
                bits("param " + k, refP.get(k).value().toArray(), flatP.get(k).value().toArray());
                bits("m " + k, oldOpt.state.get(k)[0].toArray(), opt.state().get(k)[0].toArray());
                bits("v " + k, oldOpt.state.get(k)[1].toArray(), opt.state().get(k)[1].toArray());
            }
            float[] untouched = new Linear(s, 5, 3, true, 9, 1, 0.02).weight.value().toArray();
            bits("a parameter without gradients is not updated", untouched, flatP.get("unused.weight").value().toArray());
        }
    }

    @Test
    void parametersAreViewsOfOneAlignedBuffer() {
        try (Scope s = Scope.shared()) {
            Gpt gpt = new Gpt(s, CFG, 5);
            Map<String, float[]> before = new LinkedHashMap<>();
            gpt.namedParameters().forEach((k, v) -> before.put(k, v.value().toArray()));
            AdamW opt = new AdamW(s, gpt.namedParameters(), 0.9f, 0.95f, 1e-8f, 0f);
            FlatParams f = opt.flat();
            assertEquals(1, f.groupCount(), "no weight decay: one group, one AdamW call");
            long base = f.values().storageAddress(), at = f.values().segment().address();
            for (int i = 0; i < f.size(); i++) {
                Tensor v = f.var(i).value();
                assertSame(f.valueView(i), v);
                assertEquals(base, v.storageAddress(), "parameter " + f.names().get(i) + " shares the buffer");
                assertEquals(0, (v.segment().address() - at) % 64, "64-byte aligned");
                bits("packed " + f.names().get(i), before.get(f.names().get(i)), v.toArray());
            }
            float[] all = f.values().toArray();
            long used = 0;
            for (int i = 0; i < f.size(); i++) used += f.numel(i);
            double gaps = 0;
            for (float x : all) gaps += x * x;
            for (int i = 0; i < f.size(); i++) for (float x : f.valueView(i).toArray()) gaps -= x * x;
            assertEquals(0, gaps, 1e-9, "padding is zero");
            assertTrue(all.length - used < (long) FlatParams.ALIGN_FLOATS * f.size());
            assertTrue(f.intact());
            f.zeroGrad();
            for (float x : f.grads().toArray()) assertEquals(0f, x);
        }
    }

    @Test
    void segmentedSumOfSquaresHasThePerSegmentBits() {
        try (Scope s = Scope.shared()) {
            int n = 3 * 4096 + 777;
            Tensor x = Init.normal(s, 3, 4, 1.0, n);
            long[] off = {0, 5, 4096, 9000, 100, 0}, len = {0, 4099, 4096 + 3, 3000, 1, n};
            double want = 0;
            for (int k = 0; k < off.length; k++) want += Kernels.sumOfSquares(x.slice(0, off[k], off[k] + len[k]));
            double got = Kernels.sumOfSquaresSegments(x, off, len);
            assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(got), want + " vs " + got);
            assertEquals(0.0, Kernels.sumOfSquaresSegments(x, new long[0], new long[0]));
            var e = assertThrows(IllegalArgumentException.class, () -> Kernels.sumOfSquaresSegments(x, new long[] {n - 2}, new long[] {3}));
            assertTrue(e.getMessage().contains("segment 0"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Kernels.sumOfSquaresSegments(x, new long[] {-1}, new long[] {1}));
        }
    }

    @Test
    void packingRefusesWhatItCannotHold() {
        try (Scope s = Scope.shared()) {
            Var p = Var.param(Tensor.zeros(s, 3));
            var e = assertThrows(IllegalArgumentException.class, () -> new AdamW(s, Map.of("a", p, "b", p), 0.9f, 0.99f, 1e-8f, 0f));
            assertTrue(e.getMessage().contains("twice"), e.getMessage());
            var c = assertThrows(IllegalArgumentException.class, () -> new AdamW(s, Map.of("c", Var.constant(Tensor.zeros(s, 2))), 0.9f, 0.99f, 1e-8f, 0f));
            assertTrue(c.getMessage().contains("not a parameter"), c.getMessage());
            AdamW first = new AdamW(s, Map.of("p", p), 0.9f, 0.99f, 1e-8f, 0f);
            FlatParams f1 = first.flat();
            AdamW second = new AdamW(s, Map.of("p", p), 0.9f, 0.99f, 1e-8f, 0f);
            assertFalse(f1.intact(), "a second optimizer over the same parameter takes it over");
            assertTrue(second.flat().intact());
        }
    }
}
