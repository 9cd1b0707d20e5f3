package dev.latent.models.gpt;

import java.util.List;

/**
 * KV-cache decoding of many sequences a step (continuous batching): {@link KvDecoder} on the CPU,
 * {@link DeviceKvDecoder} on CUDA. {@code dev.latent.serve.GptGenerator} steps its lanes through either. A sequence's
 * tokens do not depend on what else is in its batch (each decoder's class comment says how).
 *
 * @param <S> the decoder's sequence type (it steps only its own sequences)
 */
public interface BatchDecoder<S extends DecodeSequence> extends AutoCloseable {
    /** The model's configuration. */
    GptConfig config();

    /** Checks a prompt's ids against the vocabulary (at least one id): IllegalArgumentException. */
    void checkPrompt(int[] prompt);

    /** Opens a sequence (its KV cache) that will generate {@code settings.tokens()} tokens after {@code prompt}. */
    S open(int[] prompt, KvDecoder.Settings settings);

    /** Advances every sequence (none of them done) by one drawn token, their pending rows as one batch. */
    void step(List<S> seqs);

    /** Bytes of one sequence's KV cache. */
    long cacheBytes();

    /** Frees what the decoder holds. Idempotent. */
    @Override
    void close();
}
