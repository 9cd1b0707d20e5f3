package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.vae.ConvVae;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.close;
import static dev.latent.cuda.CudaTesting.gradTol;
import static org.junit.jupiter.api.Assertions.*;

/**
 * One training step of the convolutional VAE (28 x 28, latent 4, batch 2) on Device.CUDA against the same step on the
 * CPU, from the same initial weights, images and Philox eps: the loss, every parameter's gradient, and every parameter
 * after Adam. Both likelihoods: Bernoulli with the fused reparam KL, Gaussian with free bits (F.gaussianNllSum's
 * device path, F.klFreeBits's explicit copies), and the transposed convolutions' bias gradients (F.channelSum on the
 * device). Then VaeTrainer.trainStep itself on both devices. The devices sum in different orders (GEMM and conv tiles,
 * float channel sums where the CPU sums in double): tolerances as CudaGptTest's: loss 1e-5 relative, gradients 1e-5 of
 * the parameter's largest |gradient|, parameters after the step 1e-6 + 1e-5 |p|, plus 2 lr where the CPU's gradient is
 * within the gradient tolerance of zero (Adam's first step moves by ~lr sign(g)).
 */
class CudaVaeTest extends AtRefIsaOnDevice {
    static final int B = 2, LATENT = 4;
    static final float LR = 1e-3f;

    record Step(double loss, Map<String, float[]> grads, Map<String, float[]> params) {}

