package dev.latent.models;

import dev.latent.tensor.Precision;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.AttentionKernels;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * bf16 mixed precision for the GPT (issue 15): the linear layers' forward and backward GEMMs with bf16 operands
 * (round to nearest even, fp32 accumulation), everything else fp32. Tests that run bf16 need AVX512_BF16 and skip with
 * the reason on a CPU without it; the refusals run everywhere.
 */
class Bf16TrainingTest {
    static final CharTokenizer TOK = CharTokenizer.train(GptTest.TEXT);
    static final TextData DATA = new TextData(TOK.encode(GptTest.TEXT));
    static final GptConfig CFG = new GptConfig(TOK.vocabSize(), 2, 2, 32, 32, false);

    static void needBf16() {
        String why = Gemm.bf16Unavailable();
        assumeTrue(why == null, () -> "skipped: " + why);
    }

    static Map<String, Object> train(Path out, Precision p, int steps) throws IOException {
        try (Scope s = Scope.shared()) {
            return GptTrainer.train(new Gpt(s, CFG, 7), TOK, DATA, GptTest.opts(steps).withPrecision(p), out, false, s);
        }
    }

    static double num(Map<String, Object> m, String k) { return ((Number) m.get(k)).doubleValue(); }

    /** Loss of one batch, and the gradient of the first block's attention weight, at a precision. */
    static float[][] lossAndGrad(Gpt m, Precision p) {
        int b = 4, t = CFG.context();
        try (Arena a = Arena.ofConfined(); Graph g = Graph.open().precision(p)) {
            MemorySegment x = a.allocate(JAVA_INT, (long) b * t), y = a.allocate(JAVA_INT, (long) b * t);
            TextData.batch(DATA.train, b, t, 7, 0, x, y);
            Var l = m.loss(x, y, b, t);
            g.backward(l);
            var w = m.namedParameters().values().stream().filter(v -> v.value().rank() == 2 && v.grad() != null).toList();
            float[] grad = w.get(w.size() / 2).grad().value().toArray();
            return new float[][] {{F.item(l)}, grad};
        }
    }

