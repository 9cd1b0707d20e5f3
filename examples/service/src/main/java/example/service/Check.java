package example.service;

import dev.latent.io.Json;
import dev.latent.io.JsonReader;
import dev.latent.serve.TextRequestJson;

import java.io.IOException;
import java.net.ConnectException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;

/**
 * The service's contract, end to end on loopback: starts a {@link Server} on a free port against
 * {@code args[0]} (a checkpoint), sends good and bad requests, checks status codes and JSON, then shuts it
 * down while a request runs (that request must still be answered whole, /health must answer "draining" and a half-open
 * connection must not hold the drain) and checks the port is closed; framing errors answer JSON, a disconnected
 * client's request is cancelled. Prints "N passed, M failed"; exits 1 on any failure.
 */
public final class Check {
    private static int passed, failed;

    public static void main(String[] args) throws Exception {
        Server.Config cfg = new Server.Config(Path.of(args[0]), "127.0.0.1", 0, 1, 1024, 1, 4,
                new TextRequestJson.Limits(256, 200, 10_000, 16, 5_000), 5);
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        URI base;
        try (Server s = new Server(cfg)) {
            base = URI.create("http://127.0.0.1:" + s.port());
            expect("health", http, get(base, "/health"), 200, m -> "ok".equals(m.get("status")) && (Long) m.get("native_bytes") > 0);
            expect("generate", http, post(base, "{\"prompt\":\"The \",\"max_tokens\":5,\"seed\":3}"), 200,
                    m -> "complete".equals(m.get("outcome")) && Long.valueOf(5).equals(m.get("tokens")) && m.get("text") instanceof String);
            expect("greedy is repeatable", http, post(base, "{\"prompt\":\"The \",\"max_tokens\":8,\"temperature\":0}"), 200, m -> true);
            // streaming (server-sent events) and stop sequences
            String greedy = (String) JsonReader.parseObject(http.send(post(base, "{\"prompt\":\"The \",\"max_tokens\":24,\"temperature\":0}"),
                    HttpResponse.BodyHandlers.ofString()).body()).get("text");
            String sseBody = "{\"prompt\":\"The \",\"max_tokens\":24,\"temperature\":0,\"stream\":true}";
            String[] sse = rawRequest(base, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                    + sseBody.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + sseBody);
            StringBuilder streamed = new StringBuilder();
            Map<String, Object> done = null;
            int events = 0;
            for (String ev : sse[1].split("\n\n")) {
                if (ev.isBlank()) continue;
                events++;
                String data = ev.substring(ev.indexOf("data: ") + 6);
                if (ev.startsWith("event: done")) done = JsonReader.parseObject(data);
                else if (!ev.startsWith("event:")) streamed.append((String) JsonReader.parseObject(data).get("text"));
            }
            record("stream: 200 event stream, pieces add up to the result", sse[0].contains(" 200 ") && done != null && events > 2
                    && streamed.toString().equals(done.get("text")) && streamed.toString().equals(greedy) && "complete".equals(done.get("outcome")),
                    sse[0] + " " + events + " events, streamed '" + streamed + "', done " + done + ", plain '" + greedy + "'");
            if (greedy.length() >= 8) {
                String stop = greedy.substring(5, 7), before = greedy.substring(0, greedy.indexOf(stop));
                expect("stop sequence", http, post(base, "{\"prompt\":\"The \",\"max_tokens\":24,\"temperature\":0,\"stop\":[" + Json.value(stop) + "]}"), 200,
                        m -> "stop".equals(m.get("outcome")) && before.equals(m.get("text")));
            } else {
                record("stop sequence", false, "the greedy text is too short to pick a stop sequence from: '" + greedy + "'");
            }
            expect("health metrics", http, get(base, "/health"), 200, m -> m.get("metrics") instanceof Map<?, ?> mm
                    && (Long) mm.get("requests") >= 4 && (Long) mm.get("tokens") >= 40 && mm.get("latency_ms") instanceof Map<?, ?> l
                    && l.get("p50") instanceof Number && mm.get("mean_batch") instanceof Number);
            expect("bad stop", http, post(base, "{\"prompt\":\"a\",\"stop\":5}"), 400, m -> ((String) m.get("message")).contains("stop"));
            expect("bad stream flag", http, post(base, "{\"prompt\":\"a\",\"stream\":\"yes\"}"), 400, m -> ((String) m.get("message")).contains("stream"));
            expect("bad JSON", http, post(base, "{\"prompt\":"), 400, m -> "bad_request".equals(m.get("error")) && ((String) m.get("message")).contains("JSON"));
            expect("unknown field", http, post(base, "{\"prompt\":\"a\",\"max_token\":5}"), 400, m -> ((String) m.get("message")).contains("max_token"));
            expect("too many tokens", http, post(base, "{\"prompt\":\"a\",\"max_tokens\":100000}"), 400, m -> ((String) m.get("message")).contains("max_tokens"));
            expect("wrong type", http, post(base, "{\"prompt\":5}"), 400, m -> ((String) m.get("message")).contains("prompt"));
            expect("body too large", http, post(base, "{\"prompt\":\"" + "a".repeat(2000) + "\"}"), 413, m -> "body_too_large".equals(m.get("error")));
            expect("not UTF-8", http, HttpRequest.newBuilder(base.resolve("/generate"))
                    .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[] {'{', '"', (byte) 0xff, '"', '}'})).build(), 400, m -> true);
            expect("wrong method", http, get(base, "/generate"), 405, m -> true);
            expect("unknown path", http, get(base, "/nope"), 404, m -> true);
            expect("deadline", http, post(base, "{\"prompt\":\"a\",\"max_tokens\":200,\"deadline_ms\":1}"), 200,
                    m -> "deadline".equals(m.get("outcome")));
            // max-concurrent is 1: while a long request runs, a second one is refused with 429.
            CompletableFuture<HttpResponse<String>> longOne = http.sendAsync(post(base, "{\"prompt\":\"a\",\"max_tokens\":200,\"deadline_ms\":3000}"),
                    HttpResponse.BodyHandlers.ofString());
            boolean running = false;   // wait until the long request holds the only slot
            for (int i = 0; i < 500 && !running && !longOne.isDone(); i++) {
                Map<String, Object> h = JsonReader.parseObject(http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString()).body());
                running = (Long) h.get("in_flight") >= 1;
                if (!running) Thread.sleep(2);
            }
            boolean got429 = running && http.send(post(base, "{\"prompt\":\"a\",\"max_tokens\":1}"), HttpResponse.BodyHandlers.ofString()).statusCode() == 429;
            record("429 when busy", got429, "no 429 while a request ran");
            record("busy request still answers", longOne.get().statusCode() == 200, "status " + longOne.get().statusCode());

            // Framing errors are JSON answers too (the JDK server used to send an HTML 400 for these).
            String[] raw = rawRequest(base, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
            record("Content-Length: -1 is a JSON 400", raw[0].startsWith("HTTP/1.1 400") && raw[1].contains("\"error\":\"bad_request\"")
                    && raw[1].contains("Content-Length"), raw[0] + " " + raw[1]);
            raw = rawRequest(base, "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            record("Transfer-Encoding is a JSON 501", raw[0].startsWith("HTTP/1.1 501") && raw[1].contains("not_implemented"), raw[0] + " " + raw[1]);
            raw = rawRequest(base, "GARBAGE\r\n\r\n");
            record("a malformed request line is a JSON 400", raw[0].startsWith("HTTP/1.1 400") && raw[1].contains("bad_request"), raw[0] + " " + raw[1]);

            // A client that disconnects: its request is cancelled (slot and lane freed), not generated to the end.
            long before = (Long) health(http, base).get("cancelled_by_disconnect");
            try (Socket c = new Socket(base.getHost(), base.getPort())) {
                String body = "{\"prompt\":\"a\",\"max_tokens\":200,\"deadline_ms\":10000}";
                c.getOutputStream().write(("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                        + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.UTF_8));
                c.getOutputStream().flush();
                for (int i = 0; i < 500 && (Long) health(http, base).get("in_flight") < 1; i++) Thread.sleep(2);
            }
            long after = before;
            for (int i = 0; i < 1000 && after == before; i++) {
                after = (Long) health(http, base).get("cancelled_by_disconnect");
                if (after == before) Thread.sleep(2);
            }
            record("a disconnected client's request is cancelled", after == before + 1 && (Long) health(http, base).get("in_flight") == 0,
                    "cancelled_by_disconnect " + before + " -> " + after);

            // Shutdown drains: a request running when close() starts still gets its whole answer.
            CompletableFuture<HttpResponse<String>> draining = http.sendAsync(post(base, "{\"prompt\":\"a\",\"max_tokens\":150,\"deadline_ms\":10000}"),
                    HttpResponse.BodyHandlers.ofString());
            boolean started = false;
            for (int i = 0; i < 500 && !started && !draining.isDone(); i++) {
                started = (Long) JsonReader.parseObject(http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString()).body()).get("in_flight") >= 1;
                if (!started) Thread.sleep(2);
            }
            // a half-open client (head sent, body never finished) must not hold the drain
            Socket halfOpen = new Socket(base.getHost(), base.getPort());
            halfOpen.getOutputStream().write("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{".getBytes(StandardCharsets.UTF_8));
            halfOpen.getOutputStream().flush();
            long t0 = System.nanoTime();
            Thread closer = Thread.ofVirtual().start(s::close);
            Map<String, Object> during = null;
            for (int i = 0; i < 200 && during == null && closer.isAlive(); i++) {
                HttpResponse<String> h;
                try {
                    h = http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString());
                } catch (IOException e) {
                    if (!closer.isAlive()) break;   // the drain ended and the port closed under this poll: no drain left to see
                    // A pooled keep-alive connection the drain closed as idle: a client retries an idempotent GET once
                    // (RFC 9112, 9.3.1). A second failure while the drain still runs is the server dropping a request.
                    try {
                        h = http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString());
                    } catch (IOException again) {
                        if (!closer.isAlive()) break;
                        throw again;
                    }
                }
                if (h.statusCode() == 503) during = JsonReader.parseObject(h.body());
            }
            record("/health answers draining during a drain", during != null && "draining".equals(during.get("status")), String.valueOf(during));
            closer.join();
            double closeS = (System.nanoTime() - t0) / 1e9;
            halfOpen.close();
            record("a half-open connection does not hold the drain", closeS < cfg.drainSeconds() - 1, "close() took " + closeS + " s");
            HttpResponse<String> d = draining.get();
            boolean whole;
            try {
                whole = d.statusCode() == 200 && "complete".equals(JsonReader.parseObject(d.body()).get("outcome"));
            } catch (RuntimeException e) {
                whole = false;
            }
            record("shutdown drains running requests", started && whole, d.statusCode() + " " + d.body());
        }
        boolean refused;
        try {
            http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString());
            refused = false;
        } catch (ConnectException e) {
            refused = true;
        }
        record("closed after shutdown", refused, "port still answers");
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static Map<String, Object> health(HttpClient http, URI base) throws Exception {
        return JsonReader.parseObject(http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString()).body());
    }

    /** Sends raw bytes on a fresh connection; returns {status line, body}. */
    private static String[] rawRequest(URI base, String request) throws IOException {
        try (Socket c = new Socket(base.getHost(), base.getPort())) {
            c.setSoTimeout(10_000);
            c.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            c.getOutputStream().flush();
            String all = new String(c.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int eol = all.indexOf("\r\n"), sep = all.indexOf("\r\n\r\n");
            return new String[] {eol < 0 ? all : all.substring(0, eol), sep < 0 ? "" : all.substring(sep + 4)};
        }
    }

    private static HttpRequest get(URI base, String path) {
        return HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(30)).GET().build();
    }

    private static HttpRequest post(URI base, String body) {
        return HttpRequest.newBuilder(base.resolve("/generate")).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
    }

    private static void expect(String name, HttpClient http, HttpRequest req, int status, Predicate<Map<String, Object>> ok) throws Exception {
        HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
        boolean good;
        try {
            good = r.statusCode() == status && ok.test(JsonReader.parseObject(r.body()));
        } catch (RuntimeException e) {
            good = false;
        }
        record(name, good, r.statusCode() + " " + r.body());
    }

    private static void record(String name, boolean good, String detail) {
        if (good) passed++;
        else failed++;
        System.out.println((good ? "ok    " : "FAIL  ") + name + (good ? "" : ": " + detail));
    }
}
