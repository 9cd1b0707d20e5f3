package dev.latent.models.gpt;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static dev.latent.models.gpt.DecoderFixtures.CONFIGS;
import static dev.latent.models.gpt.DecoderFixtures.randomModel;
import static dev.latent.models.gpt.DecoderFixtures.tolerance;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * KV-cache decoding on the native kernels against the model's full forward ({@link Gpt#logits}), on random models
 * whose weights are large enough (std 0.3 / sqrt(fan-in) scaled up, LayerNorm gains 1 +- 0.2) that the logits spread
 * over several units and greedy choices are not near-ties.
 * <p>
 * Tolerance. Both paths run the same LayerNorm and GELU kernels; they differ in the GEMMs (decode: lt_gemm_rows, one
 * dot product per element; full: lt_gemm's blocked sums), each within (K + 2) u sum|a b| of the exact product (u = 2^-24,
 * K <= 4C), and in attention (decode: lt_attention_decode_fwd's blocked online softmax; full: the tiled FlashAttention
 * forward), each within (2 HS + T + 16) u |V| of the exact value (attention_decode_test.c derives the decode bound,
 * attention_test.c the same order for the tiled kernel). So each layer perturbs the residual stream by at most
 * eps = 2 ((2 HS + T + 16) + 4 (4C + 2)) u relative (both paths' errors; four GEMMs per block), and that perturbation
 * passes through the remaining layers, where LayerNorm renormalises it and each linear layer can grow it by at most its
 * gain; we allow a growth of G = 4 per layer (the random weights here have gains of ~1-3; the worst ratio seen is
 * printed: 0.006 when written). Per logit: |decode - full| <= (L G eps + 2 (C + 2) u) max|logits|, the last term the head's GEMM.
 */
class KvDecoderTest {
    /** Decoders a test opened (the packed ones hold native memory of their own), closed after it. */
    private final List<KvDecoder> decoders = new ArrayList<>();

    private KvDecoder opened(KvDecoder d) {
        decoders.add(d);
        return d;
    }

    @AfterEach
    void closeDecoders() {
        decoders.forEach(KvDecoder::close);
        decoders.clear();
    }

    /** One test's body for configuration CONFIGS[ci], with its random stream r and a shared scope s closed after it. */
    interface PerConfig {
        void run(int ci, GptConfig cfg, SplittableRandom r, Scope s);
    }

    /** body for each of CONFIGS in order, with r = new SplittableRandom(seed + ci) and a fresh Scope.shared(). */
    static void eachConfig(int seed, PerConfig body) {
        for (int ci = 0; ci < CONFIGS.length; ci++)
            try (Scope s = Scope.shared()) { body.run(ci, CONFIGS[ci], new SplittableRandom(seed + ci), s); }
    }

    static float[] fullLogits(Gpt m, int[] ids) {
        try (Graph g = Graph.inference(); Arena a = Arena.ofConfined()) {
            MemorySegment x = a.allocateFrom(JAVA_INT, ids);
            Var l = m.logits(x, 1, ids.length);
            return l.value().toArray();
        }
    }

    @ParameterizedTest
    @EnumSource(KvDecoder.Weights.class)
    void logitsMatchTheFullForwardAndDoNotDependOnBatchingOrFeeding(KvDecoder.Weights weights) {
        double[] worst = {0};   // the largest |decode - full| / tolerance
        eachConfig(100, (ci, cfg, r, s) -> {
            Gpt m = randomModel(s, cfg, 7 + ci);
            KvDecoder d = opened(new KvDecoder(m, weights));
            for (int trial = 0; trial < 4; trial++) {
                int t = 1 + r.nextInt(cfg.context());
                int[] ids = r.ints(t, 0, cfg.vocab()).toArray();
                float[] full = fullLogits(m, ids);
                double tol = tolerance(cfg, t, full);
                // the whole prompt as one chunk, every row's logits
                float[] once;
                try (KvDecoder.Cache c = d.new Cache()) {
                    once = d.forward(List.of(c), List.of(ids), true);
                    assertEquals(t, c.length());
                }
                assertEquals(full.length, once.length);
                for (int i = 0; i < full.length; i++) {
                    double e = Math.abs(once[i] - full[i]);
                    worst[0] = Math.max(worst[0], e / tol);
                    assertTrue(e <= tol, "config " + ci + " T " + t + " logit " + i + ": decode " + once[i] + " full " + full[i]
                            + " (|diff| " + e + " > tol " + tol + ")");
                }
                // token by token, in a batch with two other sequences: the same bits
                int[] other1 = r.ints(1 + r.nextInt(cfg.context()), 0, cfg.vocab()).toArray();
                int[] other2 = r.ints(cfg.context(), 0, cfg.vocab()).toArray();
                try (KvDecoder.Cache c = d.new Cache(); KvDecoder.Cache o1 = d.new Cache(); KvDecoder.Cache o2 = d.new Cache()) {
                    d.forward(List.of(o1, o2), List.of(other1, Arrays.copyOf(other2, 1)), false);
                    for (int p = 0; p < t; p++) {
                        int[] one = {ids[p]};
                        List<KvDecoder.Cache> cs = new ArrayList<>(List.of(c));
                        List<int[]> ts = new ArrayList<>(List.of(one));
                        if (o2.length() < cfg.context()) { cs.add(0, o2); ts.add(0, new int[] {other2[o2.length()]}); }
                        float[] got = d.forward(cs, ts, false);
                        int row = cs.size() - 1;
                        float[] mine = Arrays.copyOfRange(got, row * cfg.vocab(), (row + 1) * cfg.vocab());
                        float[] want = Arrays.copyOfRange(once, p * cfg.vocab(), (p + 1) * cfg.vocab());
                        assertArrayEquals(want, mine, "config " + ci + ": position " + p + " fed alone in a batch differs from the prompt chunk");
                    }
                }
            }
        });
        System.out.printf("KvDecoderTest (%s): worst |decode - full| = %.3f of the tolerance%n", weights, worst[0]);
    }

    /** Greedy decoding picks the full forward's argmax at every step, through a context rollover. */
    @ParameterizedTest
    @EnumSource(KvDecoder.Weights.class)
    void greedyTokensEqualTheFullForwardsArgmax(KvDecoder.Weights weights) {
        eachConfig(200, (ci, cfg, r, s) -> {
            Gpt m = randomModel(s, cfg, 17 + ci);
            KvDecoder d = opened(new KvDecoder(m, weights));
            int[] prompt = r.ints(1 + r.nextInt(cfg.context() / 2 + 1), 0, cfg.vocab()).toArray();
            int n = cfg.context() + 5;   // runs past the context: the cache is rebuilt from its newest half
            int[] got = d.generate(prompt, new KvDecoder.Settings(n, 0, 0, 1, 1));
            int[] seq = prompt.clone();
            for (int i = 0; i < n; i++) {
                float[] full = fullLogits(m, seq);
                int v = cfg.vocab(), last = (seq.length - 1) * v, best = 0;
                for (int j = 1; j < v; j++) if (full[last + j] > full[last + best]) best = j;
                assertEquals(best, got[i], "config " + ci + " token " + i);
                int[] next = Arrays.copyOf(seq, seq.length + 1);
                next[seq.length] = best;
                if (next.length > cfg.context()) {   // the decoder's rollover: the newest half of the window, then the new token
                    int keep = cfg.context() / 2;
                    int[] w = new int[keep + 1];
                    System.arraycopy(seq, seq.length - keep, w, 0, keep);
                    w[keep] = best;
                    next = w;
                }
                seq = next;
            }
        });
    }

    /** Sampled tokens depend on the seed only: not on the thread count, the batch, or what else is in it. */
    @ParameterizedTest
    @EnumSource(KvDecoder.Weights.class)
    void samplingIsDeterministicAcrossThreadsAndBatches(KvDecoder.Weights weights) {
        GptConfig cfg = CONFIGS[0];
        LatentNative nat = LatentNative.get();
        int old = nat.numThreads();
        try (Scope s = Scope.shared()) {
            Gpt m = randomModel(s, cfg, 3);
            KvDecoder d = opened(new KvDecoder(m, weights));
            KvDecoder.Settings st = new KvDecoder.Settings(30, 4.0, 20, 0.99, 42);
            int[] prompt = {1, 2, 3, 4, 5};
            nat.setNumThreads(1);
            int[] one = d.generate(prompt, st);
            nat.setNumThreads(2);
            int[] two = d.generate(prompt, st);
            assertArrayEquals(one, two, "1 and 2 native threads");
            try (KvDecoder.Sequence a = d.new Sequence(prompt, st); KvDecoder.Sequence b = d.new Sequence(new int[] {7, 7}, new KvDecoder.Settings(12, 1, 0, 1, 9))) {
                List<KvDecoder.Sequence> both = new ArrayList<>(List.of(a, b));
                while (!both.isEmpty()) {
                    d.step(both);
                    both.removeIf(KvDecoder.Sequence::done);
                }
                assertArrayEquals(one, a.generated(), "batched with another sequence");
            }
            assertTrue(!Arrays.equals(one, d.generate(prompt, new KvDecoder.Settings(30, 4.0, 20, 0.99, 43))), "another seed draws other tokens");
        } finally {
            nat.setNumThreads(old);
        }
    }

    /**
     * The residual adds fused into the LayerNorms (lt_layernorm_residual_fwd) against the path before (lt_axpby, then
     * lt_layernorm_fwd), both layouts, all three configurations: every logit's bits equal (every row of a prompt chunk, and
     * the last rows of a batch of two caches, where the last add runs on the gathered rows only), and the same greedy and
     * sampled tokens through a context rebuild. The logits are checked to differ between two models, so the comparison
     * is not of something constant.
     */
    @ParameterizedTest
    @EnumSource(KvDecoder.Weights.class)
    void fusedResidualLayerNormKeepsEveryBit(KvDecoder.Weights weights) {
        eachConfig(300, (ci, cfg, r, s) -> {
            Gpt m = randomModel(s, cfg, 27 + ci), other = randomModel(s, cfg, 28 + ci);
            KvDecoder fused = opened(new KvDecoder(m, weights)), plain = opened(new KvDecoder(m, weights)), o = opened(new KvDecoder(other, weights));
            plain.unfused = true;
            int[] ids = r.ints(cfg.context() - 1, 0, cfg.vocab()).toArray(), two = r.ints(3, 0, cfg.vocab()).toArray();
            for (boolean allRows : new boolean[] {true, false}) {
                float[][] got = new float[3][];
                KvDecoder[] ds = {fused, plain, o};
                for (int k = 0; k < 3; k++)
                    try (KvDecoder.Cache a = ds[k].new Cache(); KvDecoder.Cache b = ds[k].new Cache()) {
                        got[k] = allRows ? ds[k].forward(List.of(a), List.of(ids), true)
                                : ds[k].forward(List.of(a, b), List.of(ids, two), false);
                    }
                assertEquals(got[1].length, got[0].length);
                for (int i = 0; i < got[0].length; i++)
                    assertEquals(Float.floatToRawIntBits(got[1][i]), Float.floatToRawIntBits(got[0][i]),
                            "config " + ci + " " + weights + (allRows ? " all rows" : " last rows") + " logit " + i + ": fused " + got[0][i] + ", unfused " + got[1][i]);
                assertTrue(!Arrays.equals(got[0], got[2]), "config " + ci + ": another model's logits must differ");
            }
            int n = cfg.context() + 5;   // through the cache's rebuild
            int[] prompt = Arrays.copyOf(ids, 3);
            for (KvDecoder.Settings st : List.of(new KvDecoder.Settings(n, 0, 0, 1, 1), new KvDecoder.Settings(n, 0.9, 5, 0.95, 77)))
                assertArrayEquals(plain.generate(prompt, st), fused.generate(prompt, st), "config " + ci + " " + weights + " tokens at temperature " + st.temperature());
        });
    }

    @Test
    void badInputIsRefusedByName() {
        GptConfig cfg = CONFIGS[2];
        try (Scope s = Scope.shared()) {
            KvDecoder d = new KvDecoder(randomModel(s, cfg, 1));
            assertThrows(IllegalArgumentException.class, () -> d.checkPrompt(new int[0]));
            var e = assertThrows(IllegalArgumentException.class, () -> d.checkPrompt(new int[] {cfg.vocab()}));
            assertTrue(e.getMessage().contains("outside"), e.getMessage());
            try (KvDecoder.Cache c = d.new Cache()) {
                var f = assertThrows(IllegalArgumentException.class, () -> d.forward(List.of(c), List.of(new int[cfg.context() + 1]), false));
                assertTrue(f.getMessage().contains("context"), f.getMessage());
                assertThrows(IllegalArgumentException.class, () -> d.forward(List.of(c), List.of(new int[] {-1}), false));
                assertThrows(IllegalArgumentException.class, () -> d.forward(List.of(c), List.of(), false));
            }
            KvDecoder p = new KvDecoder(d.model(), KvDecoder.Weights.PACKED);
            assertTrue(p.ownBytes() > 0 && d.ownBytes() == 0, "packed " + p.ownBytes() + ", in place " + d.ownBytes());
            p.close();
            p.close();   // idempotent
            var g = assertThrows(IllegalStateException.class, () -> p.generate(new int[] {1}, new KvDecoder.Settings(1, 0, 0, 1, 1)));
            assertTrue(g.getMessage().contains("closed"), g.getMessage());
        }
    }

    /**
     * A decoder packed from stored tensors (no model) gives the bits of one packed from the model, tied and untied, with
     * either GELU; it asks for every parameter with the model's shapes, and a source's error reaches the caller with
     * nothing left allocated.
     */
    @Test
    void packedFromStoredTensorsGivesTheBitsOfPackedFromTheModel() throws Exception {
        for (boolean tied : new boolean[] {true, false}) {
            GptConfig cfg = new GptConfig(29, 2, 2, 24, 20, tied, tied ? GptConfig.Activation.GELU : GptConfig.Activation.GELU_TANH);
            try (Scope s = Scope.shared()) {
                Gpt m = randomModel(s, cfg, 17);
                var params = m.namedParameters();
                java.util.Set<String> asked = new java.util.HashSet<>();
                long base = Scope.liveBytes();
                KvDecoder fromModel = opened(new KvDecoder(m, KvDecoder.Weights.PACKED));
                KvDecoder stored = opened(KvDecoder.packed(cfg, (name, shape, dst) -> {
                    assertTrue(asked.add(name), "asked twice: " + name);
                    assertArrayEquals(params.get(name).value().shape(), shape, name);
                    MemorySegment.copy(params.get(name).value().segment(), 0, dst, 0, dst.byteSize());
                }));
                assertEquals(params.keySet(), asked, "every parameter is read once");
                assertEquals(KvDecoder.Weights.PACKED, stored.weights());
                assertThrows(IllegalStateException.class, stored::model);
                assertTrue(stored.ownBytes() > fromModel.ownBytes(), "it holds the vectors and embeddings too");
                int[] prompt = {3, 1, 4, 1, 5, 9, 2, 6};
                try (KvDecoder.Cache a = fromModel.new Cache(); KvDecoder.Cache b = stored.new Cache()) {
                    float[] la = fromModel.forward(List.of(a), List.of(prompt), true), lb = stored.forward(List.of(b), List.of(prompt), true);
                    assertArrayEquals(la, lb, "tied " + tied);
                }
                stored.close();
                fromModel.close();
                assertEquals(base, Scope.liveBytes());
                var e = assertThrows(java.io.IOException.class, () -> KvDecoder.packed(cfg, (name, shape, dst) -> {
                    if (name.equals("h.1.mlp.c_proj.weight")) throw new java.io.IOException("bad " + name);
                    MemorySegment.copy(params.get(name).value().segment(), 0, dst, 0, dst.byteSize());
                }));
                assertEquals("bad h.1.mlp.c_proj.weight", e.getMessage());
                assertEquals(base, Scope.liveBytes(), "a failed build frees what it had packed");
            }
        }
    }

    /** The packed GEMM's binding checks its segments by name before the downcall. */
    @Test
    void packedGemmBindingRefusesShortSegments() {
        LatentNative nat = LatentNative.get();
        assertEquals(32 * 5, nat.gemmRowsPackedSize(21, 5));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment b = a.allocate(4 * 21 * 5), p = a.allocate(4 * 32 * 5), x = a.allocate(4 * 2 * 5), y = a.allocate(4 * 2 * 21), bias = a.allocate(4 * 21);
            nat.gemmRowsPack(21, 5, b, 5, p);
            nat.gemmRowsPacked(2, 21, 5, x, 5, p, bias, y, 21);
            var e = assertThrows(IllegalArgumentException.class, () -> nat.gemmRowsPack(21, 5, b, 5, p.asSlice(0, 4 * 31 * 5)));
            assertTrue(e.getMessage().contains("packed"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nat.gemmRowsPacked(2, 21, 5, x, 5, p, bias.asSlice(0, 4 * 20), y, 21));
            assertTrue(e.getMessage().contains("bias"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nat.gemmRowsPacked(3, 21, 5, x, 5, p, MemorySegment.NULL, y, 21));
            assertTrue(e.getMessage().contains("a needs"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nat.gemmRowsPacked(2, 21, 5, x, 4, p, MemorySegment.NULL, y, 21));
            assertTrue(e.getMessage().contains("lda"), e.getMessage());
        }
    }

    /** The binding checks every segment before the downcall: a cache too short for its len is refused by name. */
    @Test
    void bindingRefusesShortSegments() {
        LatentNative nat = LatentNative.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment q = a.allocate(4 * 8), o = a.allocate(4 * 8), k = a.allocate(4 * 8 * 3), v = a.allocate(4 * 8 * 3);
            nat.attentionDecodeFwd(1, 2, 4, 0.5f, q, 8, new MemorySegment[] {k}, new MemorySegment[] {v}, 8, new int[] {3}, o, 8);
            var e = assertThrows(IllegalArgumentException.class, () -> nat.attentionDecodeFwd(1, 2, 4, 0.5f, q, 8,
                    new MemorySegment[] {k}, new MemorySegment[] {v}, 8, new int[] {4}, o, 8));
            assertTrue(e.getMessage().contains("k[0]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nat.attentionDecodeFwd(2, 2, 4, 0.5f, q, 8,
                    new MemorySegment[] {k, k}, new MemorySegment[] {v, v}, 8, new int[] {1, 1}, o, 8));
            assertTrue(e.getMessage().contains("q"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nat.attentionDecodeFwd(1, 2, 4, 0.5f, q, 8,
                    new MemorySegment[] {k}, new MemorySegment[] {v}, 8, new int[] {0}, o, 8));
            assertTrue(e.getMessage().contains("len[0]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> nat.attentionDecodeFwd(1, 2, 4, 0.5f, q, 8,
                    new MemorySegment[] {o}, new MemorySegment[] {v}, 8, new int[] {1}, o, 8));
        }
    }
}
