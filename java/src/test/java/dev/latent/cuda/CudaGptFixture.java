package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The GPT training run the precision and SDPA tests compare (CudaPrecisionTest, CudaSdpaWiringTest,
 * CudaSdpaConversionTest): GPT on CUDA (weights seed 5), a batch of B sequences of learnable data (next id = id + 1,
 * seed 3), AdamW (0.9, 0.95, 1e-8, no decay) at LR, each step in its own Graph at a chosen precision. Every run sees the
 * same data, weights and optimizer, so two runs differ only in what the test changes between them (precision, vendor
 * routing, test switches), which it does through {@link Hooks} around each step's phases.
 */
final class CudaGptFixture {
    private CudaGptFixture() {}

    /** GPT with vocab 65, 2 layers, 2 heads of 16 (dim 32), context 16, untied embeddings. */
    static final GptConfig CFG = new GptConfig(65, 2, 2, 32, 16, false);
    static final int B = 2;
    static final float LR = 3e-3f;

    /** Called with the step's index (from 0) before its forward, between forward and backward, after its backward. */
    interface Hooks {
        default void beforeForward(int step) {}

        default void beforeBackward(int step) {}

        default void afterBackward(int step) {}
    }

    /** No hooks. */
    static final Hooks NONE = new Hooks() {};

    /**
     * Per step: the loss, every parameter's gradient by name (read before the update), and the emulated driver's counters
     * ({@link CudaTesting#emuCountersOrZeros}: zeros on a GPU) before the forward, before the backward and after it.
     */
    record Run(double[] losses, List<Map<String, float[]>> grads, long[][] atForward, long[][] atBackward, long[][] atEnd) {
        /** How far counter c moved in step s's forward. */
        long forward(int s, int c) { return atBackward[s][c] - atForward[s][c]; }

        /** How far counter c moved in step s's backward. */
        long backward(int s, int c) { return atEnd[s][c] - atBackward[s][c]; }
    }

    /** {@code steps} GPT steps of cfg on CUDA at precision p; the model's scope is closed when this returns. */
    static Run train(GptConfig cfg, Precision p, int steps, Hooks hooks) {
        SplittableRandom r = new SplittableRandom(3);
        int n = B * cfg.context();
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(cfg.vocab()); targets[i] = (ids[i] + 1) % cfg.vocab(); }   // learnable
        double[] losses = new double[steps];
        long[][] c0 = new long[steps][], c1 = new long[steps][], c2 = new long[steps][];
        List<Map<String, float[]>> grads = new ArrayList<>();
        try (Arena a = Arena.ofConfined(); Scope model = Scope.shared()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, targets);
            Gpt gpt = new Gpt(model, cfg, 5);
            gpt.to(model, Device.CUDA);
            Map<String, Var> named = gpt.namedParameters();
            AdamW opt = new AdamW(model, named, 0.9f, 0.95f, 1e-8f, 0.0f);
            for (int s = 0; s < steps; s++)
                try (Graph g = Graph.open().precision(p)) {
                    hooks.beforeForward(s);
                    c0[s] = CudaTesting.emuCountersOrZeros();
                    Var l = gpt.loss(hi, ht, B, cfg.context());
                    c1[s] = CudaTesting.emuCountersOrZeros();
                    hooks.beforeBackward(s);
                    g.backward(l);
                    c2[s] = CudaTesting.emuCountersOrZeros();
                    hooks.afterBackward(s);
                    losses[s] = F.item(l);
                    Map<String, float[]> gs = new LinkedHashMap<>();
                    for (var e : named.entrySet()) gs.put(e.getKey(), e.getValue().grad().value().toArray());
                    grads.add(gs);
                    opt.update(LR, 1.0);
                }
        }
        return new Run(losses, grads, c0, c1, c2);
    }

    // ---- the bf16 conversion tests' runs (CudaLinearConversionTest, CudaSdpaConversionTest) -------------------------

    /**
     * A conversion test's run, per step: the loss, every gradient by name, the launches of the forward and of the
     * backward, the vendor calls the test counts (cuBLASLt's in the forward; SDPA's forward and backward in the step),
     * live device bytes after the forward and after the backward; and the device bytes left once the run is over.
     */
    record ConversionRun(double[] losses, List<Map<String, float[]>> grads, long[] fwdLaunches, long[] bwdLaunches, long[] vendorCalls,
                         long[] liveAfterForward, long[] liveAfterBackward, long leftAfter) {}

    /** The vendor routing back to the environment's, both fewer-conversion switches and the producers' bf16 writes back on (their defaults). */
    static void restoreConversionSwitches() {
        CudaVendor.force(null);
        CudaVendor.fewerGemmConversionsForTest = true;
        CudaVendor.fewerSdpaConversionsForTest = true;
        CudaVendor.bf16GemmInputsForTest = true;
    }

    /**
     * The fewer-conversions run {@code now} against the per-operand run {@code old}: every step's loss and every
     * gradient bit-identical, and now's loss falls over the run; each message starts with {@code prefix}.
     */
    static void assertSameBits(String prefix, ConversionRun old, ConversionRun now) {
        int steps = old.losses().length;
        for (int s = 0; s < steps; s++) {
            assertEquals(Double.doubleToRawLongBits(old.losses()[s]), Double.doubleToRawLongBits(now.losses()[s]),
                    prefix + "loss at step " + (s + 1) + ": " + now.losses()[s] + " vs the per-operand conversions' " + old.losses()[s]);
            for (var e : old.grads().get(s).entrySet())
                assertArrayEquals(e.getValue(), now.grads().get(s).get(e.getKey()), prefix + "grad " + e.getKey() + " at step " + (s + 1));
        }
        assertTrue(now.losses()[steps - 1] < now.losses()[0], prefix + "loss falls: " + java.util.Arrays.toString(now.losses()));
    }
}
