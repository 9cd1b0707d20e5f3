package dev.latent.text;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;

import static org.junit.jupiter.api.Assertions.*;

/** GPT-2's byte-level BPE: the pre-tokenisation pieces, merge order, byte symbols, round trips, file reading. */
class Gpt2TokenizerTest {
    /** GPT-2's byte-to-unicode table, written out independently of the tokenizer's. */
    static String sym(int b) {
        boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (printable) return String.valueOf((char) b);
        int k = 0;
        for (int x = 0; x < b; x++) if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        return String.valueOf((char) (256 + k));
    }

    /** 256 byte symbols in byte order, then the merges' results; merges given as "a b". */
    static Gpt2Tokenizer small(String... merges) {
        List<String> vocab = new ArrayList<>();
        for (int b = 0; b < 256; b++) vocab.add(sym(b));
        List<String[]> ml = new ArrayList<>();
        for (String m : merges) {
            String[] p = m.split(" ");
            ml.add(p);
            if (!vocab.contains(p[0] + p[1])) vocab.add(p[0] + p[1]);
        }
        return new Gpt2Tokenizer(vocab, ml);
    }

    static List<String> pieces(String s) {
        List<String> out = new ArrayList<>();
        Matcher m = Gpt2Tokenizer.PRE.matcher(s);
        while (m.find()) out.add(m.group());
        return out;
    }

    @Test
    void preTokenisationIsGpt2s() {
        assertEquals(List.of("Hello", ",", " world", "'s", " end"), pieces("Hello, world's end"));
        assertEquals(List.of("I", "'m", " here", "'ll", "'ve", "'d", "'re", "'t"), pieces("I'm here'll've'd're't"));
        // runs of spaces: all but the last go alone, the last joins the next word
        assertEquals(List.of("a", " ", " b"), pieces("a  b"));
        assertEquals(List.of("x", "\n", "\n", "y"), pieces("x\n\ny"));
        assertEquals(List.of("x", "\n\n"), pieces("x\n\n"));
        assertEquals(List.of(" 123", " abc", "!!!", " ?"), pieces(" 123 abc!!! ?"));
        // letters and digits split; unicode letters are letters; an ideographic space is whitespace (\s Unicode)
        assertEquals(List.of("abc", "123", "def"), pieces("abc123def"));
        assertEquals(List.of("naïve", " café", "\u3000", "日本"), pieces("naïve café\u3000日本"));
        assertEquals(List.of(" 😀👍🏽"), pieces(" 😀👍🏽"));
        // uppercase contractions are not contractions in GPT-2 (the pattern is case-sensitive)
        assertEquals(List.of("I", "'", "M"), pieces("I'M"));
    }

    @Test
    void byteSymbolsAreGpt2s() {
        Gpt2Tokenizer t = small();
        assertEquals(256, t.vocabSize());
        assertEquals("Ġ", sym(' '));      // U+0120, the space
        assertEquals("Ċ", sym('\n'));     // U+010A
        assertEquals(t.id("Ġ"), ' ');
        assertArrayEquals(new int[] {'h', 'i', ' ', 0xc3, 0xa9}, t.encode("hi é"));
    }

    @Test
    void mergesApplyByRankNotPosition() {
        // "abc": rank 0 is (b, c), so it wins over (a, b) although (a, b) comes first in the word
        Gpt2Tokenizer t = small("b c", "a b");
        int[] ids = t.encode("abc");
        assertEquals(2, ids.length);
        assertEquals(t.id("a"), ids[0]);
        assertEquals(t.id("bc"), ids[1]);
        // chains: h e, then Ġ t, then Ġt he -> " the" is one token; "the" keeps t + he
        Gpt2Tokenizer u = small("h e", "Ġ t", "Ġt he");
        assertArrayEquals(new int[] {u.id("Ġthe")}, u.encode(" the"));
        assertArrayEquals(new int[] {u.id("t"), u.id("he")}, u.encode("the"));
        // repeated pair: every occurrence merges in one pass
        Gpt2Tokenizer v = small("a a");
        assertArrayEquals(new int[] {v.id("aa"), v.id("aa"), v.id("a")}, v.encode("aaaaa"));
    }

