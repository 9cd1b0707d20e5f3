package dev.latent.text;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE (GPT-2's idea): ids 0-255 are bytes, each merge adds one id. Training splits the text
 * into pre-tokens (an optional space + a run of letters, digits, or other non-space; or whitespace), counts
 * them, and repeatedly merges the most frequent adjacent pair (ties: the smallest pair, so training is
 * deterministic). Encoding applies merges by rank within each pre-token; any byte string round-trips.
 */
public final class BpeTokenizer implements Tokenizer {
    private static final Pattern PRE = Pattern.compile(" ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+");
    /**
     * Bounds on what merges may build, so a hostile tokenizer file cannot make us allocate more than its size
     * justifies (merging a token with itself doubles its length: 40 merges would ask for 2^40 bytes). Real
     * BPE tokens are words or short runs; training never makes longer ones.
     */
    static final int MAX_TOKEN_BYTES = 1024;
    static long maxTotalBytes(long merges) { return (1L << 20) + 64L * merges; }
    private final int[][] merges;                 // merges[r] = {a, b}: id 256 + r
    private final Map<Long, Integer> rank = new HashMap<>();
    private final byte[][] bytesOf;

    public BpeTokenizer(int[][] merges) {
        this.merges = merges;
        bytesOf = new byte[256 + merges.length][];
        for (int i = 0; i < 256; i++) bytesOf[i] = new byte[] {(byte) i};
        long total = 256;
        for (int r = 0; r < merges.length; r++) {
            if (merges[r] == null || merges[r].length != 2) throw new IllegalArgumentException("bpe: merge " + r + " is not a pair");
            int a = merges[r][0], b = merges[r][1];
            if (a < 0 || b < 0 || a >= 256 + r || b >= 256 + r) throw new IllegalArgumentException("bpe: merge " + r + " refers to unknown id");
            byte[] x = bytesOf[a], y = bytesOf[b];
            int len = x.length + y.length;       // checked before allocating
            if (len > MAX_TOKEN_BYTES) throw new IllegalArgumentException("bpe: merge " + r + " makes a token of " + len + " bytes (limit " + MAX_TOKEN_BYTES + ")");
            total += len;
            if (total > maxTotalBytes(merges.length)) throw new IllegalArgumentException("bpe: tokens of " + merges.length + " merges exceed " + maxTotalBytes(merges.length) + " bytes in all");
            rank.putIfAbsent(key(a, b), r);      // a repeated pair keeps its first (lowest) rank
            byte[] z = new byte[len];
            System.arraycopy(x, 0, z, 0, x.length);
            System.arraycopy(y, 0, z, x.length, y.length);
            bytesOf[256 + r] = z;
        }
    }

    private static long key(int a, int b) { return ((long) a << 32) | (b & 0xffffffffL); }

    /** Learns {@code vocab - 256} merges from {@code text}. */
    public static BpeTokenizer train(String text, int vocab) {
        if (vocab < 256) throw new IllegalArgumentException("bpe vocabulary must be >= 256, got " + vocab);
        Map<String, Integer> counts = new LinkedHashMap<>();
        Matcher mt = PRE.matcher(text);
        while (mt.find()) counts.merge(mt.group(), 1, Integer::sum);
        List<int[]> words = new ArrayList<>();
        List<Integer> freq = new ArrayList<>();
        for (var e : counts.entrySet()) {
            byte[] b = e.getKey().getBytes(StandardCharsets.UTF_8);
            int[] w = new int[b.length];
            for (int i = 0; i < b.length; i++) w[i] = b[i] & 0xff;
            words.add(w);
            freq.add(e.getValue());
        }
        List<int[]> merges = new ArrayList<>();
        List<Integer> lens = new ArrayList<>();          // bytes of each id, to respect MAX_TOKEN_BYTES
        for (int i = 0; i < 256; i++) lens.add(1);
        long total = 256;
        for (int id = 256; id < vocab; id++) {
            Map<Long, Long> pairs = new HashMap<>();
            for (int w = 0; w < words.size(); w++) {
                int[] s = words.get(w);
                for (int i = 0; i + 1 < s.length; i++) pairs.merge(key(s[i], s[i + 1]), (long) freq.get(w), Long::sum);
            }
            long best = -1, bestCount = 0;
            for (var e : pairs.entrySet()) {
                if (lens.get((int) (e.getKey() >>> 32)) + lens.get((int) (long) e.getKey()) > MAX_TOKEN_BYTES) continue;
                if (e.getValue() > bestCount || (e.getValue() == bestCount && e.getKey() < best)) { best = e.getKey(); bestCount = e.getValue(); }
            }
            if (bestCount < 2) break;   // nothing left worth merging
            int a = (int) (best >>> 32), b = (int) best;
            total += lens.get(a) + lens.get(b);
            if (total > maxTotalBytes(vocab - 256)) break;
            lens.add(lens.get(a) + lens.get(b));
            merges.add(new int[] {a, b});
            for (int w = 0; w < words.size(); w++) words.set(w, apply(words.get(w), a, b, id));
        }
        return new BpeTokenizer(merges.toArray(new int[0][]));
    }

    private static int[] apply(int[] s, int a, int b, int id) {
        int[] out = new int[s.length];
        int n = 0;
        for (int i = 0; i < s.length; i++) {
            if (i + 1 < s.length && s[i] == a && s[i + 1] == b) { out[n++] = id; i++; }
            else out[n++] = s[i];
        }
        return n == s.length ? s : java.util.Arrays.copyOf(out, n);
    }

    @Override
    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        Matcher mt = PRE.matcher(text);
        int last = 0;
        while (mt.find()) {
            if (mt.start() != last) encodeChunk(text.substring(last, mt.start()), ids);
            encodeChunk(mt.group(), ids);
            last = mt.end();
        }
        if (last < text.length()) encodeChunk(text.substring(last), ids);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private void encodeChunk(String chunk, List<Integer> out) {
        byte[] b = chunk.getBytes(StandardCharsets.UTF_8);
        int[] s = new int[b.length];
        for (int i = 0; i < b.length; i++) s[i] = b[i] & 0xff;
        while (s.length > 1) {
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < s.length; i++) {
                Integer r = rank.get(key(s[i], s[i + 1]));
                if (r != null && r < bestRank) bestRank = r;
            }
            if (bestRank == Integer.MAX_VALUE) break;
            s = apply(s, merges[bestRank][0], merges[bestRank][1], 256 + bestRank);
        }
        for (int x : s) out.add(x);
    }

    @Override
    public String decode(int[] ids) {
        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
        for (int id : ids) {
            if (id < 0 || id >= bytesOf.length) throw new IllegalArgumentException("token id " + id + " outside [0, " + bytesOf.length + ")");
            o.writeBytes(bytesOf[id]);
        }
        return o.toString(StandardCharsets.UTF_8);
    }

    @Override
    public int vocabSize() { return 256 + merges.length; }

    @Override
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "bpe");
        List<int[]> l = new ArrayList<>(List.of(merges));
        m.put("merges", l);
        return m;
    }

    static BpeTokenizer fromMap(Map<String, Object> m) {
        if (!(m.get("merges") instanceof List<?> l) || l.size() > 1 << 20) throw new IllegalArgumentException("bpe tokenizer: missing or oversized merges");
        int[][] merges = new int[l.size()][];
        for (int i = 0; i < l.size(); i++) {
            if (!(l.get(i) instanceof List<?> p) || p.size() != 2 || !(p.get(0) instanceof Long a) || !(p.get(1) instanceof Long b)
                    || a < 0 || b < 0 || a > Integer.MAX_VALUE || b > Integer.MAX_VALUE)
                throw new IllegalArgumentException("bpe tokenizer: bad merge " + i);
            merges[i] = new int[] {a.intValue(), b.intValue()};
        }
        return new BpeTokenizer(merges);
    }
}
