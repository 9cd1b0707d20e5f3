package dev.latent.serve;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The head of one HTTP/1.x request (request line and headers), read with bounds: the framing of the example service
 * (examples/service), kept here so that it is fuzzed with the other readers of untrusted input. Whatever the bytes,
 * {@link #read} returns a head, returns null (the peer closed between requests), or throws {@link Bad} carrying the
 * status and a one-line JSON-ready message: never an unchecked exception, never an unbounded read.
 * <ul>
 *   <li>Content-Length: decimal digits only (no sign), repeated copies must agree, at most {@code maxBody};</li>
 *   <li>Transfer-Encoding is refused (501: send Content-Length), and so is a request carrying both;</li>
 *   <li>the head is at most {@code maxHead} bytes and 100 header fields; obsolete line folding is refused.</li>
 * </ul>
 */
public record HttpHead(String method, String target, String version, Map<String, String> headers, long contentLength, boolean keepAlive) {
    public static final int MAX_FIELDS = 100;

    /** A request the framing refuses: answer {@code status} with {@code code} and {@code getMessage()}, then close. */
    public static final class Bad extends IOException {
        public final int status;
        public final String code;

        public Bad(int status, String code, String message) {
            super(message);
            this.status = status;
            this.code = code;
        }
    }

    /** The path part of the target (before any '?'). */
    public String path() {
        int q = target.indexOf('?');
        return q < 0 ? target : target.substring(0, q);
    }

    /**
     * Reads one request head from {@code in}; null when the stream ends before its first byte (a closed keep-alive
     * connection). The body (contentLength bytes) is left in the stream.
     */
    public static HttpHead read(InputStream in, int maxHead, long maxBody) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream(256);
        int b, prev = -1, prev2 = -1;
        boolean any = false;
        while (true) {
            b = in.read();
            if (b < 0) {
                if (!any) return null;
                throw new Bad(400, "bad_request", "the connection closed in the middle of the request head");
            }
            if (!any && (b == '\r' || b == '\n')) continue;   // RFC 9112: ignore empty lines before the request line
            any = true;
            head.write(b);
            if (head.size() > maxHead) throw new Bad(431, "header_too_large", "request head over " + maxHead + " bytes");
            if (b == '\n' && (prev == '\n' || (prev == '\r' && prev2 == '\n'))) break;
            prev2 = prev;
            prev = b;
        }
        String text = head.toString(StandardCharsets.ISO_8859_1);
        String[] lines = text.split("\r?\n");
        String[] rl = lines[0].split(" ", -1);
        if (rl.length != 3) throw new Bad(400, "bad_request", "malformed request line (expected METHOD TARGET HTTP/1.1)");
        String method = rl[0], target = rl[1], version = rl[2];
        if (method.isEmpty() || !token(method)) throw new Bad(400, "bad_request", "malformed method in the request line");
        if (target.isEmpty() || !target.startsWith("/") || target.chars().anyMatch(c -> c <= ' ' || c >= 127))
            throw new Bad(400, "bad_request", "malformed request target (expected an absolute path)");
        if (!version.equals("HTTP/1.1") && !version.equals("HTTP/1.0"))
            throw new Bad(version.startsWith("HTTP/") ? 505 : 400, version.startsWith("HTTP/") ? "version_not_supported" : "bad_request",
                    "HTTP version must be HTTP/1.1 or HTTP/1.0");
        Map<String, String> h = new LinkedHashMap<>();
        long length = -1;
        int fields = 0;
        for (int i = 1; i < lines.length; i++) {
            String l = lines[i];
            if (l.isEmpty()) continue;
            if (l.charAt(0) == ' ' || l.charAt(0) == '\t') throw new Bad(400, "bad_request", "obsolete header line folding is not accepted");
            if (++fields > MAX_FIELDS) throw new Bad(431, "header_too_large", "more than " + MAX_FIELDS + " header fields");
            int colon = l.indexOf(':');
            if (colon <= 0) throw new Bad(400, "bad_request", "malformed header field (no name or no ':')");
            String name = l.substring(0, colon);
            if (!token(name)) throw new Bad(400, "bad_request", "malformed header field name");
            String value = l.substring(colon + 1).strip();
            if (value.chars().anyMatch(c -> c < ' ' && c != '\t' || c == 127)) throw new Bad(400, "bad_request", "control character in header " + name);
            String key = name.toLowerCase(Locale.ROOT);
            if (key.equals("content-length")) {
                long v = contentLength(value);
                if (length >= 0 && v != length) throw new Bad(400, "bad_request", "conflicting Content-Length headers");
                length = v;
            }
            h.merge(key, value, (a, c) -> a + ", " + c);
        }
        if (h.containsKey("transfer-encoding")) {
            if (length >= 0) throw new Bad(400, "bad_request", "both Transfer-Encoding and Content-Length");
            throw new Bad(501, "not_implemented", "Transfer-Encoding is not supported; send the body with a Content-Length");
        }
        if (length > maxBody) throw new Bad(413, "body_too_large", "request body over " + maxBody + " bytes");
        String conn = h.getOrDefault("connection", "").toLowerCase(Locale.ROOT);
        boolean keep = version.equals("HTTP/1.1") ? !conn.contains("close") : conn.contains("keep-alive");
        return new HttpHead(method, target, version, Map.copyOf(h), Math.max(length, 0), keep);
    }

    private static long contentLength(String v) throws Bad {
        if (v.isEmpty() || v.length() > 18 || !v.chars().allMatch(c -> c >= '0' && c <= '9'))
            throw new Bad(400, "bad_request", "Content-Length must be a non-negative integer, got \"" + (v.length() > 40 ? v.substring(0, 40) + "..." : v) + "\"");
        return Long.parseLong(v);
    }

    private static boolean token(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c <= ' ' || c >= 127 || "()<>@,;:\\\"/[]?={}".indexOf(c) >= 0) return false;
        }
        return true;
    }
}
