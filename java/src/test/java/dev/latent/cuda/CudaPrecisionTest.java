package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.gan.GanTrainer;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.ops.Conv;
import dev.latent.ops.Gemm;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.fill;
import static org.junit.jupiter.api.Assertions.*;

/**
 * --precision tf32 | bf16 on CUDA (issue 18): GEMM and convolution against a double reference, on cuBLAS / cuDNN
 * (the emulated driver's stand-ins, or NVIDIA's libraries on a GPU) and on our kernels; the exact rounding each path
 * applies; the CPU's refusal of TF32; and a short training run per family whose loss stays near fp32's.
 *
 * Bounds, per element, with mag = sum over the products of |alpha a b| (+ |beta c| where beta != 0): each operand is
 * rounded to nearest in a format with unit roundoff u (TF32: 11 significant bits, u = 2^-11; bf16: 8, u = 2^-8), so
 * a product of two rounded operands is within (1 + u)^2 - 1 = 2u + u^2 of the exact product (and exact in fp32: 11 +
 * 11 and 8 + 8 significant bits fit in 24). The fp32 sum of k such products adds at most (k + 2) 2^-24 mag in any
 * order. Hence |C - exact| <= (2u + u^2 + (k + 2) 2^-24) mag. A real cuBLAS / cuDNN may truncate to TF32 instead of
 * rounding (undocumented): then u = 2^-10, which is what the bound uses when NVIDIA's library serves. Convolutions
 * use the same bound with k = C R S (forward), K R S (backward data), N OH OW (backward weight).
 */
class CudaPrecisionTest extends AtRefIsaOnDevice {
    static Cuda cu;

    @BeforeAll
    static void setUp() { cu = device(); }

    @AfterEach
    void restore() { CudaVendor.force(null); }

    static final double U24 = 1.0 / (1 << 24);

    /** The per-operand unit roundoff the bound assumes on this path (see the class comment). */
    static double unit(Precision p, boolean vendor) {
        boolean realVendor = vendor && !CudaTesting.emulated();
        return switch (p) {
            case FP32 -> 0;
            case TF32 -> realVendor ? 0x1p-10 : 0x1p-11;
            case BF16 -> 0x1p-8;
        };
    }

    /** The routes a test runs: cuBLAS / cuDNN where loaded (true), and our kernels (false). */
    static List<Boolean> routes() {
        List<Boolean> r = new ArrayList<>();
        CudaVendor.force(true);
        if (CudaVendor.blas(cu) != null) r.add(true);
        CudaVendor.force(null);
        r.add(false);
        return r;
    }

    // ---- GEMM: the exact rounding, so a wrong compute type or operand type fails ----------------------------------------

    /**
     * A (1 x 2) [1 + t, 1 + 3t/2] times B (2 x 1) of ones, with t the half-ulp of the format at 1 (TF32 2^-11, bf16
     * 2^-8): the first operand is a tie, the second above half. Round to nearest, ties away (TF32: cvt.rna, our kernels
     * and the stand-in) gives 2 + 4t; ties to even (bf16, and a TF32 rounding cuBLAS might use) 2 + 2t; truncation 2;
     * fp32 (no rounding: a compute type of CUBLAS_COMPUTE_32F passed by mistake) 2 + 2.5t; bf16 bits read as floats
     * (CUDA_R_32F passed for bf16 operands) something else again. The emulated paths must give exactly the modelled value.
     */
    @Test
    void roundingIsTheFormatsAndTheComputeTypeIsHonoured() {
        for (boolean vendor : routes())
            for (Precision p : new Precision[] {Precision.TF32, Precision.BF16, Precision.FP32}) {
                double t = p == Precision.BF16 ? 0x1p-8 : 0x1p-11;
                try (Scope s = Scope.confined()) {
                    Tensor a = Tensor.of(s, Device.CUDA, new float[] {(float) (1 + t), (float) (1 + 1.5 * t)}, 1, 2);
                    Tensor b = Tensor.of(s, Device.CUDA, new float[] {1, 1}, 2, 1);
                    Tensor c = Tensor.zeros(s, Device.CUDA, 1, 1);
                    CudaVendor.force(vendor);
                    Gemm.matmul(a, b, c, 1f, 0f, p);
                    double got = c.toArray()[0];
                    double want = switch (p) {
                        case FP32 -> 2 + 2.5 * t;
                        case TF32 -> 2 + 4 * t;   /* ties away from zero */
                        case BF16 -> 2 + 2 * t;   /* ties to even */
                    };
                    String what = p.id() + (vendor ? " on cuBLAS" : " on our kernels");
                    System.out.printf("rounding %s: %.10f (want %.10f)%n", what, got, want);
                    if (vendor && !CudaTesting.emulated() && p == Precision.TF32)
                        assertTrue(got == 2 + 4 * t || got == 2 + 2 * t || got == 2, what + ": " + got + " is no TF32 rounding of the operands");
                    else assertEquals(want, got, 0.0, what);
                }
            }
    }

