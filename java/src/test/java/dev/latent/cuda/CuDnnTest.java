package dev.latent.cuda;

import dev.latent.nativ.NativeException;
import dev.latent.ops.Conv;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static dev.latent.cuda.CudaTesting.EMU_CONV_BWD_DATA;
import static dev.latent.cuda.CudaTesting.EMU_CONV_BWD_FILTER;
import static dev.latent.cuda.CudaTesting.EMU_CONV_FWD;
import static dev.latent.cuda.CudaTesting.U;
import static dev.latent.cuda.CudaTesting.cudnn;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.emuCounters;
import static dev.latent.cuda.CudaTesting.fill;
import static org.junit.jupiter.api.Assertions.*;

/**
 * cuDNN convolutions through FFM (CuDnn, CudaVendor): on the emulated driver against its CPU stand-ins, on a GPU against
 * NVIDIA's library. With -Dlatent.cudnn.path set (the cuda-emulated execution sets it) cuDNN must load; otherwise these
 * skip where none is found. Each pass (forward + bias, backward-data + bias, backward-filter, overwrite and accumulate)
 * is compared with a double reference written from the definition, through ops.Conv with cuDNN serving and with our
 * kernels serving (CudaVendor.force). Tolerance per element: an fp32 sum of T terms in any order is within (T + 2) u
 * sum |terms| of the exact value (u = 2^-24, CUDNN_FMA_MATH: no TF32), plus one rounding of the bias or beta term.
 */
class CuDnnTest {
    static Cuda cu;
    static CuDnn dnn;

    @BeforeAll
    static void setUp() {
        cu = device();
        dnn = cudnn(cu);
        System.out.println("CuDnnTest: " + dnn.describe());
    }

    @AfterEach
    void restore() { CudaVendor.force(null); }

    /** The three passes' exact results and their per-element sum |terms| (host double, cross-correlation). */
    record Ref(double[] y, double[] yMag, double[] dx, double[] dxMag, double[] dw, double[] dwMag) {}

    static Ref reference(Conv.Geometry g, float[] x, float[] w, float[] bias, float[] dy, float[] biasC, boolean flip) {
        int n = (int) g.n(), c = (int) g.c(), h = (int) g.h(), wd = (int) g.w(), k = (int) g.k(), r = (int) g.r(), s = (int) g.s();
        int oh = (int) g.oh(), ow = (int) g.ow();
        double[] y = new double[n * k * oh * ow], ym = new double[y.length], dx = new double[n * c * h * wd], dxm = new double[dx.length],
                dw = new double[k * c * r * s], dwm = new double[dw.length];
        for (int b = 0; b < n; b++)
            for (int f = 0; f < k; f++)
                for (int p = 0; p < oh; p++)
                    for (int q = 0; q < ow; q++)
                        for (int ch = 0; ch < c; ch++)
                            for (int i = 0; i < r; i++)
                                for (int j = 0; j < s; j++) {
                                    int ih = p * g.strideH() - g.padH() + i, iw = q * g.strideW() - g.padW() + j;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    int yi = ((b * k + f) * oh + p) * ow + q, xi = ((b * c + ch) * h + ih) * wd + iw;
                                    int wi = ((f * c + ch) * r + (flip ? r - 1 - i : i)) * s + (flip ? s - 1 - j : j);
                                    y[yi] += (double) x[xi] * w[wi];
                                    ym[yi] += Math.abs((double) x[xi] * w[wi]);
                                    dx[xi] += (double) dy[yi] * w[wi];
                                    dxm[xi] += Math.abs((double) dy[yi] * w[wi]);
                                    dw[wi] += (double) x[xi] * dy[yi];
                                    dwm[wi] += Math.abs((double) x[xi] * dy[yi]);
                                }
        if (bias != null)
            for (int i = 0; i < y.length; i++) { int f = i / (oh * ow) % k; y[i] += bias[f]; ym[i] += Math.abs(bias[f]); }
        if (biasC != null)
            for (int i = 0; i < dx.length; i++) { int ch = i / (h * wd) % c; dx[i] += biasC[ch]; dxm[i] += Math.abs(biasC[ch]); }
        return new Ref(y, ym, dx, dxm, dw, dwm);
    }

