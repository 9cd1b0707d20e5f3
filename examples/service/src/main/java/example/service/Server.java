package example.service;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.latent.io.Json;
import dev.latent.serve.GptGenerator;
import dev.latent.serve.Pending;
import dev.latent.serve.TextGenerator;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextRequestJson;
import dev.latent.serve.TextResult;
import dev.latent.tensor.Scope;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A text-generation service over a Latent GPT checkpoint.
 * <pre>
 *   POST /generate  {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "deadline_ms"}
 *                   -> 200 {"text", "tokens", "prompt_tokens", "outcome", "ms"}   outcome: complete | deadline
 *                   -> 400 bad JSON or field, 413 body too large, 429 too many requests, 405, 500
 *   GET  /health    -> 200 {"status", "in_flight", "served", "native_bytes", "native_cached_bytes", "rss_bytes",
 *                               "context", "vocab"}   native: tensor memory in use / kept for reuse by Latent
 * </pre>
 * Every error is {"error": code, "message": text}. A request past its deadline answers 200 with the tokens
 * drawn so far and outcome "deadline". SIGTERM (or Ctrl-C) drains: new connections are refused, running
 * requests finish (up to --drain-s), then the model's memory is freed.
 */
public final class Server implements AutoCloseable {
    /** Settings; see {@link #main} for the flags. */
    public record Config(Path checkpoint, String host, int port, int maxConcurrent, int maxBodyBytes, int lanes, int maxBatch,
                         TextRequestJson.Limits limits, int drainSeconds) {}

    private final Config cfg;
    private final TextGenerator gen;
    private final HttpServer http;
    private final ExecutorService exec = Executors.newVirtualThreadPerTaskExecutor();
    private final Semaphore gate;
    private final AtomicLong served = new AtomicLong();
    private volatile boolean closed;

    public Server(Config cfg) throws IOException {
        this.cfg = cfg;
        this.gate = new Semaphore(cfg.maxConcurrent());
        this.gen = GptGenerator.load(cfg.checkpoint(), new GptGenerator.Options(cfg.lanes(), cfg.maxBatch(), cfg.maxConcurrent()));
        try {
            http = HttpServer.create(new InetSocketAddress(InetAddress.getByName(cfg.host()), cfg.port()), 256);
        } catch (IOException e) {
            gen.close();
            throw e;
        }
        http.createContext("/generate", this::generate);
        http.createContext("/health", this::health);
        http.createContext("/", ex -> send(ex, 404, TextRequestJson.error("not_found", "no such endpoint: " + ex.getRequestURI().getPath())));
        http.setExecutor(exec);
        http.start();
    }

    public int port() { return http.getAddress().getPort(); }

    private void generate(HttpExchange ex) throws IOException {
        try (ex) {
            if (!ex.getRequestURI().getPath().equals("/generate")) { send(ex, 404, TextRequestJson.error("not_found", "no such endpoint: " + ex.getRequestURI().getPath())); return; }
            if (!ex.getRequestMethod().equals("POST")) { ex.getResponseHeaders().add("Allow", "POST"); send(ex, 405, TextRequestJson.error("method_not_allowed", "use POST")); return; }
            byte[] body = readBounded(ex);
            if (body == null) { send(ex, 413, TextRequestJson.error("body_too_large", "request body over " + cfg.maxBodyBytes() + " bytes")); return; }
            TextRequest req;
            try {
                req = TextRequestJson.parse(body, cfg.limits());
            } catch (IllegalArgumentException e) {
                send(ex, 400, TextRequestJson.error("bad_request", e.getMessage()));
                return;
            }
            if (!gate.tryAcquire()) { send(ex, 429, TextRequestJson.error("too_many_requests", cfg.maxConcurrent() + " requests are running; retry later")); return; }
            try {
                Pending<TextResult> p;
                try {
                    p = gen.submit(req);
                } catch (IllegalArgumentException e) {       // e.g. a character the tokenizer does not know
                    send(ex, 400, TextRequestJson.error("bad_request", e.getMessage()));
                    return;
                } catch (RejectedExecutionException e) {
                    send(ex, 429, TextRequestJson.error("too_many_requests", e.getMessage()));
                    return;
                } catch (IllegalStateException e) {
                    send(ex, 503, TextRequestJson.error("shutting_down", e.getMessage()));
                    return;
                }
                TextResult r;
                try {
                    r = p.await();
                } catch (InterruptedException e) {
                    p.cancel();
                    Thread.currentThread().interrupt();
                    send(ex, 503, TextRequestJson.error("shutting_down", "interrupted"));
                    return;
                }
                served.incrementAndGet();
                send(ex, 200, TextRequestJson.result(r));
            } finally {
                gate.release();
            }
        } catch (RuntimeException e) {
            send(ex, 500, TextRequestJson.error("internal", String.valueOf(e)));
        }
    }

