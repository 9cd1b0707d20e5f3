package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.ops.AttentionKernels;
import dev.latent.ops.KeptOperands;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaGptFixture.B;
import static dev.latent.cuda.CudaGptFixture.CFG;
import static dev.latent.cuda.CudaGptFixture.ConversionRun;
import static dev.latent.cuda.CudaGptFixture.assertSameBits;
import static dev.latent.cuda.CudaGptFixture.restoreConversionSwitches;
import static dev.latent.cuda.CudaTesting.EMU_LAUNCH;
import static dev.latent.cuda.CudaTesting.EMU_SDPA_BWD;
import static dev.latent.cuda.CudaTesting.EMU_SDPA_FWD;
import static dev.latent.cuda.CudaTesting.deviceWithSdpa;
import static dev.latent.cuda.CudaTesting.emuCountersOrZeros;
import static dev.latent.cuda.CudaTesting.emulated;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Fewer bf16 conversions around cuDNN's SDPA in the bf16 model path (h-sdpaconv, issue 18). CudaBackend.vendorAttention
 * now converts F.attention's packed q, k, v in one launch, widens the packed dq, dk, dv in one, and the forward keeps its
 * bf16 q, k, v and cuDNN's bf16 o (KeptOperands, in the graph's scope) for the backward, which then converts only dout:
 * per layer and step 2 + 2 conversion launches instead of 4 + 8. Each conversion is the same exact RNE of the same fp32
 * values, so GPT's losses and every gradient must be bit-identical to the per-operand path (CudaVendor's test switch),
 * and the emulated driver's launch counter must show exactly 2 launches per layer fewer in each forward and 6 fewer in
 * each backward. The kept block (4 x 2 n bytes a layer, n = B NH T HS) must be live between the forward and the
 * backward, freed by the backward, and nothing may be left once the graph closes (with or without a backward).
 */
class CudaSdpaConversionTest {
    static final int STEPS = 3;

    static Cuda cu;

    @BeforeAll
    static void setUp() { cu = deviceWithSdpa(); }

    @AfterEach
    void restore() { restoreConversionSwitches(); }

    static long[] counters() { return emuCountersOrZeros(); }

    /** STEPS GPT steps on CUDA at BF16 ({@link CudaGptFixture}) with the vendor on, the fewer conversions on or off. */
    static ConversionRun train(boolean fewer) {
        long[] liveF = new long[STEPS], liveB = new long[STEPS];
        long before = Scope.liveDeviceBytes();
        CudaGptFixture.Run r;
        CudaVendor.fewerSdpaConversionsForTest = fewer;
        try {
            r = CudaGptFixture.train(CFG, Precision.BF16, STEPS, new CudaGptFixture.Hooks() {
                @Override public void beforeForward(int step) { CudaVendor.force(true); }

                @Override public void beforeBackward(int step) { liveF[step] = Scope.liveDeviceBytes(); }

                @Override public void afterBackward(int step) { liveB[step] = Scope.liveDeviceBytes(); }
            });
        } finally {
            restoreConversionSwitches();
        }
        long[] fwd = new long[STEPS], bwd = new long[STEPS], sdpa = new long[STEPS];
        for (int s = 0; s < STEPS; s++) {
            fwd[s] = r.forward(s, EMU_LAUNCH);
            bwd[s] = r.backward(s, EMU_LAUNCH);
            sdpa[s] = r.forward(s, EMU_SDPA_FWD) + r.backward(s, EMU_SDPA_FWD) + r.forward(s, EMU_SDPA_BWD) + r.backward(s, EMU_SDPA_BWD);
        }
        return new ConversionRun(r.losses(), r.grads(), fwd, bwd, sdpa, liveF, liveB, Scope.liveDeviceBytes() - before);
    }

