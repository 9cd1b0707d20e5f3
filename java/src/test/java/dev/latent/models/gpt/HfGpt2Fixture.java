package dev.latent.models.gpt;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * A small GPT-2 in Hugging Face's layout, written by the test itself (no network): random weights under
 * GPT-2's names with Conv1D weights (in, out), some stored F16 and BF16, config.json, vocab.json and
 * merges.txt; and an independent reference forward pass in double precision that reads that layout directly
 * (embeddings, pre-LN blocks, causal attention, tanh GELU MLP, final LN, head tied to wte).
 */
public final class HfGpt2Fixture {
    public final int layers = 2, heads = 2, dim = 32, ctx = 16;
    static final String[] MERGES = {"Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r"};
    public final int vocab = 256 + MERGES.length;
    /** HF name (no prefix) -> values as the reference sees them (already rounded for F16/BF16 tensors). */
    public final Map<String, double[]> w = new LinkedHashMap<>();
    final Map<String, long[]> shapes = new LinkedHashMap<>();
    final Map<String, String> dtypes = new LinkedHashMap<>();

    public HfGpt2Fixture(long seed) {
        Random r = new Random(seed);
        int c = dim;
        put(r, "wte.weight", 0.5, 0, "F16", vocab, c);
        put(r, "wpe.weight", 0.3, 0, "F32", ctx, c);
        for (int l = 0; l < layers; l++) {
            String p = "h." + l + ".";
            put(r, p + "ln_1.weight", 0.1, 1, "F32", c);
            put(r, p + "ln_1.bias", 0.1, 0, "F32", c);
            put(r, p + "attn.c_attn.weight", 0.2, 0, l == 1 ? "F16" : "F32", c, 3 * c);
            put(r, p + "attn.c_attn.bias", 0.1, 0, "F32", 3 * c);
            put(r, p + "attn.c_proj.weight", 0.2, 0, "F32", c, c);
            put(r, p + "attn.c_proj.bias", 0.1, 0, "BF16", c);
            put(r, p + "ln_2.weight", 0.1, 1, "F32", c);
            put(r, p + "ln_2.bias", 0.1, 0, "F32", c);
            put(r, p + "mlp.c_fc.weight", 0.2, 0, l == 0 ? "BF16" : "F32", c, 4 * c);
            put(r, p + "mlp.c_fc.bias", 0.1, 0, "F32", 4 * c);
            put(r, p + "mlp.c_proj.weight", 0.1, 0, "F32", 4 * c, c);
            put(r, p + "mlp.c_proj.bias", 0.1, 0, "F32", c);
        }
        put(r, "ln_f.weight", 0.1, 1, "BF16", c);
        put(r, "ln_f.bias", 0.1, 0, "F32", c);
    }

    private void put(Random r, String name, double std, double mean, String dtype, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        double[] v = new double[(int) n];
        for (int i = 0; i < n; i++) v[i] = round(mean + std * r.nextGaussian(), dtype);
        w.put(name, v);
        shapes.put(name, shape);
        dtypes.put(name, dtype);
    }

