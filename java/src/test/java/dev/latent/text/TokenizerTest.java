package dev.latent.text;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class TokenizerTest {
    static final String TEXT = "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, "
            + "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. "
            + "Ça va? 日本語 emoji 🐋 whale whale whale.";

    @Test
    void charTokenizerRoundTripsAndSaves() {
        CharTokenizer t = CharTokenizer.train(TEXT);
        int[] ids = t.encode(TEXT);
        assertEquals(TEXT.codePointCount(0, TEXT.length()), ids.length);
        assertEquals(TEXT, t.decode(ids));
        Tokenizer back = Tokenizer.fromJson(t.toJson());
        assertArrayEquals(ids, back.encode(TEXT));
        var e = assertThrows(IllegalArgumentException.class, () -> t.encode("Z"));
        assertTrue(e.getMessage().contains("U+5A"), e.getMessage());
    }

    @Test
    void bpeCompressesRoundTripsAndSaves() {
        BpeTokenizer t = BpeTokenizer.train(TEXT.repeat(5), 300);
        assertTrue(t.vocabSize() > 256 && t.vocabSize() <= 300);
        int[] ids = t.encode(TEXT);
        assertTrue(ids.length < TEXT.getBytes(java.nio.charset.StandardCharsets.UTF_8).length * 0.7, "merges should compress: " + ids.length);
        assertEquals(TEXT, t.decode(ids));
        String unseen = "Queequeg's harpoon → 🐳";
        assertEquals(unseen, t.decode(t.encode(unseen)), "any text round-trips through bytes");
        Tokenizer back = Tokenizer.fromJson(t.toJson());
        assertArrayEquals(ids, back.encode(TEXT));
        assertArrayEquals(ids, BpeTokenizer.train(TEXT.repeat(5), 300).encode(TEXT), "training is deterministic");
    }

    @Test
    void hostileTokenizerFilesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson("{\"type\":\"bpe\",\"merges\":[[999,1]]}"));
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson("{\"type\":\"char\",\"code_points\":[65,65]}"));
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson("{\"type\":\"nope\"}"));
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson("[[[[[[[["));
    }
}
