package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.flow.RealNvp;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.close;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * RealNVP (8 x 8 images, 2 checkerboard couplings, 4 hidden channels, batch 3) on Device.CUDA against the CPU from the
 * same weights and dequantized inputs: bits/dim, every parameter's gradient (the weights perturbed first, so the
 * zero-initialised last convolutions pass gradient to the rest), the inverse (round trip and samples), and
 * FlowTrainer.trainStep itself for three steps. Tolerances as CudaGptTest's: loss 1e-5 relative, gradients 1e-5 of the
 * parameter's largest |gradient|, parameters after the steps 1e-6 + 1e-5 |p|; the round trip and samples within
 * 1e-5 (1 + |y|). Glow on the device is refused by name.
 */
class CudaFlowTest extends AtRefIsaOnDevice {
    static final int HW = 8, B = 3;

    static byte[] pixels(int n, long seed) {
        byte[] px = new byte[n * HW * HW];
        new SplittableRandom(seed).nextBytes(px);
        return px;
    }

    record Step(double bpd, Map<String, float[]> grads, float[] roundTrip, float[] samples, float[] input) {}

    static Step step(Device dev, byte[] px) {
        long before = Scope.liveDeviceBytes();
        Step out;
        try (Scope s = Scope.shared()) {
            RealNvp m = new RealNvp(s, HW, HW, 2, 4, 0.05, 1);
            SplittableRandom r = new SplittableRandom(9);
            for (Var p : m.parameters()) {   /* perturb on the host, before the move: the same weights on both devices */
                var seg = p.value().segment();
                for (long i = 0; i < p.value().numel(); i++) seg.setAtIndex(JAVA_FLOAT, i, seg.getAtIndex(JAVA_FLOAT, i) + (float) (0.05 * (r.nextDouble() - 0.5)));
            }
            m.to(s, dev);
            Map<String, float[]> grads = new LinkedHashMap<>();
            double bpd;
            float[] input;
            try (Graph g = Graph.open()) {
                Tensor[] pre = m.preprocess(g.scope(), px, null, 0, B, 1, 7);
                input = pre[0].toArray();
                Var loss = m.bitsPerDim(Var.constant(pre[0].to(g.scope(), dev)), pre[1]);
                assertEquals(dev, loss.value().device());
                bpd = F.item(loss);
                g.backward(loss);
                m.namedParameters().forEach((k, v) -> grads.put(k, v.grad().value().toArray()));
            }
            float[] back, samples;
            try (Graph g = Graph.inference()) {
                Tensor[] pre = m.preprocess(g.scope(), px, null, 0, B, 1, 7);
                back = m.roundTrip(pre[0].to(g.scope(), dev)).toArray();
                Tensor smp = m.sampleLogits(2, 0.7, 5);
                assertEquals(dev, smp.device());
                samples = smp.toArray();
            }
            out = new Step(bpd, grads, back, samples, input);
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the scope frees the model, its cached masks and the steps' tensors");
        return out;
    }

    @Test
    void realNvpGradientsAndInverseMatchTheCpu() {
        byte[] px = pixels(B, 3);
        Step cpu = step(Device.CPU, px), gpu = step(Device.CUDA, px);
        System.out.printf("RealNVP: bits/dim CPU %.9g CUDA %.9g%n", cpu.bpd, gpu.bpd);
        assertEquals(cpu.bpd, gpu.bpd, 1e-5 * Math.abs(cpu.bpd), "bits/dim");
        assertEquals(cpu.grads.keySet(), gpu.grads.keySet());
        double worst = 0;
        for (String k : cpu.grads.keySet()) {
            float[] gc = cpu.grads.get(k), gg = gpu.grads.get(k);
            double max = 0;
            for (float v : gc) max = Math.max(max, Math.abs(v));
            double tol = 1e-5 * max + 1e-12;
            for (int i = 0; i < gc.length; i++) worst = Math.max(worst, Math.abs(gg[i] - gc[i]) / tol);
            close("grad " + k, gg, gc, i -> tol);
        }
        System.out.printf("RealNVP: largest gradient error / tolerance %.3g%n", worst);
        close("round trip vs CPU", gpu.roundTrip, cpu.roundTrip, i -> 1e-5 * (1 + Math.abs(cpu.roundTrip[i])));
        close("round trip vs input", gpu.roundTrip, gpu.input, i -> 1e-4 * (1 + Math.abs(gpu.input[i])));
        close("samples", gpu.samples, cpu.samples, i -> 1e-5 * (1 + Math.abs(cpu.samples[i])));
    }

    static FlowTrainer.Config config(String arch) {
        return arch.equals("glow") ? new FlowTrainer.Config("unused", Path.of("unused"), "glow", 0, 1, 1, 4, 1, B, 1e-3f, 0, 1, 0, 0, true)
                : new FlowTrainer.Config("unused", Path.of("unused"), 2, 4, 1, B, 1e-3f, 0, 1, 0, 0, true);
    }

    record Run(double[] bpd, Map<String, float[]> params) {}

    static Run trainer(Device dev, ImageData data) {
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(config("realnvp"), s, HW, HW, dev);
            double[] bpd = new double[3];
            for (int i = 0; i < 3; i++) bpd[i] = t.trainStep(data, new int[] {0, 1, 2, 3, 4, 5}, (i % 2) * B, B);
            Map<String, float[]> params = new LinkedHashMap<>();
            t.model.namedParameters().forEach((k, v) -> {
                assertEquals(dev, v.value().device(), k);
                params.put(k, v.value().toArray());
            });
            return new Run(bpd, params);
        }
    }

    @Test
    void trainerStepsMatchTheCpu() {
        ImageData data = new ImageData(6, HW, HW, pixels(6, 4), null, "random");
        Run cpu = trainer(Device.CPU, data), gpu = trainer(Device.CUDA, data);
        for (int i = 0; i < 3; i++) {
            System.out.printf("FlowTrainer step %d: bits/dim CPU %.9g CUDA %.9g%n", i + 1, cpu.bpd[i], gpu.bpd[i]);
            assertEquals(cpu.bpd[i], gpu.bpd[i], 1e-5 * Math.abs(cpu.bpd[i]), "step " + (i + 1));
        }
        for (String k : cpu.params.keySet()) {
            float[] c = cpu.params.get(k);
            close("param " + k, gpu.params.get(k), c, i -> 1e-6 + 1e-5 * Math.abs(c[i]));
        }
    }

    @Test
    void glowOnTheDeviceIsRefusedByName() {
        try (Scope s = Scope.shared()) {
            var e = assertThrows(UnsupportedOperationException.class, () -> new FlowTrainer(config("glow"), s, HW, HW, Device.CUDA));
            assertTrue(e.getMessage().contains("Glow is not supported on CUDA"), e.getMessage());
        }
    }
}
