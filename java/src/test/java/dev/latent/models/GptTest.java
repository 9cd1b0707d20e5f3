package dev.latent.models;

import dev.latent.autograd.Graph;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptSampler;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** GPT end to end on a small real text, CI-sized: loss falls, resume is bit-identical, sampling reproducible. */
class GptTest {
    static final String TEXT;
    static {
        StringBuilder b = new StringBuilder();
        String[] lines = {
                "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse,",
                "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery",
                "part of the world. It is a way I have of driving off the spleen and regulating the circulation.",
                "Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul;"};
        for (int i = 0; i < 40; i++) b.append(lines[i % lines.length]).append('\n');
        TEXT = b.toString();
    }

    static GptTrainer.Options opts(int steps) {
        return new GptTrainer.Options(4, steps, 3e-3, 3e-4, 5, 0.1, 1.0, 10, 2, 1234, 5, 10, 7);
    }

    @Test
    void lossFallsResumeIsBitIdenticalAndSamplingIsReproducible(@TempDir Path dir) throws IOException {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        TextData data = new TextData(tok.encode(TEXT));
        GptConfig cfg = new GptConfig(tok.vocabSize(), 2, 2, 32, 32, false);
        Path full = dir.resolve("full"), part = dir.resolve("part");
        Map<String, Object> done;
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 7);
            done = GptTrainer.train(m, tok, data, opts(40), full, false, s);
        }
        List<String> lines = Files.readAllLines(full.resolve("metrics.jsonl"));
        assertTrue(lines.get(0).contains("\"val_loss\""), lines.get(0));
        double first = Double.parseDouble(lines.get(0).replaceAll(".*\"train_loss\":([0-9.eE+-]+).*", "$1"));
        double last = ((Number) done.get("train_loss")).doubleValue();
        assertTrue(last < first - 0.5, "loss must fall: " + first + " -> " + last);
        assertFalse(Files.exists(full.resolve("loss.png")), "charts are the CLI's (TrainingListener.onCurves)");

        // 20 steps, then resume to 40: identical weights.
        try (Scope s = Scope.shared()) {
            GptTrainer.train(new Gpt(s, cfg, 7), tok, data, opts(40), part, false, s, 20);
        }
        try (Scope s = Scope.shared()) {
            GptCheckpoint.Loaded half = GptCheckpoint.load(part, s);
            assertEquals(20, half.step());
            GptTrainer.train(half.model(), tok, data, opts(40), part, true, s);
        }
        try (Scope s = Scope.shared()) {
            var a = GptCheckpoint.load(full, s).model().namedParameters();
            var b = GptCheckpoint.load(part, s).model().namedParameters();
            for (String k : a.keySet()) assertArrayEquals(a.get(k).value().toArray(), b.get(k).value().toArray(), "resume differs at " + k);

            Gpt m = GptCheckpoint.load(full, s).model();
            var set = new GptSampler.Settings(60, 0.9, 10, 0.95, 3);
            int[] p = tok.encode("Call");
            int[] s1 = new GptSampler(m).generate(p, set), s2 = new GptSampler(m).generate(p, set);
            assertArrayEquals(s1, s2, "same seed, same text");
            assertFalse(java.util.Arrays.equals(s1, new GptSampler(m).generate(p, new GptSampler.Settings(60, 0.9, 10, 0.95, 4))));
            // Past the context (32): the cache is rebuilt and generation goes on.
            assertEquals(100, new GptSampler(m).generate(p, new GptSampler.Settings(100, 1.0, 0, 1.0, 5)).length);
        }
    }

    @Test
    void kvCacheMatchesAFullForward() {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 2, 2, 16, 16, true);
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 11);
            int[] ids = tok.encode("Call me");
            // Greedy continuation by the sampler (KV cache) vs argmax of a full forward at each length.
            int[] fast = new GptSampler(m).generate(ids, new GptSampler.Settings(5, 0, 0, 1.0, 1));
            int[] seq = java.util.Arrays.copyOf(ids, ids.length + 5);
            for (int i = 0; i < 5; i++) {
                int n = ids.length + i;
                try (Graph g = Graph.inference(); var a = java.lang.foreign.Arena.ofConfined()) {
                    var x = a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, java.util.Arrays.copyOf(seq, n));
                    float[] logits = m.logits(x, 1, n).value().toArray();
                    int best = 0, v = cfg.vocab();
                    for (int j = 1; j < v; j++) if (logits[(n - 1) * v + j] > logits[(n - 1) * v + best]) best = j;
                    seq[n] = best;
                }
            }
            assertArrayEquals(java.util.Arrays.copyOfRange(seq, ids.length, seq.length), fast);
        }
    }

    @Test
    void corruptCheckpointGivesAClearErrorAndLeavesThePreviousIntact(@TempDir Path dir) throws IOException {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 1, 1, 8, 8, false);
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 1);
            GptCheckpoint.save(dir, m, null, tok, Map.of());
            Path f = dir.resolve(GptCheckpoint.FILE);
            byte[] good = Files.readAllBytes(f);
            Path bad = dir.resolve("bad.safetensors");
            Files.write(bad, java.util.Arrays.copyOf(good, good.length / 2));
            var e = assertThrows(IOException.class, () -> GptCheckpoint.load(bad, s));
            assertTrue(e.getMessage().contains("bad.safetensors"), e.getMessage());
            assertArrayEquals(good, Files.readAllBytes(f));
            assertNotNull(GptCheckpoint.load(dir, s).model());
        }
    }

}