    @Test
    void gptBf16StepSameBitsWithFewerConversionLaunches() {
        ConversionRun old = train(false), now = train(true);
        System.out.printf("GPT bf16 on cuDNN's SDPA (the stand-in when emulated), losses %s; launches per step forward %d -> %d, backward %d -> %d%n",
                java.util.Arrays.toString(now.losses()), old.fwdLaunches()[STEPS - 1], now.fwdLaunches()[STEPS - 1],
                old.bwdLaunches()[STEPS - 1], now.bwdLaunches()[STEPS - 1]);
        assertSameBits("", old, now);
        long n = (long) B * CFG.heads() * CFG.context() * (CFG.dim() / CFG.heads());
        for (int s = 0; s < STEPS; s++) {
            if (emulated()) {
                assertEquals(2L * CFG.layers(), now.vendorCalls()[s], "step " + (s + 1) + ": one SDPA forward and one backward per layer");
                assertEquals(2L * CFG.layers(), old.vendorCalls()[s], "step " + (s + 1) + ": the per-operand path on SDPA too");
                assertEquals(2L * CFG.layers(), old.fwdLaunches()[s] - now.fwdLaunches()[s],
                        "step " + (s + 1) + "'s forward: q, k, v in one conversion instead of three, per layer ("
                                + old.fwdLaunches()[s] + " -> " + now.fwdLaunches()[s] + " launches)");
                assertEquals(6L * CFG.layers(), old.bwdLaunches()[s] - now.bwdLaunches()[s],
                        "step " + (s + 1) + "'s backward: dout converted and dq, dk, dv widened in one, the forward's q, k, v, o"
                                + " reused: 2 launches instead of 8 per layer (" + old.bwdLaunches()[s] + " -> " + now.bwdLaunches()[s] + ")");
            }
            assertEquals(CFG.layers() * 4 * 2 * n, now.liveAfterForward()[s] - old.liveAfterForward()[s],
                    "step " + (s + 1) + ": the forward keeps 4 bf16 operands (q, k, v, o) per layer for the backward, nothing else");
            assertEquals(old.liveAfterBackward()[s], now.liveAfterBackward()[s], "step " + (s + 1) + ": the backward frees what the forward kept");
        }
        assertEquals(0, old.leftAfter(), "device memory left after the per-operand run");
        assertEquals(0, now.leftAfter(), "device memory left after the run (a kept block leaked)");
    }

    /** A forward-only graph (no backward ever runs) keeps its blocks until it closes, then frees them; an inference graph keeps none. */
    @Test
    void keptOperandsFreedWhenTheGraphClosesWithoutBackward() {
        long[] shape = {2, 2, 16, 16};
        long n = shape[0] * shape[1] * shape[2] * shape[3];
        long before = Scope.liveDeviceBytes();
        CudaVendor.force(true);
        try (Scope sc = Scope.shared()) {
            Var qkv = Var.param(Tensor.of(sc, Device.CUDA, CudaTesting.fill((int) (3 * n), 21), 3, shape[0], shape[1], shape[2], shape[3]));
            long live0;
            try (Graph g = Graph.open().precision(Precision.BF16)) {
                live0 = Scope.liveDeviceBytes();
                F.attention(qkv, true);
                long kept = Scope.liveDeviceBytes() - live0 - 4 * n - 4 * n / shape[3];   /* minus o and lse */
                assertEquals(4 * 2 * n, kept, "the forward keeps q, k, v, o in bf16 for a backward");
            }
            try (Graph g = Graph.inference().precision(Precision.BF16)) {
                long live1 = Scope.liveDeviceBytes();
                F.attention(qkv, true);
                assertEquals(4 * n + 4 * n / shape[3], Scope.liveDeviceBytes() - live1, "no backward can follow: nothing kept");
            }
        } finally {
            CudaVendor.force(null);
        }
        assertEquals(before, Scope.liveDeviceBytes(), "nothing left after the graphs and the scope closed");
    }

