package dev.latent.io;

import java.util.Locale;
import java.util.Map;

/** JSON writer for metrics lines, benchmark records and checkpoint metadata: maps, lists, strings, numbers. */
public final class Json {
    private Json() {}

    public static String object(Map<String, ?> fields) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, ?> e : fields.entrySet()) {
            if (sb.length() > 1) sb.append(',');
            sb.append(quote(e.getKey())).append(':').append(value(e.getValue()));
        }
        return sb.append('}').toString();
    }

    public static String value(Object v) {
        if (v == null) return "null";
        if (v instanceof Double d) return Double.isFinite(d) ? String.format(Locale.ROOT, "%.6g", d).replaceAll("(\\.\\d*?)0+(e|$)", "$1$2").replaceAll("\\.(e|$)", "$1") : "null";
        if (v instanceof Float f) return value(f.doubleValue());
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        if (v instanceof java.util.Map<?, ?> m) {
            java.util.Map<String, Object> mm = new java.util.LinkedHashMap<>();
            m.forEach((k, x) -> mm.put(String.valueOf(k), x));
            return object(mm);
        }
        if (v instanceof java.util.Collection<?> c) {
            StringBuilder sb = new StringBuilder("[");
            for (Object x : c) sb.append(sb.length() > 1 ? "," : "").append(value(x));
            return sb.append(']').toString();
        }
        if (v instanceof int[] a) {
            StringBuilder sb = new StringBuilder("[");
            for (int x : a) sb.append(sb.length() > 1 ? "," : "").append(x);
            return sb.append(']').toString();
        }
        return quote(v.toString());
    }

    public static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        return sb.append('"').toString();
    }
}
