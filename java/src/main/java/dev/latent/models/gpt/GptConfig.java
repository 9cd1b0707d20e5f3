package dev.latent.models.gpt;

/** A GPT's shape. {@code tied}: the output head reuses the token embedding (and has no bias). */
public record GptConfig(int vocab, int layers, int heads, int dim, int context, boolean tied) {
    public GptConfig {
        if (vocab < 1 || layers < 1 || heads < 1 || dim < 1 || context < 1)
            throw new IllegalArgumentException("GPT config values must be >= 1, got vocab " + vocab + ", layers " + layers + ", heads " + heads
                    + ", dim " + dim + ", context " + context);
        if (dim % heads != 0) throw new IllegalArgumentException("dim " + dim + " is not divisible by heads " + heads);
    }

    public int headSize() { return dim / heads; }

    /** Parameters of a {@link Gpt} of this shape, or -1 past Long.MAX_VALUE (checked before allocating). */
    public long parameterCount() {
        try {
            long v = vocab, t = context, d = dim;
            // per block: 12 d^2 weights (qkv 3, proj 1, fc 4, proj 4) and 13 d biases and LayerNorm values
            long block = Math.addExact(Math.multiplyExact(12, Math.multiplyExact(d, d)), Math.multiplyExact(13, d));
            long n = Math.addExact(Math.multiplyExact(v, d), Math.multiplyExact(t, d));
            n = Math.addExact(n, Math.multiplyExact(layers, block));
            n = Math.addExact(n, 2 * d);
            if (!tied) n = Math.addExact(n, Math.addExact(Math.multiplyExact(v, d), v));
            return n;
        } catch (ArithmeticException e) {
            return -1;
        }
    }
}
