package dev.latent.models.gpt;

import dev.latent.autograd.Var;
import dev.latent.io.JsonReader;
import dev.latent.io.SafeTensors;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.Gpt2Tokenizer;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Imports a Hugging Face GPT-2 folder: {@code config.json}, {@code model.safetensors} (F32, F16 or BF16,
 * read through a mapping of the file) and the tokenizer files {@code vocab.json} + {@code merges.txt}.
 *
 * <p>Names map one to one once the optional {@code transformer.} prefix is dropped: {@code wte}, {@code wpe},
 * {@code h.{i}.ln_1}, {@code h.{i}.attn.c_attn}, {@code h.{i}.attn.c_proj}, {@code h.{i}.ln_2},
 * {@code h.{i}.mlp.c_fc}, {@code h.{i}.mlp.c_proj}, {@code ln_f} (Latent's {@link Gpt} uses GPT-2's names).
 * GPT-2's projections are Conv1D layers whose weight is stored (in, out); Latent's Linear holds (out, in), so
 * the four projection weights of every block are transposed on load. The head is tied to {@code wte}; an
 * {@code lm_head.weight} in the file must equal {@code wte.weight}. The attention mask buffers of older
 * files ({@code h.{i}.attn.bias}, {@code h.{i}.attn.masked_bias}) are ignored; any other tensor is refused.
 * The MLP uses the tanh GELU ({@code gelu_new}); see docs/huggingface.md.
 */
public final class GptHuggingFace {
    private GptHuggingFace() {}

    /** An imported model and its tokenizer. */
    public record Imported(Gpt model, Gpt2Tokenizer tokenizer) {}

    /** Reads {@code dir}'s config, weights and tokenizer; the model's tensors live in {@code scope}. */
    public static Imported load(Path dir, Scope scope) throws IOException {
        GptConfig cfg = config(dir.resolve("config.json"));
        Gpt2Tokenizer tok = Gpt2Tokenizer.read(dir.resolve("vocab.json"), dir.resolve("merges.txt"));
        if (tok.vocabSize() != cfg.vocab())
            throw new IOException(dir + ": vocab.json has " + tok.vocabSize() + " tokens, config.json's vocab_size is " + cfg.vocab());
        return new Imported(weights(dir.resolve("model.safetensors"), cfg, scope), tok);
    }

