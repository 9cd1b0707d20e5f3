package dev.latent.serve;

/** How a request ended. Partial results keep what was produced before the stop. */
public enum Outcome {
    /** Everything asked for was produced (text: max_tokens reached). */
    COMPLETE,
    /** The request's deadline passed (checked between tokens or between the steps a model chooses). */
    DEADLINE,
    /** {@link Pending#cancel()} was called. */
    CANCELLED;

    /** The lower-case name used on the wire ("complete", "deadline", "cancelled"). */
    public String wire() { return name().toLowerCase(java.util.Locale.ROOT); }
}
