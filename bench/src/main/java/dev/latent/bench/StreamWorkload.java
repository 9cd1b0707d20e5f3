package dev.latent.bench;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.nativ.LatentNative;
import dev.latent.serve.GptGenerator;
import dev.latent.serve.Outcome;
import dev.latent.serve.Pending;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextResult;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * S1 streaming: first-token latency of {@link GptGenerator} under load, in process (no HTTP: what the library adds;
 * the service's SSE framing is on top). The 4 x 4 x 128 GPT of GeneratorMemoryTest (char vocabulary, context 128,
 * tied; random weights: latency does not depend on their values, every request runs its full token count) served with
 * the service's defaults: 2 lanes, batches of up to 16, native pool of {@code threads}; with the decoder's weights in
 * place (the generator's default) and then packed. Per load level, C client threads
 * each submit a streaming request, wait for its end and submit the next (closed loop) for {@code seconds}, after a
 * warm-up of the same length at 8 clients; a request is one of 64 fixed ones (6 prompts of 3-49 characters, 32 tokens,
 * temperatures 0-1, top-k 20 on a third, top-p 0.9 on a fifth, seeds 1000-1063, as the service's load test). First token
 * = submit to the first {@code onText} call (the first piece of text, drawn after the prompt's prefill and one step,
 * timed on the decoding thread); total = submit to completion. Percentiles over every request of the level.
 */
public final class StreamWorkload {
    private StreamWorkload() {}

    static final String TEXT = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'-\n0123456789";
    static final String[] PROMPTS = {"The quick brown fox", "Once upon a time", "In the beginning, there was",
            "Latent serves a GPT.", "abc", "To be or not to be: that is the question, whether"};
    static final int TOKENS = 32;

    static TextRequest request(int i) {
        String p = PROMPTS[i % PROMPTS.length];
        double temp = (i % 5) / 4.0;
        int topK = i % 3 == 0 ? 20 : 0;
        double topP = i % 5 == 1 ? 0.9 : 1.0;
        return new TextRequest(p, TOKENS, temp, topK, topP, 1000 + i, Duration.ofSeconds(60));
    }

    public static List<Map<String, Object>> run(int threads, int[] clients, double seconds, Consumer<String> log) throws Exception {
        LatentNative nat = LatentNative.get();
        nat.setNumThreads(threads);
        CharTokenizer tok = CharTokenizer.train(TEXT);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 4, 4, 128, 128, true);
        List<Map<String, Object>> out = new ArrayList<>();
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 1);
            for (KvDecoder.Weights w : KvDecoder.Weights.values())
                try (GptGenerator g = new GptGenerator(m, tok, new GptGenerator.Options(2, 16, 4096, w))) {
                    level(g, 8, seconds, null);   // warm-up: JIT, allocator caches
                    for (int c : clients) {
                        if (log != null) log.accept("stream: weights " + w + ", native pool " + threads);
                        Map<String, Object> rec = level(g, c, seconds, log);
                        rec.put("threads", threads);
                        rec.put("weights", w.name().toLowerCase(java.util.Locale.ROOT));
                        out.add(rec);
                    }
                }
        }
        return out;
    }

    private static Map<String, Object> level(GptGenerator g, int clients, double seconds, Consumer<String> log) throws Exception {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        List<long[]> firsts = new ArrayList<>(), totals = new ArrayList<>();
        AtomicLong failed = new AtomicLong(), tokens = new AtomicLong();
        List<Thread> ts = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int c = 0; c < clients; c++) {
            final int id = c;
            long[][] mine = {new long[1024], new long[1024]};
            int[] n = {0};
            Thread t = new Thread(() -> {
                int i = id;
                try {
                    while (System.nanoTime() < end) {
                        long[] first = {-1};
                        long start = System.nanoTime();
                        Pending<TextResult> p = g.submit(request(i % 64), piece -> { if (first[0] < 0) first[0] = System.nanoTime(); });
                        TextResult r = p.await();
                        long done = System.nanoTime();
                        if (r.outcome() != Outcome.COMPLETE || first[0] < 0) { failed.incrementAndGet(); continue; }
                        if (n[0] == mine[0].length) { mine[0] = Arrays.copyOf(mine[0], 2 * n[0]); mine[1] = Arrays.copyOf(mine[1], 2 * n[0]); }
                        mine[0][n[0]] = first[0] - start;
                        mine[1][n[0]++] = done - start;
                        tokens.addAndGet(r.tokens().length);
                        i += clients;
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                synchronized (firsts) {
                    firsts.add(Arrays.copyOf(mine[0], n[0]));
                    totals.add(Arrays.copyOf(mine[1], n[0]));
                }
            }, "stream-client-" + c);
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join();
        double wall = (System.nanoTime() - t0) / 1e9;
        long[] f = firsts.stream().flatMapToLong(Arrays::stream).sorted().toArray();
        long[] tot = totals.stream().flatMapToLong(Arrays::stream).sorted().toArray();
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("workload", "gpt-stream");
        rec.put("shape", "L4 H4 C128 T128 char vocab, " + TOKENS + " tokens, 2 lanes x batch 16");
        rec.put("clients", clients);
        rec.put("requests", f.length);
        rec.put("failed", failed.get());
        rec.put("req_per_s", f.length / wall);
        rec.put("tokens_per_s", tokens.get() / wall);
        rec.put("first_token_p50_ms", pct(f, 0.50));
        rec.put("first_token_p99_ms", pct(f, 0.99));
        rec.put("total_p50_ms", pct(tot, 0.50));
        rec.put("total_p99_ms", pct(tot, 0.99));
        if (log != null)
            log.accept(String.format("stream %d clients: %d requests (%d failed), %.0f req/s, %.0f tokens/s; first token p50 %.2f ms, p99 %.2f ms; total p50 %.2f ms, p99 %.2f ms",
                    clients, f.length, failed.get(), f.length / wall, tokens.get() / wall, pct(f, 0.5), pct(f, 0.99), pct(tot, 0.5), pct(tot, 0.99)));
        return rec;
    }

    /** The q-quantile (nearest rank) of sorted nanoseconds, in ms. */
    static double pct(long[] sorted, double q) {
        if (sorted.length == 0) return Double.NaN;
        int i = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1e6;
    }
}
