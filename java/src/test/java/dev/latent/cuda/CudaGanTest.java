package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.nn.Init;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.close;
import static dev.latent.cuda.CudaTesting.compareGrads;
import static org.junit.jupiter.api.Assertions.*;

/**
 * DCGAN on Device.CUDA against the CPU (nz 8, ngf = ndf = 4, 32 x 32, batch 3), from the same weights, images and
 * latents: one discriminator step's loss and gradients (BCE on real and detached fake logits, BatchNorm in training
 * mode, LeakyReLU), then the generator's (non-saturating BCE through the frozen discriminator, transposed
 * convolutions, ReLU, Tanh); and GanTrainer.step itself twice: losses, D(x), D(G(z)), every parameter after Adam and
 * BatchNorm's running statistics; and WGAN-GP's critic and generator steps. Tolerances as CudaGptTest's: losses 1e-5
 * relative, gradients 1e-5 of the parameter's largest |gradient|, parameters 1e-6 + 1e-5 |p| (+ 2 lr where the gradient is within tolerance of zero: Adam's first
 * step moves by ~lr sign(g)); after the trainer's two steps every parameter and running statistic within 1e-6 + 1e-5 |s|
 * (no first step flipped on these inputs).
 */
class CudaGanTest extends AtRefIsaOnDevice {
    static final int B = 3, NZ = 8, NF = 4;

