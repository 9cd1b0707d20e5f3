package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Gpt.loss runs its blocks with every residual add fused into the LayerNorm after it (F.layerNormResidual: ln_2, the
 * next block's ln_1, ln_f). The loss and every parameter's gradient must be the bits of the unfused blocks
 * (GptUnfused: F.add then F.layerNorm), tied and untied heads, 1 and 3 layers, so training results do not change.
 */
public class GptFusedResidualTest {
    /** The loss's bits and every parameter's gradient, fused (Gpt.loss) or not (GptUnfused.loss). */
    public static Map<String, float[]> lossAndGrads(Device dev, GptConfig cfg, int b, boolean fused, long seed) {
        int n = b * cfg.context();
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(cfg.vocab()); targets[i] = r.nextInt(cfg.vocab()); }
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Arena a = Arena.ofConfined(); Scope model = Scope.shared()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, targets);
            Gpt gpt = new Gpt(model, cfg, seed);
            if (dev != Device.CPU) gpt.to(model, dev);
            Map<String, Var> named = gpt.namedParameters();
            try (Graph g = Graph.open()) {
                Var l = fused ? gpt.loss(hi, ht, b, cfg.context()) : GptUnfused.loss(gpt, hi, ht, b, cfg.context());
                out.put("loss", new float[] {F.item(l)});
                g.backward(l);
                for (var e : named.entrySet()) out.put(e.getKey(), e.getValue().grad().value().toArray());
            }
        }
        return out;
    }

    public static void assertSameBits(Map<String, float[]> fused, Map<String, float[]> unfused) {
        assertEquals(unfused.keySet(), fused.keySet());
        for (String k : unfused.keySet()) {
            float[] u = unfused.get(k), f = fused.get(k);
            assertEquals(u.length, f.length, k);
            for (int i = 0; i < u.length; i++)
                if (Float.floatToRawIntBits(u[i]) != Float.floatToRawIntBits(f[i]))
                    fail(k + "[" + i + "]: fused " + f[i] + " vs unfused " + u[i] + " (bits differ)");
        }
    }

    @Test
    void fusedBlocksGiveTheUnfusedLossAndGradientsBitForBit() {
        for (GptConfig cfg : new GptConfig[] {new GptConfig(65, 2, 2, 32, 16, false), new GptConfig(33, 3, 3, 24, 8, true),
                                              new GptConfig(40, 1, 2, 16, 12, false)}) {
            Map<String, float[]> f = lossAndGrads(Device.CPU, cfg, 2, true, 11), u = lossAndGrads(Device.CPU, cfg, 2, false, 11);
            assertSameBits(f, u);
            assertTrue(Float.isFinite(f.get("loss")[0]) && f.get("loss")[0] > 0, "loss " + f.get("loss")[0]);
        }
    }
}
