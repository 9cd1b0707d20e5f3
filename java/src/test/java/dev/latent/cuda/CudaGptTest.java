package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.close;
import static dev.latent.cuda.CudaTesting.gradTol;
import static dev.latent.cuda.CudaTesting.device;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * One GPT training step (2 layers, 2 heads, width 32, context 16, vocab 65, batch 2) on Device.CUDA against the same
 * step on the CPU, from the same initial weights and batch: the loss, every parameter's gradient, and every parameter
 * after AdamW with global-norm clipping. GEMMs in exact fp32 (TF32 off, the default). The devices sum in different
 * orders (GEMM tiles, float vs double row sums in LayerNorm and softmax): ~1e-7 relative per op, compounded through
 * two blocks. Tolerances per element: loss 1e-5 relative; gradients 1e-5 of the parameter's largest |gradient|;
 * parameters after the step 1e-6 + 1e-5 |p|, plus 2 lr where the CPU's gradient is within the gradient tolerance of
 * zero (AdamW's first step moves by ~lr sign(g), so there a last-bits difference in g may flip the step).
 */
class CudaGptTest {
    static Cuda cu;

    @BeforeAll
    static void setUp() { cu = device(); }

    record Step(float loss, Map<String, float[]> grads, Map<String, float[]> params) {}

    static Step step(Device dev, GptConfig cfg, MemorySegment ids, MemorySegment targets, float lr) {
        long before = Scope.liveDeviceBytes();
        Step result;
        try (Scope model = Scope.shared()) {
            Gpt gpt = new Gpt(model, cfg, 5);
            gpt.to(model, dev);
            Map<String, Var> named = gpt.namedParameters();
            for (Var p : named.values()) assertEquals(dev, p.value().device());
            AdamW opt = new AdamW(model, named, 0.9f, 0.95f, 1e-8f, 0.1f);
            float loss;
            Map<String, float[]> grads = new java.util.LinkedHashMap<>(), params = new java.util.LinkedHashMap<>();
            try (Graph g = Graph.open()) {
                Var l = gpt.loss(ids, targets, 2, cfg.context());
                assertEquals(dev, l.value().device());
                loss = F.item(l);
                g.backward(l);
                for (var e : named.entrySet()) grads.put(e.getKey(), e.getValue().grad().value().toArray());
                opt.update(lr, 1.0);
            }
            for (var e : named.entrySet()) params.put(e.getKey(), e.getValue().value().toArray());
            result = new Step(loss, grads, params);
            /* two more steps: each step's device memory (activations, gradients) is freed when its graph closes */
            long held = Scope.liveDeviceBytes();
            for (int i = 0; i < 2; i++) {
                try (Graph g = Graph.open()) {
                    g.backward(gpt.loss(ids, targets, 2, cfg.context()));
                    opt.update(lr, 1.0);
                }
                assertEquals(held, Scope.liveDeviceBytes(), "device memory after step " + (i + 2));
            }
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the model scope frees its parameters and optimizer state");
        return result;
    }

    @Test
    void oneTrainingStepMatchesTheCpu() {
        GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, false);
        SplittableRandom r = new SplittableRandom(3);
        int n = 2 * cfg.context();
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(65); targets[i] = r.nextInt(65); }
        ids[1] = ids[0];   /* a repeated token: two gradient rows into one embedding row */
        float lr = 1e-2f;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, targets);
            Step cpu = step(Device.CPU, cfg, hi, ht, lr), gpu = step(Device.CUDA, cfg, hi, ht, lr);
            System.out.printf("GPT step: loss CPU %.7f, CUDA %.7f%n", cpu.loss, gpu.loss);
            assertEquals(cpu.loss, gpu.loss, 1e-5 * Math.abs(cpu.loss), "loss");
            assertEquals(cpu.grads.keySet(), gpu.grads.keySet());
            List<String> names = new ArrayList<>(cpu.grads.keySet());
            for (String k : names) {
                float[] gc = cpu.grads.get(k);
                double gtol = gradTol(gc);
                close("grad " + k, gpu.grads.get(k), gc, i -> gtol);
                float[] pc = cpu.params.get(k);
                close("param " + k, gpu.params.get(k), pc, i -> 1e-6 + 1e-5 * Math.abs(pc[i]) + (Math.abs(gc[i]) <= gtol ? 2 * lr : 0));
            }
        }
    }
}
