package dev.latent.cuda;

import dev.latent.ops.Gemm;
import dev.latent.ops.KeptOperands;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaGptFixture.restoreConversionSwitches;
import static dev.latent.cuda.CudaTesting.EMU_LAUNCH;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.emuCountersOrZeros;
import static dev.latent.cuda.CudaTesting.emulated;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Gemm.matmul's kept bf16 operands and Gemm.matmulBackward's single dC conversion on batched 3-D products (h-ce): strided
 * batches (A a column slice of a wider tensor, B a batched transpose), a 2-D operand broadcast over the batch (batch
 * stride 0: W^T for dA, or A for dB), and dB in B's transposed layout (dbt). Against the per-operand products (separate
 * Gemm.matmul calls, each converting its operands; CudaVendor.fewerGemmConversionsForTest = false for the same calls
 * through matmul / matmulBackward): every element bit-identical, with our kernels and with the vendor stand-ins; on the
 * emulated driver, launches per forward + backward before -> after (our kernels: 3 + 6 -> 3 + 3 with A and B kept,
 * 3 + 3 -> 3 + 2 for a broadcast operand's product). The gradient of a broadcast operand (a sum over the batch) is refused.
 */
class CudaBatchedGemmConversionTest {
    static final long BATCH = 3, M = 5, K = 7, N = 6;

    @BeforeAll
    static void setUp() { device(); }

    @AfterEach
    void restore() { restoreConversionSwitches(); }

    static Tensor cuda(Scope s, int seed, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        return Tensor.of(s, Device.CUDA, CudaTesting.fill((int) n, seed), shape);
    }

    /** The launches of a forward (C = A B, keeping what the gradients wanted read) and its backward; the results. */
    record Run(float[] c, float[] da, float[] db, long fwd, long bwd) {}

    /** C = A B and its gradients da (when wantA) and db or dbt (when wantB; dbt: B's gradient transposed) at BF16. */
    static Run run(Scope s, Tensor a, Tensor b, Tensor dc, boolean wantA, boolean wantB, boolean dbTransposed) {
        long[] cs = dc.shape();
        Tensor c = Tensor.empty(s, Device.CUDA, cs);
        Tensor da = wantA ? Tensor.empty(s, Device.CUDA, a.shape()) : null;
        long[] bs = b.shape().clone();
        if (dbTransposed) { long t = bs[bs.length - 1]; bs[bs.length - 1] = bs[bs.length - 2]; bs[bs.length - 2] = t; }
        Tensor db = wantB ? Tensor.empty(s, Device.CUDA, bs) : null;
        KeptOperands keep = new KeptOperands(s);
        long[] e0 = emuCountersOrZeros();
        Gemm.matmul(a, b, c, Precision.BF16, keep, wantB, wantA);   /* A's copy serves dB, B's serves dA */
        long[] e1 = emuCountersOrZeros();
        Gemm.matmulBackward(a, b, dc, da, dbTransposed ? null : db, dbTransposed ? db : null, Precision.BF16, keep);
        long[] e2 = emuCountersOrZeros();
        keep.release();
        return new Run(c.toArray(), da == null ? null : da.toArray(), db == null ? null : db.toArray(), e1[EMU_LAUNCH] - e0[EMU_LAUNCH],
                e2[EMU_LAUNCH] - e1[EMU_LAUNCH]);
    }

    /** The same run through separate per-operand Gemm.matmul calls (no holder, no shared dC copy). */
    static Run separate(Scope s, Tensor a, Tensor b, Tensor dc, boolean wantA, boolean wantB, boolean dbTransposed) {
        Tensor c = Tensor.empty(s, Device.CUDA, dc.shape());
        Gemm.matmul(a, b, c, 1f, 0f, Precision.BF16);
        float[] da = null, db = null;
        if (wantA) {
            Tensor t = Tensor.empty(s, Device.CUDA, a.shape());
            Gemm.matmul(dc, swap(b), t, 1f, 0f, Precision.BF16);
            da = t.toArray();
        }
        if (wantB) {
            Tensor t = Tensor.empty(s, Device.CUDA, dbTransposed ? swap(b).shape() : b.shape());
            if (dbTransposed) Gemm.matmul(swap(dc), a, t, 1f, 0f, Precision.BF16);
            else Gemm.matmul(swap(a), dc, t, 1f, 0f, Precision.BF16);
            db = t.toArray();
        }
        return new Run(c.toArray(), da, db, 0, 0);
    }

    static Tensor swap(Tensor t) { return t.transpose(t.rank() - 2, t.rank() - 1); }

    static void same(String what, Run want, Run got) {
        assertArrayEquals(want.c, got.c, what + ": C");
        if (want.da != null) assertArrayEquals(want.da, got.da, what + ": dA");
        if (want.db != null) assertArrayEquals(want.db, got.db, what + ": dB");
    }

    /** Each case with our kernels and with the vendor stand-ins: the bits of the separate products; launch counts (ours). */
    static void check(String what, Tensor a, Tensor b, Tensor dc, boolean wantA, boolean wantB, boolean dbt, long bwdBefore, long bwdAfter) {
        try (Scope s = Scope.shared()) {
            for (boolean vendor : new boolean[] {false, true}) {
                CudaVendor.force(vendor);
                Run want = separate(s, a, b, dc, wantA, wantB, dbt);
                CudaVendor.fewerGemmConversionsForTest = false;
                Run old = run(s, a, b, dc, wantA, wantB, dbt);
                CudaVendor.fewerGemmConversionsForTest = true;
                Run now = run(s, a, b, dc, wantA, wantB, dbt);
                String at = what + (vendor ? " (vendor stand-ins)" : " (our kernels)");
                same(at + ", per-operand path", want, old);
                same(at, want, now);
                if (!vendor && emulated()) {
                    System.out.printf("%s: launches forward %d -> %d, backward %d -> %d%n", what, old.fwd, now.fwd, old.bwd, now.bwd);
                    assertEquals(old.fwd, now.fwd, at + ": the forward converts as before (into the kept block)");
                    assertEquals(bwdBefore, old.bwd, at + ": backward launches per operand");
                    assertEquals(bwdAfter, now.bwd, at + ": backward launches with dC converted once and the kept copies read");
                }
            }
        } finally {
            CudaVendor.force(null);
        }
    }

    @Test
    void stridedBatches() {
        try (Scope s = Scope.shared()) {
            Tensor a = cuda(s, 61, BATCH, M, K + 2).slice(2, 1, 1 + K);   /* ld K + 2, batch stride M (K + 2) */
            Tensor b = swap(cuda(s, 62, BATCH, N, K));                     /* transposed, batch stride N K */
            Tensor dc = cuda(s, 63, BATCH, M, N);
            /* dA and dB: 2 GEMMs converting 2 operands each (6 launches) -> dC once, A's and B's copies read (3) */
            check("strided batches, dA and dB", a, b, dc, true, true, false, 6, 3);
            /* dB transposed (F.linear's dW layout) */
            check("strided batches, dA and dB^T", a, b, dc, true, true, true, 6, 3);
            /* dA alone: 1 GEMM, dC and B converted (3) -> dC converted, B's copy read (2) */
            check("strided batches, dA alone", a, b, dc, true, false, false, 3, 2);
        }
    }

    @Test
    void broadcastOperands() {
        try (Scope s = Scope.shared()) {
            Tensor a = cuda(s, 71, BATCH, M, K), w = swap(cuda(s, 72, N, K));   /* B = W^T (K, N), batch stride 0 */
            Tensor a2 = cuda(s, 73, M, K), b = cuda(s, 74, BATCH, K, N);          /* A broadcast, batch stride 0 */
            Tensor dc = cuda(s, 75, BATCH, M, N);
            check("broadcast B, dA", a, w, dc, true, false, false, 3, 2);
            check("broadcast A, dB", a2, b, dc, false, true, false, 3, 2);
            check("broadcast A, dB^T", a2, b, dc, false, true, true, 3, 2);
            Tensor dw = Tensor.empty(s, Device.CUDA, K, N), da2 = Tensor.empty(s, Device.CUDA, M, K);
            var e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmulBackward(a, w, dc, null, dw, null, Precision.BF16, null));
            assertTrue(e.getMessage().contains("broadcast"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Gemm.matmulBackward(a2, b, dc, da2, null, null, Precision.BF16, null));
            assertThrows(IllegalArgumentException.class, () -> Gemm.matmulBackward(a, b, cuda(s, 76, M, N), da2, null, null, Precision.BF16, null),
                    "a 2-D dC for a batched product");
        }
    }
}
