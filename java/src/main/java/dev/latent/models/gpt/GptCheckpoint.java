package dev.latent.models.gpt;

import dev.latent.tensor.Precision;
import dev.latent.autograd.Var;
import dev.latent.io.Json;
import dev.latent.io.JsonReader;
import dev.latent.io.SafeTensors;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.Tokenizer;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A GPT checkpoint: one safetensors file holding the weights, AdamW's moments ("opt.m.*", "opt.v.*"), and
 * metadata (format, step, config, tokenizer, training arguments). Written atomically; a truncated or
 * corrupt file is refused with a message and the previous checkpoint is never touched until the new one
 * is complete.
 */
public final class GptCheckpoint {
    public static final String FILE = "checkpoint.safetensors";
    static final String FORMAT = "latent-gpt-1";

    private GptCheckpoint() {}

    public static void save(Path dir, Gpt model, AdamW opt, Tokenizer tok, Map<String, Object> args) throws IOException {
        Map<String, Tensor> t = new LinkedHashMap<>();
        model.namedParameters().forEach((k, v) -> t.put(k, v.value()));
        if (opt != null) opt.state().forEach((k, mv) -> {
            t.put("opt.m." + k, mv[0]);
            t.put("opt.v." + k, mv[1]);
        });
        Map<String, String> meta = metadata(model, tok, args);
        meta.put("step", Long.toString(opt == null ? 0 : opt.step()));
        if (opt != null) meta.put("opt.step", Long.toString(opt.step()));
        SafeTensors.write(dir.resolve(FILE), t, meta);
    }

