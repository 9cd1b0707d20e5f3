package example.service;

import dev.latent.io.Json;
import dev.latent.serve.GptGenerator;
import dev.latent.serve.HttpHead;
import dev.latent.serve.Pending;
import dev.latent.serve.TextGenerator;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextRequestJson;
import dev.latent.serve.TextResult;
import dev.latent.tensor.Scope;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PushbackInputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A text-generation service over a Latent GPT checkpoint.
 * <pre>
 *   GET  /health    also "metrics": requests, tokens, steps, mean_batch, tokens_per_s, queue_wait_ms and latency_ms
 *                   {p50, p99} over the recent requests (dev.latent.serve.GeneratorMetrics); JFR events
 *                   latent.Request and latent.DecodeStep (JfrEvents) when a recording is on
 *   POST /generate  {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "deadline_ms", "stop", "stream"}
 *                   "stream": true answers with server-sent events: data {"text"} per piece, then event "done" with the
 *                   result object (or event "error"); the connection closes after the stream
 *                   -> 200 {"text", "tokens", "prompt_tokens", "outcome", "ms"}   outcome: complete | deadline
 *                   -> 400 bad JSON, field or framing (e.g. Content-Length: -1), 413 body too large, 429 too many
 *                      requests, 405, 431 head too large, 501 Transfer-Encoding, 503 draining, 500
 *   GET  /health    -> 200 {"status": "ok", "in_flight", "served", "native_bytes", "native_cached_bytes", "rss_bytes",
 *                               "context", "vocab"}   native: tensor memory in use / kept for reuse by Latent
 *                   -> 503 {"status": "draining", ...} while a shutdown drains
 * </pre>
 * Every error, framing errors included, is {"error": code, "message": text}. HTTP/1.1 with keep-alive, framed by
 * {@link HttpHead} (bounded, fuzzed in the library's tests). A request past its deadline answers 200 with the tokens
 * drawn so far and outcome "deadline"; a request whose client disconnects is cancelled at once (its slot and lane
 * are freed). SIGTERM (or Ctrl-C) drains: /generate answers 503, /health answers "draining", running requests
 * finish (up to --drain-s); connections that are idle or still sending a request (a half-open client) are closed
 * once they have been quiet for 250 ms, so they cannot hold the drain (a request whose bytes are arriving is read
 * and answered, 503 for /generate); then the port closes and the model's memory is freed.
 */
public final class Server implements AutoCloseable {
    /** Settings; see {@link #main} for the flags. */
    public record Config(Path checkpoint, String host, int port, int maxConcurrent, int maxBodyBytes, int lanes, int maxBatch,
                         TextRequestJson.Limits limits, int drainSeconds) {}

    static final int MAX_HEAD = 16 * 1024;
    /** How long a connection may take to send a request head and body, or sit idle between requests. */
    static final int IDLE_MS = 30_000;

    private final Config cfg;
    private final TextGenerator gen;
    private final ServerSocket socket;
    private final ExecutorService exec = Executors.newVirtualThreadPerTaskExecutor();
    private final Semaphore gate;
    private final AtomicLong served = new AtomicLong(), cancelled = new AtomicLong();
    /** Open connections, and whether each is between a complete request and its answer (busy: the drain waits). */
    private final Map<Socket, Long> conns = new ConcurrentHashMap<>();
    /** In {@link #conns}: the connection is between a complete request and its answer. */
    private static final long BUSY = Long.MIN_VALUE;
    /**
     * A drain closes a connection that has been quiet (idle, or stuck mid-request) this long. Not at once: a request
     * whose first bytes have just arrived is still being read, and closing it would answer a live client with EOF.
     */
    private static final long DRAIN_GRACE_NS = 250_000_000L;
    private final Object drained = new Object();
    private volatile boolean closed;

    public Server(Config cfg) throws IOException {
        this.cfg = cfg;
        this.gate = new Semaphore(cfg.maxConcurrent());
        GptGenerator g = GptGenerator.load(cfg.checkpoint(), new GptGenerator.Options(cfg.lanes(), cfg.maxBatch(), cfg.maxConcurrent()));
        g.listener(new JfrEvents());   // JFR events per request and per decode step (cheap when no recording is on)
        this.gen = g;
        try {
            socket = new ServerSocket(cfg.port(), 256, InetAddress.getByName(cfg.host()));
        } catch (IOException e) {
            gen.close();
            throw e;
        }
        Thread.ofPlatform().name("service-accept").daemon(false).start(this::acceptLoop);   // keeps the JVM up until close()
    }

    public int port() { return socket.getLocalPort(); }

    /** Requests cancelled because their client went away (for tests and /health). */
    public long cancelledByDisconnect() { return cancelled.get(); }

    private void acceptLoop() {
        while (!socket.isClosed()) {
            try {
                Socket c = socket.accept();
                conns.put(c, System.nanoTime());
                try {
                    exec.submit(() -> serve(c));
                } catch (RejectedExecutionException e) {
                    conns.remove(c);
                    c.close();
                }
            } catch (IOException e) {
                if (socket.isClosed()) return;
            }
        }
    }

    /** One connection: requests one after another (keep-alive) until the client closes, an error, or a drain. */
    private void serve(Socket c) {
        try (c) {
            c.setSoTimeout(IDLE_MS);
            c.setTcpNoDelay(true);
            PushbackInputStream in = new PushbackInputStream(new BufferedInputStream(c.getInputStream()), 1);
            OutputStream out = new BufferedOutputStream(c.getOutputStream());
            while (true) {
                HttpHead h;
                byte[] body;
                try {
                    h = HttpHead.read(in, MAX_HEAD, cfg.maxBodyBytes());
                    if (h == null) return;
                    body = in.readNBytes((int) h.contentLength());
                    if (body.length < h.contentLength()) return;   // the client went away mid-body: nobody to answer
                } catch (HttpHead.Bad b) {
                    if (b.status == 413) { respond(out, 413, TextRequestJson.error(b.code, b.getMessage()), false, null); return; }
                    respond(out, b.status, TextRequestJson.error(b.code, b.getMessage()), false, null);
                    return;
                }
                conns.put(c, BUSY);
                boolean keep;
                Watch w = new Watch();
                try {
                    keep = h.keepAlive() && !closed;
                    int[] status = new int[1];
                    String json = dispatch(h, body, in, out, status, w);
                    if (json == null || json == STREAMED) return;   // cancelled (the client is gone), or streamed (ends with the connection)
                    respond(out, status[0], json, keep, status[0] == 405 ? "POST" : null);
                } finally {
                    conns.put(c, System.nanoTime());
                    synchronized (drained) { drained.notifyAll(); }
                }
                if (!keep || closed) return;
                int next = w.thread != null ? w.next() : awaitNext(in);
                if (next == -2) next = awaitNext(in);
                if (next < 0) return;
                conns.put(c, System.nanoTime());   // a request is arriving: the drain gives it DRAIN_GRACE_NS to be read
                in.unread(next);
            }
        } catch (IOException e) {
            // the client went away or timed out: nothing to answer
        } finally {
            conns.remove(c);
            synchronized (drained) { drained.notifyAll(); }
        }
    }

    /**
     * Watches a connection while its request runs: end of stream (the client closed or reset) cancels the request; a
     * byte (the start of a pipelined next request) is kept for the connection loop, which reads nothing until then.
     */
    private static final class Watch {
        volatile Thread thread;
        final AtomicBoolean gone = new AtomicBoolean(), done = new AtomicBoolean();
        volatile int early = -2;

        void start(PushbackInputStream in, Pending<?> p) {
            thread = Thread.ofVirtual().start(() -> {
                while (true) {
                    try {
                        int b = in.read();
                        if (b < 0) { gone.set(true); p.cancel(); } else early = b;
                        return;
                    } catch (java.net.SocketTimeoutException t) {
                        if (done.get()) return;   // idle after the answer: the connection loop decides (early stays -2)
                    } catch (IOException e) {
                        gone.set(true);
                        p.cancel();
                        return;
                    }
                }
            });
        }

        /** After the answer: the next request's first byte, -1 when the client left, -2 when it stayed idle. */
        int next() {
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -1;
            }
            return gone.get() ? -1 : early;
        }
    }

    /** The first byte of the next request, or -1 when the connection ends (or idles out). */
    private int awaitNext(PushbackInputStream in) {
        try {
            return in.read();
        } catch (IOException e) {
            return -1;
        }
    }

    /** dispatch's answer when it already wrote a server-sent event stream (the connection then closes). */
    private static final String STREAMED = new String("streamed");

    private String dispatch(HttpHead h, byte[] body, PushbackInputStream in, OutputStream out, int[] status, Watch w) {
        String path = h.path();
        if (path.equals("/health")) return health(status);
        if (!path.equals("/generate")) { status[0] = 404; return TextRequestJson.error("not_found", "no such endpoint: " + path); }
        if (!h.method().equals("POST")) { status[0] = 405; return TextRequestJson.error("method_not_allowed", "use POST"); }
        if (closed) { status[0] = 503; return TextRequestJson.error("shutting_down", "the service is draining; retry elsewhere"); }
        TextRequest req;
        boolean stream;
        try {
            TextRequestJson.Parsed parsed = TextRequestJson.parseFull(body, cfg.limits());
            req = parsed.request();
            stream = parsed.stream();
        } catch (IllegalArgumentException e) {
            status[0] = 400;
            return TextRequestJson.error("bad_request", e.getMessage());
        }
        if (!gate.tryAcquire()) { status[0] = 429; return TextRequestJson.error("too_many_requests", cfg.maxConcurrent() + " requests are running; retry later"); }
        try {
            Pending<TextResult> p;
            LinkedBlockingQueue<String> pieces = stream ? new LinkedBlockingQueue<>() : null;
            try {
                p = stream ? gen.submit(req, pieces::add) : gen.submit(req);
            } catch (IllegalArgumentException e) {       // e.g. a character the tokenizer does not know
                status[0] = 400;
                return TextRequestJson.error("bad_request", e.getMessage());
            } catch (RejectedExecutionException e) {
                status[0] = 429;
                return TextRequestJson.error("too_many_requests", e.getMessage());
            } catch (IllegalStateException e) {
                status[0] = 503;
                return TextRequestJson.error("shutting_down", e.getMessage());
            }
            w.start(in, p);
            if (stream) return streamEvents(out, p, pieces, w);
            TextResult r;
            try {
                r = p.await();
            } catch (InterruptedException e) {
                p.cancel();
                Thread.currentThread().interrupt();
                status[0] = 503;
                return TextRequestJson.error("shutting_down", "interrupted");
            } finally {
                w.done.set(true);
            }
            if (w.gone.get()) { cancelled.incrementAndGet(); return null; }
            served.incrementAndGet();
            status[0] = 200;
            return TextRequestJson.result(r);
        } catch (RuntimeException e) {
            status[0] = 500;
            return TextRequestJson.error("internal", String.valueOf(e));
        } finally {
            gate.release();
        }
    }

    /**
     * Server-sent events: 200 with Content-Type text/event-stream, then one {@code data: {"text": piece}} event per piece of
     * text as it is drawn, and a last {@code event: done} whose data is the usual result object ({"text", "tokens",
     * "prompt_tokens", "outcome", "ms"}); a failure after the stream began is an {@code event: error} with the usual
     * {"error", "message"} object. The connection closes after the stream (no chunked framing needed). A client that goes
     * away cancels the request.
     */
    private String streamEvents(OutputStream out, Pending<TextResult> p, LinkedBlockingQueue<String> pieces, Watch w) {
        java.util.concurrent.CompletableFuture<TextResult> f = p.future();
        try {
            out.write(("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
                    + "Connection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            while (true) {
                String piece = pieces.poll(20, java.util.concurrent.TimeUnit.MILLISECONDS);
                if (piece != null) {
                    event(out, null, TextRequestJson.delta(piece));
                    continue;
                }
                if (f.isDone() && pieces.isEmpty()) break;
                if (w.gone.get()) throw new IOException("client gone");
            }
            try {
                TextResult r = f.join();
                event(out, "done", TextRequestJson.result(r));
                served.incrementAndGet();
            } catch (java.util.concurrent.CompletionException e) {
                Throwable c = e.getCause() == null ? e : e.getCause();
                event(out, "error", TextRequestJson.error(c instanceof IllegalArgumentException ? "bad_request" : "internal", String.valueOf(c.getMessage())));
            }
        } catch (IOException e) {
            p.cancel();
            cancelled.incrementAndGet();
        } catch (InterruptedException e) {
            p.cancel();
            Thread.currentThread().interrupt();
        } finally {
            w.done.set(true);
        }
        return STREAMED;
    }

    private static void event(OutputStream out, String name, String data) throws IOException {
        String e = (name == null ? "" : "event: " + name + "\n") + "data: " + data + "\n\n";
        out.write(e.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private String health(int[] status) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("status", closed ? "draining" : "ok");
        o.put("in_flight", gen.inFlight());
        o.put("served", served.get());
        o.put("cancelled_by_disconnect", cancelled.get());
        o.put("native_bytes", Scope.liveBytes());
        o.put("native_cached_bytes", Scope.cachedBytes());
        o.put("rss_bytes", rssBytes());
        o.put("context", gen.context());
        o.put("vocab", gen.tokenizer().vocabSize());
        if (gen instanceof GptGenerator g) o.put("metrics", g.metrics().toMap());
        status[0] = closed ? 503 : 200;
        return Json.object(o);
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

    private static final Map<Integer, String> REASONS = Map.ofEntries(Map.entry(200, "OK"), Map.entry(400, "Bad Request"),
            Map.entry(404, "Not Found"), Map.entry(405, "Method Not Allowed"), Map.entry(413, "Content Too Large"),
            Map.entry(429, "Too Many Requests"), Map.entry(431, "Request Header Fields Too Large"), Map.entry(500, "Internal Server Error"),
            Map.entry(501, "Not Implemented"), Map.entry(503, "Service Unavailable"), Map.entry(505, "HTTP Version Not Supported"));

    private static void respond(OutputStream out, int status, String json, boolean keepAlive, String allow) throws IOException {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        StringBuilder h = new StringBuilder("HTTP/1.1 ").append(status).append(' ').append(REASONS.getOrDefault(status, "Error")).append("\r\n")
                .append("Content-Type: application/json; charset=utf-8\r\n").append("Content-Length: ").append(b.length).append("\r\n")
                .append("Connection: ").append(keepAlive ? "keep-alive" : "close").append("\r\n");
        if (allow != null) h.append("Allow: ").append(allow).append("\r\n");
        h.append("\r\n");
        out.write(h.toString().getBytes(StandardCharsets.ISO_8859_1));
        out.write(b);
        out.flush();
    }

    /**
     * Drains, then stops: /generate answers 503 and /health "draining" from now on; idle and half-sent connections are
     * closed at once; requests being generated finish (up to the drain time); then the port closes and the model is freed.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        long end = System.nanoTime() + cfg.drainSeconds() * 1_000_000_000L;
        synchronized (drained) {
            while (true) {
                // close what is not mid-request (idle keep-alive, or a client still sending: it cannot hold the drain)
                long now = System.nanoTime();
                conns.forEach((c, since) -> {
                    if (since != BUSY && now - since > DRAIN_GRACE_NS) { try { c.close(); } catch (IOException ignored) { /* closing */ } }
                });
                boolean anyBusy = conns.containsValue(BUSY);
                long left = end - System.nanoTime();
                if (!anyBusy || left <= 0) break;
                try {
                    drained.wait(Math.max(1, Math.min(50, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        try { socket.close(); } catch (IOException ignored) { /* closing */ }
        conns.keySet().forEach(c -> { try { c.close(); } catch (IOException ignored) { /* closing */ } });
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
        dev.latent.Latent.setThreads(Integer.parseInt(a.get("--native-threads")));
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
