package dev.latent.serve;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Serving memory (issue 19's target): a 4 x 4 x 128 GPT from a training checkpoint (weights + AdamW moments, ~3x the
 * weights on disk). The native memory the generator holds (Scope.liveBytes: every tensor Latent allocates) must stay
 * within 1.5x the weight bytes plus the KV caches of the requests in flight, with 16 requests decoding at once, for the
 * default (packed) generator and the in-place one; the checkpoint's full load (what serving used before) is measured
 * beside it and holds ~4x, and a packed generator over a loaded model (the matrices kept in both layouts) ~2x: both must
 * break the bound, so the check can fail.
 */
class GeneratorMemoryTest {
    static final String TEXT = "Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse.";

    @TempDir static Path dir;
    static long weightBytes;

    @BeforeAll
    static void checkpoint() throws Exception {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 4, 4, 128, 128, true);
        weightBytes = 4 * cfg.parameterCount();
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 3);
            AdamW opt = new AdamW(s, m.namedParameters(), 0.9f, 0.999f, 1e-8f, 0.1f);
            GptCheckpoint.save(dir, m, opt, tok, Map.of());
        }
    }

    @Test
    void theFullLoadAndAPackedCopyBreakTheBound() throws Exception {
        long before = Scope.liveBytes();
        try (Scope s = Scope.shared()) {
            GptCheckpoint.load(dir, s);
            long full = Scope.liveBytes() - before;
            System.out.printf("full checkpoint load: %.2f MB = %.2fx the weights%n", full / 1e6, (double) full / weightBytes);
            assertTrue(full > 3 * weightBytes, "the full load should hold the moments and a copy: " + full);
        }
        // What load() would hold if it kept the matrices in their original layout beside the packed ones.
        before = Scope.liveBytes();
        try (Scope s = Scope.shared()) {
            GptCheckpoint.Loaded l = GptCheckpoint.loadWeights(dir, s, false);
            try (GptGenerator g = new GptGenerator(l.model(), l.tokenizer(), new GptGenerator.Options(1, 4, 16))) {
                assertEquals(KvDecoder.Weights.PACKED, g.weights());
                long both = Scope.liveBytes() - before;
                System.out.printf("loaded model + packed copy: %.2f MB = %.3fx the weights%n", both / 1e6, (double) both / weightBytes);
                assertTrue(both > 1.5 * weightBytes, "a packed copy beside the model should break the 1.5x bound: " + both);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(KvDecoder.Weights.class)
    void generatorHoldsTheWeightsOncePlusTheCachesInFlight(KvDecoder.Weights w) throws Exception {
        long base = Scope.liveBytes();
        int clients = 16;
        try (GptGenerator g = GptGenerator.load(dir, new GptGenerator.Options(1, clients, 64).withWeights(w))) {
            long loaded = Scope.liveBytes() - base;
            System.out.printf("%s generator after load: %.2f MB = %.3fx the weights (%.2f MB)%n", w, loaded / 1e6, (double) loaded / weightBytes, weightBytes / 1e6);
            assertTrue(loaded <= 1.5 * weightBytes, "generator holds " + loaded + " bytes after load, weights are " + weightBytes);
            if (w == KvDecoder.Weights.PACKED)
                assertThrows(IllegalStateException.class, g::model, "a packed load keeps no model (its matrices would be a second copy)");
            long cache = g.cacheBytes();
            AtomicLong peak = new AtomicLong();
            AtomicBoolean stop = new AtomicBoolean();
            Thread watch = new Thread(() -> {
                while (!stop.get()) peak.accumulateAndGet(Scope.liveBytes() - base, Math::max);
            });
            watch.start();
            List<Pending<TextResult>> ps = new ArrayList<>();
            for (int i = 0; i < clients; i++) ps.add(g.submit(new TextRequest("Call me ", 150, 0.8, 0, 1.0, i, null)));
            for (Pending<TextResult> p : ps) assertEquals(Outcome.COMPLETE, p.await().outcome());
            stop.set(true);
            watch.join();
            double bound = 1.5 * weightBytes + clients * cache;
            System.out.printf("%s generator peak with %d requests in flight: %.2f MB (bound 1.5 x weights + %d x %.2f MB of KV cache = %.2f MB)%n",
                    w, clients, peak.get() / 1e6, clients, cache / 1e6, bound / 1e6);
            assertTrue(peak.get() <= bound, "peak " + peak.get() + " > " + bound);
        }
        assertEquals(base, Scope.liveBytes(), "close() frees everything the generator held");
    }
}
