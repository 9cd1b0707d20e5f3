package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.optim.AdamW;
import dev.latent.optim.LegacyAdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.device;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The flat parameter / gradient buffers on the device: AdamW made on the CPU, the model moved to CUDA afterwards
 * (GptTrainer's order on a resume), the optimizer moved after it packs the parameters again on the device; its steps
 * equal the per-parameter AdamW's on the device bit for bit (norm, parameters, moments), clipping on.
 */
class CudaFlatAdamWTest {
    @BeforeAll
    static void setUp() { device(); }

    @Test
    void flatOnTheDeviceMatchesPerParameter() {
        GptConfig cfg = new GptConfig(31, 1, 2, 16, 8, true);
        int b = 2, t = cfg.context(), n = b * t;
        SplittableRandom r = new SplittableRandom(5);
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
            MemorySegment ids = a.allocate(JAVA_INT, n), tg = a.allocate(JAVA_INT, n);
            Gpt ref = new Gpt(s, cfg, 7), flat = new Gpt(s, cfg, 7);
            ref.to(s, Device.CUDA);
            LegacyAdamW oldOpt = new LegacyAdamW(s, ref.namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            AdamW opt = new AdamW(s, flat.namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            var cpuBuffer = opt.flat();
            flat.to(s, Device.CUDA);
            assertFalse(cpuBuffer.intact(), "moving the model leaves the CPU buffer");
            opt.to(s, Device.CUDA);
            assertEquals(Device.CUDA, opt.flat().device());
            assertTrue(opt.flat().intact());
            for (int step = 0; step < 3; step++) {
                for (int i = 0; i < n; i++) { ids.setAtIndex(JAVA_INT, i, r.nextInt(cfg.vocab())); tg.setAtIndex(JAVA_INT, i, r.nextInt(cfg.vocab())); }
                double nOld, nNew;
                try (Graph g = Graph.open()) {
                    g.backward(ref.loss(ids, tg, b, t));
                    nOld = oldOpt.gradNorm();
                    oldOpt.update(1e-2f, 0.05, nOld);
                }
                try (Graph g = Graph.open()) {
                    g.backward(flat.loss(ids, tg, b, t));
                    Map<String, Var> p = flat.namedParameters();
                    String first = opt.flat().names().get(0);
                    assertSame(opt.flat().gradView(0), p.get(first).grad().value(), "gradients land in the device buffer");
                    nNew = opt.update(1e-2f, 0.05).value();
                }
                assertEquals(Double.doubleToRawLongBits(nOld), Double.doubleToRawLongBits(nNew), "norm " + nOld + " vs " + nNew);
                assertTrue(nNew > 0.05, "the clip bites");
            }
            Map<String, Var> pr = ref.namedParameters(), pf = flat.namedParameters();
            for (String k : pr.keySet()) {
                bits("param " + k, pr.get(k).value().toArray(), pf.get(k).value().toArray());
                bits("m " + k, oldOpt.state.get(k)[0].toArray(), opt.state().get(k)[0].toArray());
                bits("v " + k, oldOpt.state.get(k)[1].toArray(), opt.state().get(k)[1].toArray());
            }
        }
    }

    /** Three parameters on CUDA (5, 4097: two sumsq chunks, 3 x 7) with the same values for every call. */
    static Map<String, Var> params(Scope s) {
        SplittableRandom r = new SplittableRandom(11);
        Map<String, Var> m = new java.util.LinkedHashMap<>();
        long[][] shapes = {{5}, {4097}, {3, 7}};
        for (int k = 0; k < shapes.length; k++) {
            long n = 1;
            for (long d : shapes[k]) n *= d;
            float[] v = new float[(int) n];
            for (int i = 0; i < n; i++) v[i] = (float) (r.nextDouble() * 2 - 1);
            m.put("p" + k, Var.param(dev.latent.tensor.Tensor.of(s, Device.CUDA, v, shapes[k])));
        }
        return m;
    }

    /** Gradients 2 c p of sum(c p^2) for every parameter but {@code skip}. */
    static Var backward(Map<String, Var> p, String skip, float c) {
        Var loss = null;
        for (var e : p.entrySet()) {
            if (e.getKey().equals(skip)) continue;
            Var t = dev.latent.autograd.F.sum(dev.latent.autograd.F.scale(dev.latent.autograd.F.mul(e.getValue(), e.getValue()), c));
            loss = loss == null ? t : dev.latent.autograd.F.add(loss, t);
        }
        Graph.current().backward(loss);
        return loss;
    }

    /**
     * The device-side clip (AdamW.update(lr, clip): norm and factor on the device, read lazily) gives the host path's
     * bits (update(lr, clip, gradNorm())): norm, parameters and moments, for a clip that bites and one that does not, with
     * a parameter that has no gradient in some steps (a gap in the segment table); a norm read after the next clipped
     * update is refused.
     */
    @Test
    void deviceClipMatchesHostClip() {
        for (double clip : new double[] {0.5, 1e6}) {
            try (Scope s = Scope.shared()) {
                Map<String, Var> a = params(s), b = params(s);
                AdamW da = new AdamW(s, a, 0.9f, 0.95f, 1e-8f, 0.1f), hb = new AdamW(s, b, 0.9f, 0.95f, 1e-8f, 0.1f);
                for (int step = 0; step < 4; step++) {
                    String skip = step % 2 == 1 ? "p1" : "none";
                    float c = 3f + step;
                    AdamW.GradNorm got;
                    double want;
                    float lossGot = Float.NaN;
                    try (Graph g = Graph.open()) {
                        Var l = backward(a, skip, c);
                        if (step % 2 == 0) {
                            got = da.update(1e-2f, clip);
                            assertTrue(got.onDevice(), "the norm stays on the device until asked");
                        } else {   // GptTrainer's order: the norm first, read with the loss in one copy, then the update
                            got = da.gradNorm(clip);
                            assertTrue(got.onDevice(), "the norm stays on the device until asked");
                            double[] nl = got.valueWith(l.value());
                            lossGot = (float) nl[1];
                            assertEquals(Float.floatToRawIntBits(dev.latent.autograd.F.item(l)), Float.floatToRawIntBits(lossGot), "the loss read with the norm");
                            assertEquals(Double.doubleToRawLongBits(nl[0]), Double.doubleToRawLongBits(got.value()));
                            assertSame(got, da.update(1e-2f, clip, got));
                        }
                    }
                    try (Graph g = Graph.open()) {
                        backward(b, skip, c);
                        want = hb.gradNorm();
                        hb.update(1e-2f, clip, want);
                    }
                    assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(got.value()), "norm " + got.value() + " vs " + want);
                    if (clip < 1) assertTrue(want > clip, "the clip bites: norm " + want);
                }
                for (String k : a.keySet()) {
                    bits("param " + k, b.get(k).value().toArray(), a.get(k).value().toArray());
                    bits("m " + k, hb.state().get(k)[0].toArray(), da.state().get(k)[0].toArray());
                    bits("v " + k, hb.state().get(k)[1].toArray(), da.state().get(k)[1].toArray());
                }
                AdamW.GradNorm first;
                try (Graph g = Graph.open()) {
                    backward(a, "none", 1f);
                    first = da.update(1e-2f, clip);
                }
                try (Graph g = Graph.open()) {
                    backward(a, "none", 1f);
                    da.update(1e-2f, clip);
                }
                IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, first::value);
                assertTrue(e.getMessage().contains("before the next update"), e.getMessage());
            }
        }
    }

    static void bits(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                throw new AssertionError(what + "[" + i + "]: flat " + got[i] + ", per-parameter " + want[i]);
    }
}
