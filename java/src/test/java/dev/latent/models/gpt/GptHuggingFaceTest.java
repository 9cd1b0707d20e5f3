package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.Gpt2Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A GPT-2-layout folder written by {@link HfGpt2Fixture} (F32, F16 and BF16 tensors) imported through
 * {@link GptHuggingFace}: the model's logits equal the fixture's independent double-precision reference within
 * 1e-4 relative; a wrong mapping does not; unsupported or inconsistent folders are refused by name.
 */
class GptHuggingFaceTest {
    static final int B = 2;

    static int[][] sequences(HfGpt2Fixture fx, long seed) {
        Random r = new Random(seed);
        int[][] ids = new int[B][fx.ctx];
        for (int[] s : ids) for (int i = 0; i < s.length; i++) s[i] = r.nextInt(fx.vocab);
        return ids;
    }

    /** The model's logits (B*T, V) for these sequences. */
    static float[] logits(Gpt m, int[][] ids) {
        int t = ids[0].length;
        try (Graph g = Graph.inference()) {
            MemorySegment seg = g.scope().allocateUninitialized(4L * B * t);
            for (int b = 0; b < B; b++) for (int i = 0; i < t; i++) seg.setAtIndex(JAVA_INT, (long) b * t + i, ids[b][i]);
            return m.logits(seg, B, t).value().toArray();
        }
    }

    /** max |got - ref| / max |ref| over every logit. */
    static double relError(HfGpt2Fixture fx, int[][] ids, float[] got) {
        double maxDiff = 0, maxRef = 0;
        int t = ids[0].length;
        for (int b = 0; b < B; b++) {
            double[][] ref = fx.logits(ids[b]);
            for (int p = 0; p < t; p++) for (int v = 0; v < fx.vocab; v++) {
                double r = ref[p][v], g = got[(b * t + p) * fx.vocab + v];
                maxDiff = Math.max(maxDiff, Math.abs(g - r));
                maxRef = Math.max(maxRef, Math.abs(r));
            }
        }
        assertTrue(maxRef > 1, "logits should not be tiny: " + maxRef);
        return maxDiff / maxRef;
    }

    @Test
    void importedLogitsMatchTheIndependentReference(@TempDir Path dir) throws IOException {
        HfGpt2Fixture fx = new HfGpt2Fixture(11);
        int[][] ids = sequences(fx, 3);
        for (var o : new HfGpt2Fixture.Options[] {HfGpt2Fixture.Options.hubLike(), HfGpt2Fixture.Options.plain()}) {
            Path d = dir.resolve(o.prefix() ? "hub" : "plain");
            fx.write(d, o);
            try (Scope s = Scope.shared()) {
                GptHuggingFace.Imported im = GptHuggingFace.load(d, s);
                GptConfig c = im.model().cfg;
                assertEquals(new GptConfig(fx.vocab, 2, 2, 32, 16, true, GptConfig.Activation.GELU_TANH), c);
                double err = relError(fx, ids, logits(im.model(), ids));
                assertTrue(err < 1e-4, "relative error " + err + " (" + d.getFileName() + ")");
                assertSame(Gpt2Tokenizer.class, im.tokenizer().getClass());
                assertEquals(fx.vocab, im.tokenizer().vocabSize());
                assertArrayEquals(new int[] {im.tokenizer().id("Ġthe")}, im.tokenizer().encode(" the"));
                // Gpt.fromHuggingFace: the same model
                assertArrayEquals(logits(im.model(), ids), logits(Gpt.fromHuggingFace(d, s), ids));
            }
        }
    }

    @Test
    void aWrongMappingDoesNotMatch(@TempDir Path dir) throws IOException {
        HfGpt2Fixture fx = new HfGpt2Fixture(12);
        int[][] ids = sequences(fx, 4);
        fx.write(dir.resolve("ok"), HfGpt2Fixture.Options.plain());
        try (Scope s = Scope.shared()) {
            Gpt m = GptHuggingFace.load(dir.resolve("ok"), s).model();
            assertTrue(relError(fx, ids, logits(m, ids)) < 1e-4);
            // Undo the transpose of the square attention projections (what skipping it would have loaded): no match.
            for (var blk : m.blocks) transposeSquare(blk.attn.proj.weight.value());
            double err = relError(fx, ids, logits(m, ids));
            assertTrue(err > 1e-2, "skipping the Conv1D transpose must change the logits, relative error " + err);
        }
        try (Scope s = Scope.shared()) {
            // The exact GELU in place of GPT-2's tanh form is a (small) mismatch too.
            Gpt m = GptHuggingFace.load(dir.resolve("ok"), s).model();
            Gpt exact = new Gpt(s, m.cfg.withActivation(GptConfig.Activation.GELU), 0);
            m.namedParameters().forEach((k, v) -> MemorySegment.copy(v.value().segment(), 0, exact.namedParameters().get(k).value().segment(), 0, v.value().numel() * 4));
            double ok = relError(fx, ids, logits(m, ids)), err = relError(fx, ids, logits(exact, ids));
            assertTrue(err > 10 * ok, "the exact GELU must be much further from gelu_new's reference: " + err + " vs " + ok);
        }
        // A non-square Conv1D weight stored (out, in), as a wrong exporter would: refused, naming the tensor.
        fx.write(dir.resolve("bad"), HfGpt2Fixture.Options.hubLike().untransposed(Set.of("h.1.mlp.c_fc.weight")));
        try (Scope s = Scope.shared()) {
            var e = assertThrows(IOException.class, () -> GptHuggingFace.load(dir.resolve("bad"), s));
            assertTrue(e.getMessage().contains("transformer.h.1.mlp.c_fc.weight") && e.getMessage().contains("(in, out)"), e.getMessage());
        }
    }