    // ---- GEMM against double ----------------------------------------------------------------------------------------

    @Test
    void gemmWithinTheDerivedBound() {
        int[][] shapes = {{1, 1, 1}, {7, 16, 37}, {37, 65, 64}, {65, 33, 130}, {3, 5, 0}};
        for (boolean vendor : routes())
            for (Precision p : new Precision[] {Precision.TF32, Precision.BF16})
                for (int[] sh : shapes)
                    for (int tr = 0; tr < 4; tr++) {
                        int m = sh[0], n = sh[1], k = sh[2], batch = tr == 3 ? 3 : 1;
                        float alpha = tr == 2 ? -0.5f : 1f, beta = tr == 1 ? 0.75f : 0f;
                        float[] av = fill(batch * m * k, 11 + tr), bv = fill(batch * n * k, 13 + tr), cv = fill(batch * m * n, 17);
                        try (Scope s = Scope.confined()) {
                            /* tr 1: A stored transposed (a column-major view); tr 2: B transposed; tr 3: batched */
                            Tensor a = batch > 1 ? Tensor.of(s, av, batch, m, k) : (tr == 1 ? Tensor.of(s, av, k, m).transpose(0, 1) : Tensor.of(s, av, m, k));
                            Tensor b = batch > 1 ? Tensor.of(s, bv, batch, k, n) : (tr == 2 ? Tensor.of(s, bv, n, k).transpose(0, 1) : Tensor.of(s, bv, k, n));
                            Tensor c0 = batch > 1 ? Tensor.of(s, cv, batch, m, n) : Tensor.of(s, cv, m, n);
                            Tensor ad = a.to(s, Device.CUDA), bd = b.to(s, Device.CUDA), cd = c0.to(s, Device.CUDA);
                            CudaVendor.force(vendor);
                            Gemm.matmul(ad, bd, cd, alpha, beta, p);
                            float[] got = cd.toArray(), ac = a.contiguous().toArray(), bc = b.contiguous().toArray();
                            double u = unit(p, vendor), worst = 0;
                            for (int q = 0; q < batch; q++)
                                for (int i = 0; i < m; i++)
                                    for (int j = 0; j < n; j++) {
                                        double sum = 0, mag = 0;
                                        for (int l = 0; l < k; l++) {
                                            double x = ac[q * m * k + i * k + l], y = bc[q * k * n + l * n + j];
                                            sum += alpha * x * y;
                                            mag += Math.abs(alpha * x * y);
                                        }
                                        int at = q * m * n + i * n + j;
                                        double want = sum + (beta == 0 ? 0 : beta * (double) cv[at]);
                                        double cm = beta == 0 ? 0 : Math.abs(beta * (double) cv[at]);
                                        double tol = (2 * u + u * u + (k + 2) * U24) * mag + 2 * U24 * (cm + Math.abs(want)) + 1e-30;
                                        double err = Math.abs(got[at] - want);
                                        worst = Math.max(worst, err / tol);
                                        assertTrue(err <= tol, p.id() + (vendor ? " cuBLAS" : " ours") + " " + m + "x" + n + "x" + k + " tr " + tr
                                                + " [" + q + "," + i + "," + j + "]: got " + got[at] + " want " + want + " tol " + tol);
                                    }
                            if (k >= 37) System.out.printf("gemm %s %s %dx%dx%d tr %d: largest error / bound %.3f%n", p.id(), vendor ? "cuBLAS" : "ours", m, n, k, tr, worst);
                        }
                    }
    }

