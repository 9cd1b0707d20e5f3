package dev.latent.models.gpt;

import java.util.Locale;

/**
 * A GPT's shape. {@code tied}: the output head reuses the token embedding (and has no bias).
 * {@code activation}: the MLP's GELU, exact (erf, the default and what Latent trains) or tanh-approximated
 * (GPT-2's {@code gelu_new}).
 */
public record GptConfig(int vocab, int layers, int heads, int dim, int context, boolean tied, Activation activation) {
    /** The MLP's nonlinearity. */
    public enum Activation {
        /** Exact GELU, x Phi(x) (PyTorch's approximate='none'). */
        GELU,
        /** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's gelu_new, PyTorch's approximate='tanh'. */
        GELU_TANH;

        /** The name saved in checkpoints: "gelu" or "gelu_tanh". */
        public String id() { return name().toLowerCase(Locale.ROOT); }

        /** From {@link #id()}; refuses any other name. */
        public static Activation of(String id) {
            for (Activation a : values()) if (a.id().equals(id)) return a;
            throw new IllegalArgumentException("unknown GPT activation '" + id + "' (gelu | gelu_tanh)");
        }
    }

    public GptConfig {
        if (vocab < 1 || layers < 1 || heads < 1 || dim < 1 || context < 1)
            throw new IllegalArgumentException("GPT config values must be >= 1, got vocab " + vocab + ", layers " + layers + ", heads " + heads
                    + ", dim " + dim + ", context " + context);
        if (dim % heads != 0) throw new IllegalArgumentException("dim " + dim + " is not divisible by heads " + heads);
        if (activation == null) throw new IllegalArgumentException("GPT activation must not be null");
    }

    /** A config with the exact GELU (Latent's default). */
    public GptConfig(int vocab, int layers, int heads, int dim, int context, boolean tied) {
        this(vocab, layers, heads, dim, context, tied, Activation.GELU);
    }

    /** This shape with another activation. */
    public GptConfig withActivation(Activation a) { return new GptConfig(vocab, layers, heads, dim, context, tied, a); }

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
