package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.data.Idx;
import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.flow.FlowSampler;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.gan.GanSampler;
import dev.latent.models.gan.GanTrainer;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.nn.Init;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Sampling and evaluation on the device against the same model on the CPU (the same weights: every trainer builds its
 * model on the CPU from the seed and moves it; the latent draws are Philox on the host or the device, the same numbers).
 * Tolerances, for fp32 outputs computed in different summation orders (cuDNN / cuBLAS stand-ins or our kernels against
 * the CPU's at ISA ref):
 * <ul>
 *   <li>8-bit samples (round(255 p)): each pixel within 1 of the CPU's, at most 2% of them off at all (a pixel changes
 *   only where 255 p sits within float rounding of a .5 boundary);</li>
 *   <li>scalar metrics (test neg-ELBO, IWAE bound, bits/dim, per-image anomaly scores): relative 1e-4 (sums of
 *   hundreds of per-pixel terms, each within ~1e-6 relative; the measured gaps are printed);</li>
 *   <li>the FID feature net: features and probabilities within 1e-4 absolute (values O(1)), and the FID of the
 *   device's features against the CPU's below 1e-6 (the same set).</li>
 * </ul>
 */
class CudaSampleEvalTest extends AtRefIsaOnDevice {
    static void closeBytes(String what, byte[] cpu, byte[] gpu) {
        assertEquals(cpu.length, gpu.length, what + ": lengths");
        int off = 0;
        for (int i = 0; i < cpu.length; i++) {
            int d = Math.abs((cpu[i] & 0xff) - (gpu[i] & 0xff));
            assertTrue(d <= 1, what + ": pixel " + i + " is " + (gpu[i] & 0xff) + " on the device, " + (cpu[i] & 0xff) + " on the CPU");
            if (d != 0) off++;
        }
        System.out.printf("%s: %d of %d pixels differ by 1 from the CPU's%n", what, off, cpu.length);
        assertTrue(off <= 0.02 * cpu.length, what + ": " + off + " of " + cpu.length + " pixels differ");
        boolean varied = false;
        for (byte b : cpu) varied |= b != cpu[0];
        assertTrue(varied, what + ": the samples are constant, the comparison means nothing");
    }

    static void closeRel(String what, double cpu, double gpu) {
        double rel = Math.abs(gpu - cpu) / Math.max(1e-12, Math.abs(cpu));
        System.out.printf("%s: CPU %.9g, device %.9g (relative %.2g; tolerance 1e-4)%n", what, cpu, gpu, rel);
        assertTrue(Double.isFinite(cpu) && rel <= 1e-4, what + ": CPU " + cpu + ", device " + gpu);
    }

    @Test
    void vaeSamplesEvalAndScoresMatchTheCpu(@TempDir Path dir) throws IOException {
        ImageData test = CudaVaeTest.images(6, 21);
        for (VaeTrainer.Likelihood lik : VaeTrainer.Likelihood.values())
            try (Scope s = Scope.shared()) {
                var cfg = new VaeTrainer.Config("unused", dir, CudaVaeTest.LATENT, 1.0, 1, CudaVaeTest.B, CudaVaeTest.LR, lik, 0.1, 3, 0, 1, 0, 1234, 0, 0, 1, true);
                VaeTrainer cpu = new VaeTrainer(cfg, s, Device.CPU), gpu = new VaeTrainer(cfg, s, Device.CUDA);
                assertEquals(Device.CUDA, gpu.evalModel().namedParameters().values().iterator().next().value().device());
                Path a = dir.resolve("cpu-" + lik + ".idx"), b = dir.resolve("gpu-" + lik + ".idx");
                cpu.writeSamples(a, 9, 5);
                gpu.writeSamples(b, 9, 5);
                closeBytes("VAE " + lik + " samples", pixels(a), pixels(b));
                closeRel("VAE " + lik + " test neg-ELBO", cpu.evaluate(test, false).negElbo(), gpu.evaluate(test, false).negElbo());
                closeRel("VAE " + lik + " IWAE (k 4)", cpu.iwae(test, 4, 5), gpu.iwae(test, 4, 5));
                for (VaeScores.Kind kind : VaeScores.Kind.values()) {
                    double[] sc, sg;
                    try (Graph g = Graph.inference()) {
                        Tensor x = Tensor.empty(g.scope(), 4, 1, 28, 28);
                        test.fill(x, null, 0, 4, 1f / 255f, 0f, 0);
                        long[] streams = {0, 1, 2, 3};
                        sc = VaeScores.score(cpu.evalModel(), lik, 0.1, x, kind, 3, 9, streams);
                        sg = VaeScores.score(gpu.evalModel(), lik, 0.1, x, kind, 3, 9, streams);
                    }
                    for (int i = 0; i < sc.length; i++) closeRel("VAE " + lik + " " + kind + " score " + i, sc[i], sg[i]);
                }
            }
    }

