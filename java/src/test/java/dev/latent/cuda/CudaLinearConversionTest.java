package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.vae.ConvVae;
import dev.latent.ops.Gemm;
import dev.latent.ops.KeptOperands;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

import static dev.latent.cuda.CudaGptFixture.ConversionRun;
import static dev.latent.cuda.CudaGptFixture.assertSameBits;
import static dev.latent.cuda.CudaGptFixture.restoreConversionSwitches;
import static dev.latent.cuda.CudaTesting.EMU_LAUNCH;
import static dev.latent.cuda.CudaTesting.EMU_LT_MATMUL;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.emuCountersOrZeros;
import static dev.latent.cuda.CudaTesting.emulated;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Fewer bf16 conversions around F.linear's and F.matmul's GEMMs on CUDA (h-linconv, issue 18). At BF16 every CUDA GEMM
 * converts its two fp32 operands to bf16 (ltk_f32_to_bf16, one launch each) unless cuBLASLt's fused bias serves the
 * forward (COMPUTE_32F_FAST_16BF on the fp32 tensors: no launch). Before, a linear's backward made two GEMMs converting
 * 4 operands: dy and W for dx, dy and x again for dW. Now (Gemm.matmulBackward) dy is converted once for both, and where
 * the forward converted x and W itself (no cuBLASLt, LATENT_CUDA_VENDOR=0, no bias, F.matmul such as GPT's tied head) it
 * kept those copies (Gemm.matmul with a KeptOperands in the graph's scope) and the backward reads them: per linear and
 * step 1 conversion launch fewer in the backward where the forward was fused (4 -> 3), 3 fewer where it converted
 * (4 -> 1), the forward unchanged. Each conversion is the same round to nearest even of the same fp32 values, so losses
 * and gradients must be bit-identical to the per-operand path (CudaVendor.fewerGemmConversionsForTest = false).
 */
class CudaLinearConversionTest {
    static final int B = 2, STEPS = 3;

    @BeforeAll
    static void setUp() { device(); }

    @AfterEach
    void restore() { restoreConversionSwitches(); }

    /** A model under test: its parameters, and the loss of step s built in the open graph. */
    interface Trainee {
        Map<String, Var> parameters();

        Var loss(Graph g, int step);
    }

    /** STEPS AdamW steps of the model {@code make} builds (on CUDA, in the given scope) at BF16, vendors on or off, fewer conversions on or off. */
    static ConversionRun train(Function<Scope, Trainee> make, boolean vendor, boolean fewer) {
        double[] losses = new double[STEPS];
        long[] fwd = new long[STEPS], bwd = new long[STEPS], lt = new long[STEPS], liveF = new long[STEPS], liveB = new long[STEPS];
        List<Map<String, float[]>> grads = new ArrayList<>();
        long before = Scope.liveDeviceBytes();
        try (Scope model = Scope.shared()) {
            Trainee t = make.apply(model);
            Map<String, Var> named = t.parameters();
            AdamW opt = new AdamW(model, named, 0.9f, 0.95f, 1e-8f, 0.0f);
            CudaVendor.force(vendor);
            CudaVendor.fewerGemmConversionsForTest = fewer;
            for (int s = 0; s < STEPS; s++)
                try (Graph g = Graph.open().precision(Precision.BF16)) {
                    long[] c0 = emuCountersOrZeros();
                    Var l = t.loss(g, s);
                    long[] c1 = emuCountersOrZeros();
                    liveF[s] = Scope.liveDeviceBytes();
                    g.backward(l);
                    long[] c2 = emuCountersOrZeros();
                    liveB[s] = Scope.liveDeviceBytes();
                    losses[s] = F.item(l);
                    fwd[s] = c1[EMU_LAUNCH] - c0[EMU_LAUNCH];
                    bwd[s] = c2[EMU_LAUNCH] - c1[EMU_LAUNCH];
                    lt[s] = c1[EMU_LT_MATMUL] - c0[EMU_LT_MATMUL];
                    Map<String, float[]> gs = new LinkedHashMap<>();
                    for (var e : named.entrySet()) gs.put(e.getKey(), e.getValue().grad().value().toArray());
                    grads.add(gs);
                    opt.update(3e-3f, 1.0);
                }
        } finally {
            restoreConversionSwitches();
        }
        return new ConversionRun(losses, grads, fwd, bwd, lt, liveF, liveB, Scope.liveDeviceBytes() - before);
    }

    /**
     * Compares the per-operand run with the fewer-conversions run: the same bits, the same forward launches, per step
     * {@code savedLaunches} fewer backward launches (emulated driver), {@code keptBytes} more live after the forward and
     * the same after the backward, nothing left.
     */
    static void check(String what, ConversionRun old, ConversionRun now, long savedLaunches, long keptBytes, long fusedForwards) {
        System.out.printf("%s: losses %s; launches per step forward %d -> %d, backward %d -> %d; kept %d bytes%n", what,
                Arrays.toString(now.losses()), old.fwdLaunches()[STEPS - 1], now.fwdLaunches()[STEPS - 1], old.bwdLaunches()[STEPS - 1],
                now.bwdLaunches()[STEPS - 1], now.liveAfterForward()[STEPS - 1] - old.liveAfterForward()[STEPS - 1]);
        assertSameBits(what + ": ", old, now);
        for (int s = 0; s < STEPS; s++) {
            String at = what + ", step " + (s + 1);
            if (emulated()) {
                assertEquals(fusedForwards, now.vendorCalls()[s], at + ": forwards served by cuBLASLt's fused bias");
                assertEquals(old.fwdLaunches()[s], now.fwdLaunches()[s], at + ": the forward converts as before (into the kept block)");
                assertEquals(savedLaunches, old.bwdLaunches()[s] - now.bwdLaunches()[s],
                        at + ": backward conversion launches saved (" + old.bwdLaunches()[s] + " -> " + now.bwdLaunches()[s] + ")");
            }
            assertEquals(keptBytes, now.liveAfterForward()[s] - old.liveAfterForward()[s], at + ": the forward keeps its bf16 x and W, nothing else");
            assertEquals(old.liveAfterBackward()[s], now.liveAfterBackward()[s], at + ": the backward frees what the forward kept");
        }
        assertEquals(0, old.leftAfter(), what + ": device memory left after the per-operand run");
        assertEquals(0, now.leftAfter(), what + ": device memory left after the run (a kept block leaked)");
    }

    /** Bytes a linear (or matmul) x (n, in) @ W^T keeps: x's bf16 copy (rounded up to 256) and W's (out x in). */
    static long kept(long n, long in, long out) { return ((n * in * 2 + 255) & ~255L) + out * in * 2; }

    /** B sequences of cfg's context of learnable data (next id = id + 1) drawn from r, in a: {ids, targets}. */
    static MemorySegment[] learnableBatch(SplittableRandom r, GptConfig cfg, Arena a) {
        int n = B * cfg.context();
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(cfg.vocab()); targets[i] = (ids[i] + 1) % cfg.vocab(); }
        return new MemorySegment[] {a.allocateFrom(JAVA_INT, ids), a.allocateFrom(JAVA_INT, targets)};
    }

    static Function<Scope, Trainee> gpt(GptConfig cfg, MemorySegment ids, MemorySegment targets) {
        return model -> {
            Gpt gpt = new Gpt(model, cfg, 5);
            gpt.to(model, Device.CUDA);
            return new Trainee() {
                public Map<String, Var> parameters() { return gpt.namedParameters(); }

                public Var loss(Graph g, int step) { return gpt.loss(ids, targets, B, cfg.context()); }
            };
        };
    }

    /**
     * GPT (2 layers, C 32, context 16, batch 2) at BF16: 4 linears a layer and the head (a linear when untied, F.matmul
     * x wte^T when tied), every input wanting a gradient. With the vendors on (the stand-ins when emulated) cuBLASLt's
     * fused bias serves every linear's forward: 1 launch saved each; the tied head converts in its forward: 3. Our
     * kernels only: every forward converts, 3 saved each, and x and W are kept.
     */
    @Test
    void gptBf16StepSameBitsWithFewerConversionLaunches() {
        SplittableRandom r = new SplittableRandom(3);
        for (boolean tied : new boolean[] {false, true}) {
            GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, tied);
            int n = B * cfg.context();
            long c = cfg.dim();
            long perLayer = kept(n, c, 3 * c) + kept(n, c, c) + kept(n, c, 4 * c) + kept(n, 4 * c, c), head = kept(n, c, cfg.vocab());
            int linears = 4 * cfg.layers() + (tied ? 0 : 1);
            try (Arena a = Arena.ofConfined()) {
                MemorySegment[] batch = learnableBatch(r, cfg, a);
                MemorySegment hi = batch[0], ht = batch[1];
                for (boolean vendor : new boolean[] {true, false}) {
                    if (vendor && !vendorGemms()) continue;
                    String what = "GPT bf16, " + (tied ? "tied head" : "untied head") + ", " + (vendor ? "vendors" : "our kernels");
                    /* h-linconv's counts alone: the LayerNorms' and GELU's bf16 copies (h-bf16act, CudaBf16ActivationTest) off in both
                     * runs (train() turns them back on when done) */
                    CudaVendor.bf16GemmInputsForTest = false;
                    ConversionRun old = train(gpt(cfg, hi, ht), vendor, false);
                    CudaVendor.bf16GemmInputsForTest = false;
                    ConversionRun now = train(gpt(cfg, hi, ht), vendor, true);
                    long saved = vendor ? linears + (tied ? 3 : 0) : 3L * (linears + (tied ? 1 : 0));
                    long keptBytes = (vendor ? 0 : cfg.layers() * perLayer + (tied ? 0 : head)) + (tied ? head : 0);
                    check(what, old, now, saved, keptBytes, vendor ? linears : 0);
                }
            }
        }
    }

    /**
     * The convolutional VAE (latent 4, batch 2) at BF16: three linears (mu and logvar on the encoder's 3136 features, the
     * decoder's first layer on z), each input wanting a gradient; the convolutions are not GEMMs here.
     */
    @Test
    void vaeBf16StepSameBitsWithFewerConversionLaunches() {
        ImageData data = CudaPrecisionTest.images(B, 7);
        int latent = 4;
        Function<Scope, Trainee> vae = model -> {
            ConvVae m = new ConvVae(model, latent, 1);
            m.to(model, Device.CUDA);
            return new Trainee() {
                public Map<String, Var> parameters() { return m.namedParameters(); }

                public Var loss(Graph g, int step) {
                    Tensor x = Tensor.empty(g.scope(), B, 1, 28, 28);
                    data.fill(x, new int[] {1, 0}, 0, B, 1f / 255f, 0f, 0);
                    x = x.to(g.scope(), Device.CUDA);
                    Var[] h = m.encode(Var.constant(x));
                    F.Reparam rp = F.reparam(h[0], h[1], 1, 77 + step);
                    Var rec = F.bceWithLogitsSum(m.decode(rp.z()), x, 1f / B);
                    return F.add(rec, F.scale(rp.kl(), 1f / B));
                }
            };
        };
        for (boolean vendor : new boolean[] {true, false}) {
            if (vendor && !vendorGemms()) continue;
            ConversionRun old = train(vae, vendor, false), now = train(vae, vendor, true);
            check("VAE bf16, " + (vendor ? "vendors" : "our kernels"), old, now, vendor ? 3 : 9,
                    vendor ? 0 : 2 * kept(B, 3136, latent) + kept(B, latent, 3136), vendor ? 3 : 0);
        }
    }

    /** Whether cuBLAS and cuBLASLt serve now (always on the emulated driver's stand-ins); a real GPU without them skips those runs. */
    static boolean vendorGemms() {
        CudaVendor.force(true);
        try {
            boolean on = CudaVendor.bf16GemmUnavailable(Cuda.get()) == null && CudaVendor.blasLt(Cuda.get()) != null;
            if (emulated()) assertTrue(on, "the emulated driver's cuBLAS / cuBLASLt stand-ins: " + String.join("; ", CudaVendor.describe()));
            return on;
        } finally {
            CudaVendor.force(null);
        }
    }

    /**
     * A forward-only graph keeps x's and W's bf16 copies until it closes, then frees them; an inference graph, and a
     * graph where nothing wants a gradient, keep none; a linear whose input wants no gradient keeps only x (for dW).
     */
    @Test
    void keptOperandsOnlyWhereABackwardCanFollow() {
        long n = 3, in = 7, out = 5;
        long before = Scope.liveDeviceBytes();
        CudaVendor.force(false);   /* our kernels: the forward converts */
        try (Scope sc = Scope.shared()) {
            Var x = Var.input(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (n * in), 41), n, in));
            Var xc = Var.constant(x.value());
            Var w = Var.param(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (out * in), 42), out, in));
            Var wc = Var.constant(w.value());
            long y = n * out * 4;
            try (Graph g = Graph.open().precision(Precision.BF16)) {
                long live0 = Scope.liveDeviceBytes();
                F.linear(x, w, null);
                assertEquals(y + kept(n, in, out), Scope.liveDeviceBytes() - live0, "x and W kept (x padded to 256 bytes)");
                long live1 = Scope.liveDeviceBytes();
                F.linear(xc, w, null);
                assertEquals(y + ((n * in * 2 + 255) & ~255L), Scope.liveDeviceBytes() - live1, "x wants no gradient: only x kept, for dW");
                long live2 = Scope.liveDeviceBytes();
                F.linear(x, wc, null);
                assertEquals(y + out * in * 2, Scope.liveDeviceBytes() - live2, "W wants no gradient: only W kept, for dx");
                long live3 = Scope.liveDeviceBytes();
                F.linear(xc, wc, null);
                assertEquals(y, Scope.liveDeviceBytes() - live3, "nothing wants a gradient: nothing kept");
            }
            assertEquals(before + (n * in + out * in) * 4, Scope.liveDeviceBytes(), "the graph's close freed the kept blocks");
            try (Graph g = Graph.inference().precision(Precision.BF16)) {
                long live0 = Scope.liveDeviceBytes();
                F.linear(x, w, null);
                assertEquals(y, Scope.liveDeviceBytes() - live0, "no backward can follow: nothing kept");
            }
            try (Graph g = Graph.open().precision(Precision.FP32)) {
                long live0 = Scope.liveDeviceBytes();
                F.linear(x, w, null);
                assertEquals(y, Scope.liveDeviceBytes() - live0, "fp32 converts nothing: nothing kept");
            }
        } finally {
            CudaVendor.force(null);
        }
        assertEquals(before, Scope.liveDeviceBytes(), "nothing left after the graphs and the scope closed");
    }

    /**
     * Gemm.matmul / matmulBackward directly, on shapes off every tile (3 x 7 @ 7 x 5): results equal the separate
     * per-operand products bit for bit, with 1 conversion launch in the backward (dC) when A and B were kept, 3 when
     * nothing was, and a kept block of another product (other A) is not read (a mutant that ignored the key would give
     * the other A's gradient).
     */
    @Test
    void matmulBackwardReadsOnlyItsOwnKeptOperands() {
        long m = 3, k = 7, nn = 5;
        CudaVendor.force(false);
        try (Scope sc = Scope.shared()) {
            Tensor a = Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (m * k), 51), m, k);
            Tensor a2 = Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (m * k), 52), m, k);
            Tensor w = Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (nn * k), 53), nn, k);
            Tensor bT = w.transpose(0, 1);   /* B = W^T, as F.linear passes it */
            Tensor dc = Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (m * nn), 54), m, nn);
            /* the per-operand products */
            Tensor c0 = Tensor.empty(sc, Device.CUDA, m, nn), da0 = Tensor.empty(sc, Device.CUDA, m, k), dw0 = Tensor.empty(sc, Device.CUDA, nn, k);
            Gemm.matmul(a, bT, c0, 1f, 0f, Precision.BF16);
            Gemm.matmul(dc, w, da0, 1f, 0f, Precision.BF16);
            Gemm.matmul(dc.transpose(0, 1), a, dw0, 1f, 0f, Precision.BF16);
            /* kept for these operands */
            KeptOperands keep = new KeptOperands(sc);
            Tensor c1 = Tensor.empty(sc, Device.CUDA, m, nn), da1 = Tensor.empty(sc, Device.CUDA, m, k), dw1 = Tensor.empty(sc, Device.CUDA, nn, k);
            long[] e0 = emuCountersOrZeros();
            Gemm.matmul(a, bT, c1, Precision.BF16, keep, true, true);
            long[] e1 = emuCountersOrZeros();
            assertEquals(kept(m, k, nn), keep.byteSize(), "A's and B's bf16 copies");
            Gemm.matmulBackward(a, bT, dc, da1, null, dw1, Precision.BF16, keep);
            long[] e2 = emuCountersOrZeros();
            keep.release();
            assertFalse(keep.holds());
            assertArrayEquals(c0.toArray(), c1.toArray(), "forward into a kept block");
            assertArrayEquals(da0.toArray(), da1.toArray(), "dA from the kept B");
            assertArrayEquals(dw0.toArray(), dw1.toArray(), "dB^T from the kept A");
            if (emulated()) {
                assertEquals(3, e1[EMU_LAUNCH] - e0[EMU_LAUNCH], "forward: A and B converted, one GEMM");
                assertEquals(3, e2[EMU_LAUNCH] - e1[EMU_LAUNCH], "backward: dC converted once, two GEMMs");
            }
            /* a block kept for (a2, B): the backward of (a, B) must convert a itself (and B: the key names both) */
            KeptOperands other = new KeptOperands(sc);
            Gemm.matmul(a2, bT, Tensor.empty(sc, Device.CUDA, m, nn), Precision.BF16, other, true, true);
            Tensor da2 = Tensor.empty(sc, Device.CUDA, m, k), dw2 = Tensor.empty(sc, Device.CUDA, nn, k);
            long[] e3 = emuCountersOrZeros();
            Gemm.matmulBackward(a, bT, dc, da2, null, dw2, Precision.BF16, other);
            long[] e4 = emuCountersOrZeros();
            other.release();
            assertArrayEquals(da0.toArray(), da2.toArray(), "dA with another product's kept block");
            assertArrayEquals(dw0.toArray(), dw2.toArray(), "dB^T with another product's kept block: a converted, not a2's copy read");
            if (emulated()) assertEquals(5, e4[EMU_LAUNCH] - e3[EMU_LAUNCH], "backward without usable kept copies: dC, B, A converted, two GEMMs");
            /* db (row-major, F.matmul's) instead of dbt, no holder: dC still converted once */
            Tensor db3 = Tensor.empty(sc, Device.CUDA, k, nn), db0 = Tensor.empty(sc, Device.CUDA, k, nn);
            Gemm.matmul(a.transpose(0, 1), dc, db0, 1f, 0f, Precision.BF16);
            long[] e5 = emuCountersOrZeros();
            Gemm.matmulBackward(a, bT, dc, null, db3, null, Precision.BF16, null);
            long[] e6 = emuCountersOrZeros();
            assertArrayEquals(db0.toArray(), db3.toArray(), "dB = A^T dC");
            if (emulated()) assertEquals(3, e6[EMU_LAUNCH] - e5[EMU_LAUNCH], "dB alone: dC and A converted, one GEMM");
            assertThrows(IllegalArgumentException.class, () -> Gemm.matmulBackward(a, bT, dc, null, db3, dw2, Precision.BF16, null),
                    "db and dbt both given");
        } finally {
            CudaVendor.force(null);
        }
    }
}
