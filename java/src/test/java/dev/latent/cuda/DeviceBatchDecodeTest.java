package dev.latent.cuda;

import dev.latent.models.gpt.DecoderFixtures;
import dev.latent.models.gpt.DeviceKvDecoder;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.serve.GptGenerator;
import dev.latent.serve.Outcome;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextResult;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.models.gpt.DecoderFixtures.CONFIGS;
import static dev.latent.models.gpt.DecoderFixtures.randomModel;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Many sequences a step on the device (DeviceKvDecoder.forward / step: all rows of all sequences as one batch through
 * each block, ltk_kv_append_rows and ltk_attention_decode_rows on a pool of cache slots) and GptGenerator on CUDA:
 * <ul>
 *   <li>a batch's logits bit for bit those of each sequence alone (prompts of different lengths, caches in other slots),
 *   and within DeviceKvDecoderTest's tolerance of the CPU decoder's batch;</li>
 *   <li>continuous batching (sequences joining and leaving mid-way, greedy and sampled, some past the context's end so
 *   their caches are rebuilt inside a batch) gives every sequence the tokens it gets alone, bit for bit;</li>
 *   <li>GptGenerator with {@code Options.withDevice(CUDA)} gives every request the batched device decoder's tokens and
 *   text, batches them, and leaves no device memory behind;</li>
 *   <li>bad input: a closed decoder, a full pool, a cache of another decoder or twice in a batch, too many tokens for the
 *   context, a done sequence, a CPU model or several lanes on CUDA: clear exceptions.</li>
 * </ul>
 * The host synchronisations of a batched step (one) are counted in HostSyncTest.gptBatchedDecodeOnDevice.
 */
class DeviceBatchDecodeTest {
    @BeforeAll
    static void gate() { device(); }