    static byte[] pixels(Path idx) throws IOException {
        byte[] f = Files.readAllBytes(idx);
        return java.util.Arrays.copyOfRange(f, 16, f.length);   // IDX3: 16-byte header
    }

    @Test
    void dcganAndWganSamplesMatchTheCpu() {
        for (GanTrainer.Loss loss : GanTrainer.Loss.values()) {
            GanTrainer cpu = new GanTrainer(CudaGanTest.config(Path.of("unused"), loss), Device.CPU);
            GanTrainer gpu = new GanTrainer(CudaGanTest.config(Path.of("unused"), loss), Device.CUDA);
            closeBytes(loss + " samples", GanSampler.sample(cpu.g, 77, 6), GanSampler.sample(gpu.g, 77, 6));
        }
    }

    @Test
    void flowSamplesAndBitsPerDimMatchTheCpu() {
        ImageData data = new ImageData(6, CudaFlowTest.HW, CudaFlowTest.HW, CudaFlowTest.pixels(6, 31), null, "random");
        for (String arch : new String[] {"realnvp", "glow"})
            try (Scope s = Scope.shared()) {
                FlowTrainer cpu = new FlowTrainer(CudaFlowTest.config(arch), s, CudaFlowTest.HW, CudaFlowTest.HW, Device.CPU);
                FlowTrainer gpu = new FlowTrainer(CudaFlowTest.config(arch), s, CudaFlowTest.HW, CudaFlowTest.HW, Device.CUDA);
                // the couplings start as the identity (zero-initialised scale and shift): perturb every weight the same way
                // on both (through Init.assign, as the checkpoint loads do), so the nets do something
                java.util.SplittableRandom r = new java.util.SplittableRandom(9);
                var gp = gpu.model.namedParameters();
                for (var e : cpu.model.namedParameters().entrySet()) {
                    var seg = e.getValue().value().segment();
                    for (long i = 0; i < e.getValue().value().numel(); i++)
                        seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, seg.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i) + (float) (0.05 * (r.nextDouble() - 0.5)));
                    Init.assign(e.getValue().value(), gp.get(e.getKey()).value());
                }
                closeRel(arch + " test bits/dim", cpu.testBpd(data), gpu.testBpd(data));   // Glow's ActNorm initialises here, from the same batch
                closeBytes(arch + " samples (T 0.7)", FlowSampler.sample(cpu.model, 5, 0.7, 3), FlowSampler.sample(gpu.model, 5, 0.7, 3));
                double ic = cpu.invertibilityError(data, 6), ig = gpu.invertibilityError(data, 6);
                System.out.printf("%s invertibility error: CPU %.3g, device %.3g%n", arch, ic, ig);
                assertTrue(ig < 1e-4, arch + ": invertibility error on the device " + ig);
            }
    }

    @Test
    void fidFeatureNetMatchesTheCpuAndLoadsOntoTheDevice(@TempDir Path dir) throws IOException {
        ImageData a = CudaVaeTest.images(7, 3);
        try (Scope s = Scope.shared()) {
            Classifier c = new Classifier(s, 10, 4);
            Path f = dir.resolve("classifier.safetensors");
            c.save(f, Map.of());
            Classifier g = Classifier.load(f, s, Device.CUDA);
            double[][][] fc = c.featuresAndProbs(a), fg = g.featuresAndProbs(a);
            double worst = 0;
            for (int k = 0; k < 2; k++)
                for (int i = 0; i < a.n; i++)
                    for (int j = 0; j < fc[k][i].length; j++) {
                        double e = Math.abs(fc[k][i][j] - fg[k][i][j]);
                        worst = Math.max(worst, e);
                        assertTrue(e <= 1e-4, "feature net " + (k == 0 ? "features" : "probabilities") + " [" + i + "][" + j + "]: CPU "
                                + fc[k][i][j] + ", device " + fg[k][i][j]);
                    }
            double fid = Fid.distance(Fid.stats(fc[0]), Fid.stats(fg[0]));
            System.out.printf("FID feature net: largest |device - CPU| %.3g; FID(CPU features, device features) %.3g%n", worst, fid);
            assertTrue(Math.abs(fid) < 1e-6, "FID of the same set's features on the two devices: " + fid);
        }
    }

    @Test
    void assignCopiesACheckpointTensorOntoTheDevice() {
        try (Scope s = Scope.shared()) {
            Tensor src = Tensor.of(s, new float[] {1, -2, 3.5f, 4, 5, 6}, 2, 3);
            Tensor dst = Tensor.zeros(s, Device.CUDA, 2, 3);
            Init.assign(src, dst);
            assertArrayEquals(src.toArray(), dst.toArray());
            assertThrows(IllegalArgumentException.class, () -> Init.assign(src, Tensor.zeros(s, Device.CUDA, 5)));
        }
    }
}
