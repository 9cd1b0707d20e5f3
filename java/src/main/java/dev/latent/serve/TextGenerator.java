package dev.latent.serve;

import dev.latent.text.Tokenizer;

/** A {@link Generator} of text: the GPT today, any other language model later. */
public interface TextGenerator extends Generator<TextRequest, TextResult> {
    /** The tokenizer requests are encoded with (to count tokens or check a prompt before submitting). */
    Tokenizer tokenizer();

    /** The model's context length in tokens (longer prompts keep their last {@code context} tokens). */
    int context();

    /**
     * Submits with streaming: {@code onText} receives the text in pieces whose concatenation is the result's text (see
     * {@link GptGenerator#submit(TextRequest, java.util.function.Consumer)}). This default streams nothing until the
     * request ends, then hands over the whole text in one piece.
     */
    default Pending<TextResult> submit(TextRequest r, java.util.function.Consumer<String> onText) {
        Pending<TextResult> p = submit(r);
        if (onText == null) return p;
        java.util.concurrent.CompletableFuture<TextResult> f = p.future().thenApply(res -> {
            onText.accept(res.text());
            return res;
        });
        return new Pending<>(p.control(), f);
    }
}