    /** The metadata of a GPT checkpoint but its step (format, config, tokenizer, the run's arguments). */
    public static Map<String, String> metadata(Gpt model, Tokenizer tok, Map<String, Object> args) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        GptConfig c = model.cfg;
        Map<String, Object> cm = new LinkedHashMap<>(Map.of("vocab", c.vocab(), "layers", c.layers(), "heads", c.heads(), "dim", c.dim(),
                "context", c.context(), "tied", c.tied()));
        // Only a non-default activation is written: exact-GELU checkpoints carry the same config fields as before.
        if (c.activation() != GptConfig.Activation.GELU) cm.put("activation", c.activation().id());
        meta.put("config", Json.object(cm));
        meta.put("tokenizer", tok.toJson());
        meta.put("args", Json.object(args));
        return meta;
    }

    /** What a checkpoint holds, loaded into {@code scope}. */
    public record Loaded(Gpt model, Tokenizer tokenizer, long step, Map<String, Object> args, Map<String, Tensor> optState) {
        /** The training precision the checkpoint's args record; FP32 for checkpoints written before it was recorded. */
        public dev.latent.tensor.Precision precision() {
            Object p = args == null ? null : args.get("precision");
            return p == null ? dev.latent.tensor.Precision.FP32 : dev.latent.tensor.Precision.of(p.toString());
        }
    }

    /** Loads a checkpoint, refusing one whose weights or optimizer moments hold NaN or infinity. */
    public static Loaded load(Path dirOrFile, Scope scope) throws IOException {
        return load(dirOrFile, scope, false);
    }

    /** As {@link #load(Path, Scope)}; {@code allowNonFinite} accepts NaN / infinite values (they are still counted on stderr). */
    public static Loaded load(Path dirOrFile, Scope scope, boolean allowNonFinite) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(FILE) : dirOrFile;
        if (!Files.isRegularFile(f)) throw new IOException("no checkpoint at " + f);
        SafeTensors.Loaded l = SafeTensors.read(f, scope);
        Map<String, String> meta = l.metadata();
        if (!FORMAT.equals(meta.get("format"))) throw new IOException(f + ": not a Latent GPT checkpoint (format " + meta.get("format") + ")");
        if (meta.get("config") == null || meta.get("tokenizer") == null) throw new IOException(f + ": metadata lacks config or tokenizer");
        GptConfig cfg;
        Tokenizer tok;
        try {
            Map<String, Object> c = JsonReader.parseObject(meta.get("config"));
            Object act = c.getOrDefault("activation", GptConfig.Activation.GELU.id());   // absent: saved before the option
            if (!(act instanceof String a)) throw new IllegalArgumentException("activation " + act + " is not a string");
            cfg = new GptConfig(num(c, "vocab"), num(c, "layers"), num(c, "heads"), num(c, "dim"), num(c, "context"),
                    Boolean.TRUE.equals(c.get("tied")), GptConfig.Activation.of(a));
            tok = Tokenizer.fromJson(meta.get("tokenizer"));
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad metadata: " + e.getMessage(), e);
        }
        // The model is allocated from the config: refuse a config the file's tensors cannot fill before
        // allocating (a hostile header could otherwise ask for terabytes).
        long held = 0;
        for (Tensor t : l.tensors().values()) held += t.numel();
        long need = cfg.parameterCount();
        if (need < 0 || need > held) throw new IOException(f + ": config " + cfg + " needs " + (need < 0 ? "too many" : need) + " parameters, the file holds " + held + " floats");
        Gpt model = new Gpt(scope, cfg, 0);
        for (Map.Entry<String, Var> e : model.namedParameters().entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null) throw new IOException(f + ": missing tensor " + e.getKey());
            Tensor dst = e.getValue().value();
            if (!Arrays.equals(src.shape(), dst.shape()))
                throw new IOException(f + ": tensor " + e.getKey() + " has shape " + Arrays.toString(src.shape()) + ", config says " + Arrays.toString(dst.shape()));
            MemorySegment.copy(src.segment(), 0, dst.segment(), 0, dst.numel() * 4);
        }
        for (Map.Entry<String, Tensor> e : l.tensors().entrySet()) {
            long bad = dev.latent.train.Limits.nonFinite(e.getValue());
            if (bad == 0) continue;
            String what = f + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite value" + (bad == 1 ? "" : "s");
            if (!allowNonFinite) throw new IOException(what + " (a diverged or damaged checkpoint; --allow-nonfinite loads it anyway)");
            System.err.println("warning: " + what);
        }
        if (tok.vocabSize() != cfg.vocab()) throw new IOException(f + ": tokenizer has " + tok.vocabSize() + " tokens, model " + cfg.vocab());
        Map<String, Tensor> opt = new LinkedHashMap<>();
        l.tensors().forEach((k, v) -> { if (k.startsWith("opt.")) opt.put(k, v); });
        long step;
        try {
            step = Long.parseLong(meta.getOrDefault("step", "0"));
        } catch (NumberFormatException e) {
            throw new IOException(f + ": bad step " + meta.get("step"));
        }
        if (step < 0) throw new IOException(f + ": bad step " + step + " (must be >= 0)");
        Map<String, Object> args;
        try {
            args = meta.containsKey("args") ? JsonReader.parseObject(meta.get("args")) : Map.of();
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad args metadata: " + e.getMessage(), e);
        }
        return new Loaded(model, tok, step, args, opt);
    }

    /**
     * Loads only what inference needs: the config, the tokenizer and the weights, read through a read-only mapping of
     * the file ({@link SafeTensors#map}) straight into the model's parameters, one tensor at a time. The optimizer moments
     * ("opt.*", about twice the weights) are never read, so resident memory is the weights once, not the whole file plus a
     * copy (a serving process holds ~1x the weights instead of ~4x). Refuses NaN / infinite weights unless
     * {@code allowNonFinite}. The result's {@code optState} is empty.
     */
    public static Loaded loadWeights(Path dirOrFile, Scope scope, boolean allowNonFinite) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(FILE) : dirOrFile;
        if (!Files.isRegularFile(f)) throw new IOException("no checkpoint at " + f);
        try (SafeTensors.Mapped mp = SafeTensors.map(f)) {
            Map<String, String> meta = mp.metadata();
            Header h = header(f, meta);
            long held = 0;
            for (String name : mp.names()) if (!name.startsWith("opt.")) held += numel(mp.shape(name));
            long need = h.cfg.parameterCount();
            if (need < 0 || need > held)
                throw new IOException(f + ": config " + h.cfg + " needs " + (need < 0 ? "too many" : need) + " parameters, the file's weights hold " + held + " floats");
            Gpt model = new Gpt(scope, h.cfg, 0);
            for (Map.Entry<String, Var> e : model.namedParameters().entrySet()) {
                if (!mp.has(e.getKey())) throw new IOException(f + ": missing tensor " + e.getKey());
                Tensor dst = e.getValue().value();
                long[] shape = mp.shape(e.getKey());
                if (!Arrays.equals(shape, dst.shape()))
                    throw new IOException(f + ": tensor " + e.getKey() + " has shape " + Arrays.toString(shape) + ", config says " + Arrays.toString(dst.shape()));
                mp.copyTo(e.getKey(), dst.segment());
                long bad = dev.latent.train.Limits.nonFinite(dst);
                if (bad == 0) continue;
                String what = f + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite value" + (bad == 1 ? "" : "s");
                if (!allowNonFinite) throw new IOException(what + " (a diverged or damaged checkpoint; --allow-nonfinite loads it anyway)");
                System.getLogger("dev.latent").log(System.Logger.Level.WARNING, what);
            }
            return new Loaded(model, h.tok, h.step, h.args, Map.of());
        }
    }

    /**
     * A checkpoint loaded for serving: a packed decoder holding the weights, and the checkpoint's tokenizer, step and
     * args. {@link #close()} closes the decoder.
     */
    public record Served(KvDecoder decoder, Tokenizer tokenizer, long step, Map<String, Object> args) implements AutoCloseable {
        @Override
        public void close() { decoder.close(); }
    }

    /**
     * Loads only what decoding needs, straight into a {@link KvDecoder.Weights#PACKED} decoder
     * ({@link KvDecoder#packed}): through a read-only mapping of the file, each weight matrix is converted into a
     * temporary buffer, packed, and the buffer freed; the embeddings, LayerNorms and biases are kept as read. No
     * {@link Gpt} is built, so the matrices are held once, in the packed layout (~1x the weight bytes, against ~2x for
     * a loaded model plus a packed copy); the optimizer moments are never read. The same checks as
     * {@link #loadWeights} (shapes, NaN / infinity unless {@code allowNonFinite}). The caller closes the decoder.
     */
    public static Served loadPacked(Path dirOrFile, boolean allowNonFinite) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(FILE) : dirOrFile;
        if (!Files.isRegularFile(f)) throw new IOException("no checkpoint at " + f);
        try (SafeTensors.Mapped mp = SafeTensors.map(f)) {
            Header h = header(f, mp.metadata());
            long held = 0;
            for (String name : mp.names()) if (!name.startsWith("opt.")) held += numel(mp.shape(name));
            long need = h.cfg.parameterCount();
            if (need < 0 || need > held)
                throw new IOException(f + ": config " + h.cfg + " needs " + (need < 0 ? "too many" : need) + " parameters, the file's weights hold " + held + " floats");
            KvDecoder d = KvDecoder.packed(h.cfg, (name, shape, dst) -> {
                if (!mp.has(name)) throw new IOException(f + ": missing tensor " + name);
                long[] stored = mp.shape(name);
                if (!Arrays.equals(stored, shape))
                    throw new IOException(f + ": tensor " + name + " has shape " + Arrays.toString(stored) + ", config says " + Arrays.toString(shape));
                mp.copyTo(name, dst);
                long bad = 0, n = numel(shape);
                for (long i = 0; i < n; i++) if (!Float.isFinite(dst.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i))) bad++;
                if (bad == 0) return;
                String what = f + ": tensor " + name + " holds " + bad + " NaN or infinite value" + (bad == 1 ? "" : "s");
                if (!allowNonFinite) throw new IOException(what + " (a diverged or damaged checkpoint; --allow-nonfinite loads it anyway)");
                System.getLogger("dev.latent").log(System.Logger.Level.WARNING, what);
            });
            return new Served(d, h.tok, h.step, h.args);
        }
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    private record Header(GptConfig cfg, Tokenizer tok, long step, Map<String, Object> args) {}

    /** Format, config, tokenizer (matching the config's vocabulary), step and args from a checkpoint's metadata. */
    private static Header header(Path f, Map<String, String> meta) throws IOException {
        if (!FORMAT.equals(meta.get("format"))) throw new IOException(f + ": not a Latent GPT checkpoint (format " + meta.get("format") + ")");
        if (meta.get("config") == null || meta.get("tokenizer") == null) throw new IOException(f + ": metadata lacks config or tokenizer");
        GptConfig cfg;
        Tokenizer tok;
        try {
            Map<String, Object> c = JsonReader.parseObject(meta.get("config"));
            Object act = c.getOrDefault("activation", GptConfig.Activation.GELU.id());
            if (!(act instanceof String a)) throw new IllegalArgumentException("activation " + act + " is not a string");
            cfg = new GptConfig(num(c, "vocab"), num(c, "layers"), num(c, "heads"), num(c, "dim"), num(c, "context"),
                    Boolean.TRUE.equals(c.get("tied")), GptConfig.Activation.of(a));
            tok = Tokenizer.fromJson(meta.get("tokenizer"));
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad metadata: " + e.getMessage(), e);
        }
        if (tok.vocabSize() != cfg.vocab()) throw new IOException(f + ": tokenizer has " + tok.vocabSize() + " tokens, model " + cfg.vocab());
        long step;
        try {
            step = Long.parseLong(meta.getOrDefault("step", "0"));
        } catch (NumberFormatException e) {
            throw new IOException(f + ": bad step " + meta.get("step"));
        }
        if (step < 0) throw new IOException(f + ": bad step " + step + " (must be >= 0)");
        Map<String, Object> args;
        try {
            args = meta.containsKey("args") ? JsonReader.parseObject(meta.get("args")) : Map.of();
        } catch (IllegalArgumentException e) {
            throw new IOException(f + ": bad args metadata: " + e.getMessage(), e);
        }
        return new Header(cfg, tok, step, args);
    }

    /** Copies saved moments into {@code opt} and sets its step. */
    public static void restore(AdamW opt, Loaded l) throws IOException {
        for (var e : opt.state().entrySet()) {
            Tensor m = l.optState().get("opt.m." + e.getKey()), v = l.optState().get("opt.v." + e.getKey());
            if (m == null || v == null) throw new IOException("checkpoint lacks optimizer state for " + e.getKey());
            long[] want = e.getValue()[0].shape();
            if (!Arrays.equals(m.shape(), want) || !Arrays.equals(v.shape(), want))
                throw new IOException("checkpoint's optimizer state for " + e.getKey() + " has shapes " + Arrays.toString(m.shape()) + " and "
                        + Arrays.toString(v.shape()) + ", the parameter is " + Arrays.toString(want));
            MemorySegment.copy(m.segment(), 0, e.getValue()[0].segment(), 0, m.numel() * 4);
            MemorySegment.copy(v.segment(), 0, e.getValue()[1].segment(), 0, v.numel() * 4);
        }
        opt.setStep(l.step());
    }

    private static int num(Map<String, Object> m, String k) throws IOException {
        if (!(m.get(k) instanceof Long v) || v < 1 || v > Integer.MAX_VALUE) throw new IOException("checkpoint config: bad " + k + " = " + m.get(k));
        return v.intValue();
    }
}
