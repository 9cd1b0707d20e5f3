package dev.latent.serve;

/**
 * The continuation ({@code text}, decoded from {@code tokens}), the prompt's length in tokens, how the
 * request ended ({@link Outcome#COMPLETE}, or a stop with the tokens drawn until then) and its time from
 * submission, queueing included. With {@link Outcome#STOP} the text ends before the stop sequence, while {@code tokens}
 * holds every token drawn (those that spelled the stop sequence too).
 */
public record TextResult(String text, int[] tokens, int promptTokens, Outcome outcome, long nanos) {
    public double millis() { return nanos / 1e6; }
}