    // ---- convolution against double --------------------------------------------------------------------------------

    /** The three passes in double over every term: y = conv(x, w); dx = conv^T(dy, w); dw = corr(x, dy); mags alike. */
    static void convReference(Conv.Geometry g, float[] x, float[] w, float[] dy, double[] y, double[] ym, double[] dx, double[] dxm,
                              double[] dw, double[] dwm) {
        long oh = g.oh(), ow = g.ow();
        for (int n = 0; n < g.n(); n++)
            for (int k = 0; k < g.k(); k++)
                for (int p = 0; p < oh; p++)
                    for (int q = 0; q < ow; q++)
                        for (int c = 0; c < g.c(); c++)
                            for (int r = 0; r < g.r(); r++)
                                for (int t = 0; t < g.s(); t++) {
                                    long ih = p * g.strideH() - g.padH() + r, iw = q * g.strideW() - g.padW() + t;
                                    if (ih < 0 || ih >= g.h() || iw < 0 || iw >= g.w()) continue;
                                    int yi = (int) (((n * g.k() + k) * oh + p) * ow + q), xi = (int) (((n * g.c() + c) * g.h() + ih) * g.w() + iw);
                                    int wi = (int) (((k * g.c() + c) * g.r() + r) * g.s() + t);
                                    y[yi] += (double) x[xi] * w[wi];
                                    ym[yi] += Math.abs((double) x[xi] * w[wi]);
                                    dx[xi] += (double) dy[yi] * w[wi];
                                    dxm[xi] += Math.abs((double) dy[yi] * w[wi]);
                                    dw[wi] += (double) x[xi] * dy[yi];
                                    dwm[wi] += Math.abs((double) x[xi] * dy[yi]);
                                }
    }

    @Test
    void convolutionWithinTheDerivedBound() {
        Conv.Geometry[] geos = {new Conv.Geometry(2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1), new Conv.Geometry(3, 4, 8, 8, 6, 4, 4, 2, 2, 1, 1),
                new Conv.Geometry(1, 5, 6, 5, 2, 1, 1, 1, 1, 0, 0)};
        for (boolean vendor : routes())
            for (Precision p : new Precision[] {Precision.TF32, Precision.BF16})
                for (Conv.Geometry g : geos) {
                    float[] x = fill((int) (g.n() * g.c() * g.h() * g.w()), 3), w = fill((int) (g.k() * g.c() * g.r() * g.s()), 4);
                    int ny = (int) (g.n() * g.k() * g.oh() * g.ow());
                    float[] dy = fill(ny, 5);
                    double[] y = new double[ny], ym = new double[ny], dx = new double[x.length], dxm = new double[x.length],
                            dw = new double[w.length], dwm = new double[w.length];
                    convReference(g, x, w, dy, y, ym, dx, dxm, dw, dwm);
                    try (Scope s = Scope.confined()) {
                        Tensor xd = Tensor.of(s, Device.CUDA, x, g.inShape()), wd = Tensor.of(s, Device.CUDA, w, g.weightShape());
                        Tensor dyd = Tensor.of(s, Device.CUDA, dy, g.outShape());
                        Tensor yd = Tensor.zeros(s, Device.CUDA, g.outShape()), dxd = Tensor.zeros(s, Device.CUDA, g.inShape());
                        Tensor dwd = Tensor.zeros(s, Device.CUDA, g.weightShape());
                        CudaVendor.force(vendor);
                        Conv.forward(g, xd, wd, null, yd, p);
                        Conv.backwardData(g, dyd, wd, null, dxd, p);
                        Conv.backwardWeight(g, xd, dyd, dwd, null, false, p);
                        double u = unit(p, vendor);
                        /* bf16 on cuDNN's bf16 descriptors: the result is rounded once more, to bf16 (PSEUDO_BFLOAT16_CONFIG) */
                        double out = p == Precision.BF16 && vendor && CudaVendor.dnn(cu) != null ? 0x1p-8 : 0;
                        String what = p.id() + (vendor ? " cuDNN-or-ours" : " ours") + " conv " + g;
                        double w1 = check(what + " forward", yd.toArray(), y, ym, u, g.c() * g.r() * g.s(), out);
                        double w2 = check(what + " backward data", dxd.toArray(), dx, dxm, u, g.k() * g.r() * g.s(), out);
                        double w3 = check(what + " backward weight", dwd.toArray(), dw, dwm, u, g.n() * g.oh() * g.ow(), out);
                        System.out.printf("%s: largest error / bound fwd %.3f, bwd data %.3f, bwd weight %.3f%n", what, w1, w2, w3);
                    }
                }
    }

