package dev.latent.cuda;

import dev.latent.models.pixelcnn.DevicePixelCnnSampler;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaPixelCnnTest.ARCH;
import static dev.latent.cuda.CudaPixelCnnTest.H;
import static dev.latent.cuda.CudaPixelCnnTest.W;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The PixelCNN device sampler's pixel step as a CUDA graph (issue 18): one graph per sample call, captured on the second
 * pixel and replayed for every later one, the pixel's position read from device memory.
 * <ul>
 *   <li>the bytes are the uncaptured sampler's, bit for bit, for whole images, partial runs (1, 2, 8, W + 1 pixels), and
 *   batches of 1 and 6 images; a graph that froze the position (every replay drawing the captured pixel) would leave
 *   later pixels 0 and fail;</li>
 *   <li>every pixel after the warm-up one is one graph launch ({@link DevicePixelCnnSampler#lastGraphLaunches()});</li>
 *   <li>on the emulated driver, three more pixels in the same rows cost three cuGraphLaunch calls and not one
 *   cuLaunchKernel, cuDNN convolution or GEMM call; and the launches per pixel with and without the graph (printed
 *   for docs/cuda.md).</li>
 * </ul>
 */
class CudaPixelCnnGraphTest extends AtRefIsaOnDevice {

    static GatedPixelCnn model(Scope s, long seed) {
        GatedPixelCnn cpu = new GatedPixelCnn(s, ARCH, seed);
        CudaPixelCnnTest.perturb(cpu, seed + 1);
        return CudaPixelCnnTest.onDevice(s, cpu);
    }

    /**
     * On the emulated driver: kernel launches, cuDNN convolutions, GEMM calls (cuBLAS and cuBLASLt) and graph launches per
     * pixel of a whole 2-image H x W sample by {@code ds} (after a warm-up call; the rows' vertical work amortised).
     */
    static double[] callsPerPixel(DevicePixelCnnSampler ds) {
        int[] ks = {CudaTesting.EMU_LAUNCH, CudaTesting.EMU_CONV_FWD, CudaTesting.EMU_GEMM_EX, CudaTesting.EMU_GRAPH_LAUNCH};
        double[] per = new double[4];
        ds.sample(2, H, W, 1);
        long[] a = CudaTesting.emuCountersOrZeros();
        ds.sample(2, H, W, 1);
        long[] b = CudaTesting.emuCountersOrZeros();
        for (int q = 0; q < 4; q++) {
            long d = b[ks[q]] - a[ks[q]];
            if (q == 2) d += b[CudaTesting.EMU_LT_MATMUL] - a[CudaTesting.EMU_LT_MATMUL];   // GEMMs: cuBLAS and cuBLASLt
            per[q] = d / (double) (H * W);
        }
        return per;
    }

    @Test
    void graphSamplesAreTheUncapturedSamplersBits() {
        try (Scope s = Scope.shared()) {
            GatedPixelCnn gpu = model(s, 8);
            DevicePixelCnnSampler plain = new DevicePixelCnnSampler(gpu, false), graph = new DevicePixelCnnSampler(gpu, true);
            for (int n : new int[] {6, 1}) {
                for (int pixels : new int[] {H * W, 1, 2, 8, W + 1}) {
                    byte[] a = plain.sample(n, H, W, 11, pixels), b = graph.sample(n, H, W, 11, pixels);
                    assertEquals(0, plain.lastGraphLaunches());
                    assertEquals(Math.max(0, pixels - 1), graph.lastGraphLaunches(), n + " images, " + pixels + " pixels: graph launches");
                    for (int k = 0; k < a.length; k++)
                        assertEquals(a[k], b[k], n + " images, " + pixels + " pixels: image " + k / (H * W) + " pixel " + k % (H * W)
                                + " uncaptured " + (a[k] & 0xff) + ", graph " + (b[k] & 0xff));
                    if (pixels == H * W) {   // the comparison means something: the later pixels vary
                        int distinct = (int) java.util.stream.IntStream.range(0, a.length).map(k -> a[k] & 0xff).distinct().count();
                        assertTrue(distinct > 4, "only " + distinct + " distinct values in the samples");
                    }
                }
            }
            assertFalse(java.util.Arrays.equals(graph.sample(6, H, W, 11), graph.sample(6, H, W, 12)), "another seed, the same bytes");
        }
    }

    @Test
    void aReplayIsOneGraphLaunchAndNoKernelLaunch() {
        try (Scope s = Scope.shared()) {
            GatedPixelCnn gpu = model(s, 3);
            DevicePixelCnnSampler graph = new DevicePixelCnnSampler(gpu, true), plain = new DevicePixelCnnSampler(gpu, false);
            graph.sample(2, H, W, 1);   // warm: the allocator's cache, the libraries' plans
            long s0 = cu.hostSyncs();
            long[] e0 = CudaTesting.emuCountersOrZeros();
            graph.sample(2, H, W, 1, W + 2);
            long[] e1 = CudaTesting.emuCountersOrZeros();
            graph.sample(2, H, W, 1, W + 5);   // the same rows, three more pixels
            long[] e2 = CudaTesting.emuCountersOrZeros();
            long syncs = cu.hostSyncs() - s0;
            assertTrue(syncs <= 6, syncs + " host synchronisations for two sample calls");
            if (!CudaTesting.emulated()) return;
            java.util.function.IntUnaryOperator more = k -> (int) ((e2[k] - e1[k]) - (e1[k] - e0[k]));
            assertEquals(3, more.applyAsInt(CudaTesting.EMU_GRAPH_LAUNCH), "cuGraphLaunch calls for three more pixels");
            for (int k : new int[] {CudaTesting.EMU_LAUNCH, CudaTesting.EMU_CONV_FWD, CudaTesting.EMU_GEMM_EX, CudaTesting.EMU_LT_MATMUL,
                    CudaTesting.EMU_GEMM_STRIDED_BATCHED_EX, CudaTesting.EMU_DTOH, CudaTesting.EMU_HTOD, CudaTesting.EMU_HTOD_ASYNC})
                assertEquals(0, more.applyAsInt(k), "counter " + k + " grew with the replayed pixels");

            // launches per pixel, whole images, with and without the graph (the rows' vertical work amortised)
            double[][] per = {callsPerPixel(plain), callsPerPixel(graph)};
            System.out.printf("PixelCNN device sampling, %d blocks, %d x %d, per pixel (kernel launches / cuDNN convolutions / GEMM calls / graph "
                    + "launches): uncaptured %.2f / %.2f / %.2f / %.2f; with the pixel graph %.2f / %.2f / %.2f / %.2f (the rows' vertical work, "
                    + "the warm-up pixel and the capture amortised)%n", ARCH.layers(), H, W, per[0][0], per[0][1], per[0][2], per[0][3],
                    per[1][0], per[1][1], per[1][2], per[1][3]);
            double[] perPixel = {per[0][0] + per[0][1] + per[0][2], per[0][3], per[1][0] + per[1][1] + per[1][2], per[1][3]};
            assertEquals(0, perPixel[1]);
            assertTrue(perPixel[2] < perPixel[0] / 2, "the graph did not halve the launches per pixel");
        }
    }
}
