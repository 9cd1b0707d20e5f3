package example.service;

import dev.latent.io.Json;
import dev.latent.io.JsonReader;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.KvDecoder;

import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A bounded load test of the service, loopback only: {@code --clients} threads send POST /generate in a
 * loop for {@code --seconds}, then stop. Each request is one of {@code --distinct} fixed requests whose
 * expected text was computed beforehand, single-threaded, with a {@link KvDecoder} in the service's weight layout
 * (packed, {@link GptCheckpoint#loadPacked}, as {@code GptGenerator.load} by default) on the same checkpoint;
 * every answer must match it bit for bit. A monitor samples /health each second (native bytes held by
 * Latent's scopes, process RSS). Prints a summary and one JSON line; exits 1 on any failed or differing
 * request, or when memory grew between the first and the last 10 s (a third each for short runs; under 30 s
 * only native memory is judged, as RSS then still follows the JIT's warm-up).
 */
public final class LoadTest {
    record Req(String json, String expected) {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>(Map.of("--url", "http://127.0.0.1:8080", "--clients", "64", "--seconds", "60",
                "--distinct", "64", "--tokens", "32", "--window-s", "10"));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!a.containsKey(args[i]) && !args[i].equals("--checkpoint") && !args[i].equals("--json-out"))
                throw new IllegalArgumentException("bad argument " + args[i]);
            a.put(args[i], args[i + 1]);
        }
        URI base = URI.create(a.get("--url"));
        // Loopback only: this tool must never load anything but a service on this machine.
        if (!InetAddress.getByName(base.getHost()).isLoopbackAddress())
            throw new IllegalArgumentException("load test targets loopback addresses only, not " + base.getHost());
        int clients = Integer.parseInt(a.get("--clients")), seconds = Integer.parseInt(a.get("--seconds"));
        int distinct = Integer.parseInt(a.get("--distinct")), tokens = Integer.parseInt(a.get("--tokens"));
        if (clients < 1 || clients > 1024 || seconds < 1 || seconds > 3600) throw new IllegalArgumentException("clients in [1, 1024], seconds in [1, 3600]");

        // Expected answers, single-threaded, before any load.
        List<Req> reqs = new ArrayList<>();
        String[] prompts = {"\n", "The ", "Call me ", "whale", "It was", "And "};
        GptCheckpoint.Served l = GptCheckpoint.loadPacked(Path.of(a.get("--checkpoint")), false);
        try (KvDecoder sampler = l.decoder()) {
            for (int i = 0; i < distinct; i++) {
                String p = prompts[i % prompts.length];
                double temp = i % 4 == 0 ? 0 : 0.8 + 0.05 * (i % 5);
                int topK = i % 3 == 0 ? 20 : 0;
                double topP = i % 5 == 0 ? 0.9 : 1.0;
                long seed = 1000 + i;
                int[] out = sampler.generate(l.tokenizer().encode(p), new KvDecoder.Settings(tokens, temp, topK, topP, seed));
                Map<String, Object> body = new LinkedHashMap<>();
                body.put("prompt", p);
                body.put("max_tokens", tokens);
                body.put("temperature", temp);
                body.put("top_k", topK);
                body.put("top_p", topP);
                body.put("seed", seed);
                body.put("deadline_ms", 60_000);
                reqs.add(new Req(Json.object(body), l.tokenizer().decode(out)));
            }
        }

        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
        health(http, base);   // fails fast when nothing listens
        long t0 = System.nanoTime(), end = t0 + seconds * 1_000_000_000L;
        AtomicLong ok = new AtomicLong(), failed = new AtomicLong(), mismatched = new AtomicLong(), generated = new AtomicLong();
        ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        long[][] lat = new long[clients][];
        int[] nlat = new int[clients];
        List<Thread> ts = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            final int id = c;
            lat[c] = new long[1 << 12];
            Thread t = Thread.ofPlatform().name("client-" + c).start(() -> {
                int k = id;
                while (System.nanoTime() < end) {
                    Req r = reqs.get(k++ % reqs.size());
                    long s0 = System.nanoTime();
                    try {
                        HttpResponse<String> resp = http.send(HttpRequest.newBuilder(base.resolve("/generate")).timeout(Duration.ofSeconds(120))
                                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(r.json())).build(),
                                HttpResponse.BodyHandlers.ofString());
                        long ns = System.nanoTime() - s0;
                        if (resp.statusCode() != 200) {
                            failed.incrementAndGet();
                            if (errors.size() < 10) errors.add(resp.statusCode() + " " + resp.body());
                            continue;
                        }
                        Map<String, Object> m = JsonReader.parseObject(resp.body());
                        if (!r.expected().equals(m.get("text")) || !"complete".equals(m.get("outcome"))) {
                            mismatched.incrementAndGet();
                            if (errors.size() < 10) errors.add("differs: " + r.json() + " -> " + resp.body());
                            continue;
                        }
                        ok.incrementAndGet();
                        generated.addAndGet((Long) m.get("tokens"));
                        if (nlat[id] == lat[id].length) lat[id] = Arrays.copyOf(lat[id], nlat[id] * 2);
                        lat[id][nlat[id]++] = ns;
                    } catch (Exception e) {
                        failed.incrementAndGet();
                        if (errors.size() < 10) errors.add(String.valueOf(e));
                    }
                }
            });
            ts.add(t);
        }
        // Memory, once a second, from the service's own /health.
        List<long[]> mem = new ArrayList<>();   // {t_ms, native_bytes, rss_bytes}
        while (System.nanoTime() < end) {
            Thread.sleep(1000);
            try {
                Map<String, Object> h = health(http, base);
                // native: in use + kept for reuse by Latent's allocator (all its tensor memory)
                mem.add(new long[] {(System.nanoTime() - t0) / 1_000_000, (Long) h.get("native_bytes") + (Long) h.get("native_cached_bytes"),
                        (Long) h.get("rss_bytes")});
            } catch (Exception e) {
                errors.add("health: " + e);
            }
        }
        for (Thread t : ts) t.join();
        double wall = (System.nanoTime() - t0) / 1e9;

        long[] all = new long[Arrays.stream(nlat).sum()];
        int o = 0;
        for (int c = 0; c < clients; c++) { System.arraycopy(lat[c], 0, all, o, nlat[c]); o += nlat[c]; }
        Arrays.sort(all);
        double window = Math.min(Double.parseDouble(a.get("--window-s")), seconds / 3.0) * 1000;
        double[] first = avg(mem, 0, window), last = avg(mem, seconds * 1000.0 - window, Double.MAX_VALUE);
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("clients", clients);
        res.put("seconds", Math.round(wall * 10) / 10.0);
        res.put("requests_ok", ok.get());
        res.put("requests_failed", failed.get());
        res.put("requests_differing", mismatched.get());
        res.put("requests_per_s", Math.round(ok.get() / wall * 10) / 10.0);
        res.put("tokens_per_s", Math.round(generated.get() / wall));
        res.put("p50_ms", pct(all, 0.50));
        res.put("p90_ms", pct(all, 0.90));
        res.put("p99_ms", pct(all, 0.99));
        res.put("max_ms", all.length == 0 ? 0 : all[all.length - 1] / 1e6);
        res.put("native_mb_first", first[0] / 1e6);
        res.put("native_mb_last", last[0] / 1e6);
        res.put("rss_mb_first", first[1] / 1e6);
        res.put("rss_mb_last", last[1] / 1e6);
        // Flat: the last window holds no more than the first, give or take 5% (+1 MB native: requests in
        // flight vary; +16 MB RSS: JIT code cache and metaspace still grow; the script pre-touches the heap).
        // Runs under 30 s (CI's short one) are mostly JIT warm-up: there RSS is reported, not judged.
        boolean nativeFlat = last[0] <= first[0] * 1.05 + 1e6, rssFlat = last[1] <= first[1] * 1.05 + 16e6;
        boolean flat = nativeFlat && (rssFlat || seconds < 30);
        res.put("memory_flat", flat);
        String json = Json.object(res);
        System.out.printf("load test: %d clients x %.0f s: %d ok, %d failed, %d differing; %.1f req/s, %d tokens/s; p50 %.1f ms, p99 %.1f ms%n",
                clients, wall, ok.get(), failed.get(), mismatched.get(), ok.get() / wall, Math.round(generated.get() / wall), pct(all, 0.5), pct(all, 0.99));
        System.out.printf("memory (first vs last %.0f s): native %.2f -> %.2f MB, RSS %.1f -> %.1f MB: %s%n", window / 1000,
                first[0] / 1e6, last[0] / 1e6, first[1] / 1e6, last[1] / 1e6,
                flat ? (rssFlat ? "flat" : "native flat (RSS not judged under 30 s)") : "GREW");
        StringBuilder series = new StringBuilder("memory every 5 s (s: native MB / RSS MB):");
        for (long[] m : mem)
            if (Math.round(m[0] / 1000.0) % 5 == 0) series.append(String.format(" %d: %.2f/%.0f", Math.round(m[0] / 1000.0), m[1] / 1e6, m[2] / 1e6));
        System.out.println(series);
        for (String e : errors) System.out.println("  error: " + e);
        System.out.println(json);
        if (a.containsKey("--json-out")) Files.writeString(Path.of(a.get("--json-out")), json + "\n");
        boolean pass = failed.get() == 0 && mismatched.get() == 0 && ok.get() > 0 && flat;
        System.exit(pass ? 0 : 1);
    }

    private static Map<String, Object> health(HttpClient http, URI base) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(base.resolve("/health")).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) throw new IllegalStateException("/health answered " + r.statusCode() + " " + r.body());
        return JsonReader.parseObject(r.body());
    }

    /** Mean {native, rss} of the samples with from <= t < to (ms). */
    private static double[] avg(List<long[]> mem, double from, double to) {
        double n = 0, nat = 0, rss = 0;
        for (long[] m : mem)
            if (m[0] >= from && m[0] < to) { n++; nat += m[1]; rss += m[2]; }
        return n == 0 ? new double[] {0, 0} : new double[] {nat / n, rss / n};
    }

    private static double pct(long[] sorted, double p) {
        if (sorted.length == 0) return 0;
        return Math.round(sorted[(int) Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1e4) / 100.0;
    }
}
