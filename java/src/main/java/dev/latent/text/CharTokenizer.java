package dev.latent.text;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/** One token per Unicode code point of the training text, sorted (the reference's char vocabulary). */
public final class CharTokenizer implements Tokenizer {
    private final int[] codePoints;
    private final Map<Integer, Integer> index = new HashMap<>();

    public CharTokenizer(int[] codePoints) {
        this.codePoints = codePoints.clone();
        for (int i = 0; i < codePoints.length; i++)
            if (index.put(codePoints[i], i) != null) throw new IllegalArgumentException("tokenizer: duplicate code point " + codePoints[i]);
    }

    public static CharTokenizer train(String text) {
        TreeSet<Integer> set = new TreeSet<>();
        text.codePoints().forEach(set::add);
        return new CharTokenizer(set.stream().mapToInt(Integer::intValue).toArray());
    }

    @Override
    public int[] encode(String text) {
        return text.codePoints().map(cp -> {
            Integer id = index.get(cp);
            if (id == null) throw new IllegalArgumentException("character U+" + Integer.toHexString(cp).toUpperCase() + " is not in the vocabulary");
            return id;
        }).toArray();
    }

    @Override
    public String decode(int[] ids) {
        StringBuilder b = new StringBuilder();
        for (int id : ids) {
            if (id < 0 || id >= codePoints.length) throw new IllegalArgumentException("token id " + id + " outside [0, " + codePoints.length + ")");
            b.appendCodePoint(codePoints[id]);
        }
        return b.toString();
    }

    @Override
    public int vocabSize() { return codePoints.length; }

    @Override
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "char");
        m.put("code_points", codePoints);
        return m;
    }

    static CharTokenizer fromMap(Map<String, Object> m) {
        if (!(m.get("code_points") instanceof List<?> l) || l.size() > 1 << 21)
            throw new IllegalArgumentException("char tokenizer: missing or oversized code_points");
        List<Integer> cps = new ArrayList<>();
        for (Object o : l) {
            if (!(o instanceof Long v) || v < 0 || v > Character.MAX_CODE_POINT) throw new IllegalArgumentException("char tokenizer: bad code point " + o);
            cps.add(v.intValue());
        }
        return new CharTokenizer(cps.stream().mapToInt(Integer::intValue).toArray());
    }
}
