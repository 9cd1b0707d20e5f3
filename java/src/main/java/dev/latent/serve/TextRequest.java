package dev.latent.serve;

import java.time.Duration;
import java.util.List;

/**
 * One text generation: continue {@code prompt} by {@code maxTokens} tokens. {@code temperature} 0 is greedy;
 * {@code topK} = 0 (negative is refused) and {@code topP} = 1 disable those filters; {@code seed} fixes every draw (Philox, stream =
 * token index), so the same request gives the same text anywhere; {@code timeout} (null: none) bounds the
 * request from submission, checked between tokens. {@code stop}: strings that end the request as soon as the generated
 * text contains one of them (outcome {@link Outcome#STOP}; the text ends before it); at most 16, each 1 to 256 characters.
 */
public record TextRequest(String prompt, int maxTokens, double temperature, int topK, double topP, long seed, Duration timeout, List<String> stop) {
    public TextRequest {
        if (prompt == null) throw new IllegalArgumentException("prompt must not be null");
        if (maxTokens < 0) throw new IllegalArgumentException("max_tokens must be >= 0, got " + maxTokens);
        dev.latent.train.Limits.sampling(temperature, topK, topP);   // the same limits as the CLI and the decoder
        if (timeout != null && timeout.isNegative()) throw new IllegalArgumentException("timeout must not be negative, got " + timeout);
        stop = stop == null ? List.of() : List.copyOf(stop);   // List.copyOf refuses null entries
        if (stop.size() > 16) throw new IllegalArgumentException("stop: at most 16 sequences, got " + stop.size());
        for (String s : stop)
            if (s.isEmpty() || s.length() > 256) throw new IllegalArgumentException("stop: each sequence must have 1 to 256 characters, got " + s.length());
    }

    /** A request without stop sequences. */
    public TextRequest(String prompt, int maxTokens, double temperature, int topK, double topP, long seed, Duration timeout) {
        this(prompt, maxTokens, temperature, topK, topP, seed, timeout, List.of());
    }

    /** Sampling at temperature 0.8, no top-k/top-p filter, no deadline. */
    public static TextRequest of(String prompt, int maxTokens, long seed) {
        return new TextRequest(prompt, maxTokens, 0.8, 0, 1.0, seed, null);
    }

    public TextRequest withTimeout(Duration t) { return new TextRequest(prompt, maxTokens, temperature, topK, topP, seed, t, stop); }

    /** This request ending at any of {@code s}. */
    public TextRequest withStop(List<String> s) { return new TextRequest(prompt, maxTokens, temperature, topK, topP, seed, timeout, s); }
}
