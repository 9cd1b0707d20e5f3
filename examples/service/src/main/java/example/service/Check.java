package example.service;

import dev.latent.io.JsonReader;
import dev.latent.serve.TextRequestJson;

import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;

/**
 * The service's contract, end to end on loopback: starts a {@link Server} on a free port against
 * {@code args[0]} (a checkpoint), sends good and bad requests, checks status codes and JSON, then shuts it
 * down while a request runs (that request must still be answered whole) and checks the port is closed. Prints "N passed, M failed"; exits 1 on any failure.
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

            // Shutdown drains: a request running when close() starts still gets its whole answer.
            CompletableFuture<HttpResponse<String>> draining = http.sendAsync(post(base, "{\"prompt\":\"a\",\"max_tokens\":150,\"deadline_ms\":10000}"),
                    HttpResponse.BodyHandlers.ofString());
            boolean started = false;
            for (int i = 0; i < 500 && !started && !draining.isDone(); i++) {
                started = (Long) JsonReader.parseObject(http.send(get(base, "/health"), HttpResponse.BodyHandlers.ofString()).body()).get("in_flight") >= 1;
                if (!started) Thread.sleep(2);
            }
            s.close();
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