    static void check(String what, float[] got, double[] want, double[] mag, long terms) {
        CudaTesting.close(what, got, toFloat(want), i -> (terms + 2) * U * mag[i] + U * Math.abs(want[i]));
    }

    static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    /** Runs the three passes through ops.Conv and checks them; returns the stand-in call counts it saw (or null). */
    static long[] passes(Conv.Geometry g, boolean vendor, long seed) {
        CudaVendor.force(vendor);
        float[] x = fill((int) (g.n() * g.c() * g.h() * g.w()), seed), w = fill((int) (g.k() * g.c() * g.r() * g.s()), seed + 1),
                bias = fill((int) g.k(), seed + 2), dy = fill((int) (g.n() * g.k() * g.oh() * g.ow()), seed + 3),
                biasC = fill((int) g.c(), seed + 4), dw0 = fill((int) (g.k() * g.c() * g.r() * g.s()), seed + 5);
        Ref ref = reference(g, x, w, bias, dy, biasC, false);
        long crs = g.c() * g.r() * g.s(), kwin = g.k() * ((g.r() + g.strideH() - 1) / g.strideH()) * ((g.s() + g.strideW() - 1) / g.strideW()),
                depth = g.n() * g.oh() * g.ow();
        long[] before = emuCounters();
        try (Scope s = Scope.confined()) {
            Tensor tx = Tensor.of(s, Device.CUDA, x, g.inShape()), tw = Tensor.of(s, Device.CUDA, w, g.weightShape()),
                    tb = Tensor.of(s, Device.CUDA, bias, g.k()), tdy = Tensor.of(s, Device.CUDA, dy, g.outShape()),
                    tbc = Tensor.of(s, Device.CUDA, biasC, g.c());
            Tensor y = Tensor.of(s, Device.CUDA, nanArray(ref.y.length), g.outShape());
            Conv.forward(g, tx, tw, tb, y);
            check("forward + bias " + g, y.toArray(), ref.y, ref.yMag, crs + 1);
            Tensor dx = Tensor.of(s, Device.CUDA, nanArray(ref.dx.length), g.inShape());
            Conv.backwardData(g, tdy, tw, tbc, dx);
            check("backward-data + bias " + g, dx.toArray(), ref.dx, ref.dxMag, kwin * g.r() * g.s() + 1);
            Tensor dw = Tensor.of(s, Device.CUDA, nanArray(ref.dw.length), g.weightShape());
            Conv.backwardWeight(g, tx, tdy, dw, null, false);
            check("backward-filter " + g, dw.toArray(), ref.dw, ref.dwMag, depth);
            Tensor dwAcc = Tensor.of(s, Device.CUDA, dw0, g.weightShape()), db = Tensor.zeros(s, Device.CUDA, g.k());
            Conv.backwardWeight(g, tx, tdy, dwAcc, db, true);
            double[] acc = ref.dw.clone(), accMag = ref.dwMag.clone();
            for (int i = 0; i < acc.length; i++) { acc[i] += dw0[i]; accMag[i] += Math.abs(dw0[i]); }
            check("backward-filter, accumulating " + g, dwAcc.toArray(), acc, accMag, depth + 1);
            double[] dbRef = new double[(int) g.k()], dbMag = new double[(int) g.k()];
            for (int i = 0; i < dy.length; i++) { int f = (int) (i / (g.oh() * g.ow()) % g.k()); dbRef[f] += dy[i]; dbMag[f] += Math.abs(dy[i]); }
            check("bias gradient " + g, db.toArray(), dbRef, dbMag, depth);
        }
        long[] after = emuCounters();
        if (before == null) return null;
        return new long[] {after[EMU_CONV_FWD] - before[EMU_CONV_FWD], after[EMU_CONV_BWD_DATA] - before[EMU_CONV_BWD_DATA],
                after[EMU_CONV_BWD_FILTER] - before[EMU_CONV_BWD_FILTER]};
    }

