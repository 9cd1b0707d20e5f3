package dev.latent.models.gpt;

import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * A sequence in progress on a {@link BatchDecoder}: the tokens still to feed, what it generated so far, and the draw of
 * each next token; the decoder's subclass adds the KV cache ({@link KvDecoder.Sequence} in native memory,
 * {@link DeviceKvDecoder.Sequence} in device memory). Both decoders draw the same way: greedy (temperature 0) is the
 * first maximum of the logits, otherwise {@link Sampling#pick} with the Philox uniform of (seed, token index), so a
 * sequence's tokens depend only on its logits and settings. Confined to the thread that opened it.
 */
public abstract class DecodeSequence implements AutoCloseable {
    private final KvDecoder.Settings s;
    private int[] feed;          // tokens to run through the model before the next draw
    private final int[] out;
    private int produced;
    private Scope uScope;        // the uniform's 4 bytes, allocated at the first sampled draw
    private MemorySegment u;

    /** The prompt's newest {@code ctx} tokens are fed first (the caller checked the prompt). */
    DecodeSequence(int[] prompt, KvDecoder.Settings settings, int ctx) {
        s = java.util.Objects.requireNonNull(settings, "settings");
        feed = Arrays.copyOfRange(prompt, Math.max(0, prompt.length - ctx), prompt.length);
        out = new int[settings.tokens()];
    }

    /** Every requested token is drawn. */
    public boolean done() { return produced == out.length; }

    /** The tokens generated so far (all of them once {@link #done()}). */
    public int[] generated() { return Arrays.copyOf(out, produced); }

    /** How many tokens were drawn so far. */
    public int produced() { return produced; }

    /** The i-th drawn token (i below {@link #produced()}). */
    public int token(int i) {
        if (i < 0 || i >= produced) throw new IndexOutOfBoundsException("token " + i + " of " + produced);
        return out[i];
    }

    public KvDecoder.Settings settings() { return s; }

    /** The tokens at the cache's positions 0 .. {@link #cacheLength()} - 1 (the window a rebuild keeps the newest half of). */
    abstract int[] window();

    /** Positions filled in the cache. */
    abstract int cacheLength();

    /** Forgets every position of the cache. */
    abstract void resetCache();

    /** Frees the KV cache. */
    abstract void closeCache();

    /**
     * The tokens to run this step, rebuilding the cache from the newest half of the window first when it is full
     * (learned absolute positions forbid sliding in place): the kept tokens, then what was pending, from position 0.
     */
    final int[] pending(int ctx) {
        int length = cacheLength();
        if (length + feed.length > ctx) {
            int keep = Math.min(ctx / 2, length);
            int[] next = new int[keep + feed.length];
            System.arraycopy(window(), length - keep, next, 0, keep);
            System.arraycopy(feed, 0, next, keep, feed.length);
            feed = next;
            resetCache();
        }
        return feed;
    }

    /** Whether the next draw is greedy (the first maximum, which the device takes as ltk_argmax_rows). */
    final boolean greedy() { return s.temperature() == 0; }

    /** After a step: draws the next token from row {@code row} of {@code logits} (rows of {@code vocab}). */
    final void draw(float[] logits, int row, int vocab) {
        float[] l = Arrays.copyOfRange(logits, row * vocab, (row + 1) * vocab);
        float uniform = 0f;
        if (!greedy()) {   // greedy draws nothing
            if (u == null) {
                uScope = Scope.confined();
                u = uScope.allocateUninitialized(4);
            }
            LatentNative.get().randUniform(u, 1, s.seed(), produced);
            uniform = u.get(JAVA_FLOAT, 0);
        }
        accept(Sampling.pick(l, s.temperature(), s.topK(), s.topP(), uniform));
    }

    /** After a step: {@code t} is the next token (drawn by {@link #draw}, or the device's greedy argmax). */
    final void accept(int t) {
        out[produced++] = t;
        feed = new int[] {t};
    }

    /** Frees the KV cache (and the draw's scratch). */
    @Override
    public void close() {
        try {
            closeCache();
        } finally {
            if (uScope != null) uScope.close();
        }
    }
}