    static double round(double x, String dtype) {
        float f = (float) x;
        return switch (dtype) {
            case "F32" -> f;
            case "F16" -> Float.float16ToFloat(Float.floatToFloat16(f));
            case "BF16" -> {   // round to nearest even on the top 16 bits
                int b = Float.floatToRawIntBits(f);
                yield Float.intBitsToFloat((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000);
            }
            default -> throw new IllegalArgumentException(dtype);
        };
    }

    /** What {@link #write} puts in the folder. */
    public record Options(boolean prefix, boolean maskBuffers, boolean lmHead, Set<String> storedUntransposed, Set<String> drop,
                          Map<String, Object> configOverrides) {
        public static Options plain() { return new Options(false, false, false, Set.of(), Set.of(), Map.of()); }
        public static Options hubLike() { return new Options(true, true, true, Set.of(), Set.of(), Map.of()); }
        public Options with(Map<String, Object> cfg) { return new Options(prefix, maskBuffers, lmHead, storedUntransposed, drop, cfg); }
        public Options untransposed(Set<String> names) { return new Options(prefix, maskBuffers, lmHead, names, drop, configOverrides); }
        public Options dropping(Set<String> names) { return new Options(prefix, maskBuffers, lmHead, storedUntransposed, names, configOverrides); }
    }

    /** Writes config.json, model.safetensors, vocab.json, merges.txt into {@code dir}. */
    public void write(Path dir, Options o) throws IOException {
        Files.createDirectories(dir);
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("activation_function", "\"gelu_new\"");
        cfg.put("architectures", "[\"GPT2LMHeadModel\"]");
        cfg.put("layer_norm_epsilon", "1e-05");
        cfg.put("model_type", "\"gpt2\"");
        cfg.put("n_ctx", ctx);
        cfg.put("n_embd", dim);
        cfg.put("n_head", heads);
        cfg.put("n_inner", "null");
        cfg.put("n_layer", layers);
        cfg.put("n_positions", ctx);
        cfg.put("vocab_size", vocab);
        cfg.putAll(o.configOverrides());
        StringBuilder cj = new StringBuilder("{\n");
        int k = 0;
        for (var e : cfg.entrySet()) cj.append(k++ == 0 ? "" : ",\n").append("  \"").append(e.getKey()).append("\": ").append(e.getValue());
        Files.writeString(dir.resolve("config.json"), cj.append("\n}\n"), StandardCharsets.UTF_8);

        StringBuilder vj = new StringBuilder("{");
        List<String> vocabList = new ArrayList<>();
        for (int b = 0; b < 256; b++) vocabList.add(sym(b));
        for (String m : MERGES) vocabList.add(m.replace(" ", ""));
        for (int i = 0; i < vocabList.size(); i++) vj.append(i == 0 ? "" : ", ").append(dev.latent.io.Json.quote(vocabList.get(i))).append(": ").append(i);
        Files.writeString(dir.resolve("vocab.json"), vj.append("}"), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n" + String.join("\n", MERGES) + "\n", StandardCharsets.UTF_8);

        // model.safetensors, written here byte by byte
        String pre = o.prefix() ? "transformer." : "";
        Map<String, byte[]> blobs = new LinkedHashMap<>();
        Map<String, String> dt = new LinkedHashMap<>();
        Map<String, long[]> sh = new LinkedHashMap<>();
        for (String name : w.keySet()) {
            if (o.drop().contains(name)) continue;
            long[] s = shapes.get(name);
            double[] v = w.get(name);
            if (o.storedUntransposed().contains(name)) {   // a wrong exporter: (out, in)
                double[] t = new double[v.length];
                int in = (int) s[0], out = (int) s[1];
                for (int i = 0; i < in; i++) for (int j = 0; j < out; j++) t[j * in + i] = v[i * out + j];
                v = t;
                s = new long[] {s[1], s[0]};
            }
            blobs.put(pre + name, encode(v, dtypes.get(name)));
            dt.put(pre + name, dtypes.get(name));
            sh.put(pre + name, s);
        }
        if (o.maskBuffers()) for (int l = 0; l < layers; l++) {
            double[] mask = new double[ctx * ctx];
            for (int i = 0; i < ctx; i++) for (int j = 0; j <= i; j++) mask[i * ctx + j] = 1;
            blobs.put(pre + "h." + l + ".attn.bias", encode(mask, "F32"));
            dt.put(pre + "h." + l + ".attn.bias", "F32");
            sh.put(pre + "h." + l + ".attn.bias", new long[] {1, 1, ctx, ctx});
        }
        if (o.lmHead()) {
            blobs.put("lm_head.weight", encode(w.get("wte.weight"), "F16"));
            dt.put("lm_head.weight", "F16");
            sh.put("lm_head.weight", shapes.get("wte.weight"));
        }
        writeSafetensors(dir.resolve("model.safetensors"), blobs, dt, sh);
    }

    /** GPT-2's bytes_to_unicode, written out here independently of the tokenizer. */
    static String sym(int b) {
        int k = 0;
        for (int x = 0; x <= b; x++) {
            boolean printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
            if (x == b) return String.valueOf(printable ? (char) b : (char) (256 + k));
            if (!printable) k++;
        }
        throw new IllegalArgumentException("byte " + b);
    }

    static byte[] encode(double[] v, String dtype) {
        int eb = dtype.equals("F32") ? 4 : 2;
        ByteBuffer b = ByteBuffer.allocate(v.length * eb).order(ByteOrder.LITTLE_ENDIAN);
        for (double x : v) {
            float f = (float) x;
            switch (dtype) {
                case "F32" -> b.putFloat(f);
                case "F16" -> b.putShort(Float.floatToFloat16(f));
                case "BF16" -> b.putShort((short) (Float.floatToRawIntBits(f) >>> 16));   // exact: values are BF16-rounded
                default -> throw new IllegalArgumentException(dtype);
            }
        }
        return b.array();
    }

    static void writeSafetensors(Path file, Map<String, byte[]> blobs, Map<String, String> dt, Map<String, long[]> sh) throws IOException {
        StringBuilder h = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long off = 0;
        for (String n : blobs.keySet()) {
            StringBuilder s = new StringBuilder();
            for (long d : sh.get(n)) s.append(s.isEmpty() ? "" : ",").append(d);
            h.append(",\"").append(n).append("\":{\"dtype\":\"").append(dt.get(n)).append("\",\"shape\":[").append(s)
                    .append("],\"data_offsets\":[").append(off).append(',').append(off + blobs.get(n).length).append("]}");
            off += blobs.get(n).length;
        }
        h.append('}');
        while ((h.length() + 8) % 8 != 0) h.append(' ');
        byte[] hb = h.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer all = ByteBuffer.allocate((int) (8 + hb.length + off)).order(ByteOrder.LITTLE_ENDIAN);
        all.putLong(hb.length).put(hb);
        for (byte[] b : blobs.values()) all.put(b);
        Files.write(file, all.array());
    }

    // ---- the reference: GPT-2's forward in double, reading the HF layout ----

    private double[] layerNorm(double[] x, double[] g, double[] b) {
        int c = x.length;
        double mean = 0, var = 0;
        for (double v : x) mean += v;
        mean /= c;
        for (double v : x) var += (v - mean) * (v - mean);
        var /= c;
        double inv = 1 / Math.sqrt(var + 1e-5);
        double[] y = new double[c];
        for (int i = 0; i < c; i++) y[i] = (x[i] - mean) * inv * g[i] + b[i];
        return y;
    }

    /** x (in) times a Conv1D weight stored (in, out), plus bias. */
    private static double[] conv1d(double[] x, double[] wt, double[] b) {
        int in = x.length, out = b.length;
        double[] y = b.clone();
        for (int i = 0; i < in; i++) for (int j = 0; j < out; j++) y[j] += x[i] * wt[i * out + j];
        return y;
    }

    static double geluNew(double x) { return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))); }

    /** Logits (T, vocab) for one sequence. */
    public double[][] logits(int[] ids) {
        int t = ids.length, c = dim, hs = c / heads;
        double[][] x = new double[t][c];
        double[] wte = w.get("wte.weight"), wpe = w.get("wpe.weight");
        for (int p = 0; p < t; p++) for (int i = 0; i < c; i++) x[p][i] = wte[ids[p] * c + i] + wpe[p * c + i];
        for (int l = 0; l < layers; l++) {
            String pf = "h." + l + ".";
            double[][] q = new double[t][], k = new double[t][], v = new double[t][];
            for (int p = 0; p < t; p++) {
                double[] a = layerNorm(x[p], w.get(pf + "ln_1.weight"), w.get(pf + "ln_1.bias"));
                double[] qkv = conv1d(a, w.get(pf + "attn.c_attn.weight"), w.get(pf + "attn.c_attn.bias"));
                q[p] = java.util.Arrays.copyOfRange(qkv, 0, c);
                k[p] = java.util.Arrays.copyOfRange(qkv, c, 2 * c);
                v[p] = java.util.Arrays.copyOfRange(qkv, 2 * c, 3 * c);
            }
            for (int p = 0; p < t; p++) {
                double[] y = new double[c];
                for (int h = 0; h < heads; h++) {
                    double[] s = new double[p + 1];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= p; j++) {
                        double d = 0;
                        for (int e = 0; e < hs; e++) d += q[p][h * hs + e] * k[j][h * hs + e];
                        s[j] = d / Math.sqrt(hs);
                        mx = Math.max(mx, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= p; j++) { s[j] = Math.exp(s[j] - mx); sum += s[j]; }
                    for (int j = 0; j <= p; j++) for (int e = 0; e < hs; e++) y[h * hs + e] += s[j] / sum * v[j][h * hs + e];
                }
                double[] o = conv1d(y, w.get(pf + "attn.c_proj.weight"), w.get(pf + "attn.c_proj.bias"));
                for (int i = 0; i < c; i++) x[p][i] += o[i];
            }
            for (int p = 0; p < t; p++) {
                double[] a = layerNorm(x[p], w.get(pf + "ln_2.weight"), w.get(pf + "ln_2.bias"));
                double[] hdn = conv1d(a, w.get(pf + "mlp.c_fc.weight"), w.get(pf + "mlp.c_fc.bias"));
                for (int i = 0; i < hdn.length; i++) hdn[i] = geluNew(hdn[i]);
                double[] o = conv1d(hdn, w.get(pf + "mlp.c_proj.weight"), w.get(pf + "mlp.c_proj.bias"));
                for (int i = 0; i < c; i++) x[p][i] += o[i];
            }
        }
        double[][] out = new double[t][vocab];
        for (int p = 0; p < t; p++) {
            double[] f = layerNorm(x[p], w.get("ln_f.weight"), w.get("ln_f.bias"));
            for (int u = 0; u < vocab; u++) {
                double d = 0;
                for (int i = 0; i < c; i++) d += f[i] * wte[u * c + i];
                out[p][u] = d;
            }
        }
        return out;
    }
}
