package dev.latent.serve;

import java.time.Duration;

/**
 * A request's deadline and cancellation flag, read by the generator between tokens (or between the steps a
 * one-shot model chooses): stopping never interrupts a native call, so a kernel is never torn down midway.
 */
public final class RequestControl {
    private final long start = System.nanoTime();
    private final long deadline;          // System.nanoTime() value; meaningful only when timed
    private final boolean timed;
    private volatile boolean cancelled;

    private RequestControl(Duration timeout) {
        timed = timeout != null;
        long ns = timed ? Math.max(0, timeout.toNanos()) : 0;   // toNanos saturates instead of overflowing
        deadline = timed ? start + Math.min(ns, Long.MAX_VALUE / 4) : 0;
    }

    /** A control whose deadline is {@code timeout} from now; null means none. */
    public static RequestControl of(Duration timeout) { return new RequestControl(timeout); }

    public void cancel() { cancelled = true; }

    public boolean isCancelled() { return cancelled; }

    /** Null while the request may go on; else why it must stop (cancellation wins over the deadline). */
    public Outcome stopReason() {
        if (cancelled) return Outcome.CANCELLED;
        if (timed && System.nanoTime() - deadline >= 0) return Outcome.DEADLINE;
        return null;
    }

    /** For one-shot models: throws {@link StoppedException} if the request must stop. */
    public void check() {
        Outcome o = stopReason();
        if (o != null) throw new StoppedException(o);
    }

    /** Nanoseconds since the request was accepted. */
    public long elapsedNanos() { return System.nanoTime() - start; }

    /** Thrown by {@link #check()}: the request was cancelled or ran past its deadline. */
    public static final class StoppedException extends RuntimeException {
        private final Outcome outcome;

        public StoppedException(Outcome outcome) {
            super(outcome == Outcome.CANCELLED ? "request cancelled" : "request deadline exceeded", null, false, false);
            this.outcome = outcome;
        }

        public Outcome outcome() { return outcome; }
    }
}