    /** The model shape of a GPT-2 {@code config.json}; refuses, by name, settings Latent's GPT does not implement. */
    public static GptConfig config(Path configJson) throws IOException {
        Map<String, Object> c;
        try {
            c = JsonReader.parseObject(Files.readString(configJson, StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
            throw new IOException(configJson + ": " + e.getMessage(), e);
        }
        String where = configJson + ": ";
        Object type = c.get("model_type");
        if (type != null && !"gpt2".equals(type)) throw new IOException(where + "model_type " + type + " is not supported (gpt2 only)");
        int layers = intOf(c, "n_layer", where), heads = intOf(c, "n_head", where), dim = intOf(c, "n_embd", where);
        int ctx = intOf(c, "n_positions", where), vocab = intOf(c, "vocab_size", where);
        Object eps = c.getOrDefault("layer_norm_epsilon", 1e-5);
        if (!(eps instanceof Number e) || Math.abs(e.doubleValue() - 1e-5) > 1e-12)
            throw new IOException(where + "layer_norm_epsilon " + eps + " is not supported (Latent's LayerNorm uses 1e-5)");
        Object inner = c.get("n_inner");
        if (inner != null && !(inner instanceof Long n && n == 4L * dim))
            throw new IOException(where + "n_inner " + inner + " is not supported (the MLP is 4 x n_embd = " + 4L * dim + ")");
        Object act = c.getOrDefault("activation_function", "gelu_new");
        GptConfig.Activation a;
        if ("gelu_new".equals(act) || "gelu_pytorch_tanh".equals(act)) a = GptConfig.Activation.GELU_TANH;
        else if ("gelu".equals(act)) a = GptConfig.Activation.GELU;
        else throw new IOException(where + "activation_function " + act + " is not supported (gelu_new, gelu_pytorch_tanh, gelu)");
        refuseIf(c, "scale_attn_by_inverse_layer_idx", true, where);
        refuseIf(c, "add_cross_attention", true, where);
        refuseIf(c, "scale_attn_weights", false, where);
        refuseIf(c, "tie_word_embeddings", false, where);
        if (dim % heads != 0) throw new IOException(where + "n_embd " + dim + " is not divisible by n_head " + heads);
        return new GptConfig(vocab, layers, heads, dim, ctx, true, a);
    }

    private static void refuseIf(Map<String, Object> c, String key, boolean bad, String where) throws IOException {
        if (Boolean.valueOf(bad).equals(c.get(key))) throw new IOException(where + key + " = " + bad + " is not supported");
    }

    private static int intOf(Map<String, Object> c, String key, String where) throws IOException {
        if (!(c.get(key) instanceof Long v) || v < 1 || v > Integer.MAX_VALUE) throw new IOException(where + key + " is " + c.get(key) + ", not a positive integer");
        return v.intValue();
    }

    /** Weights of {@code cfg}'s model from a GPT-2 safetensors file (names with or without {@code transformer.}). */
    public static Gpt weights(Path file, GptConfig cfg, Scope scope) throws IOException {
        try (SafeTensors.Mapped m = SafeTensors.map(file)) {
            String prefix = m.has("transformer.wte.weight") ? "transformer." : "";
            if (!m.has(prefix + "wte.weight")) throw new IOException(file + ": no wte.weight or transformer.wte.weight: not a GPT-2 safetensors file");
            // Check the file can fill the model before allocating it (a forged config could ask for terabytes).
            long held = 0;
            for (String n : m.names()) held += Arrays.stream(m.shape(n)).reduce(1, (x, y) -> x * y);
            long need = cfg.parameterCount();
            if (need < 0 || need > held)
                throw new IOException(file + ": config " + cfg + " needs " + (need < 0 ? "too many" : need) + " parameters, the file holds " + held + " values");
            Gpt model = new Gpt(scope, cfg, 0);
            Set<String> used = new HashSet<>();
            for (Map.Entry<String, Var> e : model.namedParameters().entrySet()) {
                String ours = e.getKey(), theirs = prefix + ours;
                if (!m.has(theirs)) throw new IOException(file + ": missing tensor " + theirs);
                used.add(theirs);
                Tensor dst = e.getValue().value();
                long[] s = m.shape(theirs);
                if (isConv1DWeight(ours)) {
                    // Conv1D: stored (in, out); ours (out, in).
                    long[] want = {dst.shape()[1], dst.shape()[0]};
                    if (!Arrays.equals(s, want)) throw new IOException(file + ": tensor " + theirs + " has shape " + Arrays.toString(s)
                            + ", a GPT-2 Conv1D weight of this config is " + Arrays.toString(want) + " (in, out)");
                    transposeInto(m, theirs, (int) want[0], (int) want[1], dst.segment());
                } else {
                    if (!Arrays.equals(s, dst.shape())) throw new IOException(file + ": tensor " + theirs + " has shape " + Arrays.toString(s)
                            + ", config says " + Arrays.toString(dst.shape()));
                    m.copyTo(theirs, dst.segment());
                }
            }
            for (String n : m.names()) {
                if (used.contains(n)) continue;
                String local = n.startsWith(prefix) ? n.substring(prefix.length()) : n;
                if (local.matches("h\\.\\d+\\.attn\\.(masked_)?bias")) continue;      // causal-mask buffers
                if (n.equals("lm_head.weight")) { sameAs(m, n, prefix + "wte.weight"); continue; }
                throw new IOException(file + ": tensor " + n + " has no place in a GPT-2 of " + cfg.layers() + " layers (unsupported layout)");
            }
            return model;
        }
    }

    static boolean isConv1DWeight(String name) {
        return name.endsWith(".c_attn.weight") || name.endsWith(".c_proj.weight") || name.endsWith(".c_fc.weight");
    }

    /** dst (out, in) = transpose of the stored (in, out) tensor, converted to F32 into a scratch buffer first. */
    private static void transposeInto(SafeTensors.Mapped m, String name, int in, int out, MemorySegment dst) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment src = a.allocate((long) in * out * 4, 64);
            m.copyTo(name, src);
            for (long i = 0; i < in; i++)
                for (long o = 0; o < out; o++)
                    dst.setAtIndex(JAVA_FLOAT, o * in + i, src.getAtIndex(JAVA_FLOAT, i * out + o));
        }
    }

    private static void sameAs(SafeTensors.Mapped m, String head, String wte) throws IOException {
        if (!Arrays.equals(m.shape(head), m.shape(wte))) throw new IOException(m.file() + ": " + head + " is not tied to " + wte + " (shapes differ): untied heads are not supported");
        long n = Arrays.stream(m.shape(head)).reduce(1, (x, y) -> x * y);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment x = a.allocate(n * 4, 64), y = a.allocate(n * 4, 64);
            m.copyTo(head, x);
            m.copyTo(wte, y);
            if (x.mismatch(y) != -1) throw new IOException(m.file() + ": " + head + " differs from " + wte + ": untied heads are not supported");
        }
    }
}
