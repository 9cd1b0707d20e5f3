package dev.latent.fuzz;

/** What every fuzz target checks besides "no other exception escapes". */
final class Fuzz {
    private Fuzz() {}

    /** A refusal must say why. */
    static void requireMessage(Exception e) {
        if (e.getMessage() == null || e.getMessage().isBlank()) throw new AssertionError("exception without a message", e);
    }

    /**
     * Native bytes taken for an input of {@code inputBytes}: at most the input plus the pool's per-block
     * rounding (64 B per block; a block per tensor, and every tensor costs more than 64 B of header) and
     * 1 MiB of slack. A header claiming 2^40 bytes fails this long before any allocation could succeed.
     */
    static void requireBounded(long used, long inputBytes, String what) {
        long limit = 3 * inputBytes + (1 << 20);
        if (used > limit) throw new AssertionError(what + " took " + used + " native bytes for " + inputBytes + " input bytes");
    }
}
