package dev.latent.models.gpt;

/** A GPT's shape. {@code tied}: the output head reuses the token embedding (and has no bias). */
public record GptConfig(int vocab, int layers, int heads, int dim, int context, boolean tied) {
    public GptConfig {
        if (vocab < 1 || layers < 1 || heads < 1 || dim < 1 || context < 1)
            throw new IllegalArgumentException("GPT config values must be >= 1: " + this);
        if (dim % heads != 0) throw new IllegalArgumentException("dim " + dim + " is not divisible by heads " + heads);
    }

    public int headSize() { return dim / heads; }
}
