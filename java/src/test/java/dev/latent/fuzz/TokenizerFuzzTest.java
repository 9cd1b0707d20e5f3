package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.text.Tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Hostile tokenizer files (the JSON saved in a checkpoint: char code points or BPE merges): each loads or
 * is refused with an IllegalArgumentException; a loaded one encodes and decodes any text without another
 * exception (a character outside a char vocabulary is an IllegalArgumentException) and round-trips
 * well-formed text through BPE. Input: the text to encode, a NUL byte, the tokenizer JSON.
 */
class TokenizerFuzzTest {
    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"{\"type\":\"bpe\",\"merges\":[", "{\"type\":\"char\",\"code_points\":[", "[256,257]", "\\u00e9", "1114111"})
    void load(byte[] in) {
        int cut = 0;
        while (cut < in.length && in[cut] != 0) cut++;
        String text = new String(in, 0, cut, StandardCharsets.UTF_8);
        String json = cut < in.length ? new String(in, cut + 1, in.length - cut - 1, StandardCharsets.UTF_8) : "";
        Tokenizer t;
        try {
            t = Tokenizer.fromJson(json);
        } catch (IllegalArgumentException e) {
            Fuzz.requireMessage(e);
            return;
        }
        int[] ids;
        try {
            ids = t.encode(text);
        } catch (IllegalArgumentException e) {
            Fuzz.requireMessage(e);
            return;
        }
        String back = t.decode(ids);
        boolean wellFormed = text.codePoints().noneMatch(c -> c >= 0xD800 && c <= 0xDFFF);
        if (wellFormed && !back.equals(text)) throw new AssertionError("round trip changed " + text + " into " + back);
    }
}
