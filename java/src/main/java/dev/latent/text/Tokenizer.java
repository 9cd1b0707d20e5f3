package dev.latent.text;

import dev.latent.io.Json;
import dev.latent.io.JsonReader;

import java.util.Map;

/** Text {@literal <->} token ids. Saved with the model as a JSON string ({@link #toJson}, {@link #fromJson}). */
public interface Tokenizer {
    int[] encode(String text);

    String decode(int[] ids);

    int vocabSize();

    /** {"type": ..., ...} */
    Map<String, Object> toMap();

    default String toJson() { return Json.object(toMap()); }

    static Tokenizer fromJson(String json) {
        Map<String, Object> m = JsonReader.parseObject(json);
        Object type = m.get("type");
        if ("char".equals(type)) return CharTokenizer.fromMap(m);
        if ("bpe".equals(type)) return BpeTokenizer.fromMap(m);
        if ("gpt2".equals(type)) return Gpt2Tokenizer.fromMap(m);
        throw new IllegalArgumentException("tokenizer: unknown type " + type + " (char | bpe | gpt2)");
    }
}
