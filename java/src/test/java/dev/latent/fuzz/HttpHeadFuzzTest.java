package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.serve.HttpHead;

import java.io.ByteArrayInputStream;
import java.io.IOException;

/**
 * Hostile bytes on the example service's connections (issue 17): the framing reads a request head within its bounds,
 * returns null at a clean end of stream, or refuses with {@link HttpHead.Bad} (a 4xx/5xx status and a message the
 * service answers as JSON). No other exception may escape, and nothing accepted may exceed the limits.
 */
class HttpHeadFuzzTest {
    static final int MAX_HEAD = 2048;
    static final long MAX_BODY = 65536;

    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"POST /generate HTTP/1.1\\x0d\\x0a", "GET /health HTTP/1.0\\x0d\\x0a", "Content-Length: ", "Transfer-Encoding: chunked",
            "Connection: close", "Connection: keep-alive", "\\x0d\\x0a\\x0d\\x0a", "\\x0a\\x0a", "-1", "99999999999999999999", " \\x09", ":"})
    void read(byte[] bytes) throws IOException {
        ByteArrayInputStream in = new ByteArrayInputStream(bytes);
        for (int i = 0; i < 4; i++) {   // a few pipelined heads, as a keep-alive connection would read them
            HttpHead h;
            try {
                h = HttpHead.read(in, MAX_HEAD, MAX_BODY);
            } catch (HttpHead.Bad b) {
                Fuzz.requireMessage(b);
                if (b.status < 400 || b.status > 599 || b.code == null || b.code.isBlank())
                    throw new AssertionError("refusal with status " + b.status + " code " + b.code, b);
                return;
            }
            if (h == null) return;
            if (h.contentLength() < 0 || h.contentLength() > MAX_BODY) throw new AssertionError("accepted Content-Length " + h.contentLength());
            if (h.headers().size() > HttpHead.MAX_FIELDS) throw new AssertionError("accepted " + h.headers().size() + " header fields");
            if (h.method().isEmpty() || !h.target().startsWith("/")) throw new AssertionError("accepted a malformed request line: " + h);
            if (h.headers().containsKey("transfer-encoding")) throw new AssertionError("accepted Transfer-Encoding: " + h);
            in.skipNBytes(Math.min(h.contentLength(), in.available()));
        }
    }
}
