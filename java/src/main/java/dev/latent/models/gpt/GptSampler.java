package dev.latent.models.gpt;

/**
 * Autoregressive sampling of one sequence with a KV cache, on the calling thread: N tokens cost one pass over the
 * prompt and N - 1 single-position passes; see {@link KvDecoder}, which does the work on the model's native kernels
 * and also decodes several sequences as one batch. Token draws use Philox (seed, stream = index): the same seed and
 * prompt give the same text, alone or batched, on any thread count. The sampler holds no per-call state, so one
 * instance may be used from any number of threads (the model is only read).
 */
public final class GptSampler {
    private final KvDecoder decoder;

    public GptSampler(Gpt model) { decoder = new KvDecoder(model); }

    /** Settings of one generation. {@code topK <= 0} and {@code topP >= 1} disable those filters; temperature 0 is greedy. */
    public record Settings(int tokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            new KvDecoder.Settings(tokens, temperature, topK, topP, seed);   // the checks live there
        }

        KvDecoder.Settings decoder() { return new KvDecoder.Settings(tokens, temperature, topK, topP, seed); }
    }

    /** Continues {@code prompt} (token ids, at least one) by {@code s.tokens()} tokens; returns the new ones. */
    public int[] generate(int[] prompt, Settings s) { return decoder.generate(prompt, s.decoder()); }
}
