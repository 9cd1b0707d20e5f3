package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.pixelcnn.DevicePixelCnnSampler;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.models.pixelcnn.PixelCnnSampler;
import dev.latent.models.pixelcnn.PixelCnnTrainer;
import dev.latent.nn.Init;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * PixelCNN sampling and evaluation on the device (issue 18) against the CPU, on a small model whose weights are
 * perturbed away from the initialisation (bigger, with non-zero biases) so the logits are far from uniform:
 * <ul>
 *   <li>the device sampler's logits, teacher-forced on given images, against the CPU sampler's
 *   ({@link PixelCnnSampler#logits}) and against the device's whole-image forward ({@link GatedPixelCnn#logits}):
 *   within 1e-4 (1 + |logit|) (the CPU sampler's own bound against the autograd forward; float rounding in other
 *   summation orders);</li>
 *   <li>samples: the same bytes on two device runs, other bytes for another seed, the first N pixels of a partial run
 *   equal to the full run's; against the CPU's cached sampler at the same seed (the same uniforms and draw rule) every
 *   image equal, or, where one differs, its first differing pixel's uniform within 1e-4 of a CDF boundary of the CPU's
 *   logits (the only way float rounding of the logits can change a draw);</li>
 *   <li>no host synchronisation per pixel: a sample of 30 pixels makes as many as one of 6;</li>
 *   <li>bits/dim of a checkpoint loaded onto the device ({@link PixelCnnTrainer#load(Path, Scope, Device)}) within
 *   relative 1e-5 of the CPU's.</li>
 * </ul>
 */
class CudaPixelCnnTest extends AtRefIsaOnDevice {
    static final GatedPixelCnn.Arch ARCH = new GatedPixelCnn.Arch(4, 3, 5, 3, 8);
    static final int H = 5, W = 6;

    /** Every parameter of {@code m} (on the CPU) times 3 plus uniform noise in [-0.2, 0.2): far from uniform logits. */
    static void perturb(GatedPixelCnn m, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (Var p : m.namedParameters().values()) {
            Tensor t = p.value();
            for (long i = 0; i < t.numel(); i++)
                t.segment().setAtIndex(JAVA_FLOAT, i, 3f * t.segment().getAtIndex(JAVA_FLOAT, i) + (float) (0.4 * r.nextDouble() - 0.2));
        }
    }

    /** A copy of {@code cpu} on the device. */
    static GatedPixelCnn onDevice(Scope s, GatedPixelCnn cpu) {
        GatedPixelCnn g = new GatedPixelCnn(s, cpu.arch, 99);
        g.to(s, Device.CUDA);
        Map<String, Var> src = cpu.namedParameters();
        for (var e : g.namedParameters().entrySet()) Init.assign(src.get(e.getKey()).value(), e.getValue().value());
        return g;
    }

    /** A perturbed model on the CPU and its copy on the device. */
    record Models(GatedPixelCnn cpu, GatedPixelCnn gpu) {}

    /** A model of ARCH (weights seed {@code seed}) {@link #perturb}ed with {@code noiseSeed}, and its device copy, in s. */
    static Models perturbed(Scope s, long seed, long noiseSeed) {
        GatedPixelCnn cpu = new GatedPixelCnn(s, ARCH, seed);
        perturb(cpu, noiseSeed);
        return new Models(cpu, onDevice(s, cpu));
    }

    static byte[] randomImages(int n, long seed) {
        byte[] b = new byte[n * H * W];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < b.length; i++) b[i] = (byte) r.nextInt(256);
        return b;
    }

    @Test
    void teacherForcedLogitsMatchTheCpuSamplerAndTheWholeImageForward() {
        try (Scope s = Scope.shared()) {
            Models m = perturbed(s, 5, 6);
            int n = 3;
            byte[] img = randomImages(n, 17);
            float[] dev = new DevicePixelCnnSampler(m.gpu()).logits(img, n, H, W);
            float[] whole;
            try (Graph g = Graph.inference()) {
                float[] f = new float[n * H * W];
                for (int i = 0; i < f.length; i++) f[i] = (img[i] & 0xff) / 255f;
                whole = m.gpu().logits(Var.constant(Tensor.of(g.scope(), Device.CUDA, f, n, 1, H, W))).value().toArray();
            }
            PixelCnnSampler ref = new PixelCnnSampler(m.cpu());
            double worst = 0, worstWhole = 0, spread = 0;
            for (int k = 0; k < n; k++) {
                byte[] one = java.util.Arrays.copyOfRange(img, k * H * W, (k + 1) * H * W);
                float[] c = ref.logits(one, H, W);
                for (int i = 0; i < c.length; i++) {
                    int at = k * c.length + i;
                    double tol = 1e-4 * (1 + Math.abs(c[i]));
                    assertTrue(Math.abs(dev[at] - c[i]) <= tol, "image " + k + " pixel " + i / 256 + " level " + i % 256 + ": device " + dev[at] + ", CPU " + c[i]);
                    assertTrue(Math.abs(dev[at] - whole[at]) <= tol, "image " + k + " pixel " + i / 256 + " level " + i % 256 + ": sampler " + dev[at]
                            + ", whole-image forward " + whole[at]);
                    worst = Math.max(worst, Math.abs(dev[at] - c[i]) / tol);
                    worstWhole = Math.max(worstWhole, Math.abs(dev[at] - whole[at]) / tol);
                    spread = Math.max(spread, Math.abs(c[i] - c[i - i % 256]));
                }
            }
            System.out.printf("PixelCNN device logits: worst %.3g of the tolerance against the CPU sampler, %.3g against the whole-image forward; "
                    + "largest logit spread %.3g%n", worst, worstWhole, spread);
            assertTrue(spread > 1, "the perturbed model's logits are nearly uniform (spread " + spread + "): the comparison means little");
        }
    }

    /** The smallest distance, relative to the sum, between u sum and a cumulative sum of exp(logit - max). */
    static double boundaryMargin(float[] logits, int from, double u) {
        float max = Float.NEGATIVE_INFINITY;
        for (int k = 0; k < 256; k++) max = Math.max(max, logits[from + k]);
        double sum = 0;
        for (int k = 0; k < 256; k++) sum += Math.exp(logits[from + k] - max);
        double acc = 0, best = Double.MAX_VALUE;
        for (int k = 0; k < 256; k++) {
            acc += Math.exp(logits[from + k] - max);
            best = Math.min(best, Math.abs(acc - u * sum) / sum);
        }
        return best;
    }

    @Test
    void samplesRepeatAndDrawTheCpuSamplersBytes() {
        try (Scope s = Scope.shared()) {
            Models m = perturbed(s, 8, 9);
            int n = 6;
            long seed = 11;
            DevicePixelCnnSampler ds = new DevicePixelCnnSampler(m.gpu());
            byte[] a = ds.sample(n, H, W, seed), b = ds.sample(n, H, W, seed), other = ds.sample(n, H, W, seed + 1);
            assertArrayEquals(a, b, "the same seed twice on the device");
            assertFalse(java.util.Arrays.equals(a, other), "another seed, the same bytes");
            byte[] part = ds.sample(n, H, W, seed, 8);
            for (int k = 0; k < n; k++)
                for (int p = 0; p < H * W; p++)
                    assertEquals(p < 8 ? a[k * H * W + p] : 0, part[k * H * W + p], "image " + k + " pixel " + p + " of an 8-pixel run");
            byte[] c = new PixelCnnSampler(m.cpu()).sample(n, H, W, seed, PixelCnnSampler.Mode.CACHED);
            int equal = 0;
            for (int k = 0; k < n; k++) {
                int first = -1;
                for (int p = 0; p < H * W && first < 0; p++) if (a[k * H * W + p] != c[k * H * W + p]) first = p;
                if (first < 0) { equal++; continue; }
                SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + k);   // PixelCnnSampler.rng(seed, k)
                double u = 0;
                for (int p = 0; p <= first; p++) u = r.nextDouble();
                float[] lg = new PixelCnnSampler(m.cpu()).logits(java.util.Arrays.copyOfRange(c, k * H * W, (k + 1) * H * W), H, W);
                double margin = boundaryMargin(lg, first * 256, u);
                System.out.printf("image %d differs from pixel %d: u %.6f within %.3g of a CDF boundary%n", k, first, u, margin);
                assertTrue(margin <= 1e-4, "image " + k + " pixel " + first + ": device " + (a[k * H * W + first] & 0xff) + ", CPU "
                        + (c[k * H * W + first] & 0xff) + ", u " + u + " is " + margin + " from every CDF boundary: not a rounding difference");
            }
            System.out.printf("PixelCNN device samples: %d of %d images equal to the CPU's cached sampler's%n", equal, n);
            boolean varied = false;
            for (byte x : a) varied |= x != a[0];
            assertTrue(varied, "constant samples");
        }
    }

    @Test
    void noHostSynchronisationPerPixel() {
        try (Scope s = Scope.shared()) {
            GatedPixelCnn cpu = new GatedPixelCnn(s, ARCH, 3);
            GatedPixelCnn gpu = onDevice(s, cpu);
            DevicePixelCnnSampler ds = new DevicePixelCnnSampler(gpu);
            ds.sample(2, H, W, 1);   // warm: the allocator's cache, the libraries' plans
            long s0 = cu.hostSyncs();
            long[] e0 = CudaTesting.emuCountersOrZeros();
            ds.sample(2, H, W, 1, 6);
            long six = cu.hostSyncs() - s0;
            long[] e1 = CudaTesting.emuCountersOrZeros();
            s0 = cu.hostSyncs();
            ds.sample(2, H, W, 1);
            long thirty = cu.hostSyncs() - s0;
            long[] e2 = CudaTesting.emuCountersOrZeros();
            System.out.printf("PixelCNN device sampling: %d host synchronisations for 6 pixels, %d for 30%n", six, thirty);
            assertEquals(six, thirty, "host synchronisations grow with the pixels");
            assertTrue(thirty <= 3, thirty + " host synchronisations for one sample call (the uniforms up, the bytes down)");
            if (CudaTesting.emulated()) {   // the driver's own count agrees, and the launches per pixel (for docs/cuda.md)
                long emu = 0;
                for (int k : new int[] {CudaTesting.EMU_DTOH, CudaTesting.EMU_HTOD, CudaTesting.EMU_CTX_SYNC, CudaTesting.EMU_STREAM_SYNC,
                        CudaTesting.EMU_FREE, CudaTesting.EMU_EVENT_SYNC}) emu += e2[k] - e1[k];
                assertEquals(thirty, emu, "the emulated driver's count of host synchronisations");
                java.util.function.IntToDoubleFunction per = k -> ((e2[k] - e1[k]) - (e1[k] - e0[k])) / 24.0;
                System.out.printf("PixelCNN device sampling, %d blocks: %.1f kernel launches and %.1f cuDNN convolutions per pixel (the vertical rows "
                        + "included)%n", ARCH.layers(), per.applyAsDouble(CudaTesting.EMU_LAUNCH), per.applyAsDouble(CudaTesting.EMU_CONV_FWD));
            }
        }
    }

    @Test
    void bitsPerDimOfACheckpointLoadedOntoTheDevice(@TempDir Path dir) throws IOException {
        ImageData test = CudaVaeTest.images(7, 31);
        var cfg = new PixelCnnTrainer.Config("unused", dir, ARCH, 1, 4, 1e-3f, 2, 0, 0, 0, 1234, 20, true);
        try (Scope s = Scope.shared()) {
            PixelCnnTrainer t = new PixelCnnTrainer(cfg, s);
            perturb(t.model, 4);
            Path f = dir.resolve("ck.safetensors");
            t.save(f);
            PixelCnnTrainer c = PixelCnnTrainer.load(f, s), g = PixelCnnTrainer.load(f, s, Device.CUDA);
            assertEquals(Device.CUDA, g.model.head2.weight.value().device());
            double bc = c.bitsPerDim(test, 7), bg = g.bitsPerDim(test, 7);
            double rel = Math.abs(bg - bc) / bc;
            System.out.printf("PixelCNN bits/dim: CPU %.9g, device %.9g (relative %.2g; tolerance 1e-5)%n", bc, bg, rel);
            assertTrue(Double.isFinite(bc) && rel <= 1e-5, "bits/dim: CPU " + bc + ", device " + bg);
        }
    }
}
