package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.text.Tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Hostile tokenizer files (the JSON saved in a checkpoint: char code points, BPE merges, or GPT-2's vocabulary and merges): each loads or
 * is refused with an IllegalArgumentException; a loaded one encodes and decodes any text without another
 * exception (a character outside a char vocabulary is an IllegalArgumentException) and round-trips
 * well-formed text through BPE. Input: the text to encode, a NUL byte, the tokenizer JSON; or, after a
 * leading 'M', a BPE merge list built from byte pairs, each byte naming a recent id (b < 128: the id b back
 * from the newest) or a byte value, so deep chains of merges (the shape of a token-length bomb) are a few
 * mutations away instead of a needle in JSON.
 */
class TokenizerFuzzTest {
    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"{\"type\":\"bpe\",\"merges\":[", "{\"type\":\"gpt2\",\"vocab\":[", "\"merges\":[\"", "\u0120", "{\"type\":\"char\",\"code_points\":[", "[256,257]", "\\u00e9", "1114111"})
    void load(byte[] in) {
        int cut = 0;
        while (cut < in.length && in[cut] != 0) cut++;
        String text = new String(in, 0, cut, StandardCharsets.UTF_8);
        String json = cut < in.length ? new String(in, cut + 1, in.length - cut - 1, StandardCharsets.UTF_8) : "";
        if (in.length > 0 && in[0] == 'M') { text = "abc abcd"; json = merges(in); }
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

    private static String merges(byte[] in) {
        StringBuilder j = new StringBuilder("{\"type\":\"bpe\",\"merges\":[");
        for (int i = 1, r = 0; i + 1 < in.length; i += 2, r++) {
            if (r > 0) j.append(',');
            j.append('[').append(id(in[i], r)).append(',').append(id(in[i + 1], r)).append(']');
        }
        return j.append("]}").toString();
    }

    private static int id(byte b, int r) {
        int v = b & 0xff;
        return v < 128 ? Math.max(0, 255 + r - v) : 97 + (v - 128) % 26;
    }
}