    /**
     * The packed path must be taken only for q, k, v adjacent in that order: k, q, v slices of one packed tensor (out of
     * order) and three separate tensors give the same bits as the packed call on the same values, through cuDNN's SDPA
     * forward and backward with a kept block; a packed call makes 2 launches fewer in the forward than separate tensors.
     */
    @Test
    void packedConversionOnlyForAdjacentSlicesInOrder() {
        long[] shape = {2, 2, 16, 16};
        int n = (int) (shape[0] * shape[1] * shape[2] * shape[3]);
        float[] data = CudaTesting.fill(3 * n, 31), dout = CudaTesting.fill(n, 32);
        CudaVendor.force(true);
        try (Scope sc = Scope.shared()) {
            Tensor p = Tensor.of(sc, Device.CUDA, data, 3, shape[0], shape[1], shape[2], shape[3]);
            Tensor[] slices = new Tensor[3], separate = new Tensor[3];
            for (int i = 0; i < 3; i++) {
                slices[i] = p.slice(0, i, i + 1).reshape(shape);
                separate[i] = Tensor.of(sc, Device.CUDA, java.util.Arrays.copyOfRange(data, i * n, (i + 1) * n), shape);
            }
            long[] c0 = counters();
            float[] packed = attention(sc, slices[0], slices[1], slices[2], dout, shape);
            long[] c1 = counters();
            float[] apart = attention(sc, separate[0], separate[1], separate[2], dout, shape);
            long[] c2 = counters();
            assertArrayEquals(apart, packed, "packed q, k, v vs separate tensors: the same bf16 values");
            if (emulated()) {
                assertEquals(2, c1[EMU_SDPA_FWD] - c0[EMU_SDPA_FWD] + c1[EMU_SDPA_BWD] - c0[EMU_SDPA_BWD], "packed: on SDPA");
                assertEquals(2, (c2[EMU_LAUNCH] - c1[EMU_LAUNCH]) - (c1[EMU_LAUNCH] - c0[EMU_LAUNCH]),
                        "separate q, k, v: 3 conversions in the forward instead of 1 (the backward reuses the kept block either way)");
            }
            float[] swappedPacked = attention(sc, slices[1], slices[0], slices[2], dout, shape);
            float[] swappedApart = attention(sc, separate[1], separate[0], separate[2], dout, shape);
            assertArrayEquals(swappedApart, swappedPacked, "k, q, v slices of one tensor are not one packed run in order");
            assertFalse(java.util.Arrays.equals(packed, swappedPacked), "swapping q and k changes the attention");
        } finally {
            CudaVendor.force(null);
        }
    }

    /** o, lse, dq, dk, dv of one forward + backward at BF16 with a kept block (dq, dk, dv adjacent in one packed gradient). */
    static float[] attention(Scope sc, Tensor q, Tensor k, Tensor v, float[] doutData, long[] shape) {
        int n = (int) q.numel();
        float scale = (float) (1 / Math.sqrt(shape[3]));
        Tensor dout = Tensor.of(sc, Device.CUDA, doutData, shape);
        Tensor o = Tensor.zeros(sc, Device.CUDA, shape), lse = Tensor.zeros(sc, Device.CUDA, shape[0], shape[1], shape[2]);
        Tensor d = Tensor.zeros(sc, Device.CUDA, 3, shape[0], shape[1], shape[2], shape[3]);
        Tensor dq = d.slice(0, 0, 1).reshape(shape), dk = d.slice(0, 1, 2).reshape(shape), dv = d.slice(0, 2, 3).reshape(shape);
        KeptOperands keep = new KeptOperands(sc);
        AttentionKernels.attention(q, k, v, true, scale, o, lse, Precision.BF16, keep);
        assertTrue(keep.holds(), "cuDNN's SDPA served the forward and kept its bf16 operands");
        AttentionKernels.attentionBackward(q, k, v, o, lse, dout, true, scale, dq, dk, dv, Precision.BF16, keep);
        keep.release();
        assertFalse(keep.holds());
        float[] all = new float[4 * n + n / (int) shape[3]];
        System.arraycopy(o.toArray(), 0, all, 0, n);
        System.arraycopy(d.toArray(), 0, all, n, 3 * n);
        System.arraycopy(lse.toArray(), 0, all, 4 * n, n / (int) shape[3]);
        return all;
    }
}