    static float[] nanArray(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);   // every output is write-only (beta 0): a skipped element stays NaN and fails
        return a;
    }

    static final Conv.Geometry[] SHAPES = {
        Conv.Geometry.of(2, 3, 7, 7, 5, 3, 1, 1),
        new Conv.Geometry(1, 4, 9, 6, 3, 3, 2, 2, 1, 1, 0),        // non-square kernel, stride (2, 1), pad (1, 0)
        Conv.Geometry.of(3, 2, 8, 8, 4, 4, 2, 1),                  // DCGAN's 4 x 4 stride-2 layer
        Conv.Geometry.of(2, 5, 5, 5, 7, 1, 1, 0),                  // 1 x 1
        Conv.Geometry.of(1, 1, 4, 4, 1, 4, 1, 0),                  // one output pixel
    };

    @Test
    void cudnnAndOurKernelsMatchTheDefinition() {
        long seed = 10;
        for (Conv.Geometry g : SHAPES) {
            long[] vendorCalls = passes(g, true, seed);
            long[] ourCalls = passes(g, false, seed);
            seed += 10;
            if (vendorCalls != null) {
                assertArrayEquals(new long[] {1, 1, 2}, vendorCalls, "cuDNN served forward, backward-data and both backward-filter calls " + g);
                assertArrayEquals(new long[] {0, 0, 0}, ourCalls, "LATENT_CUDA_VENDOR=0 routing: no cuDNN call " + g);
            }
        }
    }

    @Test
    void theModeFlagIsHonoured() {
        // CUDNN_CONVOLUTION flips the filter: with a non-symmetric filter the result must differ from cross-correlation
        Conv.Geometry g = Conv.Geometry.of(1, 2, 6, 6, 3, 3, 1, 1);
        float[] x = fill(72, 1), w = fill(54, 2);
        Ref cross = reference(g, x, w, null, new float[108], null, false), flipped = reference(g, x, w, null, new float[108], null, true);
        CuDnn.Key conv = CudaVendor.key(g.dims(), CuDnn.CONVOLUTION), xcorr = CudaVendor.key(g.dims(), CuDnn.CROSS_CORRELATION);
        try (DeviceBuffer dx = CudaTesting.up(cu, x); DeviceBuffer dw = CudaTesting.up(cu, w); DeviceBuffer dy = CudaTesting.nans(cu, 108)) {
            dnn.forward(conv, dx, dw, null, dy);
            float[] got = CudaTesting.down(cu, dy, 108);
            check("CUDNN_CONVOLUTION", got, flipped.y, flipped.yMag, 20);
            double worst = 0;
            for (int i = 0; i < 108; i++) worst = Math.max(worst, Math.abs(got[i] - cross.y[i]) / (20 * U * cross.yMag[i] + 1e-30));
            assertTrue(worst > 100, "CUDNN_CONVOLUTION must not give the cross-correlation (largest error / tolerance " + worst + ")");
            dnn.forward(xcorr, dx, dw, null, dy);
            check("CUDNN_CROSS_CORRELATION", CudaTesting.down(cu, dy, 108), cross.y, cross.yMag, 20);
        }
    }

    @Test
    void anOutputDescriptorThatIsNotTheConvolutionsIsRefused() {
        Conv.Geometry g = Conv.Geometry.of(1, 2, 6, 6, 3, 3, 1, 1);
        long[] d = g.dims();
        d[7] = 5;   // oh 5 where the formula gives 6
        CuDnn.Key bad = CudaVendor.key(d, CuDnn.CROSS_CORRELATION);
        NativeException e = assertThrows(NativeException.class, () -> {
            try (DeviceBuffer x = cu.alloc(4096); DeviceBuffer w = cu.alloc(4096); DeviceBuffer y = cu.alloc(4096)) {
                dnn.forward(bad, x, w, null, y);
            }
        });
        assertTrue(e.getMessage().contains("CUDNN_STATUS_BAD_PARAM"), e.getMessage());
    }

    // ---- bf16 through cuDNN's bf16 descriptors (PSEUDO_BFLOAT16_CONFIG; --precision bf16 on CUDA) ----

    /** x rounded to bfloat16, to nearest even (as ltk_f32_to_bf16); NaN and inf kept. */
    static float bf16(float x) {
        int b = Float.floatToRawIntBits(x);
        if ((b & 0x7f800000) == 0x7f800000) return x;
        return Float.intBitsToFloat((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000);
    }

    static float[] bf16(float[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) r[i] = bf16(v[i]);
        return r;
    }

    /**
     * A bf16 result: within the fp32 sum's bound of the exact sum of the bf16-rounded operands' products, plus one
     * rounding to bf16 (2^-8 relative), and a bf16 value (its low 16 bits zero) when {@code bf16Out}: cuDNN wrote a bf16
     * y that was widened, not an fp32 result (which the old rounded-operand route would give).
     */
    static void checkBf16(String what, float[] got, double[] want, double[] mag, long terms, boolean bf16Out) {
        CudaTesting.close(what, got, toFloat(want), i -> (terms + 2) * U * mag[i] * (1 + 0x1p-8) + 0x1p-8 * Math.abs(want[i]) + U * Math.abs(want[i]));
        if (bf16Out)
            for (int i = 0; i < got.length; i++)
                assertEquals(0, Float.floatToRawIntBits(got[i]) & 0xffff, what + " [" + i + "] = " + got[i] + " is no bf16 value");
    }

    /**
     * ops.Conv at Precision.BF16 with cuDNN serving: every pass on cuDNN's bf16 descriptors (the stand-in counts one call
     * per pass), each against the double reference of the bf16-rounded operands; the bias added in fp32 after; the
     * accumulating weight gradient adds in fp32 to what dw held. Five geometries (SHAPES), outputs NaN-prefilled.
     */
    @Test
    void bf16PassesRunOnCudnnsBf16Descriptors() {
        long seed = 70;
        for (Conv.Geometry g : SHAPES) {
            seed += 10;
            float[] x = fill((int) (g.n() * g.c() * g.h() * g.w()), seed), w = fill((int) (g.k() * g.c() * g.r() * g.s()), seed + 1),
                    bias = fill((int) g.k(), seed + 2), dy = fill((int) (g.n() * g.k() * g.oh() * g.ow()), seed + 3),
                    biasC = fill((int) g.c(), seed + 4), dw0 = fill(w.length, seed + 5);
            Ref ref = reference(g, bf16(x), bf16(w), null, bf16(dy), null, false);
            long crs = g.c() * g.r() * g.s(), krs = g.k() * g.r() * g.s(), depth = g.n() * g.oh() * g.ow();
            CudaVendor.force(true);
            long[] before = emuCounters();
            try (Scope s = Scope.confined()) {
                Tensor tx = Tensor.of(s, Device.CUDA, x, g.inShape()), tw = Tensor.of(s, Device.CUDA, w, g.weightShape()),
                        tdy = Tensor.of(s, Device.CUDA, dy, g.outShape());
                Tensor y = Tensor.of(s, Device.CUDA, nanArray(ref.y().length), g.outShape());
                Conv.forward(g, tx, tw, null, y, dev.latent.tensor.Precision.BF16);
                /* the stand-in serves every geometry in bf16; NVIDIA's cuDNN may refuse one (at set-up or at its first call;
                   then the rounded-operand route serves it, an fp32 result: within the same bound, not a bf16 value) */
                String refused = dnn.bf16Refusal(CudaVendor.key(g.dims(), CuDnn.CROSS_CORRELATION, false));
                if (CudaTesting.emulated()) assertNull(refused, "the stand-in serves bf16 " + g);
                else if (refused != null) System.out.println("cuDNN refuses bf16 for " + g + ": " + refused);
                boolean served = refused == null;
                float[] yv = y.toArray();
                checkBf16("bf16 forward " + g, yv, ref.y(), ref.yMag(), crs, served);
                Tensor yb = Tensor.of(s, Device.CUDA, nanArray(ref.y().length), g.outShape());
                Conv.forward(g, tx, tw, Tensor.of(s, Device.CUDA, bias, g.k()), yb, dev.latent.tensor.Precision.BF16);
                float[] ybv = yb.toArray();
                for (int i = 0; i < ybv.length; i++) {   /* the bias in fp32 onto the same bf16 result */
                    float want = yv[i] + bias[(int) (i / (g.oh() * g.ow()) % g.k())];
                    assertEquals(want, ybv[i], U * Math.abs(want), "bf16 forward + bias " + g + " [" + i + "]");
                }
                Tensor dx = Tensor.of(s, Device.CUDA, nanArray(ref.dx().length), g.inShape());
                Conv.backwardData(g, tdy, tw, null, dx, dev.latent.tensor.Precision.BF16);
                checkBf16("bf16 backward-data " + g, dx.toArray(), ref.dx(), ref.dxMag(), krs, served);
                Tensor dxb = Tensor.of(s, Device.CUDA, nanArray(ref.dx().length), g.inShape());
                Conv.backwardData(g, tdy, tw, Tensor.of(s, Device.CUDA, biasC, g.c()), dxb, dev.latent.tensor.Precision.BF16);
                float[] dxv = dx.toArray(), dxbv = dxb.toArray();
                for (int i = 0; i < dxbv.length; i++) {
                    float want = dxv[i] + biasC[(int) (i / (g.h() * g.w()) % g.c())];
                    assertEquals(want, dxbv[i], U * Math.abs(want), "bf16 backward-data + bias " + g + " [" + i + "]");
                }
                Tensor dw = Tensor.of(s, Device.CUDA, nanArray(ref.dw().length), g.weightShape());
                Conv.backwardWeight(g, tx, tdy, dw, null, false, dev.latent.tensor.Precision.BF16);
                float[] dwv = dw.toArray();
                checkBf16("bf16 backward-filter " + g, dwv, ref.dw(), ref.dwMag(), depth, served);
                Tensor dwAcc = Tensor.of(s, Device.CUDA, dw0, g.weightShape());
                Conv.backwardWeight(g, tx, tdy, dwAcc, null, true, dev.latent.tensor.Precision.BF16);
                float[] acc = dwAcc.toArray();
                for (int i = 0; i < acc.length; i++)   /* dw0 + the same bf16 gradient, added in fp32 (not in bf16) */
                    assertEquals(dw0[i] + dwv[i], acc[i], served ? 0.0 : (depth + 2) * U * (Math.abs(dw0[i]) + ref.dwMag()[i]),
                            "bf16 backward-filter, accumulating in fp32 " + g + " [" + i + "]");
            }
            long[] after = emuCounters();
            if (before != null)
                assertArrayEquals(new long[] {2, 2, 2}, new long[] {after[EMU_CONV_FWD] - before[EMU_CONV_FWD],
                        after[EMU_CONV_BWD_DATA] - before[EMU_CONV_BWD_DATA], after[EMU_CONV_BWD_FILTER] - before[EMU_CONV_BWD_FILTER]},
                        "cuDNN served every bf16 pass " + g);
        }
    }

    /**
     * Descriptors whose data types do not form a configuration cuDNN has must fail, as cuDNN fails them: x and w bf16
     * with a float y, a float x with a bf16 filter (BAD_PARAM: the data types differ), bf16 data with a bf16 compute type
     * (NOT_SUPPORTED). The right one (all bf16, compute float) succeeds and gives the bf16 reference; bf16 data declared
     * float (the buffers large enough for floats) gives something far from it.
     */
    @Test
    void bf16DescriptorsWithTheWrongDataTypeFail() {
        Conv.Geometry g = Conv.Geometry.of(1, 2, 6, 6, 3, 3, 1, 1);
        CuDnn.Key k = CudaVendor.key(g.dims(), CuDnn.CROSS_CORRELATION, true);
        float[] x = fill(72, 31), w = fill(54, 32);
        Ref ref = reference(g, bf16(x), bf16(w), null, new float[108], null, false);
        int bf = CuDnn.BFLOAT16, fl = CuDnn.FLOAT;
        boolean emu = CudaTesting.emulated();
        try (DeviceBuffer xf = CudaTesting.up(cu, x); DeviceBuffer wf = CudaTesting.up(cu, w); DeviceBuffer x16 = cu.alloc(4 * 72);
             DeviceBuffer w16 = cu.alloc(4 * 54); DeviceBuffer y = CudaTesting.nans(cu, 108); DeviceBuffer y16 = cu.alloc(4 * 108)) {
            CudaKernels.toBf16(cu, 72, xf, x16);
            CudaKernels.toBf16(cu, 54, wf, w16);
            int[][] bad = {{bf, bf, fl, fl}, {fl, bf, bf, fl}, {bf, fl, bf, fl}, {bf, bf, bf, bf}};
            int[] want = {2000, 2000, 2000, 3000};
            for (int i = 0; i < bad.length; i++) {
                int rc = dnn.rawForward(k, bad[i][0], bad[i][1], bad[i][2], bad[i][3], x16, w16, y16);
                String what = "x " + bad[i][0] + ", w " + bad[i][1] + ", y " + bad[i][2] + ", compute " + bad[i][3];
                System.out.println("cuDNN " + what + ": status " + rc + " (" + dnn.describeStatus(rc) + ")");
                if (emu) assertEquals(want[i], rc, what + " must fail with " + want[i]);
                else assertNotEquals(0, rc, what + " must fail");
            }
            int ok = dnn.rawForward(k, bf, bf, bf, fl, x16, w16, y16);
            if (!emu && CuDnn.notSupported(ok)) {   /* NVIDIA's cuDNN without a bf16 engine for this: the fallback serves (logged) */
                System.out.println("cuDNN refuses PSEUDO_BFLOAT16 here: " + dnn.describeStatus(ok));
                return;
            }
            assertEquals(0, ok, "x, w, y bf16 with compute float (PSEUDO_BFLOAT16_CONFIG): " + dnn.describeStatus(ok));
            try (DeviceBuffer yf = CudaTesting.nans(cu, 108)) {
                CudaKernels.fromBf16(cu, 108, y16, yf, false);
                checkBf16("bf16 descriptors", CudaTesting.down(cu, yf, 108), ref.y(), ref.yMag(), 18, true);
            }
            assertEquals(0, dnn.rawForward(k, fl, fl, fl, fl, x16, w16, y), "float descriptors (on bf16 data: accepted, read wrongly)");
            float[] got = CudaTesting.down(cu, y, 108);
            double worst = 0;
            for (int i = 0; i < 108; i++) worst = Math.max(worst, Math.abs(got[i] - ref.y()[i]) / (0x1p-7 * ref.yMag()[i] + 1e-30));
            assertTrue(!(worst < 100), "bf16 data read through float descriptors must not give the bf16 result (largest error / tolerance " + worst + ")");
        }
    }

    /**
     * Where cuDNN refuses the bf16 configuration for a geometry, Conv at BF16 still runs, on the rounded-operand route:
     * an fp32 result (no bf16 rounding of the output) within the fp32 bound of the rounded operands' exact sum.
     */
    @Test
    void aRefusedBf16GeometryFallsBackToRoundedOperands() {
        Conv.Geometry g = Conv.Geometry.of(2, 3, 5, 5, 4, 3, 1, 1);
        float[] x = fill(150, 41), w = fill(108, 42);
        Ref ref = reference(g, bf16(x), bf16(w), null, new float[200], null, false);
        CudaVendor.force(true);
        dnn.refuseBf16(CudaVendor.key(g.dims(), CuDnn.CROSS_CORRELATION, false), "refused by the test");
        try (Scope s = Scope.confined()) {
            Tensor y = Tensor.of(s, Device.CUDA, nanArray(200), g.outShape());
            Conv.forward(g, Tensor.of(s, Device.CUDA, x, g.inShape()), Tensor.of(s, Device.CUDA, w, g.weightShape()), null, y,
                    dev.latent.tensor.Precision.BF16);
            float[] got = y.toArray();
            check("bf16 forward, cuDNN's bf16 refused", got, ref.y(), ref.yMag(), 27);
            long notBf16 = 0;
            for (float v : got) if ((Float.floatToRawIntBits(v) & 0xffff) != 0) notBf16++;
            assertTrue(notBf16 > 100, "the fallback keeps an fp32 result (" + notBf16 + " of 200 values are not bf16)");
        }
    }
}