    static ImageData images(int n, long seed) {
        byte[] px = new byte[n * 28 * 28];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < px.length; i++) px[i] = (byte) r.nextInt(256);
        return new ImageData(n, 28, 28, px, null, "random");
    }

    record Grads(double lossD, double lossG, Map<String, float[]> d, Map<String, float[]> g) {}

    static Grads grads(Device dev, ImageData data) {
        long before = Scope.liveDeviceBytes();
        Grads out;
        try (Scope s = Scope.shared()) {
            Dcgan.Generator gen = new Dcgan.Generator(s, NZ, NF, 3);
            Dcgan.Discriminator dis = new Dcgan.Discriminator(s, NF, Dcgan.Norm.BATCH, 3);
            gen.to(s, dev);
            dis.to(s, dev);
            Map<String, float[]> gd = new LinkedHashMap<>(), gg = new LinkedHashMap<>();
            try (Graph gr = Graph.open()) {
                Tensor x = Tensor.empty(gr.scope(), B, 1, 32, 32);
                data.fill(x, new int[] {2, 0, 1}, 0, B, 1f / 127.5f, -1f, 2);
                Var real = Var.constant(x.to(gr.scope(), dev));
                Var z = Var.constant(Init.normal(gr.scope(), 3, 11, 1.0, B, NZ, 1, 1).to(gr.scope(), dev));
                Var fake = gen.forward(z);
                assertEquals(dev, fake.value().device());
                Var lossD = F.add(F.bceWithLogits(dis.forward(real), 1f), F.bceWithLogits(dis.forward(F.detach(fake)), 0f));
                gr.backward(lossD);
                dis.namedParameters().forEach((k, v) -> gd.put(k, v.grad().value().toArray()));
                for (Var p : dis.parameters()) p.zeroGrad();
                Var lossG = F.bceWithLogits(dis.forward(fake), 1f);
                gr.freeze(dis.parameters());
                gr.backward(lossG);
                gen.namedParameters().forEach((k, v) -> gg.put(k, v.grad().value().toArray()));
                out = new Grads(F.item(lossD), F.item(lossG), gd, gg);
            }
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the scope frees the nets and the step's tensors");
        return out;
    }


    @Test
    void discriminatorAndGeneratorGradientsMatchTheCpu() {
        ImageData data = images(3, 4);
        Grads cpu = grads(Device.CPU, data), gpu = grads(Device.CUDA, data);
        System.out.printf("DCGAN: lossD CPU %.9g CUDA %.9g, lossG CPU %.9g CUDA %.9g%n", cpu.lossD, gpu.lossD, cpu.lossG, gpu.lossG);
        assertEquals(cpu.lossD, gpu.lossD, 1e-5 * Math.abs(cpu.lossD), "lossD");
        assertEquals(cpu.lossG, gpu.lossG, 1e-5 * Math.abs(cpu.lossG), "lossG");
        double wd = compareGrads("D", cpu.d, gpu.d), wg = compareGrads("G", cpu.g, gpu.g);
        System.out.printf("DCGAN: largest gradient error / tolerance D %.3g, G %.3g%n", wd, wg);
    }

    static GanTrainer.Config config(Path out, GanTrainer.Loss loss) {
        return new GanTrainer.Config(loss, "unused", out, 2, B, NZ, NF, NF, 2e-4f, 0.5f, 0.999f, 1, 10f,
                loss == GanTrainer.Loss.GAN ? Dcgan.Norm.BATCH : Dcgan.Norm.NONE, 3, 1, 0, 0, 1234, true);
    }

    record Run(double[][] steps, Map<String, float[]> state) {}

    static Run trainer(Device dev, ImageData data) {
        GanTrainer t = new GanTrainer(config(Path.of("unused"), GanTrainer.Loss.GAN), dev);
        assertEquals(dev, t.g.namedParameters().values().iterator().next().value().device());
        int[] perm = {0, 1, 2, 3, 4, 5};
        double[][] steps = {t.step(data, perm, 0, 1), t.step(data, perm, 3, 2)};
        Map<String, float[]> state = new LinkedHashMap<>();
        Dcgan.stateDict(t.g, t.d).forEach((k, v) -> {
            assertEquals(dev, v.device(), k);
            state.put(k, v.toArray());
        });
        return new Run(steps, state);
    }

    @Test
    void trainerStepsMatchTheCpu() {
        ImageData data = images(6, 5);
        Run cpu = trainer(Device.CPU, data), gpu = trainer(Device.CUDA, data);
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < 4; j++) {
                System.out.printf("GanTrainer step %d value %d: CPU %.9g CUDA %.9g%n", s + 1, j, cpu.steps[s][j], gpu.steps[s][j]);
                assertEquals(cpu.steps[s][j], gpu.steps[s][j], 1e-5 * Math.abs(cpu.steps[s][j]) + 1e-7, "step " + (s + 1) + " value " + j);
            }
        assertEquals(cpu.state.keySet(), gpu.state.keySet());
        for (String k : cpu.state.keySet()) {
            float[] c = cpu.state.get(k);
            close(k, gpu.state.get(k), c, i -> 1e-6 + 1e-5 * Math.abs(c[i]));
        }
    }

    static Run conditional(Device dev, ImageData data) {
        GanTrainer t = new GanTrainer(config(Path.of("unused"), GanTrainer.Loss.GAN).withClasses(3), dev);
        int[] perm = {0, 1, 2, 3, 4, 5};
        double[][] steps = {t.step(data, perm, 0, 1), t.step(data, perm, 3, 2)};
        Map<String, float[]> state = new LinkedHashMap<>();
        Dcgan.stateDict(t.g, t.d).forEach((k, v) -> {
            assertEquals(dev, v.device(), k);
            state.put(k, v.toArray());
        });
        return new Run(steps, state);
    }

    /**
     * The class-conditional DCGAN (issue 21: the generator's per-class table added after its first transposed conv, the
     * projection discriminator's embedding dot product), two trainer steps on labelled images: the embedding lookups
     * and their backward run on the device with the ids on the host; the same tolerances as the unconditional steps.
     */
    @Test
    void conditionalTrainerStepsMatchTheCpu() {
        ImageData d0 = images(6, 6);
        ImageData data = new ImageData(6, 28, 28, d0.pixels, new int[] {0, 2, 1, 1, 0, 2}, "random, labelled");
        Run cpu = conditional(Device.CPU, data), gpu = conditional(Device.CUDA, data);
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < 4; j++) {
                System.out.printf("conditional GanTrainer step %d value %d: CPU %.9g CUDA %.9g%n", s + 1, j, cpu.steps[s][j], gpu.steps[s][j]);
                assertEquals(cpu.steps[s][j], gpu.steps[s][j], 1e-5 * Math.abs(cpu.steps[s][j]) + 1e-7, "step " + (s + 1) + " value " + j);
            }
        assertEquals(cpu.state.keySet(), gpu.state.keySet());
        assertTrue(cpu.state.containsKey("G.cond.weight") && cpu.state.containsKey("D.proj.weight"));
        for (String k : cpu.state.keySet()) {
            float[] c = cpu.state.get(k);
            close(k, gpu.state.get(k), c, i -> 1e-6 + 1e-5 * Math.abs(c[i]));
        }
    }

    static Run wgan(Device dev, ImageData data, Dcgan.Norm norm) {
        GanTrainer.Config c = config(Path.of("unused"), GanTrainer.Loss.WGAN_GP);
        c = new GanTrainer.Config(c.loss(), c.data(), c.out(), c.iters(), c.batch(), c.nz(), c.ngf(), c.ndf(), c.lr(), c.beta1(), c.beta2(),
                2, c.lambda(), norm, c.seed(), c.logEvery(), c.trainLimit(), c.samples(), c.sampleSeed(), c.quiet());
        GanTrainer t = new GanTrainer(c, dev);
        int[] perm = {0, 1, 2, 3, 4, 5};
        double[][] steps = {t.step(data, perm, 0, 1), t.step(data, perm, 3, 2)};
        Map<String, float[]> state = new LinkedHashMap<>();
        Dcgan.stateDict(t.g, t.d).forEach((k, v) -> state.put(k, v.toArray()));
        return new Run(steps, state);
    }

    /**
     * WGAN-GP (2 critic steps per generator step, lambda 10): the gradient penalty differentiates through the critic
     * twice (conv double backward, LeakyReLU's differentiable backward, rowSum and its adjoint by GEMMs with ones), with
     * and without LayerNorm in the critic. Losses, W estimate and penalty per iteration within 1e-4 relative (the
     * penalty is a difference of norms near 1: cancellation; measured ~1e-6 with LayerNorm, 1e-8 without), the weights
     * and running statistics within 1e-6 + 1e-5 |p|.
     */
    @Test
    void wganGpStepsMatchTheCpu() {
        ImageData data = images(6, 8);
        for (Dcgan.Norm norm : new Dcgan.Norm[] {Dcgan.Norm.NONE, Dcgan.Norm.LAYER}) {
            Run cpu = wgan(Device.CPU, data, norm), gpu = wgan(Device.CUDA, data, norm);
            for (int s = 0; s < 2; s++)
                for (int j = 0; j < 4; j++) {
                    System.out.printf("WGAN-GP %s step %d value %d: CPU %.9g CUDA %.9g%n", norm, s + 1, j, cpu.steps[s][j], gpu.steps[s][j]);
                    assertEquals(cpu.steps[s][j], gpu.steps[s][j], 1e-4 * Math.abs(cpu.steps[s][j]) + 1e-6, norm + " step " + (s + 1) + " value " + j);
                }
            for (String k : cpu.state.keySet()) {
                float[] c = cpu.state.get(k);
                close(norm + " " + k, gpu.state.get(k), c, i -> 1e-6 + 1e-5 * Math.abs(c[i]));
            }
        }
    }
}