    static ImageData images(int n, long seed) {
        byte[] px = new byte[n * 28 * 28];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < px.length; i++) px[i] = (byte) (r.nextInt(4) == 0 ? 0 : r.nextInt(256));
        return new ImageData(n, 28, 28, px, null, "random");
    }

    /** trainStep's graph, written out so the gradients can be read before Adam's update. */
    static Step step(Device dev, ImageData data, boolean gaussian, double freeBits) {
        long before = Scope.liveDeviceBytes();
        Step result;
        try (Scope s = Scope.shared()) {
            ConvVae vae = new ConvVae(s, LATENT, 1);
            vae.to(s, dev);
            Map<String, Var> named = vae.namedParameters();
            for (Var p : named.values()) assertEquals(dev, p.value().device());
            AdamW opt = new AdamW(s, named, 0.9f, 0.999f, 1e-8f, 0f);
            Map<String, float[]> grads = new LinkedHashMap<>(), params = new LinkedHashMap<>();
            double loss;
            try (Graph g = Graph.open()) {
                Tensor x = Tensor.empty(g.scope(), B, 1, 28, 28);
                data.fill(x, new int[] {1, 0}, 0, B, 1f / 255f, 0f, 0);
                x = x.to(g.scope(), dev);
                Var[] h = vae.encode(Var.constant(x));
                F.Reparam r = F.reparam(h[0], h[1], 1, 77);
                Var out = vae.decode(r.z());
                assertEquals(dev, out.value().device());
                Var rec = gaussian ? F.gaussianNllSum(out, x, 0.1, 1f / B) : F.bceWithLogitsSum(out, x, 1f / B);
                Var kl = freeBits > 0 ? F.scale(F.klFreeBits(h[0], h[1], freeBits), 0.5f) : F.scale(r.kl(), 0.5f / B);
                Var l = F.add(rec, kl);
                assertEquals(dev, l.value().device());
                loss = F.item(l);
                g.backward(l);
                for (var e : named.entrySet()) grads.put(e.getKey(), e.getValue().grad().value().toArray());
                opt.update(LR, 0);
            }
            for (var e : named.entrySet()) params.put(e.getKey(), e.getValue().value().toArray());
            result = new Step(loss, grads, params);
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the scope frees the model, its gradients and Adam's state");
        return result;
    }

    static void compare(String what, Step cpu, Step gpu) {
        System.out.printf("VAE step (%s): loss CPU %.9g, CUDA %.9g%n", what, cpu.loss, gpu.loss);
        assertEquals(cpu.loss, gpu.loss, 1e-5 * Math.abs(cpu.loss), what + ": loss");
        if (cpu.grads.isEmpty()) {
            comparePlain(what, cpu, gpu);
            return;
        }
        assertEquals(cpu.grads.keySet(), gpu.grads.keySet());
        double worst = 0;
        for (String k : cpu.grads.keySet()) {
            float[] gc = cpu.grads.get(k), gg = gpu.grads.get(k);
            double gtol = gradTol(gc);
            for (int i = 0; i < gc.length; i++) worst = Math.max(worst, Math.abs(gg[i] - gc[i]) / gtol);
            close(what + ": grad " + k, gg, gc, i -> gtol);
            float[] pc = cpu.params.get(k);
            close(what + ": param " + k, gpu.params.get(k), pc, i -> 1e-6 + 1e-5 * Math.abs(pc[i]) + (Math.abs(gc[i]) <= gtol ? 2 * LR : 0));
        }
        System.out.printf("VAE step (%s): largest gradient error / tolerance %.3g%n", what, worst);
    }

    /** Parameters only (no gradients to excuse a flipped first step): 1e-6 + 1e-5 |p| + 2 lr. */
    static void comparePlain(String what, Step cpu, Step gpu) {
        for (String k : cpu.params.keySet()) {
            float[] pc = cpu.params.get(k);
            close(what + ": param " + k, gpu.params.get(k), pc, i -> 1e-6 + 1e-5 * Math.abs(pc[i]) + 2 * LR);
        }
    }

    @Test
    void bernoulliStepMatchesTheCpu() {
        ImageData data = images(2, 5);
        compare("bernoulli", step(Device.CPU, data, false, 0), step(Device.CUDA, data, false, 0));
    }

    @Test
    void gaussianFreeBitsStepMatchesTheCpu() {
        ImageData data = images(2, 6);
        compare("gaussian + free bits", step(Device.CPU, data, true, 0.05), step(Device.CUDA, data, true, 0.05));
    }

    /**
     * The free-bits KL on the device (ltk_kl_free_bits_fwd / _bwd) against the CPU's host loop: the value within float
     * rounding, the gradients equal up to the last bit of exp (zero exactly where the CPU's are zero: dimensions at or
     * below lambda, logvar outside [-30, 30]), with an upstream gradient read from device memory (0.75).
     */
    @Test
    void freeBitsKlOnTheDeviceMatchesTheHostLoop() {
        int b = 5, d = 7;
        float[] mu = new float[b * d], lv = new float[b * d];
        SplittableRandom r = new SplittableRandom(3);
        for (int i = 0; i < b * d; i++) {
            int j = i % d;
            mu[i] = j < 2 ? (float) (0.01 * r.nextDouble()) : (float) (2 * r.nextDouble() - 1);   /* dims 0, 1: below lambda */
            lv[i] = j < 2 ? 0f : (float) (r.nextDouble() - 0.5);
        }
        lv[3] = 31f;
        lv[d + 4] = -40f;   /* clamped: no logvar gradient there */
        double lambda = 0.05;
        float[][] got = new float[2][], dm = new float[2][], dl = new float[2][];
        for (int k = 0; k < 2; k++) {
            Device dev = k == 0 ? Device.CPU : Device.CUDA;
            try (Graph g = Graph.open()) {
                Var m = Var.input(Tensor.of(g.scope(), dev, mu, b, d)), l = Var.input(Tensor.of(g.scope(), dev, lv, b, d));
                Var kl = F.klFreeBits(m, l, lambda);
                g.backward(F.scale(kl, 0.75f));
                got[k] = kl.value().toArray();
                dm[k] = m.grad().value().toArray();
                dl[k] = l.grad().value().toArray();
            }
        }
        assertEquals(got[0][0], got[1][0], 2e-6 * Math.abs(got[0][0]), "free-bits KL");
        for (int i = 0; i < b * d; i++) {
            assertEquals(dm[0][i] == 0f, dm[1][i] == 0f, "dmu " + i + " zero on one device only");
            assertEquals(dl[0][i] == 0f, dl[1][i] == 0f, "dlogvar " + i + " zero on one device only");
            assertEquals(dm[0][i], dm[1][i], 0f, "dmu " + i);   /* s mu: no exp in it, the same bits */
            assertEquals(dl[0][i], dl[1][i], 1e-6 * Math.abs(dl[0][i]), "dlogvar " + i);
        }
        assertEquals(0f, dm[0][0], "dimension 0 is below lambda: no gradient");
        assertEquals(0f, dl[0][3], "logvar 31 is clamped: no gradient");
        assertNotEquals(0f, dm[0][3], "dimension 3 is above lambda");
    }

    static Step trainerStep(Device dev, ImageData data, VaeTrainer.Likelihood lik, double freeBits) { return trainerStep(dev, data, lik, freeBits, 0); }

    static Step trainerStep(Device dev, ImageData data, VaeTrainer.Likelihood lik, double freeBits, int classes) {
        try (Scope s = Scope.shared()) {
            var cfg = new VaeTrainer.Config("unused", Path.of("unused"), LATENT, 1.0, 1, B, LR, lik, 0.1, 3, freeBits, 1, 0, 1234, 0, 0, 1, true)
                    .withClasses(classes);
            VaeTrainer t = new VaeTrainer(cfg, s, dev);
            assertEquals(dev, t.model.namedParameters().values().iterator().next().value().device());
            double loss = 0;
            for (int i = 0; i < 2; i++) loss = t.trainStep(data, new int[] {0, 1}, 0, B);   /* warm-up: beta 1/3, 2/3 */
            Map<String, float[]> params = new LinkedHashMap<>();
            /* the host mirror (evaluation, PNGs) holds the device weights */
            for (var e : t.hostModel().namedParameters().entrySet()) {
                assertEquals(Device.CPU, e.getValue().value().device());
                params.put(e.getKey(), e.getValue().value().toArray());
            }
            for (var e : t.model.namedParameters().entrySet())
                assertArrayEquals(e.getValue().value().toArray(), params.get(e.getKey()), e.getKey());
            return new Step(loss, Map.of(), params);
        }
    }

    @Test
    void trainerStepsMatchTheCpu() {
        ImageData data = images(2, 7);
        compare("VaeTrainer bernoulli", trainerStep(Device.CPU, data, VaeTrainer.Likelihood.BERNOULLI, 0),
                trainerStep(Device.CUDA, data, VaeTrainer.Likelihood.BERNOULLI, 0));
    }

    /** The conditional VAE (issue 21): the label tables of the heads and the decoder looked up on the device, host ids. */
    @Test
    void conditionalTrainerStepsMatchTheCpu() {
        ImageData d0 = images(2, 8);
        ImageData data = new ImageData(d0.n, d0.h, d0.w, d0.pixels, new int[] {2, 0}, "random, labelled");
        compare("conditional VaeTrainer bernoulli", trainerStep(Device.CPU, data, VaeTrainer.Likelihood.BERNOULLI, 0, 3),
                trainerStep(Device.CUDA, data, VaeTrainer.Likelihood.BERNOULLI, 0, 3));
    }
}