    static void assertBits(float[] want, float[] got, int off, String what) {
        for (int i = 0; i < want.length; i++)
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[off + i]), what + " logit " + i + ": alone " + want[i] + ", batched " + got[off + i]);
    }

    @Test
    void aBatchsLogitsAreEachSequencesAloneBitForBit() {
        for (int ci = 0; ci < CONFIGS.length; ci++) {
            GptConfig cfg = CONFIGS[ci];
            int v = cfg.vocab();
            try (Scope cpuS = Scope.shared(); Scope gpuS = Scope.shared()) {
                Gpt cpu = randomModel(cpuS, cfg, 41 + ci), gpu = randomModel(gpuS, cfg, 41 + ci);
                gpu.to(gpuS, Device.CUDA);
                int[][] prompts = {{3}, {1, 4, 2, 0, 3, 5, 1}, {2, 2}, {0, 1, 2, 3}};
                try (KvDecoder cd = new KvDecoder(cpu); DeviceKvDecoder dd = new DeviceKvDecoder(gpu, 2 * prompts.length)) {
                    List<DeviceKvDecoder.Cache> alone = new ArrayList<>(), batch = new ArrayList<>();
                    List<KvDecoder.Cache> cpuCaches = new ArrayList<>();
                    try {
                        for (int i = 0; i < prompts.length; i++) {
                            alone.add(dd.new Cache());   // slots 0 .. 3: the batch's caches are in other slots
                            cpuCaches.add(cd.new Cache());
                        }
                        for (int i = 0; i < prompts.length; i++) batch.add(dd.new Cache());
                        List<int[]> feed = new ArrayList<>(Arrays.asList(prompts));
                        for (int step = 0; step < Math.min(4, cfg.context() - 6); step++) {   // the longest prompt (7) to the context's end
                            float[] got = dd.forward(batch, feed, false), cpuGot = cd.forward(cpuCaches, feed, false);
                            for (int i = 0; i < prompts.length; i++) {
                                float[] want = dd.forward(List.of(alone.get(i)), List.of(feed.get(i)), false);
                                assertBits(want, got, i * v, "config " + ci + " step " + step + " sequence " + i);
                                double tol = DeviceKvDecoderTest.tolerance(cfg, batch.get(i).length(), want);
                                for (int k = 0; k < v; k++)
                                    assertEquals(cpuGot[i * v + k], got[i * v + k], tol, "config " + ci + " step " + step + " sequence " + i + " logit " + k + " vs the CPU");
                            }
                            List<int[]> next = new ArrayList<>();
                            for (int i = 0; i < prompts.length; i++) next.add(new int[] {(step * 5 + i * 3) % v});
                            feed = next;
                        }
                        // allRows: every row of a multi-row batch is its alone run's row
                        for (DeviceKvDecoder.Cache q : alone) q.reset();
                        for (DeviceKvDecoder.Cache q : batch) q.reset();
                        float[] all = dd.forward(batch, Arrays.asList(prompts), true);
                        int off = 0;
                        for (int i = 0; i < prompts.length; i++) {
                            float[] want = dd.forward(List.of(alone.get(i)), List.of(prompts[i]), true);
                            assertBits(want, all, off * v, "config " + ci + " allRows sequence " + i);
                            off += prompts[i].length;
                        }
                    } finally {
                        for (var q : alone) q.close();
                        for (var q : batch) q.close();
                        for (var q : cpuCaches) q.close();
                    }
                }
            }
        }
    }

    /** Settings of sequence i: mixed greedy and sampled, lengths that leave at different steps, some past the context. */
    static KvDecoder.Settings settings(int i, GptConfig cfg) {
        int tokens = 3 + (i * 7) % (cfg.context() + 9);
        return i % 3 == 0 ? new KvDecoder.Settings(tokens, 0, 0, 1, i) : new KvDecoder.Settings(tokens, 0.9, i % 2 == 0 ? 5 : 0, i % 4 == 1 ? 0.9 : 1, 100 + i);
    }

    static int[] prompt(int i, GptConfig cfg) {
        int[] p = new int[1 + (i * 5) % (cfg.context() - 1)];
        for (int k = 0; k < p.length; k++) p[k] = (i * 3 + k * 7) % cfg.vocab();
        return p;
    }

    @Test
    void continuousBatchingGivesEverySequenceItsTokensAlone() {
        for (int ci = 0; ci < CONFIGS.length; ci++) {
            GptConfig cfg = CONFIGS[ci];
            try (Scope s = Scope.shared()) {
                Gpt gpu = randomModel(s, cfg, 61 + ci);
                gpu.to(s, Device.CUDA);
                int n = 9, maxBatch = 4;
                try (DeviceKvDecoder dd = new DeviceKvDecoder(gpu, maxBatch)) {
                    int[][] want = new int[n][];
                    for (int i = 0; i < n; i++) want[i] = dd.generate(prompt(i, cfg), settings(i, cfg));
                    // a lane's loop: join at most one a step while there is room, step, drop the done ones
                    List<DeviceKvDecoder.Sequence> active = new ArrayList<>();
                    List<Integer> ids = new ArrayList<>();
                    int[][] got = new int[n][];
                    int next = 0, steps = 0, peak = 0, rebuilt = 0;
                    while (next < n || !active.isEmpty()) {
                        if (next < n && active.size() < maxBatch) {
                            active.add(dd.open(prompt(next, cfg), settings(next, cfg)));
                            ids.add(next++);
                        }
                        peak = Math.max(peak, active.size());
                        dd.step(active);
                        steps++;
                        for (int k = active.size() - 1; k >= 0; k--) {
                            if (!active.get(k).done()) continue;
                            int i = ids.remove(k);
                            try (DeviceKvDecoder.Sequence q = active.remove(k)) {
                                got[i] = q.generated();
                            }
                            if (prompt(i, cfg).length + want[i].length > cfg.context() + 1) rebuilt++;
                        }
                    }
                    for (int i = 0; i < n; i++)
                        assertArrayEquals(want[i], got[i], "config " + ci + " sequence " + i + " (" + settings(i, cfg) + "): batched vs alone");
                    assertEquals(maxBatch, peak, "config " + ci + ": the batch filled");
                    assertTrue(rebuilt >= 2, "config " + ci + ": only " + rebuilt + " sequences ran past the context");
                    System.out.printf("config %d: %d sequences in %d batched steps (peak %d, %d past the context) gave their tokens alone%n", ci, n, steps, peak, rebuilt);
                }
            }
        }
    }

    static final String TEXT = "Call me Ishmael. Some years ago - never mind how long precisely - having little money.";

    @Test
    void gptGeneratorOnCudaGivesTheBatchedDecodersText() throws Exception {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 2, 2, 32, 24, false);
        String[] prompts = {"Call", "C", "Some years ago", TEXT.substring(0, 40), "money."};
        int n = 20;
        TextRequest[] rs = new TextRequest[n];
        for (int i = 0; i < n; i++)   // mixed settings; some run past the context (24), which rebuilds the cache mid-request
            rs[i] = new TextRequest(prompts[i % prompts.length], 5 + (i * 7) % 40, i % 4 == 0 ? 0 : 0.9, i % 3 == 0 ? 5 : 0, i % 5 == 0 ? 0.9 : 1.0, 1000 + i, null);
        Cuda cu = Cuda.get();
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 5);
            m.to(s, Device.CUDA);
            int[][] want = new int[n][];
            try (DeviceKvDecoder dd = new DeviceKvDecoder(m)) {
                for (int i = 0; i < n; i++) {
                    TextRequest r = rs[i];
                    want[i] = dd.generate(tok.encode(r.prompt()), new KvDecoder.Settings(r.maxTokens(), r.temperature(), r.topK(), r.topP(), r.seed()));
                }
            }
            long live = cu.memoryStats().liveBytes();
            var o = new GptGenerator.Options(4, 6, 64).withDevice(Device.CUDA);
            assertEquals(1, o.lanes(), "one lane on CUDA");
            AtomicInteger peak = new AtomicInteger();
            try (GptGenerator g = new GptGenerator(m, tok, o)) {
                assertEquals(Device.CUDA, g.device());
                g.listener(new GptGenerator.Listener() {
                    @Override public void onStep(int sequences, int drawn, long nanos) { peak.accumulateAndGet(sequences, Math::max); }
                });
                ExecutorService ex = Executors.newFixedThreadPool(8);
                List<Future<TextResult>> fs = new ArrayList<>();
                for (TextRequest r : rs) fs.add(ex.submit(() -> g.generate(r)));
                for (int i = 0; i < n; i++) {
                    TextResult res = fs.get(i).get();
                    assertEquals(Outcome.COMPLETE, res.outcome());
                    assertArrayEquals(want[i], res.tokens(), "request " + i);
                    assertEquals(tok.decode(want[i]), res.text());
                }
                ex.shutdown();
                assertEquals(0, g.inFlight());
            }
            assertTrue(peak.get() > 1 && peak.get() <= 6, "concurrent requests were batched on the device (peak " + peak.get() + ")");
            assertEquals(live, cu.memoryStats().liveBytes(), "the generator's KV cache pool and scratch are freed");
        }
    }

    @Test
    void badInputIsRefusedClearly() {
        GptConfig cfg = CONFIGS[2];   // context 9
        try (Scope s = Scope.shared()) {
            Gpt gpu = randomModel(s, cfg, 3);
            gpu.to(s, Device.CUDA);
            DeviceKvDecoder dd = new DeviceKvDecoder(gpu, 2);
            try (DeviceKvDecoder other = new DeviceKvDecoder(gpu)) {
                var greedy = new KvDecoder.Settings(2, 0, 0, 1, 1);
                assertTrue(assertThrows(IllegalArgumentException.class, () -> new DeviceKvDecoder(gpu, 0)).getMessage().contains("slots"));
                assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.open(new int[0], greedy)).getMessage().contains("at least one token"));
                assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.open(new int[] {cfg.vocab()}, greedy)).getMessage().contains("outside"));
                try (DeviceKvDecoder.Cache a = dd.new Cache(); DeviceKvDecoder.Cache b = dd.new Cache()) {
                    var full = assertThrows(IllegalStateException.class, () -> dd.new Cache());
                    assertTrue(full.getMessage().contains("slots"), full.getMessage());
                    b.close();
                    try (DeviceKvDecoder.Cache c = dd.new Cache()) {   // a closed cache gave its slot back
                        assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.forward(List.of(b), List.of(new int[] {1}), false))
                                .getMessage().contains("closed"));
                        assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.forward(List.of(a, a), List.of(new int[] {1}, new int[] {2}), false))
                                .getMessage().contains("twice"));
                        try (DeviceKvDecoder.Cache foreign = other.new Cache()) {
                            assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.forward(List.of(a, foreign), List.of(new int[] {1}, new int[] {2}), false))
                                    .getMessage().contains("another decoder"));
                        }
                        var tooLong = assertThrows(IllegalArgumentException.class, () -> dd.forward(List.of(c), List.of(new int[cfg.context() + 1]), false));
                        assertTrue(tooLong.getMessage().contains("context"), tooLong.getMessage());
                        assertEquals(0, c.length(), "a refused batch appends nothing");
                        assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.forward(List.of(c), List.of(new int[] {-1}), false)).getMessage().contains("outside"));
                    }
                }
                // a prompt longer than the context is cut to its newest tokens, as on the CPU (not an error)
                int[] longPrompt = new int[3 * cfg.context()];
                for (int i = 0; i < longPrompt.length; i++) longPrompt[i] = i % cfg.vocab();
                assertArrayEquals(dd.generate(Arrays.copyOfRange(longPrompt, 2 * cfg.context(), longPrompt.length), greedy), dd.generate(longPrompt, greedy));
                try (DeviceKvDecoder.Sequence q = dd.open(new int[] {1}, new KvDecoder.Settings(1, 0, 0, 1, 1))) {
                    dd.step(List.of(q));
                    assertTrue(assertThrows(IllegalArgumentException.class, () -> dd.step(List.of(q))).getMessage().contains("done"));
                }
                DeviceKvDecoder.Sequence open = dd.open(new int[] {1}, greedy);
                dd.close();
                assertTrue(assertThrows(IllegalStateException.class, () -> dd.step(List.of(open))).getMessage().contains("closed"));
                assertTrue(assertThrows(IllegalStateException.class, () -> dd.generate(new int[] {1}, greedy)).getMessage().contains("closed"));
                assertTrue(assertThrows(IllegalStateException.class, () -> dd.new Cache()).getMessage().contains("closed"));
                open.close();
                dd.close();   // idempotent
            }
            var o = new GptGenerator.Options(1, 4, 8).withDevice(Device.CUDA);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new GptGenerator.Options(2, 4, 8, KvDecoder.Weights.IN_PLACE, Device.CUDA))
                    .getMessage().contains("lanes"));
            try (Scope c = Scope.shared()) {
                Gpt cpu = randomModel(c, cfg, 3);
                CharTokenizer tok = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz");
                assertTrue(assertThrows(IllegalArgumentException.class, () -> new GptGenerator(cpu, tok, o)).getMessage().contains("not CUDA"));
            }
        }
    }
}
