package dev.latent.serve;

import dev.latent.text.Tokenizer;

/** A {@link Generator} of text: the GPT today, any other language model later. */
public interface TextGenerator extends Generator<TextRequest, TextResult> {
    /** The tokenizer requests are encoded with (to count tokens or check a prompt before submitting). */
    Tokenizer tokenizer();

    /** The model's context length in tokens (longer prompts keep their last {@code context} tokens). */
    int context();
}
