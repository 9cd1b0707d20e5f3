package dev.latent.train;

/**
 * Training produced a non-finite loss or gradient norm: the run stops at once, before the bad update reaches a
 * checkpoint, so the last checkpoint on disk is the last good state. The CLI exits with {@link #EXIT_CODE}.
 */
public final class DivergedException extends IllegalStateException {
    /** The CLI's exit status for a diverged run (1: bad input or I/O failure, 2: usage). */
    public static final int EXIT_CODE = 3;
    private final long step;

    public DivergedException(String model, long step, String what, double value, String hint) {
        super(model + " training diverged at step " + step + ": " + what + " is " + value
                + "; stopped without saving (the last checkpoint, if any, is the last good state)" + (hint == null ? "" : "; " + hint));
        this.step = step;
    }

    /** The step whose loss or gradient norm was not finite. */
    public long step() { return step; }

    /** Throws when {@code value} is NaN or infinite. */
    public static void check(String model, long step, String what, double value, String hint) {
        if (!Double.isFinite(value)) throw new DivergedException(model, step, what, value, hint);
    }
}
