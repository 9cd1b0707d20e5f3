package dev.latent.serve;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.models.gpt.GptSampler;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;

import static org.junit.jupiter.api.Assertions.*;

/** The service API: concurrency, batching, determinism, deadlines, cancellation, memory, the extension point. */
class GeneratorTest {
    static final String TEXT = "Call me Ishmael. Some years ago - never mind how long precisely - having little money.";
    static final CharTokenizer TOK = CharTokenizer.train(TEXT);
    static final GptConfig CFG = new GptConfig(TOK.vocabSize(), 2, 2, 32, 24, false);

    static TextRequest request(int i) {
        String[] prompts = {"Call", "C", "Some years ago", TEXT.substring(0, 40), "money."};
        // Mixed settings; some run past the context (24), which rebuilds the cache mid-request.
        return new TextRequest(prompts[i % prompts.length], 5 + (i * 7) % 40, i % 4 == 0 ? 0 : 0.9, i % 3 == 0 ? 5 : 0,
                i % 5 == 0 ? 0.9 : 1.0, 1000 + i, null);
    }

    @Test
    void concurrentBatchedRequestsGiveTheBitsOfOneAtATime() throws Exception {
        long base = Scope.liveBytes();
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, CFG, 5);
            int n = 48;
            int[][] expected = new int[n][];
            GptSampler alone = new GptSampler(m);
            for (int i = 0; i < n; i++) {
                TextRequest r = request(i);
                expected[i] = alone.generate(TOK.encode(r.prompt()), new GptSampler.Settings(r.maxTokens(), r.temperature(), r.topK(), r.topP(), r.seed()));
            }
            // the packed weight layout sums in another order: its reference is the packed decoder alone
            int[][] expectedPacked = new int[n][];
            try (KvDecoder pd = new KvDecoder(m, KvDecoder.Weights.PACKED)) {
                for (int i = 0; i < n; i++) {
                    TextRequest r = request(i);
                    expectedPacked[i] = pd.generate(TOK.encode(r.prompt()), new KvDecoder.Settings(r.maxTokens(), r.temperature(), r.topK(), r.topP(), r.seed()));
                }
            }
            long held = Scope.liveBytes();
            for (GptGenerator.Options o : List.of(new GptGenerator.Options(1, 1, 64), new GptGenerator.Options(2, 8, 64), new GptGenerator.Options(3, 32, 64),
                    new GptGenerator.Options(2, 8, 64).withWeights(KvDecoder.Weights.IN_PLACE))) {
                int[][] want = o.weights() == KvDecoder.Weights.PACKED ? expectedPacked : expected;
                try (GptGenerator g = new GptGenerator(m, TOK, o)) {
                    ExecutorService ex = Executors.newFixedThreadPool(8);
                    List<Future<TextResult>> fs = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        TextRequest r = request(i);
                        fs.add(ex.submit(() -> g.generate(r)));
                    }
                    for (int i = 0; i < n; i++) {
                        TextResult res = fs.get(i).get();
                        assertEquals(Outcome.COMPLETE, res.outcome());
                        assertArrayEquals(want[i], res.tokens(), "request " + i + " under " + o);
                        assertEquals(TOK.decode(want[i]), res.text());
                    }
                    ex.shutdown();
                    assertEquals(0, g.inFlight());
                    assertTrue(g.peakBatch.get() <= o.maxBatch(), "batch " + g.peakBatch.get() + " over " + o);
                    if (o.maxBatch() > 1) assertTrue(g.peakBatch.get() > 1, "concurrent requests were batched");
                }
                assertEquals(held, Scope.liveBytes(), "every request's KV cache is freed (" + o + ")");
            }
        }
        assertEquals(base, Scope.liveBytes());
    }

    /**
     * GptGenerator.load packs straight from the checkpoint (no model kept) by default, or loads a model read in place:
     * each gives the bits of its layout's decoder over the same weights, for a tied and an untied model.
     */
    @Test
    void aLoadedGeneratorGivesTheBitsOfItsLayout(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        for (boolean tied : new boolean[] {false, true}) {
            GptConfig cfg = new GptConfig(TOK.vocabSize(), 2, 2, 32, 24, tied);
            java.nio.file.Path ck = dir.resolve("tied-" + tied);
            int n = 12;
            int[][] inPlace = new int[n][], packed = new int[n][];
            try (Scope s = Scope.shared()) {
                Gpt m = new Gpt(s, cfg, 9);
                dev.latent.models.gpt.GptCheckpoint.save(ck, m, null, TOK, java.util.Map.of());
                try (KvDecoder a = new KvDecoder(m); KvDecoder b = new KvDecoder(m, KvDecoder.Weights.PACKED)) {
                    for (int i = 0; i < n; i++) {
                        TextRequest r = request(i);
                        KvDecoder.Settings st = new KvDecoder.Settings(r.maxTokens(), r.temperature(), r.topK(), r.topP(), r.seed());
                        inPlace[i] = a.generate(TOK.encode(r.prompt()), st);
                        packed[i] = b.generate(TOK.encode(r.prompt()), st);
                    }
                }
            }
            long base = Scope.liveBytes();
            for (KvDecoder.Weights w : KvDecoder.Weights.values()) {
                try (GptGenerator g = GptGenerator.load(ck, new GptGenerator.Options(2, 4, 64).withWeights(w))) {
                    assertEquals(cfg, g.config());
                    for (int i = 0; i < n; i++)
                        assertArrayEquals(w == KvDecoder.Weights.PACKED ? packed[i] : inPlace[i], g.generate(request(i)).tokens(), "request " + i + ", " + w + ", tied " + tied);
                }
                assertEquals(base, Scope.liveBytes(), "close() frees what the generator loaded (" + w + ")");
            }
        }
        assertEquals(KvDecoder.Weights.PACKED, new GptGenerator.Options(1, 1, 1).weights(), "serving defaults to the packed layout");
    }

    /** A packed load refuses a damaged checkpoint with a message naming the tensor, and frees what it had packed. */
    @Test
    void aPackedLoadRefusesNonFiniteWeightsAndFreesWhatItPacked(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, CFG, 9);
            m.namedParameters().get("h.1.mlp.c_fc.weight").value().segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 7, Float.NaN);
            dev.latent.models.gpt.GptCheckpoint.save(dir, m, null, TOK, java.util.Map.of());
        }
        long base = Scope.liveBytes();
        java.io.IOException e = assertThrows(java.io.IOException.class, () -> GptGenerator.load(dir, new GptGenerator.Options(1, 1, 1)));
        assertTrue(e.getMessage().contains("h.1.mlp.c_fc.weight") && e.getMessage().contains("NaN"), e.getMessage());
        assertEquals(base, Scope.liveBytes(), "the layers packed before the bad tensor are freed");
        try (var sv = dev.latent.models.gpt.GptCheckpoint.loadPacked(dir, true)) {
            assertEquals(CFG, sv.decoder().config());
        }
        assertEquals(base, Scope.liveBytes());
    }

    @Test
    void deadlinesAndCancellationStopBetweenTokensKeepingPartialOutput() throws Exception {
        try (Scope s = Scope.shared(); GptGenerator g = new GptGenerator(new Gpt(s, CFG, 5), TOK, new GptGenerator.Options(1, 4, 16))) {
            TextResult zero = g.generate(TextRequest.of("Call", 50, 1).withTimeout(Duration.ZERO));
            assertEquals(Outcome.DEADLINE, zero.outcome());
            assertEquals(0, zero.tokens().length);

            TextResult late = g.generate(TextRequest.of("Call", 1_000_000, 1).withTimeout(Duration.ofMillis(200)));
            assertEquals(Outcome.DEADLINE, late.outcome());
            assertTrue(late.tokens().length > 0 && late.tokens().length < 1_000_000, "partial: " + late.tokens().length);
            assertTrue(late.millis() < 5000, "stopped near its deadline: " + late.millis() + " ms");
            // The partial output is a prefix of the full one: stopping never changes what was drawn.
            int[] full;
            try (KvDecoder same = new KvDecoder(g.model(), g.weights())) {
                full = same.generate(TOK.encode("Call"), new KvDecoder.Settings(late.tokens().length, 0.8, 0, 1.0, 1));
            }
            assertArrayEquals(full, late.tokens());

            Pending<TextResult> p = g.submit(TextRequest.of("Call", 1_000_000, 2));
            Thread.sleep(100);
            p.cancel();
            TextResult c = p.await();
            assertEquals(Outcome.CANCELLED, c.outcome());
            assertEquals(0, g.inFlight());
        }
    }

    @Test
    void badRequestsAndOverloadAreRefusedWithClearErrors() throws Exception {
        try (Scope s = Scope.shared(); GptGenerator g = new GptGenerator(new Gpt(s, CFG, 5), TOK, new GptGenerator.Options(1, 1, 2))) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> g.submit(TextRequest.of("", 5, 1))).getMessage().contains("at least one token"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> g.submit(TextRequest.of("\u00e9", 5, 1))).getMessage().contains("not in the vocabulary"));
            assertThrows(IllegalArgumentException.class, () -> new TextRequest("x", -1, 1, 0, 1, 1, null));
            assertThrows(IllegalArgumentException.class, () -> new TextRequest("x", 1, Double.NaN, 0, 1, 1, null));
            assertThrows(IllegalArgumentException.class, () -> new TextRequest("x", 1, 1, 0, 0, 1, null));
            Pending<TextResult> a = g.submit(TextRequest.of("Call", 1_000_000, 1)), b = g.submit(TextRequest.of("Call", 1_000_000, 2));
            assertTrue(assertThrows(RejectedExecutionException.class, () -> g.submit(TextRequest.of("Call", 1, 3))).getMessage().contains("busy"));
            a.cancel();
            b.cancel();
            a.await();
            b.await();
            assertEquals(0, g.inFlight());
            assertEquals(Outcome.COMPLETE, g.generate(TextRequest.of("Call", 0, 1)).outcome());
        }
    }

    @Test
    void closeFinishesAcceptedRequestsThenRefusesNewOnes() throws Exception {
        try (Scope s = Scope.shared()) {
            GptGenerator g = new GptGenerator(new Gpt(s, CFG, 5), TOK, new GptGenerator.Options(2, 4, 64));
            List<Pending<TextResult>> ps = new ArrayList<>();
            for (int i = 0; i < 10; i++) ps.add(g.submit(request(i)));
            g.close();
            for (Pending<TextResult> p : ps) assertEquals(Outcome.COMPLETE, p.await().outcome());
            assertThrows(IllegalStateException.class, () -> g.submit(request(0)));
        }
    }

    /** A stand-in for an image model's {@code sample(seed, n)}: n "images" of 16 Philox uniforms. */
    record SampleRequest(long seed, int n, Duration timeout) {}

    @Test
    void oneShotModelsPlugInThroughBlockingGenerator() throws Exception {
        long base = Scope.liveBytes();
        BlockingGenerator.Work<SampleRequest, float[]> sample = (req, scope, ctl) -> {
            float[] out = new float[req.n() * 16];
            for (int i = 0; i < req.n(); i++) {
                ctl.check();                                   // between images
                Tensor img = Tensor.rand(scope, req.seed(), i, 16);
                System.arraycopy(img.toArray(), 0, out, i * 16, 16);
            }
            return out;
        };
        try (var g = new BlockingGenerator<>(2, 64, SampleRequest::timeout, sample)) {
            float[] alone = g.generate(new SampleRequest(7, 3, null));
            List<Pending<float[]>> ps = new ArrayList<>();
            for (int i = 0; i < 32; i++) ps.add(g.submit(new SampleRequest(7, 3, null)));
            for (Pending<float[]> p : ps) assertArrayEquals(alone, p.await());
            var stopped = assertThrows(RequestControl.StoppedException.class, () -> g.generate(new SampleRequest(7, 3, Duration.ZERO)));
            assertEquals(Outcome.DEADLINE, stopped.outcome());
            assertEquals(0, g.inFlight());
        }
        assertEquals(base, Scope.liveBytes(), "each request's scope is closed");
    }

    /** Streaming hands over the result's text piece by piece; a stop sequence ends the request before it, streamed or not. */
    @Test
    void streamingAndStopSequences() throws Exception {
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, CFG, 5);
            try (GptGenerator g = new GptGenerator(m, TOK, new GptGenerator.Options(2, 8, 64))) {
                TextRequest r = new TextRequest("Some", 40, 0.9, 0, 1.0, 77, null);
                TextResult plain = g.generate(r);
                List<String> pieces = java.util.Collections.synchronizedList(new ArrayList<>());
                TextResult streamed = g.submit(r, pieces::add).await();
                assertEquals(plain.text(), streamed.text());
                assertEquals(plain.text(), String.join("", pieces));
                assertTrue(pieces.size() > 5, "the text arrived in " + pieces.size() + " pieces");
                // a stop sequence taken from the middle of the text: the request ends before its first occurrence
                String full = plain.text();
                String stop = full.substring(10, 13);
                int at = full.indexOf(stop);
                for (boolean stream : new boolean[] {false, true}) {
                    List<String> got = java.util.Collections.synchronizedList(new ArrayList<>());
                    TextRequest rs = r.withStop(List.of("\u0000never", stop));
                    TextResult res = stream ? g.submit(rs, got::add).await() : g.generate(rs);
                    assertEquals(Outcome.STOP, res.outcome());
                    assertEquals(full.substring(0, at), res.text());
                    assertTrue(res.tokens().length < plain.tokens().length, "stopped early");
                    if (stream) {
                        assertEquals(res.text(), String.join("", got));
                        for (String p : got) assertFalse(p.contains(stop), "a streamed piece holds the stop sequence: " + p);
                    }
                }
                // a stop sequence never produced: complete, same text
                assertEquals(plain.text(), g.generate(r.withStop(List.of("\u0000"))).text());
                // a failing callback fails that request only
                var e = assertThrows(IllegalStateException.class, () -> g.submit(r, t -> { throw new IllegalStateException("client gone"); }).await());
                assertEquals("client gone", e.getMessage());
                assertEquals(plain.text(), g.generate(r).text());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new TextRequest("x", 1, 0, 0, 1, 1, null, List.of("")));
    }

    /** The metrics snapshot counts what ran; the listener sees every step and request. */
    @Test
    void metricsAndListener() throws Exception {
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, CFG, 5);
            try (GptGenerator g = new GptGenerator(m, TOK, new GptGenerator.Options(1, 8, 64))) {
                assertEquals(0, g.metrics().requests());
                assertTrue(Double.isNaN(g.metrics().latencyP50Ms()));
                java.util.concurrent.atomic.AtomicInteger steps = new java.util.concurrent.atomic.AtomicInteger(), reqs = new java.util.concurrent.atomic.AtomicInteger();
                java.util.concurrent.atomic.AtomicLong drawn = new java.util.concurrent.atomic.AtomicLong();
                g.listener(new GptGenerator.Listener() {
                    @Override public void onStep(int sequences, int d, long nanos) { steps.incrementAndGet(); drawn.addAndGet(d); }
                    @Override public void onRequest(long queueNanos, TextResult r) { reqs.incrementAndGet(); }
                });
                List<Pending<TextResult>> ps = new ArrayList<>();
                for (int i = 0; i < 6; i++) ps.add(g.submit(TextRequest.of("Call", 10, i)));
                for (Pending<TextResult> p : ps) p.await();
                GeneratorMetrics mt = g.metrics();
                assertEquals(6, mt.requests());
                assertEquals(60, mt.tokens());
                assertEquals(60, drawn.get());
                assertEquals(6, reqs.get());
                assertEquals(mt.steps(), steps.get());
                assertTrue(mt.meanBatch() >= 1 && mt.meanBatch() <= 6, "mean batch " + mt.meanBatch());
                assertTrue(mt.latencyP50Ms() > 0 && mt.latencyP99Ms() >= mt.latencyP50Ms() && mt.queueWaitP99Ms() >= 0 && mt.tokensPerSecond() > 0, mt.toString());
            }
        }
    }
}
