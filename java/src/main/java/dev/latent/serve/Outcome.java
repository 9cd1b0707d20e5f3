package dev.latent.serve;

/** How a request ended. Partial results keep what was produced before the stop. */
public enum Outcome {
    /** Everything asked for was produced (text: max_tokens reached). */
    COMPLETE,
    /** The generated text reached one of the request's stop sequences (text: up to, not including, it). */
    STOP,
    /** The request's deadline passed (checked between tokens or between the steps a model chooses). */
    DEADLINE,
    /** {@link Pending#cancel()} was called. */
    CANCELLED;

    /** The lower-case name used on the wire ("complete", "stop", "deadline", "cancelled"). */
    public String wire() { return name().toLowerCase(java.util.Locale.ROOT); }
}