    /**
     * Same weights, one step: the bf16 loss and gradients differ from fp32 (so bf16 really runs) by what bf16 rounding
     * allows. Each operand rounds with relative error <= 2^-8 (8 significant bits, RNE), a product <= 2^-7; a GEMM's
     * error is <= 2^-7 sum|a b| per element. With 2 blocks and the head, and logits whose sum|a b| is ~ their size,
     * the loss (~ ln vocab ~ 3.3) moves by a few 2^-7 relative at most: 2^-5 * loss is a safe bound; the gradient,
     * a chain of ~6 GEMMs, within 2^-3 of its norm (measured: far less).
     */
    @Test
    void oneStepLossAndGradientsAreCloseButNotEqual() {
        needBf16();
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, CFG, 7);
            float[][] f = lossAndGrad(m, Precision.FP32), h = lossAndGrad(m, Precision.BF16);
            double lf = f[0][0], lh = h[0][0];
            assertNotEquals(lf, lh, "bf16 must change the loss's bits (else the GEMMs did not run in bf16)");
            assertEquals(lf, lh, Math.scalb(lf, -5), "one-step loss, fp32 " + lf + " vs bf16 " + lh);
            double d = 0, n = 0;
            for (int i = 0; i < f[1].length; i++) { d += Math.pow(f[1][i] - h[1][i], 2); n += Math.pow(f[1][i], 2); }
            assertTrue(d > 0, "bf16 must change the gradient (the backward GEMMs run in bf16 too)");
            assertTrue(Math.sqrt(d) <= Math.sqrt(n) / 8, "gradient relative difference " + Math.sqrt(d / n));
        }
    }

    /**
     * Attention in a BF16 graph runs lt_attention_*_bf16: F.attention's output and its q/k/v gradient are bit-identical to
     * AttentionKernels.attention / attentionBackward at Precision.BF16 on the same tensors, differ from fp32 (so the bf16 kernel
     * really ran), and stay within 2^-5 of the fp32 values' largest magnitude (bf16 operands err by <= 2^-9 each; the
     * native attention_test checks the elementwise bound against a double reference).
     */
    @Test
    void attentionInABf16GraphRunsTheBf16Kernel() {
        needBf16();
        long b = 2, nh = 2, t = 37, hs = 24;
        try (Scope s = Scope.shared()) {
            Tensor qkv = Tensor.rand(s, 3, 0, 3, b, nh, t, hs), dout = Tensor.rand(s, 3, 1, b, nh, t, hs);
            float[][] out = new float[2][], grad = new float[2][];
            for (int i = 0; i < 2; i++) {
                try (Graph g = Graph.open().precision(i == 0 ? Precision.FP32 : Precision.BF16)) {
                    Var x = Var.param(qkv);
                    Var o = F.attention(x, true);
                    out[i] = o.value().toArray();
                    g.backward(F.sum(F.mul(o, Var.constant(dout))));
                    grad[i] = x.grad().value().toArray();
                }
            }
            Tensor q = qkv.slice(0, 0, 1).reshape(b, nh, t, hs), k = qkv.slice(0, 1, 2).reshape(b, nh, t, hs);
            Tensor v = qkv.slice(0, 2, 3).reshape(b, nh, t, hs);
            Tensor o = Tensor.zeros(s, b, nh, t, hs), lse = Tensor.zeros(s, b, nh, t);
            Tensor dq = Tensor.zeros(s, b, nh, t, hs), dk = Tensor.zeros(s, b, nh, t, hs), dv = Tensor.zeros(s, b, nh, t, hs);
            float scale = (float) (1 / Math.sqrt(hs));
            AttentionKernels.attention(q, k, v, true, scale, o, lse, Precision.BF16);
            AttentionKernels.attentionBackward(q, k, v, o, lse, dout, true, scale, dq, dk, dv, Precision.BF16);
            assertArrayEquals(o.toArray(), out[1], "F.attention in a BF16 graph = the bf16 kernel, bit for bit");
            float[] g1 = grad[1], dqa = dq.toArray(), dka = dk.toArray(), dva = dv.toArray();
            int n = dqa.length;
            for (int i = 0; i < n; i++) {
                assertEquals(dqa[i], g1[i], 0f, "dq[" + i + "]");
                assertEquals(dka[i], g1[n + i], 0f, "dk[" + i + "]");
                assertEquals(dva[i], g1[2 * n + i], 0f, "dv[" + i + "]");
            }
            for (float[][] pair : new float[][][] {{out[0], out[1]}, {grad[0], grad[1]}}) {
                double worst = 0, mag = 0;
                int differ = 0;
                for (int i = 0; i < pair[0].length; i++) {
                    worst = Math.max(worst, Math.abs(pair[0][i] - pair[1][i]));
                    mag = Math.max(mag, Math.abs(pair[0][i]));
                    if (pair[0][i] != pair[1][i]) differ++;
                }
                assertTrue(differ > pair[0].length / 2, "bf16 attention must change most bits, changed " + differ);
                assertTrue(worst <= mag / 32, "bf16 vs fp32 attention: max diff " + worst + " of max " + mag);
            }
        }
    }

    /** AttentionKernels.attention at BF16 is refused below ISA avx512 with the GEMM's reason (never emulated). */
    @Test
    void bf16AttentionIsRefusedAtIsaAvx2() {
        LatentNative nat = LatentNative.get();
        int isa = nat.isa();
        try (Scope s = Scope.shared()) {
            nat.setIsa(LatentNative.ISA_AVX2);
            Tensor q = Tensor.rand(s, 1, 0, 1, 1, 4, 8), o = Tensor.zeros(s, 1, 1, 4, 8), lse = Tensor.zeros(s, 1, 1, 4);
            var e = assertThrows(IllegalStateException.class, () -> AttentionKernels.attention(q, q, q, true, 0.3f, o, lse, Precision.BF16));
            assertTrue(e.getMessage().contains("AVX512_BF16") && e.getMessage().contains("avx2"), e.getMessage());
        } finally {
            nat.setIsa(isa);
        }
    }

    /**
     * 40 steps from the same seed: both losses fall, and bf16 ends near fp32. Trajectories of a noisy optimizer drift
     * apart; each step's updates differ by ~2^-7 relative (the gradient's rounding), AdamW normalizes them, so the
     * final losses differ by a small fraction of the 0.5+ nats the run learns: 0.05 nats is the bound (issue 15's
     * quality target for the full recipe is 0.03 on val; this tiny run is noisier). Measured 2026-12-07: ~1e-4.
     */
    @Test
    void bf16TrainsLikeFp32AndIsThreadCountInvariant(@TempDir Path dir) throws IOException {
        needBf16();
        LatentNative nat = LatentNative.get();
        int threads = nat.numThreads();
        try {
            Map<String, Object> f = train(dir.resolve("fp32"), Precision.FP32, 40);
            Map<String, Object> h = train(dir.resolve("bf16"), Precision.BF16, 40);
            for (var r : new Object[][] {{"fp32", f}, {"bf16", h}}) {   // the step-0 evaluation, as GptTest reads it
                String line0 = java.nio.file.Files.readAllLines(dir.resolve((String) r[0]).resolve("metrics.jsonl")).get(0);
                double first = Double.parseDouble(line0.replaceAll(".*\"train_loss\":([0-9.eE+-]+).*", "$1"));
                @SuppressWarnings("unchecked") double last = num((Map<String, Object>) r[1], "train_loss");
                assertTrue(last < first - 0.5, r[0] + " loss must fall: " + first + " -> " + last);
            }
            assertEquals(num(f, "val_loss"), num(h, "val_loss"), 0.05, "val loss fp32 vs bf16");
            assertEquals(num(f, "train_loss"), num(h, "train_loss"), 0.05, "train loss fp32 vs bf16");
            assertNotEquals(num(f, "train_loss"), num(h, "train_loss"), "bf16 ran (its loss differs in bits)");
            try (Scope s = Scope.shared()) {
                var l = GptCheckpoint.load(dir.resolve("bf16"), s);
                assertEquals(Precision.BF16, l.precision(), "the checkpoint records bf16");
                assertEquals("bf16", l.args().get("precision"));
                assertEquals(Precision.FP32, GptCheckpoint.load(dir.resolve("fp32"), s).precision());
            }
            // bits identical across thread counts at a given ISA
            float[][] w = new float[2][];
            for (int t = 1; t <= 2; t++) {
                nat.setNumThreads(t);
                train(dir.resolve("t" + t), Precision.BF16, 10);
                try (Scope s = Scope.shared()) {
                    var p = GptCheckpoint.load(dir.resolve("t" + t), s).model().namedParameters();
                    w[t - 1] = p.values().stream().map(v -> v.value().toArray())
                            .reduce(new float[0], (a, b) -> { float[] c = java.util.Arrays.copyOf(a, a.length + b.length); System.arraycopy(b, 0, c, a.length, b.length); return c; });
                }
            }
            assertArrayEquals(w[0], w[1], "bf16 training, 1 vs 2 threads");
        } finally {
            nat.setNumThreads(threads);
        }
    }

    /** An older checkpoint (args without "precision") loads as fp32. */
    @Test
    void checkpointWithoutPrecisionIsFp32() {
        var l = new GptCheckpoint.Loaded(null, TOK, 0, Map.of("batch", 4), Map.of());
        assertEquals(Precision.FP32, l.precision());
        assertEquals(Precision.FP32, new GptCheckpoint.Loaded(null, TOK, 0, null, Map.of()).precision());
        assertThrows(IllegalArgumentException.class, () -> new GptCheckpoint.Loaded(null, TOK, 0, Map.of("precision", "fp16"), Map.of()).precision());
    }

    /** Below avx512 (as on a CPU without AVX512_BF16), bf16 is refused with AVX512_BF16 and the ISA named; never emulated. */
    @Test
    void bf16IsRefusedAtIsaAvx2(@TempDir Path dir) {
        LatentNative nat = LatentNative.get();
        int isa = nat.isa();
        try {
            nat.setIsa(LatentNative.ISA_AVX2);
            String why = Gemm.bf16Unavailable();
            assertNotNull(why);
            assertTrue(why.contains("AVX512_BF16") && why.contains("avx2"), why);
            try (Graph g = Graph.open()) {
                var e = assertThrows(IllegalStateException.class, () -> g.precision(Precision.BF16));
                assertTrue(e.getMessage().contains("AVX512_BF16"), e.getMessage());
                assertEquals(Precision.FP32, g.precision(), "a refused setting leaves fp32");
            }
            var e2 = assertThrows(IllegalStateException.class, () -> train(dir.resolve("r"), Precision.BF16, 2));
            assertTrue(e2.getMessage().contains("AVX512_BF16") && e2.getMessage().contains("avx2"), e2.getMessage());
            assertFalse(dir.resolve("r").toFile().exists(), "refused before anything was written");
        } finally {
            nat.setIsa(isa);
        }
    }

    /**
     * tf32 is a CUDA path (issue 18): training on the CPU with it is refused before anything is written. (bf16 on CUDA
     * runs since issue 18: dev.latent.cuda.CudaPrecisionTest.)
     */
    @Test
    void tf32OnTheCpuIsRefused(@TempDir Path dir) {
        try (Scope s = Scope.shared()) {
            var e = assertThrows(IllegalArgumentException.class, () -> GptTrainer.train(new Gpt(s, CFG, 7), TOK, DATA,
                    GptTest.opts(2).withPrecision(Precision.TF32), dir.resolve("r"), false, s, 2, Device.CPU));
            assertTrue(e.getMessage().contains("CUDA-only") && e.getMessage().contains("tf32"), e.getMessage());
            assertFalse(dir.resolve("r").toFile().exists(), "refused before anything was written");
        }
        try (Graph g = Graph.open()) {
            assertThrows(IllegalArgumentException.class, () -> g.precision(null));
        }
    }
}
