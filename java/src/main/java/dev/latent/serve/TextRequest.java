package dev.latent.serve;

import java.time.Duration;

/**
 * One text generation: continue {@code prompt} by {@code maxTokens} tokens. {@code temperature} 0 is greedy;
 * {@code topK} = 0 (negative is refused) and {@code topP} = 1 disable those filters; {@code seed} fixes every draw (Philox, stream =
 * token index), so the same request gives the same text anywhere; {@code timeout} (null: none) bounds the
 * request from submission, checked between tokens.
 */
public record TextRequest(String prompt, int maxTokens, double temperature, int topK, double topP, long seed, Duration timeout) {
    public TextRequest {
        if (prompt == null) throw new IllegalArgumentException("prompt must not be null");
        if (maxTokens < 0) throw new IllegalArgumentException("max_tokens must be >= 0, got " + maxTokens);
        dev.latent.train.Limits.sampling(temperature, topK, topP);   // the same limits as the CLI and the decoder
        if (timeout != null && timeout.isNegative()) throw new IllegalArgumentException("timeout must not be negative, got " + timeout);
    }

    /** Sampling at temperature 0.8, no top-k/top-p filter, no deadline. */
    public static TextRequest of(String prompt, int maxTokens, long seed) {
        return new TextRequest(prompt, maxTokens, 0.8, 0, 1.0, seed, null);
    }

    public TextRequest withTimeout(Duration t) { return new TextRequest(prompt, maxTokens, temperature, topK, topP, seed, t); }
}
