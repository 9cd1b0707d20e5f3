package dev.latent.cuda;

import dev.latent.models.pixelcnn.DevicePixelCnnSampler;
import dev.latent.models.pixelcnn.DevicePixelCnnSampler.Horizontal;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The PixelCNN device sampler's horizontal stacks at one position per pixel ({@link Horizontal#POSITION}: the taps
 * gathered from cached rows, two GEMMs of n rows per block) against the former whole-row path ({@link Horizontal#ROW}:
 * the row's 1 x k convolutions per pixel, then the pixel's column), on perturbed models (far from uniform logits):
 * <ul>
 *   <li>teacher-forced logits at every pixel of every image within 2e-6 (1 + |logit|) of each other (float rounding:
 *   a GEMM over the gathered taps against cuDNN's convolution, other summation orders), for two architectures (k 5 / 3
 *   and 7 / 5: taps past the left edge on every row's first columns) and widths 6, 1 (every tap but the centre is
 *   padding) and 9; an off-by-one tap, a missing residual or a stale link fails it by orders of magnitude;</li>
 *   <li>samples: the same bytes from both paths at a seed chosen with every uniform more than 4 times the paths' largest
 *   logit difference from a CDF boundary (checked: the comparison is exact, not lucky), with and without the pixel
 *   graph;</li>
 *   <li>the calls per pixel on the emulated driver, printed for docs/cuda.md: whole-row and one-position, uncaptured.</li>
 * </ul>
 */
class CudaPixelCnnPositionTest extends AtRefIsaOnDevice {

    static byte[] randomImages(int count, long seed) {
        byte[] b = new byte[count];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < b.length; i++) b[i] = (byte) r.nextInt(256);
        return b;
    }

    @Test
    void positionLogitsAreTheWholeRowPathsAtEveryPixel() {
        GatedPixelCnn.Arch[] archs = {CudaPixelCnnTest.ARCH, new GatedPixelCnn.Arch(3, 3, 7, 5, 6)};
        int[][] sizes = {{5, 6}, {4, 1}, {3, 9}};
        try (Scope s = Scope.shared()) {
            for (GatedPixelCnn.Arch arch : archs) {
                GatedPixelCnn cpu = new GatedPixelCnn(s, arch, 21);
                CudaPixelCnnTest.perturb(cpu, 22);
                GatedPixelCnn gpu = CudaPixelCnnTest.onDevice(s, cpu);
                DevicePixelCnnSampler at = new DevicePixelCnnSampler(gpu, false, Horizontal.POSITION);
                DevicePixelCnnSampler row = new DevicePixelCnnSampler(gpu, false, Horizontal.ROW);
                for (int[] hw : sizes) {
                    int n = 3, h = hw[0], w = hw[1];
                    byte[] img = randomImages(n * h * w, 31 + w);
                    float[] a = at.logits(img, n, h, w), b = row.logits(img, n, h, w);
                    assertEquals(b.length, a.length);
                    double worst = 0, spread = 0;
                    for (int i = 0; i < a.length; i++) {
                        double tol = 2e-6 * (1 + Math.abs(b[i]));
                        int px = i / 256;
                        assertTrue(Math.abs(a[i] - b[i]) <= tol, arch + " " + h + " x " + w + ": image " + px / (h * w) + " pixel " + px % (h * w)
                                + " level " + i % 256 + ": one position " + a[i] + ", whole row " + b[i]);
                        worst = Math.max(worst, Math.abs(a[i] - b[i]) / tol);
                        spread = Math.max(spread, Math.abs(b[i] - b[i - i % 256]));
                    }
                    System.out.printf("PixelCNN position vs whole-row logits, %s, %d x %d: worst %.3g of the tolerance, logit spread %.3g%n",
                            arch, h, w, worst, spread);
                    assertTrue(spread > 1, "nearly uniform logits (spread " + spread + "): the comparison means little");
                }
            }
        }
    }

    @Test
    void positionSamplesAreTheWholeRowPathsBytes() {
        int h = CudaPixelCnnTest.H, w = CudaPixelCnnTest.W, n = 6;
        long seed = 19;   // with this model, a seed whose uniforms all fall clear of the CDF boundaries (checked below)
        try (Scope s = Scope.shared()) {
            GatedPixelCnn cpu = new GatedPixelCnn(s, CudaPixelCnnTest.ARCH, 5);
            CudaPixelCnnTest.perturb(cpu, 6);
            GatedPixelCnn gpu = CudaPixelCnnTest.onDevice(s, cpu);
            DevicePixelCnnSampler row = new DevicePixelCnnSampler(gpu, false, Horizontal.ROW);
            byte[] bytes = row.sample(n, h, w, seed);
            // the comparison is exact only where no draw sits within the paths' rounding of a CDF boundary: the least
            // distance of a uniform to a boundary (relative to the sum; the whole-row path's logits at its own samples)
            // must exceed 4 times the largest logit difference d of the two paths there (a boundary moves by <= ~2d)
            float[] lr = row.logits(bytes, n, h, w), lp = new DevicePixelCnnSampler(gpu, false, Horizontal.POSITION).logits(bytes, n, h, w);
            double least = 1, d = 0;
            for (int i = 0; i < lr.length; i++) d = Math.max(d, Math.abs(lr[i] - lp[i]));
            for (int k = 0; k < n; k++) {
                SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + k);   // PixelCnnSampler.rng(seed, k)
                for (int p = 0; p < h * w; p++)
                    least = Math.min(least, CudaPixelCnnTest.boundaryMargin(lr, (k * h * w + p) * 256, r.nextDouble()));
            }
            System.out.printf("PixelCNN position vs whole-row samples: the least margin of a uniform to a CDF boundary %.3g, the largest logit "
                    + "difference %.3g%n", least, d);
            assertTrue(least > 4 * d, "a uniform within " + least + " of a CDF boundary, logits differing by " + d
                    + ": pick another seed for a byte comparison");
            for (boolean graph : new boolean[] {false, true}) {
                byte[] at = new DevicePixelCnnSampler(gpu, graph, Horizontal.POSITION).sample(n, h, w, seed);
                assertArrayEquals(bytes, at, "one position (graph " + graph + ") against the whole row");
            }
            int distinct = (int) java.util.stream.IntStream.range(0, bytes.length).map(k -> bytes[k] & 0xff).distinct().count();
            assertTrue(distinct > 4, "only " + distinct + " distinct values in the samples");
        }
    }

    @Test
    void callsPerPixelOfBothPaths() {
        if (!CudaTesting.emulated()) return;   // the counters are the emulated driver's
        int h = CudaPixelCnnTest.H, w = CudaPixelCnnTest.W;
        try (Scope s = Scope.shared()) {
            GatedPixelCnn gpu = CudaPixelCnnGraphTest.model(s, 3);
            double[][] per = {CudaPixelCnnGraphTest.callsPerPixel(new DevicePixelCnnSampler(gpu, false, Horizontal.ROW)),
                    CudaPixelCnnGraphTest.callsPerPixel(new DevicePixelCnnSampler(gpu, false, Horizontal.POSITION))};
            System.out.printf("PixelCNN device sampling, %d blocks, %d x %d, uncaptured, per pixel (kernel launches / cuDNN convolutions / GEMM "
                    + "calls, the rows' vertical work amortised): whole row %.2f / %.2f / %.2f; one position %.2f / %.2f / %.2f%n",
                    CudaPixelCnnTest.ARCH.layers(), h, w, per[0][0], per[0][1], per[0][2], per[1][0], per[1][1], per[1][2]);
            // the one-position path makes no convolution per pixel: what remains is the rows' vertical stacks (the k x k
            // convolution and the 1x1 link, per block and row)
            assertEquals(2 * CudaPixelCnnTest.ARCH.layers() / (double) w, per[1][1], 1e-9, "cuDNN convolutions per pixel on the one-position path");
            assertTrue(per[0][1] > CudaPixelCnnTest.ARCH.layers(), "the whole-row path's convolutions per pixel");
        }
    }
}
