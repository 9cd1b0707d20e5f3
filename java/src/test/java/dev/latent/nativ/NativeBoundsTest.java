package dev.latent.nativ;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 17: raw segments too small for what a kernel would touch are refused in Java, naming the op, the argument
 * and the sizes, instead of corrupting the heap or segfaulting the JVM. Each case here crashed the JVM before.
 */
class NativeBoundsTest {
    static final LatentNative N = LatentNative.get();

    static String refused(Executable call, String... fragments) {
        String m = assertThrows(IllegalArgumentException.class, call).getMessage();
        for (String f : fragments) assertTrue(m.contains(f), "message lacks '" + f + "': " + m);
        return m;
    }

    @Test
    void theIssuesCrashesAreRefused() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s16 = a.allocate(16), s64 = a.allocate(64);
            refused(() -> N.geluFwd(1L << 34, s16, s16), "lt_gelu_fwd", "x", "17179869184", "16 bytes");
            refused(() -> N.axpby(4096, 1f, s16, 1f, s16), "lt_axpby", "x", "16384 bytes", "holds 16 bytes");
            MemorySegment d = a.allocate(LatentNative.GEMM_DESC);
            gemmDesc(d, 100000, 100000, 4, 4, 100000, 100000);
            refused(() -> N.gemm(d, s64, s64, s64), "lt_gemm", "a (m=100000");
            refused(() -> N.gemm(a.allocate(8), s64, s64, s64), "lt_gemm", "descriptor", "8 bytes", "needs 96");
            refused(() -> N.gemm(MemorySegment.NULL, s64, s64, s64), "lt_gemm", "descriptor is NULL");
        }
    }

    static void gemmDesc(MemorySegment d, long m, long n, long k, long lda, long ldb, long ldc) {
        d.fill((byte) 0);
        d.set(JAVA_LONG, 8, m); d.set(JAVA_LONG, 16, n); d.set(JAVA_LONG, 24, k);
        d.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 32, 1f);
        d.set(JAVA_LONG, 40, lda); d.set(JAVA_LONG, 48, ldb); d.set(JAVA_LONG, 56, ldc); d.set(JAVA_LONG, 64, 1);
    }

    @Test
    void gemmExtentsFollowTransposesLeadingDimensionsAndBatches() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = a.allocate(LatentNative.GEMM_DESC);
            MemorySegment a12 = a.allocate(12 * 4), big = a.allocate(4096);
            gemmDesc(d, 3, 4, 4, 4, 4, 4);          // A 3x4 fits 12 floats, B 4x4, C 3x4
            N.gemm(d, a12, big, big);
            gemmDesc(d, 3, 4, 4, 5, 4, 4);          // lda 5: A spans 2*5+4 = 14 floats
            refused(() -> N.gemm(d, a12, big, big), "lt_gemm", "a (m=3", "56 bytes", "holds 48");
            gemmDesc(d, 3, 4, 4, 3, 4, 4);          // trans_a: A is 4x3 with lda 3 = 12 floats
            d.set(JAVA_INT, 0, 1);
            N.gemm(d, a12, big, big);
            gemmDesc(d, 4, 4, 4, 4, 4, 4);          // C 4x4 = 64 bytes into 48
            refused(() -> N.gemm(d, big, big, a12), "lt_gemm", "c (m=4", "holds 48");
            gemmDesc(d, 2, 2, 2, 2, 2, 2);          // batch 3 with stride_c 4: C spans 2*4+4 = 12 floats
            d.set(JAVA_LONG, 64, 3); d.set(JAVA_LONG, 88, 4);
            N.gemm(d, big, big, a12);
            d.set(JAVA_LONG, 88, 5);                 // 2*5+4 = 14 floats
            refused(() -> N.gemm(d, big, big, a12), "lt_gemm", "c (m=2");
            d.set(JAVA_LONG, 88, Long.MAX_VALUE / 2);
            refused(() -> N.gemm(d, big, big, big), "lt_gemm", "overflows");
            gemmDesc(d, -1, 2, 2, 2, 2, 2);
            refused(() -> N.gemm(d, big, big, big), "lt_gemm", "m=-1");
        }
    }

    @Test
    void everyElementwiseAndRowKernelChecksEveryArgument() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s8 = a.allocate(8), ok = a.allocate(1 << 16);
            long n = 100;
            refused(() -> N.geluFwd(n, ok, s8), "lt_gelu_fwd", "y");
            refused(() -> N.geluBwd(n, ok, s8, ok), "lt_gelu_bwd", "dy");
            refused(() -> N.geluBwd(n, ok, ok, s8), "lt_gelu_bwd", "dx");
            refused(() -> N.axpby(n, 1f, ok, 1f, s8), "lt_axpby", "y");
            refused(() -> N.mul(n, ok, s8, ok), "lt_mul", "z");
            refused(() -> N.actFwd(LatentNative.ACT_TANH, n, 0f, s8, ok), "lt_act_fwd", "x");
            refused(() -> N.actBwd(LatentNative.ACT_RELU, n, 0f, ok, ok, s8), "lt_act_bwd", "dx");
            refused(() -> N.randUniform(s8, n, 1, 0), "lt_rand_uniform", "out");
            refused(() -> N.sumsq(n, s8, ok), "lt_sumsq", "x");
            refused(() -> N.sumsq(1, ok, a.allocate(4)), "lt_sumsq", "out");
            refused(() -> N.addRows(10, 10, 3, ok, s8, ok), "lt_add_rows", "rows");
            refused(() -> N.sumRows(10, 10, 3, ok, s8), "lt_sum_rows", "out");
            refused(() -> N.layernormFwd(10, 10, 1e-5f, ok, ok, ok, ok, ok, s8), "lt_layernorm_fwd", "rstd");
            refused(() -> N.layernormBwd(10, 10, ok, s8, ok, ok, ok, ok, ok, ok), "lt_layernorm_bwd", "w");
            refused(() -> N.softmaxXent(10, 10, ok, s8, ok, MemorySegment.NULL, 1f), "lt_softmax_xent", "targets");
            refused(() -> N.softmaxXent(10, 10, s8, ok, ok, MemorySegment.NULL, 1f), "lt_softmax_xent", "logits");
            refused(() -> N.embeddingBwd(10, 10, 10000, ok, ok, ok), "lt_embedding_bwd", "dtable");
            refused(() -> N.reparamFwd(n, ok, ok, 1, 0, s8, MemorySegment.NULL), "lt_reparam_fwd", "z");
            refused(() -> N.reparamBwd(n, ok, ok, 1, 0, ok, 0f, ok, s8), "lt_reparam_bwd", "dlogvar");
            refused(() -> N.batchnorm2dFwdTrain(2, 3, 4, 1e-5f, 0.1f, ok, ok, ok, s8, ok, ok, MemorySegment.NULL, MemorySegment.NULL),
                    "lt_batchnorm2d_fwd_train", "y");
            refused(() -> N.batchnorm2dFwdInfer(2, 3, 4, 1e-5f, ok, ok, ok, ok, a.allocate(8), ok), "lt_batchnorm2d_fwd_infer", "var");
            refused(() -> N.batchnorm2dBwd(2, 3, 4, ok, ok, ok, ok, ok, ok, s8, MemorySegment.NULL), "lt_batchnorm2d_bwd", "dgamma");
            refused(() -> N.bceLogits(n, ok, s8, 0f, MemorySegment.NULL, MemorySegment.NULL, 1f), "lt_bce_logits", "targets");
            refused(() -> N.bceLogits(1, ok, MemorySegment.NULL, 0f, a.allocate(4), MemorySegment.NULL, 1f), "lt_bce_logits", "loss");
            refused(() -> N.couplingFwd(2, 8, ok, ok, s8, 1f, ok, ok), "lt_coupling_fwd", "h");
            refused(() -> N.couplingInv(2, 8, s8, ok, ok, 1f, ok), "lt_coupling_inv", "mask");
            refused(() -> N.couplingBwd(2, 8, ok, ok, ok, 1f, ok, ok, ok, ok, a.allocate(4)), "lt_coupling_bwd", "dscale");
            refused(() -> N.adamw(a.allocate(LatentNative.ADAMW_DESC), n, ok, ok, s8, ok), "lt_adamw", "m");
            refused(() -> N.adamw(s8, n, ok, ok, ok, ok), "lt_adamw", "descriptor");
            refused(() -> N.geluFwd(-1, ok, ok), "lt_gelu_fwd", ">= 0");
            refused(() -> N.mul(Long.MAX_VALUE, ok, ok, ok), "lt_mul", "x");
            refused(() -> N.addRows(Long.MAX_VALUE, Long.MAX_VALUE, 1, ok, ok, ok), "lt_add_rows", "overflow");
        }
    }

    @Test
    void descriptorKernelsCheckTheirExtents() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ok = a.allocate(1 << 16), s8 = a.allocate(8);
            MemorySegment att = a.allocate(LatentNative.ATTENTION_DESC);
            att.set(JAVA_LONG, 0, 1000); att.set(JAVA_LONG, 8, 4); att.set(JAVA_LONG, 16, 64); att.set(JAVA_LONG, 24, 16);
            refused(() -> N.attentionFwd(att, ok, ok, ok, ok, ok), "lt_attention_fwd", "q (b=1000");
            refused(() -> N.attentionFwd(s8, ok, ok, ok, ok, ok), "lt_attention_fwd", "descriptor");
            att.set(JAVA_LONG, 0, 1);
            refused(() -> N.attentionBwd(att, ok, ok, ok, ok, ok, ok, ok, ok, s8), "lt_attention_bwd", "dv");
            MemorySegment conv = a.allocate(LatentNative.CONV2D_DESC);
            long[] v = {2, 3, 8, 8, 4, 3, 3, 6, 6};
            for (int i = 0; i < v.length; i++) conv.set(JAVA_LONG, 8L * i, v[i]);
            conv.set(JAVA_INT, 72, 1); conv.set(JAVA_INT, 76, 1);
            MemorySegment x = a.allocate(2 * 3 * 64 * 4), w = a.allocate(4 * 3 * 9 * 4), y = a.allocate(2 * 4 * 36 * 4);
            N.conv2dFwd(conv, x, w, MemorySegment.NULL, y);
            refused(() -> N.conv2dFwd(conv, x, w, MemorySegment.NULL, s8), "lt_conv2d_fwd", "y (n=2");
            refused(() -> N.conv2dFwd(conv, s8, w, MemorySegment.NULL, y), "lt_conv2d_fwd", "x (n=2");
            refused(() -> N.conv2dFwd(conv, x, w, s8, y), "lt_conv2d_fwd", "bias");
            refused(() -> N.conv2dBwdData(conv, y, s8, MemorySegment.NULL, x), "lt_conv2d_bwd_data", "w (k=4");
            refused(() -> N.conv2dBwdWeight(conv, x, y, s8, MemorySegment.NULL, false), "lt_conv2d_bwd_weight", "dw");
            refused(() -> N.conv2dFwd(a.allocate(16), x, w, MemorySegment.NULL, y), "lt_conv2d_fwd", "descriptor");
            // the bf16 entry points check the same bounds in Java before any call (so on any CPU)
            refused(() -> N.conv2dFwdBf16(conv, x, w, MemorySegment.NULL, s8), "lt_conv2d_fwd_bf16", "y (n=2");
            refused(() -> N.conv2dBwdDataBf16(conv, y, w, s8, x), "lt_conv2d_bwd_data_bf16", "bias (c=3");
            refused(() -> N.conv2dBwdWeightBf16(conv, s8, y, w, MemorySegment.NULL, false), "lt_conv2d_bwd_weight_bf16", "x (n=2");
            MemorySegment cp = a.allocate(LatentNative.COPY_DESC);
            cp.set(JAVA_INT, 0, 2);
            cp.set(JAVA_LONG, 8, 4); cp.set(JAVA_LONG, 16, 4);
            cp.set(JAVA_LONG, 56, 100); cp.set(JAVA_LONG, 64, 1);    // src strides: spans 3*100+3+1 floats
            cp.set(JAVA_LONG, 104, 4); cp.set(JAVA_LONG, 112, 1);
            refused(() -> N.copyStrided(cp, a.allocate(64), ok), "lt_copy_strided", "src");
            refused(() -> N.copyStrided(cp, ok, s8), "lt_copy_strided", "dst");
            N.copyStrided(cp, ok, a.allocate(64));
            cp.set(JAVA_INT, 0, 7);
            refused(() -> N.copyStrided(cp, ok, ok), "lt_copy_strided", "rank 7");
        }
    }

    @Test
    void nullSegmentsStillReachTheLibrarysOwnChecks() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ok = a.allocate(1024);
            var e = assertThrows(NativeException.class, () -> N.geluFwd(4, MemorySegment.NULL, ok));
            assertTrue(e.getMessage().contains("NULL"), e.getMessage());
            N.geluFwd(0, MemorySegment.NULL, MemorySegment.NULL);   // nothing touched: allowed
            refused(() -> N.geluFwd(4, null, ok), "lt_gelu_fwd", "null");
        }
    }
}