    /** The body, or null when it is longer than the limit (read no further than limit + 1 bytes). */
    private byte[] readBounded(HttpExchange ex) throws IOException {
        String cl = ex.getRequestHeaders().getFirst("Content-Length");
        if (cl != null) {
            try {
                if (Long.parseLong(cl.trim()) > cfg.maxBodyBytes()) return null;
            } catch (NumberFormatException ignored) {
                // the server has already refused a malformed length; read with the bound below
            }
        }
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = in.readNBytes(cfg.maxBodyBytes() + 1);
            return b.length > cfg.maxBodyBytes() ? null : b;
        }
    }

    private void health(HttpExchange ex) throws IOException {
        try (ex) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("status", closed ? "draining" : "ok");
            o.put("in_flight", gen.inFlight());
            o.put("served", served.get());
            o.put("native_bytes", Scope.liveBytes());
            o.put("native_cached_bytes", Scope.cachedBytes());
            o.put("rss_bytes", rssBytes());
            o.put("context", gen.context());
            o.put("vocab", gen.tokenizer().vocabSize());
            send(ex, closed ? 503 : 200, Json.object(o));
        }
    }

    /** VmRSS from /proc/self/status, or -1 where there is none. */
    static long rssBytes() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status")))
                if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
        } catch (IOException | NumberFormatException ignored) {
            // not Linux: no figure
        }
        return -1;
    }

    private static void send(HttpExchange ex, int status, String json) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json; charset=utf-8");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(b);
        }
    }

    /** Refuses new connections, lets running requests finish (up to the drain time), frees the model. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        http.stop(cfg.drainSeconds());
        gen.close();
        exec.close();
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>(Map.of("--host", "127.0.0.1", "--port", "8080", "--max-concurrent", "128",
                "--max-body", "65536", "--lanes", Integer.toString(Math.min(4, Runtime.getRuntime().availableProcessors())),
                "--max-batch", "16", "--max-tokens", "512", "--max-deadline-ms", "60000", "--drain-s", "10", "--native-threads", "1"));
        if (java.util.Arrays.asList(args).contains("--help")) {
            System.out.println("usage: Server --checkpoint DIR " + a.keySet().stream().map(k -> "[" + k + " " + a.get(k) + "]").reduce((x, y) -> x + " " + y).orElse(""));
            return;
        }
        for (int i = 0; i < args.length; i++) {
            if (i + 1 >= args.length || !(args[i].equals("--checkpoint") || a.containsKey(args[i])))
                throw new IllegalArgumentException("bad argument " + args[i] + " (see --help)");
            a.put(args[i], args[++i]);
        }
        if (!a.containsKey("--checkpoint")) throw new IllegalArgumentException("--checkpoint DIR is required");
        int maxTokens = Integer.parseInt(a.get("--max-tokens"));
        long maxDeadline = Long.parseLong(a.get("--max-deadline-ms"));
        Config c = new Config(Path.of(a.get("--checkpoint")), a.get("--host"), Integer.parseInt(a.get("--port")),
                Integer.parseInt(a.get("--max-concurrent")), Integer.parseInt(a.get("--max-body")), Integer.parseInt(a.get("--lanes")),
                Integer.parseInt(a.get("--max-batch")),
                new TextRequestJson.Limits(4096, maxTokens, maxDeadline, Math.min(64, maxTokens), Math.min(30_000, maxDeadline)),
                Integer.parseInt(a.get("--drain-s")));
        // Parallelism comes from the lanes (one decoding thread per core); the native pool's hand-off costs more
        // than it saves on a small model's kernels, and stalls when another thread holds a core: a pool of 1
        // measured ~1.6x the tokens/s of 2 (BENCHMARKS.md S1).
        dev.latent.nativ.LatentNative.get().setNumThreads(Integer.parseInt(a.get("--native-threads")));
        Server s;
        try {
            s = new Server(c);
        } catch (IOException e) {       // no checkpoint, a corrupt one, a port in use: one clear line
            System.err.println("service: " + e.getMessage());
            System.exit(2);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("service: draining");
            s.close();
            System.err.println("service: stopped");
        }));
        System.err.println("service: listening on http://" + c.host() + ":" + s.port() + " (checkpoint " + c.checkpoint() + ")");
        System.out.println("READY " + s.port());
        System.out.flush();
    }
}
