package dev.latent.serve;

import dev.latent.io.Json;
import dev.latent.io.JsonReader;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The wire form of a text request and its result, for HTTP services (no HTTP here: the example service
 * under examples/service brings its own server). Request: {@code {"prompt": str, "max_tokens": int,
 * "temperature": num, "top_k": int, "top_p": num, "seed": int, "deadline_ms": int, "stop": str | [str, ...] (up to 4, 1-64
 * characters each), "stream": bool}}, only prompt required;
 * unknown fields are refused (a typo should not silently fall back to a default). Every problem is an
 * {@link IllegalArgumentException} whose message names the field, for a 400 answer.
 */
public final class TextRequestJson {
    private static final Set<String> FIELDS = Set.of("prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "deadline_ms", "stop", "stream");

    /** A parsed request and whether the client asked for the text as it is drawn ({@code "stream": true}: server-sent events). */
    public record Parsed(TextRequest request, boolean stream) {}

    private TextRequestJson() {}

    /** What a request may ask for: prompt length in characters, tokens, and the longest deadline. */
    public record Limits(int maxPromptChars, int maxTokens, long maxDeadlineMs, int defaultTokens, long defaultDeadlineMs) {
        public Limits {
            if (maxPromptChars < 1 || maxTokens < 0 || maxDeadlineMs < 1 || defaultTokens < 0 || defaultTokens > maxTokens
                    || defaultDeadlineMs < 1 || defaultDeadlineMs > maxDeadlineMs)
                throw new IllegalArgumentException("inconsistent limits: " + this);
        }

        /** 4096 prompt characters, 512 tokens (64 by default), deadlines up to 60 s (30 s by default). */
        public static Limits defaults() { return new Limits(4096, 512, 60_000, 64, 30_000); }
    }

    /** Decodes a request body (strict UTF-8) and parses it (a "stream" field is checked and dropped: see {@link #parseFull}). */
    public static TextRequest parse(byte[] body, Limits lim) { return parseFull(body, lim).request(); }

    /** As {@link #parse(byte[], Limits)}, keeping the "stream" flag. */
    public static Parsed parseFull(byte[] body, Limits lim) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(body)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("request body is not valid UTF-8");
        }
        return parseFull(text, lim);
    }

    public static TextRequest parse(String body, Limits lim) { return parseFull(body, lim).request(); }

    /** Parses a request body, keeping the "stream" flag. */
    public static Parsed parseFull(String body, Limits lim) {
        Map<String, Object> m = JsonReader.parseObject(body);
        for (String k : m.keySet())
            if (!FIELDS.contains(k)) throw new IllegalArgumentException("unknown field \"" + k + "\" (known: " + String.join(", ", FIELDS.stream().sorted().toList()) + ")");
        if (!(m.get("prompt") instanceof String prompt)) throw new IllegalArgumentException("\"prompt\" must be a string");
        if (prompt.length() > lim.maxPromptChars()) throw new IllegalArgumentException("\"prompt\" has " + prompt.length() + " characters; the limit is " + lim.maxPromptChars());
        long tokens = integer(m, "max_tokens", lim.defaultTokens(), 0, lim.maxTokens());
        double temperature = number(m, "temperature", 0.8, 0, 100);
        long topK = integer(m, "top_k", 0, 0, Integer.MAX_VALUE);
        double topP = number(m, "top_p", 1.0, Double.MIN_VALUE, 1);
        long seed = integer(m, "seed", 0, Long.MIN_VALUE, Long.MAX_VALUE);
        long deadline = integer(m, "deadline_ms", lim.defaultDeadlineMs(), 1, lim.maxDeadlineMs());
        java.util.List<String> stop = stops(m.get("stop"));
        Object st = m.get("stream");
        if (st != null && !(st instanceof Boolean)) throw new IllegalArgumentException("\"stream\" must be true or false, got " + Json.value(st));
        return new Parsed(new TextRequest(prompt, (int) tokens, temperature, (int) topK, topP, seed, Duration.ofMillis(deadline), stop),
                Boolean.TRUE.equals(st));
    }

    private static java.util.List<String> stops(Object v) {
        if (v == null) return java.util.List.of();
        java.util.List<?> items = v instanceof String s ? java.util.List.of(s) : v instanceof java.util.List<?> l ? l : null;
        if (items == null) throw new IllegalArgumentException("\"stop\" must be a string or an array of strings, got " + Json.value(v));
        if (items.size() > 4) throw new IllegalArgumentException("\"stop\" holds " + items.size() + " sequences; the limit is 4");
        java.util.List<String> out = new java.util.ArrayList<>();
        for (Object o : items) {
            if (!(o instanceof String s)) throw new IllegalArgumentException("\"stop\" entries must be strings, got " + Json.value(o));
            if (s.isEmpty() || s.length() > 64) throw new IllegalArgumentException("\"stop\" entries must have 1 to 64 characters, got " + s.length());
            out.add(s);
        }
        return out;
    }

    /** One server-sent event's data while streaming: {"text": the new piece of text}. */
    public static String delta(String text) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("text", text);
        return Json.object(o);
    }

    private static long integer(Map<String, Object> m, String k, long dflt, long lo, long hi) {
        Object v = m.get(k);
        if (v == null) return dflt;
        if (!(v instanceof Long x)) throw new IllegalArgumentException("\"" + k + "\" must be an integer, got " + Json.value(v));
        if (x < lo || x > hi) throw new IllegalArgumentException("\"" + k + "\" must be in [" + lo + ", " + hi + "], got " + x);
        return x;
    }

    private static double number(Map<String, Object> m, String k, double dflt, double lo, double hi) {
        Object v = m.get(k);
        if (v == null) return dflt;
        if (!(v instanceof Number n)) throw new IllegalArgumentException("\"" + k + "\" must be a number, got " + Json.value(v));
        double x = n.doubleValue();
        if (!(x >= lo && x <= hi)) throw new IllegalArgumentException("\"" + k + "\" must be in [" + (lo == Double.MIN_VALUE ? "0 (excluded)" : lo) + ", " + hi + "], got " + Json.value(v));
        return x;
    }

    /** {"text", "tokens" (count), "prompt_tokens", "outcome" (complete | stop | deadline | cancelled), "ms"}. */
    public static String result(TextResult r) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("text", r.text());
        o.put("tokens", r.tokens().length);
        o.put("prompt_tokens", r.promptTokens());
        o.put("outcome", r.outcome().wire());
        o.put("ms", Math.round(r.millis() * 1000) / 1000.0);
        return Json.object(o);
    }

    /** {"error": code, "message": message}. */
    public static String error(String code, String message) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("error", code);
        o.put("message", message);
        return Json.object(o);
    }
}
