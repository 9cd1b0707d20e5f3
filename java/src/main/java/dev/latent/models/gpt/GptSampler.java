package dev.latent.models.gpt;

/**
 * Autoregressive sampling of one sequence with a KV cache, on the calling thread: N tokens cost N
 * single-position passes (O(N) forwards, not O(N^2)); see {@link GptDecoder}, which does the work and also
 * decodes several sequences as one batch. Token draws use Philox (seed, stream = index): the same seed and
 * prompt give the same text, alone or batched. The sampler holds no per-call state, so one instance may be
 * used from any number of threads (the model is only read).
 */
public final class GptSampler {
    private final GptDecoder decoder;

    public GptSampler(Gpt model) { decoder = new GptDecoder(model); }

    /** Settings of one generation. {@code topK <= 0} and {@code topP >= 1} disable those filters; temperature 0 is greedy. */
    public record Settings(int tokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            new GptDecoder.Settings(tokens, temperature, topK, topP, seed);   // the checks live there
        }

        GptDecoder.Settings decoder() { return new GptDecoder.Settings(tokens, temperature, topK, topP, seed); }
    }

    /** Continues {@code prompt} (token ids, at least one) by {@code s.tokens()} tokens; returns the new ones. */
    public int[] generate(int[] prompt, Settings s) { return decoder.generate(prompt, s.decoder()); }
}