    @Test
    void roundTripsTrickyText() {
        Gpt2Tokenizer t = small("h e", "Ġ t", "Ġt he", "' s", "Ċ Ċ", "Ġ Ġ", "ð Ł");
        String[] texts = {"", " ", "  ", "\n", "\n\n\n", "\t \r\n", "the cat's hat", "I'M DON'T we'll", "naïve café — ¿sí?",
                "日本語のテキスト", "emoji 😀👍🏽🇫🇷 family 👨‍👩‍👧", "a\u00a0b\u2028c", "   leading and trailing   ", "x\u0000y\u007f",
                "12,345.67e-8", "\uFEFFbom", "tabs\tand\u000bvertical\u000c"};
        for (String s : texts) assertEquals(s, t.decode(t.encode(s)), "round trip of " + s);
        // a cut in the middle of a character decodes to U+FFFD, as GPT-2's errors='replace'
        int[] e = t.encode("é");
        assertEquals("\uFFFD", t.decode(new int[] {e[0]}));
        assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {t.vocabSize()}));
    }

    @Test
    void savedWithTheCheckpointAsJson() {
        Gpt2Tokenizer t = small("h e", "Ġ t", "Ġt he");
        Tokenizer back = Tokenizer.fromJson(t.toJson());
        assertInstanceOf(Gpt2Tokenizer.class, back);
        assertEquals(t.vocabSize(), back.vocabSize());
        assertArrayEquals(t.encode(" the theme"), back.encode(" the theme"));
    }

    @Test
    void readsHuggingFaceFilesAndRefusesBadOnes(@TempDir Path dir) throws IOException {
        StringBuilder v = new StringBuilder("{");
        for (int b = 0; b < 256; b++) v.append(b == 0 ? "" : ",").append(dev.latent.io.Json.quote(sym(b))).append(':').append(b);
        v.append(",\"he\":256,\"Ġt\":257,\"Ġthe\":258,\"<|endoftext|>\":259}");
        Path vocab = dir.resolve("vocab.json"), merges = dir.resolve("merges.txt");
        Files.writeString(vocab, v, StandardCharsets.UTF_8);
        Files.writeString(merges, "#version: 0.2\nh e\nĠ t\nĠt he\n", StandardCharsets.UTF_8);
        Gpt2Tokenizer t = Gpt2Tokenizer.read(vocab, merges);
        assertEquals(260, t.vocabSize());
        assertArrayEquals(new int[] {258, 259}, new int[] {t.encode(" the")[0], t.id("<|endoftext|>")});
        assertEquals("<|endoftext|>", t.decode(new int[] {259}));

        Files.writeString(merges, "#version: 0.2\nh e\nx y z\n", StandardCharsets.UTF_8);
        assertTrue(assertThrows(IOException.class, () -> Gpt2Tokenizer.read(vocab, merges)).getMessage().contains("line 3"));
        Files.writeString(merges, "q z\n", StandardCharsets.UTF_8);   // "qz" is not a token
        assertTrue(assertThrows(IOException.class, () -> Gpt2Tokenizer.read(vocab, merges)).getMessage().contains("merge 0"));
        Files.writeString(vocab, "{\"a\":0,\"b\":5}", StandardCharsets.UTF_8);
        assertTrue(assertThrows(IOException.class, () -> Gpt2Tokenizer.read(vocab, merges)).getMessage().contains("'b'"));
        Files.writeString(vocab, "{\"a\":0,\"b\":1}", StandardCharsets.UTF_8);
        assertTrue(assertThrows(IOException.class, () -> Gpt2Tokenizer.read(vocab, merges)).getMessage().contains("lacks the symbol of byte"));
        Files.writeString(vocab, "{\"a b\":0}", StandardCharsets.UTF_8);   // a raw space is not a byte symbol
        assertTrue(assertThrows(IOException.class, () -> Gpt2Tokenizer.read(vocab, merges)).getMessage().contains("U+20"));
    }

    /**
     * Against GPT-2's own algorithm as recorded by gpt2/make_cases.py (Python's {@code regex} module with
     * encoder.py's pattern and bpe()): 1000 random strings of tricky characters (Unicode spaces, marks, emoji,
     * digits of other scripts, control characters) split into the same pieces, and 1000 strings encoded to the
     * same ids with a vocabulary of 59 merges.
     */
    @Test
    void matchesGpt2sPythonTokenizerOnRecordedCases() throws Exception {
        Path res = Path.of(getClass().getResource("gpt2/regex_cases.json").toURI()).getParent();
        List<?> rc = (List<?>) dev.latent.io.JsonReader.parse(Files.readString(res.resolve("regex_cases.json")));
        assertEquals(1000, rc.size());
        for (Object o : rc) {
            List<?> c = (List<?>) o;
            assertEquals(c.get(1), pieces((String) c.get(0)), () -> "pieces of " + dev.latent.io.Json.quote((String) c.get(0)));
        }
        Gpt2Tokenizer t = Gpt2Tokenizer.read(res.resolve("vocab.json"), res.resolve("merges.txt"));
        assertEquals(256 + 59, t.vocabSize());
        List<?> bc = (List<?>) dev.latent.io.JsonReader.parse(Files.readString(res.resolve("bpe_cases.json")));
        assertEquals(1000, bc.size());
        int merged = 0;
        for (Object o : bc) {
            List<?> c = (List<?>) o;
            String s = (String) c.get(0);
            int[] want = ((List<?>) c.get(1)).stream().mapToInt(x -> ((Long) x).intValue()).toArray();
            int[] got = t.encode(s);
            assertArrayEquals(want, got, () -> "ids of " + dev.latent.io.Json.quote(s));
            assertEquals(s, t.decode(got));
            for (int id : got) if (id >= 256) merged++;
        }
        assertTrue(merged > 1000, "the cases exercise the merges: " + merged);
    }
}
