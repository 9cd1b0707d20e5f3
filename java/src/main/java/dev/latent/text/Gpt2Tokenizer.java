package dev.latent.text;

import dev.latent.io.JsonReader;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * GPT-2's byte-level BPE as Hugging Face ships it ({@code vocab.json}: token string to id; {@code merges.txt}:
 * ranked pairs). Text is split with exactly GPT-2's pre-tokenisation pattern
 * ({@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}, with Unicode
 * whitespace for {@code \s}, as Python's {@code regex} module); each piece's UTF-8 bytes become printable
 * characters through GPT-2's byte-to-unicode table, and the lowest-ranked adjacent pair is merged until none
 * of the piece's pairs has a rank. Decoding maps the characters back to bytes and decodes UTF-8 (malformed
 * sequences, possible when ids cut a character, become U+FFFD as in GPT-2's {@code errors='replace'}).
 * Immutable and thread-safe.
 */
public final class Gpt2Tokenizer implements Tokenizer {
    /** GPT-2's pre-tokenisation regex (encoder.py), with Unicode {@code \s}. */
    static final Pattern PRE = Pattern.compile("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);
    /** Bounds for hostile files: entries of vocab and merges, characters per token. */
    static final int MAX_ENTRIES = 1 << 20, MAX_TOKEN_CHARS = 1024;

    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        // bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order.
        Arrays.fill(CHAR_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private final String[] tokens;                    // by id
    private final Map<String, Integer> ids = new HashMap<>();
    private final String[][] merges;                  // by rank
    private final Map<String, Integer> rank = new HashMap<>();   // "a b" -> rank

    /**
     * From the vocabulary (token strings by id, ids 0..n-1 dense) and the ranked merges. Every one of the 256
     * byte symbols must be a token, every token must be made of byte symbols, and every merge's parts and
     * result must be tokens (so encoding can never produce an unknown token).
     */
    public Gpt2Tokenizer(List<String> vocab, List<String[]> mergeList) {
        if (vocab.size() > MAX_ENTRIES || mergeList.size() > MAX_ENTRIES)
            throw new IllegalArgumentException("gpt2 tokenizer: " + vocab.size() + " tokens and " + mergeList.size() + " merges exceed the limit of " + MAX_ENTRIES);
        tokens = vocab.toArray(new String[0]);
        for (int i = 0; i < tokens.length; i++) {
            String t = tokens[i];
            if (t == null || t.isEmpty() || t.length() > MAX_TOKEN_CHARS) throw new IllegalArgumentException("gpt2 tokenizer: token " + i + " is empty, missing or longer than " + MAX_TOKEN_CHARS + " characters");
            for (int k = 0; k < t.length(); k++)
                if (!isByteChar(t.charAt(k))) throw new IllegalArgumentException("gpt2 tokenizer: token " + i + " '" + t + "' has character U+"
                        + Integer.toHexString(t.charAt(k)).toUpperCase() + ", which is not one of GPT-2's 256 byte symbols");
            if (ids.put(t, i) != null) throw new IllegalArgumentException("gpt2 tokenizer: token '" + t + "' appears twice");
        }
        for (int b = 0; b < 256; b++)
            if (!ids.containsKey(String.valueOf(BYTE_TO_CHAR[b]))) throw new IllegalArgumentException("gpt2 tokenizer: the vocabulary lacks the symbol of byte " + b);
        merges = new String[mergeList.size()][];
        for (int r = 0; r < merges.length; r++) {
            String[] p = mergeList.get(r);
            if (p == null || p.length != 2 || !ids.containsKey(p[0]) || !ids.containsKey(p[1]) || !ids.containsKey(p[0] + p[1]))
                throw new IllegalArgumentException("gpt2 tokenizer: merge " + r + " " + (p == null ? "null" : String.join(" ", p))
                        + " is not a pair of tokens whose concatenation is a token");
            merges[r] = new String[] {p[0], p[1]};
            rank.put(p[0] + " " + p[1], r);   // a repeated pair keeps its last rank, as GPT-2's dict(zip(merges, range(n)))
        }
    }

    private static boolean isByteChar(char c) { return c < CHAR_TO_BYTE.length && CHAR_TO_BYTE[c] >= 0; }

    /** Reads Hugging Face's {@code vocab.json} and {@code merges.txt} (first line {@code #version: ...} optional). */
    public static Gpt2Tokenizer read(Path vocabJson, Path mergesTxt) throws IOException {
        List<String> vocab;
        try {
            vocab = vocabFromMap(JsonReader.parseObject(Files.readString(vocabJson, StandardCharsets.UTF_8)));
        } catch (IllegalArgumentException e) {
            throw new IOException(vocabJson + ": " + e.getMessage(), e);
        }
        List<String[]> merges = new ArrayList<>();
        List<String> lines = Files.readAllLines(mergesTxt, StandardCharsets.UTF_8);
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i);
            if (i == 0 && l.startsWith("#version")) continue;
            if (l.isEmpty()) continue;
            String[] p = l.split(" ", -1);
            if (p.length != 2 || p[0].isEmpty() || p[1].isEmpty()) throw new IOException(mergesTxt + ": line " + (i + 1) + " is not two tokens separated by one space: '" + l + "'");
            merges.add(p);
        }
        try {
            return new Gpt2Tokenizer(vocab, merges);
        } catch (IllegalArgumentException e) {
            throw new IOException(vocabJson + " + " + mergesTxt + ": " + e.getMessage(), e);
        }
    }

    /** {token: id} with ids exactly 0..n-1 -> tokens by id. */
    private static List<String> vocabFromMap(Map<String, Object> m) {
        if (m.size() > MAX_ENTRIES) throw new IllegalArgumentException("gpt2 tokenizer: " + m.size() + " tokens exceed " + MAX_ENTRIES);
        String[] byId = new String[m.size()];
        for (var e : m.entrySet()) {
            if (!(e.getValue() instanceof Long id) || id < 0 || id >= byId.length)
                throw new IllegalArgumentException("gpt2 tokenizer: id of '" + e.getKey() + "' is " + e.getValue() + ", not in [0, " + byId.length + ")");
            if (byId[id.intValue()] != null) throw new IllegalArgumentException("gpt2 tokenizer: id " + id + " is given to two tokens");
            byId[id.intValue()] = e.getKey();
        }
        return Arrays.asList(byId);
    }

    @Override
    public int[] encode(String text) {
        List<Integer> out = new ArrayList<>();
        Matcher mt = PRE.matcher(text);
        int last = 0;
        while (mt.find()) {
            // The last alternative (\s+) matches any whitespace, so the pieces cover the text; kept as a guard.
            if (mt.start() != last) piece(text.substring(last, mt.start()), out);
            piece(mt.group(), out);
            last = mt.end();
        }
        if (last < text.length()) piece(text.substring(last), out);
        int[] r = new int[out.size()];
        for (int i = 0; i < r.length; i++) r[i] = out.get(i);
        return r;
    }

    /** One pre-token: its bytes as symbols, then merges by rank (GPT-2's bpe()). */
    private void piece(String s, List<Integer> out) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        List<String> w = new ArrayList<>(b.length);
        for (byte x : b) w.add(String.valueOf(BYTE_TO_CHAR[x & 0xff]));
        while (w.size() > 1) {
            int best = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < w.size(); i++) {
                Integer r = rank.get(w.get(i) + " " + w.get(i + 1));
                if (r != null && r < best) best = r;
            }
            if (best == Integer.MAX_VALUE) break;
            String a = merges[best][0], c = merges[best][1];
            List<String> nw = new ArrayList<>(w.size());
            for (int i = 0; i < w.size(); i++) {
                if (i + 1 < w.size() && w.get(i).equals(a) && w.get(i + 1).equals(c)) { nw.add(a + c); i++; }
                else nw.add(w.get(i));
            }
            w = nw;
        }
        for (String t : w) out.add(ids.get(t));   // present: checked at construction
    }

    @Override
    public String decode(int[] idList) {
        ByteBuffer bytes = ByteBuffer.allocate(Math.toIntExact(bytesOf(idList)));
        for (int id : idList) {
            String t = tokens[id];
            for (int k = 0; k < t.length(); k++) bytes.put((byte) CHAR_TO_BYTE[t.charAt(k)]);
        }
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPLACE)
                    .onUnmappableCharacter(CodingErrorAction.REPLACE).decode(bytes.flip()).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalStateException("unreachable: the decoder replaces", e);
        }
    }

    private long bytesOf(int[] idList) {
        long n = 0;
        for (int id : idList) {
            if (id < 0 || id >= tokens.length) throw new IllegalArgumentException("token id " + id + " outside [0, " + tokens.length + ")");
            n += tokens[id].length();
        }
        return n;
    }

    /** The id of a token string (as in vocab.json), or -1. */
    public int id(String token) { return ids.getOrDefault(token, -1); }

    @Override
    public int vocabSize() { return tokens.length; }

    @Override
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "gpt2");
        m.put("vocab", List.of(tokens));
        List<String> ml = new ArrayList<>(merges.length);
        for (String[] p : merges) ml.add(p[0] + " " + p[1]);
        m.put("merges", ml);
        return m;
    }

    static Gpt2Tokenizer fromMap(Map<String, Object> m) {
        if (!(m.get("vocab") instanceof List<?> v) || v.size() > MAX_ENTRIES) throw new IllegalArgumentException("gpt2 tokenizer: missing or oversized vocab");
        if (!(m.get("merges") instanceof List<?> ml) || ml.size() > MAX_ENTRIES) throw new IllegalArgumentException("gpt2 tokenizer: missing or oversized merges");
        List<String> vocab = new ArrayList<>(v.size());
        for (int i = 0; i < v.size(); i++) {
            if (!(v.get(i) instanceof String s)) throw new IllegalArgumentException("gpt2 tokenizer: token " + i + " is not a string");
            vocab.add(s);
        }
        List<String[]> merges = new ArrayList<>(ml.size());
        for (int i = 0; i < ml.size(); i++) {
            if (!(ml.get(i) instanceof String s)) throw new IllegalArgumentException("gpt2 tokenizer: merge " + i + " is not a string");
            String[] p = s.split(" ", -1);
            if (p.length != 2) throw new IllegalArgumentException("gpt2 tokenizer: merge " + i + " '" + s + "' is not two tokens");
            merges.add(p);
        }
        return new Gpt2Tokenizer(vocab, merges);
    }
}
