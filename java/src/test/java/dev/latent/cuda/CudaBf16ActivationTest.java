package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaGptFixture.ConversionRun;
import static dev.latent.cuda.CudaGptFixture.assertSameBits;
import static dev.latent.cuda.CudaGptFixture.restoreConversionSwitches;
import static dev.latent.cuda.CudaLinearConversionTest.B;
import static dev.latent.cuda.CudaLinearConversionTest.STEPS;
import static dev.latent.cuda.CudaLinearConversionTest.gpt;
import static dev.latent.cuda.CudaLinearConversionTest.learnableBatch;
import static dev.latent.cuda.CudaLinearConversionTest.train;
import static dev.latent.cuda.CudaLinearConversionTest.vendorGemms;
import static dev.latent.cuda.CudaTesting.EMU_LAUNCH;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.emuCountersOrZeros;
import static dev.latent.cuda.CudaTesting.emulated;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * bf16 GEMM inputs written by their producers (h-bf16act, issue 18): at BF16 on CUDA GPT's LayerNorms (ln_1, ln_2, ln_f:
 * plain and fused with the residual add), its MLP GELU and the permute of its attention output write the bf16 copy of
 * their output in the same kernel (ltk_layernorm_fwd_bf16, ltk_layernorm_residual_fwd_bf16, ltk_gelu_fwd_bf16,
 * ltk_copy_strided_bf16), and the linear (or the tied head's matmul)
 * reading that output as A uses it instead of converting it (ltk_f32_to_bf16): in the forward where the GEMM converts
 * (our kernels; the tied head's F.matmul), in the backward's dW = dy^T x where cuBLASLt's fused bias served the forward.
 * The copy is the same round to nearest even of the same fp32 values, so every loss and gradient must be bit-identical
 * to the run with the producers' writes off (CudaVendor.bf16GemmInputsForTest = false), with exactly one conversion
 * launch fewer per such GEMM and step (4 per layer + the head), and nothing left on the device afterwards.
 */
class CudaBf16ActivationTest {
    @BeforeAll
    static void setUp() { device(); }

    @AfterEach
    void restore() { restoreConversionSwitches(); }

    /** STEPS AdamW steps of GPT at BF16 (fewer GEMM conversions on, as by default) with the producers' bf16 writes on or off. */
    static ConversionRun run(GptConfig cfg, MemorySegment ids, MemorySegment targets, boolean vendor, boolean writes) {
        CudaVendor.bf16GemmInputsForTest = writes;   /* train() restores it when done */
        return train(gpt(cfg, ids, targets), vendor, true);
    }

    /**
     * GPT (2 layers, C 32, context 16, batch 2), untied and tied head, vendors (the stand-ins) and our kernels only: the
     * same bits; per step 2 L + 1 LayerNorm outputs, L GELU outputs and L permuted attention outputs feed a GEMM (c_attn,
     * c_fc, the MLP's and the attention's c_proj, the head), each
     * saving one ltk_f32_to_bf16 launch: in the forward where that GEMM converts (our kernels; the tied head's matmul
     * always, having no bias for cuBLASLt's epilogue), else in the backward (dW's x).
     */
    @Test
    void gptBf16StepSameBitsWithProducersWritingGemmInputs() {
        SplittableRandom r = new SplittableRandom(3);
        for (boolean tied : new boolean[] {false, true}) {
            GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, tied);
            long fed = 4L * cfg.layers() + 1;   /* GEMMs reading a producer's copy per step */
            try (Arena a = Arena.ofConfined()) {
                MemorySegment[] batch = learnableBatch(r, cfg, a);
                MemorySegment hi = batch[0], ht = batch[1];
                for (boolean vendor : new boolean[] {true, false}) {
                    if (vendor && !vendorGemms()) continue;
                    String what = "GPT bf16 producers' copies, " + (tied ? "tied head" : "untied head") + ", " + (vendor ? "vendors" : "our kernels");
                    ConversionRun old = run(cfg, hi, ht, vendor, false), now = run(cfg, hi, ht, vendor, true);
                    long savedFwd = vendor ? (tied ? 1 : 0) : fed, savedBwd = fed - savedFwd;
                    System.out.printf("%s: losses %s; launches per step forward %d -> %d, backward %d -> %d%n", what, Arrays.toString(now.losses()),
                            old.fwdLaunches()[STEPS - 1], now.fwdLaunches()[STEPS - 1], old.bwdLaunches()[STEPS - 1], now.bwdLaunches()[STEPS - 1]);
                    assertSameBits(what + ": ", old, now);
                    for (int s = 0; s < STEPS; s++) {
                        String at = what + ", step " + (s + 1);
                        if (emulated()) {
                            assertEquals(savedFwd, old.fwdLaunches()[s] - now.fwdLaunches()[s], at + ": forward conversion launches saved");
                            assertEquals(savedBwd, old.bwdLaunches()[s] - now.bwdLaunches()[s], at + ": backward conversion launches saved");
                        }
                        assertEquals(old.liveAfterBackward()[s], now.liveAfterBackward()[s], at + ": the backward released every copy");
                    }
                    assertEquals(0, now.leftAfter(), what + ": device memory left after the run (a copy leaked)");
                }
            }
        }
    }

    /**
     * GPT's logits in an inference graph at BF16 (our kernels: every linear converts in its forward): the same bits with the
     * producers' writes on, 4 L + 1 conversion launches fewer, every copy released once its GEMM has read it (live device
     * bytes after the forward as with the writes off), nothing left once the graph closes. At FP32 nothing is written:
     * the same launches and bytes either way.
     */
    @Test
    void inferenceAndFp32() {
        GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, false);
        int n = B * cfg.context();
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = (i * 7) % cfg.vocab();
        long before = Scope.liveDeviceBytes();
        try (Arena a = Arena.ofConfined(); Scope model = Scope.shared()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids);
            Gpt gpt = new Gpt(model, cfg, 5);
            gpt.to(model, Device.CUDA);
            CudaVendor.force(false);
            for (Precision p : new Precision[] {Precision.BF16, Precision.FP32}) {
                float[][] logits = new float[2][];
                long[] launches = new long[2], live = new long[2];
                for (int w = 0; w < 2; w++) {
                    CudaVendor.bf16GemmInputsForTest = w == 1;
                    try (Graph g = Graph.inference().precision(p)) {
                        long live0 = Scope.liveDeviceBytes(), c0 = emuCountersOrZeros()[EMU_LAUNCH];
                        Var l = gpt.logits(hi, B, cfg.context());
                        launches[w] = emuCountersOrZeros()[EMU_LAUNCH] - c0;
                        live[w] = Scope.liveDeviceBytes() - live0;
                        logits[w] = l.value().toArray();
                    }
                }
                String what = "GPT inference at " + p.id();
                assertArrayEquals(logits[0], logits[1], what + ": logits with the producers' copies");
                if (emulated()) assertEquals(p == Precision.BF16 ? 4L * cfg.layers() + 1 : 0, launches[0] - launches[1], what + ": launches saved");
                assertEquals(live[0], live[1], what + ": live device bytes after the forward (copies released after their GEMM)");
            }
        } finally {
            restoreConversionSwitches();
        }
        assertEquals(before, Scope.liveDeviceBytes(), "nothing left after the graphs and the scope closed");
    }

    /**
     * F.layerNorm with gemmInput on a CUDA tensor at BF16 feeding F.linear on odd sizes (5 x 7 -> 3), in a recording
     * graph: y and the linear's output and gradients bit-identical to the run without the copy, and the copy is released
     * by the linear's backward (live bytes after the backward equal); a LayerNorm with gemmInput whose output no GEMM
     * reads keeps its copy only until the graph closes.
     */
    @Test
    void layerNormFeedingLinearOnOddSizes() {
        long rows = 5, c = 7, out = 3;
        long before = Scope.liveDeviceBytes();
        CudaVendor.force(false);
        try (Scope sc = Scope.shared()) {
            Tensor xt = Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (rows * c), 51), rows, c);
            Var lw = Var.param(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) c, 52), c));
            Var lb = Var.param(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) c, 53), c));
            Var w = Var.param(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (out * c), 54), out, c));
            float[][] y = new float[2][], o = new float[2][], dw = new float[2][], dlw = new float[2][];
            long[] liveB = new long[2];
            for (int k = 0; k < 2; k++) {
                CudaVendor.bf16GemmInputsForTest = k == 1;
                try (Graph g = Graph.open().precision(Precision.BF16)) {
                    Var x = Var.input(xt);
                    Var h = F.layerNorm(x, lw, lb, 1e-5f, true);
                    Var lin = F.linear(h, w, null);
                    y[k] = h.value().toArray();
                    o[k] = lin.value().toArray();
                    g.backward(F.sum(lin));
                    liveB[k] = Scope.liveDeviceBytes();
                    dw[k] = w.grad().value().toArray();
                    dlw[k] = lw.grad().value().toArray();
                }
                w.zeroGrad();
                lw.zeroGrad();
                lb.zeroGrad();
            }
            assertArrayEquals(y[0], y[1], "LayerNorm's fp32 output");
            assertArrayEquals(o[0], o[1], "the linear's output");
            assertArrayEquals(dw[0], dw[1], "dW (read the producer's copy)");
            assertArrayEquals(dlw[0], dlw[1], "LayerNorm's dw");
            assertEquals(liveB[0], liveB[1], "the linear's backward released the copy");
            try (Graph g = Graph.open().precision(Precision.BF16)) {
                long live0 = Scope.liveDeviceBytes();
                F.layerNorm(Var.input(xt), lw, lb, 1e-5f, true);
                assertEquals(rows * c * 4 + 2 * rows * 4 + rows * c * 2, Scope.liveDeviceBytes() - live0, "y, mean, rstd and y's bf16 copy");
            }
        } finally {
            restoreConversionSwitches();
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the unread copy freed with its graph");
    }
}