    static double check(String what, float[] got, double[] want, double[] mag, double u, long terms) {
        return check(what, got, want, mag, u, terms, 0);
    }

    /** {@link #check} with one more rounding of the result, of unit roundoff {@code out} (a bf16 output: 2^-8). */
    static double check(String what, float[] got, double[] want, double[] mag, double u, long terms, double out) {
        double worst = 0;
        for (int i = 0; i < got.length; i++) {
            double sumTol = (2 * u + u * u + (terms + 2) * U24) * mag[i];
            double tol = sumTol + out * (Math.abs(want[i]) + sumTol) + 1e-30;
            double err = Math.abs(got[i] - want[i]);
            worst = Math.max(worst, err / tol);
            assertTrue(err <= tol, what + " [" + i + "]: got " + got[i] + " want " + want[i] + " tol " + tol);
        }
        return worst;
    }

    // ---- the CPU refuses TF32 ----------------------------------------------------------------------------------------

    @Test
    void tf32IsRefusedOnTheCpu() {
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.of(s, new float[] {1, 2}, 1, 2), b = Tensor.of(s, new float[] {1, 1}, 2, 1), c = Tensor.zeros(s, 1, 1);
            var e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(a, b, c, 1f, 0f, Precision.TF32));
            assertTrue(e.getMessage().contains("CUDA-only"), e.getMessage());
            try (Graph g = Graph.open().precision(Precision.TF32)) {
                var f = assertThrows(IllegalArgumentException.class, () -> F.matmul(Var.constant(a), Var.constant(b)));
                assertTrue(f.getMessage().contains("tf32") && f.getMessage().contains("CUDA-only"), f.getMessage());
            }
        }
        assertNotNull(dev.latent.train.TrainingPrecision.unavailable(Precision.TF32, Device.CPU));
        assertNull(dev.latent.train.TrainingPrecision.unavailable(Precision.TF32, Device.CUDA));
        assertNull(dev.latent.train.TrainingPrecision.unavailable(Precision.BF16, Device.CUDA));
        assertEquals(Precision.TF32, Precision.of("tf32"));
    }

    // ---- a short training run per family: the loss stays near fp32's ---------------------------------------------------

    /**
     * Loss tolerance after a few steps, relative to fp32's: 8 u of the operand format (TF32 2^-8 = 0.4%, bf16 2^-5 =
     * 3.1%). Every matmul output carries at most 2u + u^2 relative error per product; the losses here are smooth in
     * those outputs and a few Adam steps at these learning rates move the weights by less than the loss's own scale, so
     * a few u is the expected difference and 8 u leaves room without hiding a broken path (a wrong operand, an unrounded
     * or doubly rounded tensor, a bias gradient from rounded dy all show up far above it, or as NaN).
     */
    static double lossTol(Precision p) { return p == Precision.TF32 ? 0x1p-8 : p == Precision.BF16 ? 0x1p-5 : 0; }

    /** The losses of {@code steps} steps of {@link CudaGptFixture}'s GPT run at precision p. */
    static double[] gptLosses(Precision p, int steps) {
        return CudaGptFixture.train(CudaGptFixture.CFG, p, steps, CudaGptFixture.NONE).losses();
    }

    @Test
    void gptTrainsAtEveryPrecision() {
        int steps = 5;
        double[] fp32 = gptLosses(Precision.FP32, steps);
        assertTrue(fp32[steps - 1] < fp32[0], "fp32 loss falls: " + java.util.Arrays.toString(fp32));
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            double[] l = gptLosses(p, steps);
            System.out.printf("GPT on CUDA, %s: losses %s (fp32 %s)%n", p.id(), java.util.Arrays.toString(l), java.util.Arrays.toString(fp32));
            assertNotEquals(fp32[0], l[0], p.id() + " must round something: its first loss equals fp32's bit for bit");
            for (int i = 0; i < steps; i++)
                assertEquals(fp32[i], l[i], lossTol(p) * Math.abs(fp32[i]), p.id() + " GPT loss at step " + (i + 1));
            assertTrue(l[steps - 1] < l[0], p.id() + " loss falls");
        }
    }

    static ImageData images(int n, long seed) {
        byte[] px = new byte[n * 28 * 28];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < px.length; i++) px[i] = (byte) (r.nextInt(4) == 0 ? 0 : r.nextInt(256));
        return new ImageData(n, 28, 28, px, null, "random");
    }

    static double[] vaeLosses(Precision p, ImageData data, int steps) {
        try (Scope s = Scope.shared()) {
            var cfg = new VaeTrainer.Config("unused", Path.of("unused"), 4, 1.0, 1, 2, 1e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 3, 0, 1, 0,
                    1234, 0, 0, 1, true);
            VaeTrainer t = new VaeTrainer(cfg, s, Device.CUDA).precision(p);
            double[] out = new double[steps];
            for (int i = 0; i < steps; i++) out[i] = t.trainStep(data, new int[] {0, 1}, 0, 2);
            return out;
        }
    }

    @Test
    void vaeTrainsAtEveryPrecision() {
        ImageData data = images(2, 7);
        double[] fp32 = vaeLosses(Precision.FP32, data, 3);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            double[] l = vaeLosses(p, data, 3);
            System.out.printf("VAE on CUDA, %s: losses %s (fp32 %s)%n", p.id(), java.util.Arrays.toString(l), java.util.Arrays.toString(fp32));
            for (int i = 0; i < l.length; i++)
                assertEquals(fp32[i], l[i], lossTol(p) * Math.abs(fp32[i]), p.id() + " VAE loss at step " + (i + 1));
        }
    }

    static double[][] dcganSteps(Precision p, ImageData data) {
        GanTrainer.Config c = CudaGanTest.config(Path.of("unused"), GanTrainer.Loss.GAN);
        GanTrainer t = new GanTrainer(c, Device.CUDA).precision(p);
        int[] perm = {0, 1, 2, 3, 4, 5};
        return new double[][] {t.step(data, perm, 0, 1), t.step(data, perm, 3, 2)};
    }

    @Test
    void dcganTrainsAtEveryPrecision() {
        ImageData data = CudaGanTest.images(6, 4);
        double[][] fp32 = dcganSteps(Precision.FP32, data);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            double[][] l = dcganSteps(p, data);
            assertTrue(java.util.Arrays.deepEquals(l, dcganSteps(p, data)), p.id() + " DCGAN: two runs must give the same bits");
            for (int s = 0; s < l.length; s++) {
                System.out.printf("DCGAN on CUDA, %s, step %d: D loss %.6f G loss %.6f (fp32 %.6f %.6f)%n", p.id(), s + 1, l[s][0], l[s][1],
                        fp32[s][0], fp32[s][1]);
                for (int j = 0; j < 2; j++)
                    assertEquals(fp32[s][j], l[s][j], lossTol(p) * Math.abs(fp32[s][j]), p.id() + " DCGAN loss " + j + " at step " + (s + 1));
            }
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> new GanTrainer(CudaGanTest.config(Path.of("unused"), GanTrainer.Loss.GAN), Device.CPU).precision(Precision.TF32));
        assertTrue(e.getMessage().contains("CUDA-only"), e.getMessage());
    }

    /** WGAN-GP with a LayerNorm critic, 2 critic steps per generator step, lambda 10: two iterations at precision p. */
    static double[][] wganSteps(Precision p, ImageData data) {
        GanTrainer.Config c = CudaGanTest.config(Path.of("unused"), GanTrainer.Loss.WGAN_GP);
        c = new GanTrainer.Config(c.loss(), c.data(), c.out(), c.iters(), c.batch(), c.nz(), c.ngf(), c.ndf(), c.lr(), c.beta1(), c.beta2(),
                2, c.lambda(), dev.latent.models.gan.Dcgan.Norm.LAYER, c.seed(), c.logEvery(), c.trainLimit(), c.samples(), c.sampleSeed(),
                c.quiet());
        GanTrainer t = new GanTrainer(c, Device.CUDA).precision(p);
        assertEquals(p, t.precision());
        int[] perm = {0, 1, 2, 3, 4, 5};
        return new double[][] {t.step(data, perm, 0, 1), t.step(data, perm, 3, 2)};
    }

    /**
     * WGAN-GP on CUDA at tf32 and bf16 against fp32 on CUDA: the penalty's double backward runs every convolution pass
     * (and its adjoints) at the precision. Values per iteration: lossD, lossG, the W estimate and the penalty / lambda.
     * lossD and W are differences of critic means (cancellation), so their tolerance is 8u of the critic's scale,
     * mean |D(real)| + mean |D(fake)| + lambda penalty (from fp32's values: |W - lossG| + |lossG| + lambda penalty), not of
     * the value itself. The penalty is the mean of (|grad_i| - 1)^2 over the batch B: its square root is an RMS, which
     * moves by at most the largest change of a |grad_i| (triangle inequality), itself within 8u of |grad_i| <= 1 +
     * sqrt(B pen): so |sqrt(pen) - sqrt(pen32)| <= 8u (1 + sqrt(B pen32)). Two runs at a precision give the same bits.
     */
    @Test
    void wganGpTrainsAtEveryPrecision() {
        ImageData data = CudaGanTest.images(6, 8);
        double[][] fp32 = wganSteps(Precision.FP32, data);
        double lambda = 10, b = CudaGanTest.B;
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            double[][] l = wganSteps(p, data), again = wganSteps(p, data);
            assertTrue(java.util.Arrays.deepEquals(l, again), p.id() + " WGAN-GP: two runs must give the same bits: "
                    + java.util.Arrays.deepToString(l) + " vs " + java.util.Arrays.deepToString(again));
            for (int s = 0; s < l.length; s++) {
                double[] f = fp32[s];
                System.out.printf("WGAN-GP on CUDA, %s, step %d: lossD %.6f lossG %.6f W %.6f pen %.6g (fp32 %.6f %.6f %.6f %.6g)%n", p.id(),
                        s + 1, l[s][0], l[s][1], l[s][2], l[s][3], f[0], f[1], f[2], f[3]);
                assertNotEquals(f[0], l[s][0], p.id() + " must round something: lossD equals fp32's bit for bit");
                double scale = Math.abs(f[2] - f[1]) + Math.abs(f[1]) + lambda * f[3];
                for (int j = 0; j < 3; j++)
                    assertEquals(f[j], l[s][j], lossTol(p) * (Math.abs(f[j]) + scale), p.id() + " WGAN-GP value " + j + " at step " + (s + 1));
                assertEquals(Math.sqrt(f[3]), Math.sqrt(l[s][3]), lossTol(p) * (1 + Math.sqrt(b * f[3])), p.id() + " WGAN-GP penalty at step " + (s + 1));
            }
        }
    }

    /** Bits/dim of three steps and every parameter after them, flattened in name order. */
    record FlowRun(double[] bpd, float[] params) {}

    /** Three FlowTrainer steps of {@code arch} on CUDA at precision p (the trainer saved to {@code save} when not null). */
    static FlowRun flowSteps(String arch, Precision p, ImageData data, Path save) throws java.io.IOException {
        try (Scope s = Scope.shared()) {
            var t = new dev.latent.models.flow.FlowTrainer(CudaFlowTest.config(arch), s, CudaFlowTest.HW, CudaFlowTest.HW, Device.CUDA).precision(p);
            double[] bpd = new double[3];
            int b = CudaFlowTest.B;
            for (int i = 0; i < 3; i++) bpd[i] = t.trainStep(data, new int[] {0, 1, 2, 3, 4, 5}, (i % 2) * b, b);
            if (save != null) t.save(save);
            List<Float> flat = new ArrayList<>();
            new java.util.TreeMap<>(t.model.namedParameters()).forEach((k, v) -> { for (float x : v.value().toArray()) flat.add(x); });
            float[] params = new float[flat.size()];
            for (int i = 0; i < params.length; i++) params[i] = flat.get(i);
            return new FlowRun(bpd, params);
        }
    }

    /**
     * RealNVP and Glow on CUDA at tf32 and bf16 against fp32 on CUDA: bits/dim of three steps within 8u relative (the
     * coupling networks' convolutions at the precision; Glow's invertible 1x1 convolution and every log-determinant
     * stay fp32), the same bits on a second run, and the checkpoint records the precision (metadata "precision", read
     * back by FlowTrainer.load).
     */
    @Test
    void flowsTrainAtEveryPrecision(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        ImageData data = new ImageData(6, CudaFlowTest.HW, CudaFlowTest.HW, CudaFlowTest.pixels(6, 4), null, "random");
        for (String arch : new String[] {"realnvp", "glow"}) {
            FlowRun f32 = flowSteps(arch, Precision.FP32, data, null);
            double[] fp32 = f32.bpd();
            for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
                Path ck = dir.resolve(arch + "-" + p.id() + ".safetensors");
                FlowRun run = flowSteps(arch, p, data, ck), again = flowSteps(arch, p, data, null);
                double[] l = run.bpd();
                System.out.printf("%s on CUDA, %s: bits/dim %s (fp32 %s)%n", arch, p.id(), java.util.Arrays.toString(l), java.util.Arrays.toString(fp32));
                assertArrayEquals(l, again.bpd(), 0.0, p.id() + " " + arch + ": two runs must give the same bits");
                assertArrayEquals(run.params(), again.params(), 0f, p.id() + " " + arch + ": two runs must give the same weights");
                /* on the weights, not the loss: the couplings' last convolutions start at zero (the first loss is exact at any
                   precision) and Adam's first steps are near +-lr whatever the rounding, so three bits/dim can match fp32's floats */
                assertFalse(java.util.Arrays.equals(f32.params(), run.params()), p.id() + " " + arch + " must round something: the weights equal fp32's bit for bit");
                for (int i = 0; i < l.length; i++)
                    assertEquals(fp32[i], l[i], lossTol(p) * Math.abs(fp32[i]), p.id() + " " + arch + " bits/dim at step " + (i + 1));
                try (Scope s = Scope.shared()) {
                    assertEquals(p, dev.latent.models.flow.FlowTrainer.load(ck, s).precision(), arch + " checkpoint's precision");
                }
            }
        }
    }

    /** Three AdamW steps of the FID classifier on CUDA at precision p (batch 4 of 8 labelled images). */
    static float[] classifierSteps(Precision p, ImageData data) {
        try (Scope s = Scope.shared()) {
            var c = new dev.latent.models.classifier.Classifier(s, 10, 5).on(Device.CUDA).precision(p);
            assertEquals(Device.CUDA, c.device());
            AdamW opt = new AdamW(s, c.namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
            int[] perm = {0, 1, 2, 3, 4, 5, 6, 7};
            float[] l = new float[3];
            for (int i = 0; i < 3; i++) l[i] = c.trainStep(data, perm, (i % 2) * 4, 4, opt, 2e-3f);
            return l;
        }
    }

    /**
     * The classifier (train classifier --device cuda) at tf32 and bf16 against fp32 on CUDA: the cross-entropy of three
     * steps within 8u relative, the same bits on a second run.
     */
    @Test
    void classifierTrainsAtEveryPrecision() {
        ImageData im = images(8, 11);
        int[] labels = new int[8];
        for (int i = 0; i < 8; i++) labels[i] = i % 10;
        ImageData data = new ImageData(8, 28, 28, im.pixels, labels, "random");
        float[] fp32 = classifierSteps(Precision.FP32, data);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            float[] l = classifierSteps(p, data), again = classifierSteps(p, data);
            System.out.printf("classifier on CUDA, %s: losses %s (fp32 %s)%n", p.id(), java.util.Arrays.toString(l), java.util.Arrays.toString(fp32));
            assertArrayEquals(l, again, 0f, p.id() + " classifier: two runs must give the same bits");
            assertNotEquals(fp32[0], l[0], p.id() + " must round something");
            for (int i = 0; i < l.length; i++)
                assertEquals(fp32[i], l[i], lossTol(p) * Math.abs(fp32[i]), p.id() + " classifier loss at step " + (i + 1));
        }
    }

    /** Three steps of a small gated PixelCNN (train pixelcnn --device cuda) on 8 x 8 images at precision p. */
    static double[] pixelCnnSteps(Precision p, ImageData data, Path save) throws java.io.IOException {
        var arch = new dev.latent.models.pixelcnn.GatedPixelCnn.Arch(8, 2, 5, 3, 16);
        var cfg = new dev.latent.models.pixelcnn.PixelCnnTrainer.Config("unused", Path.of("unused"), arch, 1, 2, 3e-3f, 1, 0, 0, 0, 1, 1, true);
        try (Scope s = Scope.shared()) {
            var t = new dev.latent.models.pixelcnn.PixelCnnTrainer(cfg, s, Device.CUDA).precision(p);
            assertEquals(Device.CUDA, t.model.namedParameters().values().iterator().next().value().device());
            int[] perm = {0, 1, 2, 3};
            double[] bpd = new double[3];
            for (int i = 0; i < 3; i++) bpd[i] = t.trainStep(data, perm, (i % 2) * 2, 2);
            if (save != null) t.save(save);
            return bpd;
        }
    }

    /**
     * PixelCNN on CUDA at tf32 and bf16 against fp32 on CUDA: the masked convolutions (mask folded into the weight, an
     * exact 0 in every format) at the precision; bits/dim of three steps within 8u relative, the same bits on a second
     * run, and the checkpoint records the precision.
     */
    @Test
    void pixelCnnTrainsAtEveryPrecision(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        byte[] px = new byte[4 * 64];
        new SplittableRandom(12).nextBytes(px);
        ImageData data = new ImageData(4, 8, 8, px, null, "random");
        double[] fp32 = pixelCnnSteps(Precision.FP32, data, null);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            Path ck = dir.resolve("pixelcnn-" + p.id() + ".safetensors");
            double[] l = pixelCnnSteps(p, data, ck), again = pixelCnnSteps(p, data, null);
            System.out.printf("PixelCNN on CUDA, %s: bits/dim %s (fp32 %s)%n", p.id(), java.util.Arrays.toString(l), java.util.Arrays.toString(fp32));
            assertArrayEquals(l, again, 0.0, p.id() + " PixelCNN: two runs must give the same bits");
            /* any step: the first loss can be the same float (at initialisation the 256-way logits are small and near uniform,
               so the rounding moves the mean cross-entropy by less than its last bit) */
            assertFalse(java.util.Arrays.equals(fp32, l), p.id() + " must round something: every bits/dim equals fp32's bit for bit");
            for (int i = 0; i < l.length; i++)
                assertEquals(fp32[i], l[i], lossTol(p) * Math.abs(fp32[i]), p.id() + " PixelCNN bits/dim at step " + (i + 1));
            try (Scope s = Scope.shared()) {
                assertEquals(p, dev.latent.models.pixelcnn.PixelCnnTrainer.load(ck, s).precision(), "PixelCNN checkpoint's precision");
            }
        }
    }

    /** train gpt on CUDA at tf32 and bf16: the checkpoint records the precision (args.precision), which a resume reads back. */
    @Test
    void gptCheckpointRecordsThePrecision(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        String text = "Call me Ishmael. Some years ago, never mind how long precisely, having little money.\n".repeat(20);
        var tok = dev.latent.text.CharTokenizer.train(text);
        var data = new dev.latent.data.TextData(tok.encode(text));
        GptConfig cfg = new GptConfig(tok.vocabSize(), 1, 2, 16, 16, false);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            Path out = dir.resolve(p.id());
            var o = new dev.latent.models.gpt.GptTrainer.Options(2, 2, 3e-3, 3e-4, 1, 0.1, 1.0, 2, 1, 1234, 1, 2, 7).withPrecision(p);
            try (Scope s = Scope.shared()) {
                dev.latent.models.gpt.GptTrainer.train(new Gpt(s, cfg, 7), tok, data, o, out, false, s, 2, Device.CUDA,
                        new dev.latent.train.TrainingListener() {});
            }
            try (Scope s = Scope.shared()) {
                var l = dev.latent.models.gpt.GptCheckpoint.load(out, s);
                assertEquals(p.id(), String.valueOf(l.args().get("precision")), "args.precision");
                assertEquals(p, l.precision());
            }
        }
    }
}
