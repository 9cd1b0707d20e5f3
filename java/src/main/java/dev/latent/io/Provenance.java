package dev.latent.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Where a generated image came from: the model family, the checkpoint it was sampled from (path and SHA-256; null
 * while training, with the run folder and step in the settings instead), the seed and the settings. Every PNG Latent
 * writes carries it as an iTXt chunk {@value #KEY} (JSON) with {@code generated: true}; {@code bin/latent provenance
 * FILE.png} reads it back.
 * <p>
 * This is metadata, not a watermark: anyone can strip or forge a text chunk, and re-encoding the image drops it. It
 * tells an honest reader what made the file; it proves nothing to a dishonest one.
 * <p>
 * Code that writes images names the provenance of what it writes with {@link #use}; the PNG writer
 * ({@link AtomicFiles#writePng}) reads it from the current thread.
 */
public record Provenance(String model, String checkpoint, String checkpointSha256, Long seed, Map<String, Object> settings) {
    /** The PNG text keyword. */
    public static final String KEY = "Latent-Provenance";
    private static final ThreadLocal<Provenance> CURRENT = new ThreadLocal<>();

    /** This provenance for the images written on this thread until the returned handle is closed. */
    public Scoped use() {
        Provenance prev = CURRENT.get();
        CURRENT.set(this);
        return () -> {
            if (prev == null) CURRENT.remove();
            else CURRENT.set(prev);
        };
    }

    /** Restores the provenance in force before {@link #use}. */
    public interface Scoped extends AutoCloseable {
        @Override
        void close();
    }

    /** The provenance in force on this thread, if any. */
    public static Optional<Provenance> current() { return Optional.ofNullable(CURRENT.get()); }

    /** The JSON object written into the PNG. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("generated", true);
        m.put("generator", "Latent");
        m.put("model", model);
        m.put("checkpoint", checkpoint);
        m.put("checkpoint_sha256", checkpointSha256);
        m.put("seed", seed);
        m.put("settings", settings == null ? Map.of() : settings);
        return m;
    }

    /**
     * The text chunks of a PNG written now: the current provenance, or, where no code named one (a chart such as
     * loss.png), a record that says only that Latent wrote the file.
     */
    public static Map<String, String> chunksForCurrent() {
        Map<String, String> t = new LinkedHashMap<>();
        t.put("Software", "Latent");
        Map<String, Object> m = current().map(Provenance::toMap).orElseGet(() -> {
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("generated", true);
            d.put("generator", "Latent");
            d.put("model", null);
            return d;
        });
        t.put(KEY, Json.object(m));
        return t;
    }

    /** The provenance JSON of a PNG file, if it has one. */
    public static Optional<Map<String, Object>> read(Path png) throws IOException {
        String v = Png.readText(png).get(KEY);
        if (v == null) return Optional.empty();
        try {
            return Optional.of(JsonReader.parseObject(v));
        } catch (RuntimeException e) {
            throw new IOException(png + ": its " + KEY + " text is not a JSON object (" + e.getMessage() + ")");
        }
    }

    /** SHA-256 of a file, hex. */
    public static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }

    /** A configuration record's components by name (paths and enums as text), for {@link #settings}. */
    public static Map<String, Object> settingsOf(Record config) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (var c : config.getClass().getRecordComponents()) {
            try {
                Object v = c.getAccessor().invoke(config);
                m.put(c.getName(), v == null || v instanceof Number || v instanceof Boolean ? v : v.toString());
            } catch (ReflectiveOperationException e) {
                m.put(c.getName(), "?");
            }
        }
        return m;
    }

    /**
     * The provenance of images written while a model trains: no checkpoint yet (the run folder's changes every
     * save), so the settings carry the run folder beside the configuration.
     */
    public static Provenance training(String model, long seed, Map<String, Object> config, Path run) {
        Map<String, Object> m = new LinkedHashMap<>(config);
        m.put("run", String.valueOf(run));
        m.put("note", "written during training; the checkpoint is the run folder's at this step");
        return new Provenance(model, null, null, seed, m);
    }

    /** The provenance of images sampled from a checkpoint file or run folder ({@code file} inside it). */
    public static Provenance ofCheckpoint(String model, Path checkpoint, String file, Long seed, Map<String, Object> settings) throws IOException {
        Path f = Files.isDirectory(checkpoint) ? checkpoint.resolve(file) : checkpoint;
        return new Provenance(model, f.toString(), Files.isRegularFile(f) ? sha256(f) : null, seed, settings);
    }
}