    private static void transposeSquare(Tensor w) {
        int n = (int) w.shape()[0];
        MemorySegment s = w.segment();
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                float a = s.getAtIndex(JAVA_FLOAT, (long) i * n + j), b = s.getAtIndex(JAVA_FLOAT, (long) j * n + i);
                s.setAtIndex(JAVA_FLOAT, (long) i * n + j, b);
                s.setAtIndex(JAVA_FLOAT, (long) j * n + i, a);
            }
    }

    @Test
    void unsupportedOrInconsistentFoldersAreRefusedByName(@TempDir Path dir) throws IOException {
        HfGpt2Fixture fx = new HfGpt2Fixture(13);
        var base = HfGpt2Fixture.Options.hubLike();
        Object[][] cases = {
                {base.with(Map.of("layer_norm_epsilon", "1e-06")), "layer_norm_epsilon"},
                {base.with(Map.of("activation_function", "\"relu\"")), "activation_function relu"},
                {base.with(Map.of("n_inner", "100")), "n_inner 100"},
                {base.with(Map.of("scale_attn_by_inverse_layer_idx", "true")), "scale_attn_by_inverse_layer_idx"},
                {base.with(Map.of("model_type", "\"llama\"")), "model_type llama"},
                {base.with(Map.of("n_head", "0")), "n_head"},
                {base.with(Map.of("n_head", "5")), "not divisible"},
                {base.with(Map.of("vocab_size", "300")), "vocab_size is 300"},
                {base.with(Map.of("n_layer", "3")), "needs"},
                {base.dropping(Set.of("ln_f.bias")), "missing tensor transformer.ln_f.bias"},
                {base.with(Map.of("n_positions", "8")), "transformer.wpe.weight has shape"},
        };
        int i = 0;
        for (Object[] c : cases) {
            Path d = dir.resolve("c" + i++);
            fx.write(d, (HfGpt2Fixture.Options) c[0]);
            try (Scope s = Scope.shared()) {
                var e = assertThrows(IOException.class, () -> GptHuggingFace.load(d, s), (String) c[1]);
                assertTrue(e.getMessage().contains((String) c[1]), "want '" + c[1] + "' in: " + e.getMessage());
            }
        }
        // an extra tensor, and an untied head
        Path d = dir.resolve("extra");
        fx.write(d, HfGpt2Fixture.Options.plain());
        Map<String, byte[]> blobs = new java.util.LinkedHashMap<>();
        Map<String, String> dt = new java.util.LinkedHashMap<>();
        Map<String, long[]> sh = new java.util.LinkedHashMap<>();
        for (String n : fx.w.keySet()) { blobs.put(n, HfGpt2Fixture.encode(fx.w.get(n), "F32")); dt.put(n, "F32"); sh.put(n, fx.shapes.get(n)); }
        blobs.put("h.7.mlp.c_fc.weight", new byte[4]); dt.put("h.7.mlp.c_fc.weight", "F32"); sh.put("h.7.mlp.c_fc.weight", new long[] {1});
        HfGpt2Fixture.writeSafetensors(d.resolve("model.safetensors"), blobs, dt, sh);
        try (Scope s = Scope.shared()) {
            var e = assertThrows(IOException.class, () -> GptHuggingFace.load(d, s));
            assertTrue(e.getMessage().contains("h.7.mlp.c_fc.weight") && e.getMessage().contains("no place"), e.getMessage());
        }
        blobs.remove("h.7.mlp.c_fc.weight");
        double[] head = fx.w.get("wte.weight").clone();
        head[5] += 1;
        blobs.put("lm_head.weight", HfGpt2Fixture.encode(head, "F32")); dt.put("lm_head.weight", "F32"); sh.put("lm_head.weight", fx.shapes.get("wte.weight"));
        HfGpt2Fixture.writeSafetensors(d.resolve("model.safetensors"), blobs, dt, sh);
        try (Scope s = Scope.shared()) {
            var e = assertThrows(IOException.class, () -> GptHuggingFace.load(d, s));
            assertTrue(e.getMessage().contains("lm_head.weight differs"), e.getMessage());
        }
    }

    @Test
    void aSavedImportKeepsTheTanhGeluAndTheTokenizer(@TempDir Path dir) throws IOException {
        HfGpt2Fixture fx = new HfGpt2Fixture(14);
        int[][] ids = sequences(fx, 5);
        fx.write(dir.resolve("hf"), HfGpt2Fixture.Options.hubLike());
        float[] before;
        try (Scope s = Scope.shared()) {
            var im = GptHuggingFace.load(dir.resolve("hf"), s);
            before = logits(im.model(), ids);
            GptCheckpoint.save(dir.resolve("ckpt"), im.model(), null, im.tokenizer(), Map.of("imported", true));
        }
        try (Scope s = Scope.shared()) {
            var l = GptCheckpoint.load(dir.resolve("ckpt"), s);
            assertEquals(GptConfig.Activation.GELU_TANH, l.model().cfg.activation());
            assertArrayEquals(before, logits(l.model(), ids), "same bits after save and load");
            assertTrue(l.optState().isEmpty(), "an import carries no optimizer moments");
            assertInstanceOf(Gpt2Tokenizer.class, l.tokenizer());
            assertEquals("hello, the world", l.tokenizer().decode(l.tokenizer().encode("hello, the world")));
            // the KV-cache decoder runs the same MLP: its greedy continuation is the full forward's argmax
            int[] prompt = java.util.Arrays.copyOf(ids[0], 6);
            int[] next = new KvDecoder(l.model()).generate(prompt, new KvDecoder.Settings(1, 0, 0, 1, 1));
            float[] full;
            try (Graph g = Graph.inference()) {
                MemorySegment seg = g.scope().allocateUninitialized(4L * prompt.length);
                for (int i = 0; i < prompt.length; i++) seg.setAtIndex(JAVA_INT, i, prompt[i]);
                full = l.model().logits(seg, 1, prompt.length).value().toArray();
            }
            int best = 0, off = (prompt.length - 1) * fx.vocab;
            for (int v = 1; v < fx.vocab; v++) if (full[off + v] > full[off + best]) best = v;
            assertEquals(best, next[0]);
        }
        // An exact-GELU model's checkpoint has no "activation" field (as before the option), and loads as exact GELU.
        try (Scope s = Scope.shared()) {
            var tok = GptHuggingFace.load(dir.resolve("hf"), s).tokenizer();
            GptCheckpoint.save(dir.resolve("old"), new Gpt(s, new GptConfig(fx.vocab, 1, 2, 32, 16, true), 1), null, tok, Map.of());
            String config = dev.latent.io.SafeTensors.read(dir.resolve("old").resolve(GptCheckpoint.FILE), s).metadata().get("config");
            assertFalse(config.contains("activation"), config);
            assertEquals(GptConfig.Activation.GELU, GptCheckpoint.load(dir.resolve("old"), s).model().cfg.activation());
        }
    }

    /** The composed tanh GELU against the formula in double, forward and first-order backward, odd sizes. */
    @Test
    void tanhGeluForwardAndBackward() {
        for (int n : new int[] {1, 7, 33, 1000}) {
            float[] x = new float[n];
            Random r = new Random(n);
            for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian() * 3);
            if (n > 2) { x[0] = 0; x[1] = -10; }
            try (Scope s = Scope.confined(); Graph g = Graph.open()) {
                Var v = Var.param(Tensor.of(s, x, n));
                Var y = Gpt.geluTanh(v);
                float[] got = y.value().toArray();
                g.backward(F.sum(y));
                float[] grad = v.grad().value().toArray();
                for (int i = 0; i < n; i++) {
                    double xi = x[i], k = Math.sqrt(2 / Math.PI), u = k * (xi + 0.044715 * xi * xi * xi), th = Math.tanh(u);
                    double want = HfGpt2Fixture.geluNew(xi);
                    double dwant = 0.5 * (1 + th) + 0.5 * xi * (1 - th * th) * k * (1 + 3 * 0.044715 * xi * xi);
                    assertEquals(want, got[i], 2e-6 * Math.max(1, Math.abs(want)), "gelu_tanh(" + xi + ")");
                    // tanh's backward uses 1 - y^2 in float: up to ~1e-7 absolute, times x^3 terms for |x| ~ 10
                    assertEquals(dwant, grad[i], 5e-5, "gelu_tanh'(" + xi + ")");
                }
            }
        }
    }
}
