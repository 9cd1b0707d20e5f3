package dev.latent.train;

import dev.latent.io.AtomicFiles;
import dev.latent.io.Json;
import dev.latent.io.JsonReader;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * DIR/metrics.jsonl: one JSON object per logged step, flushed as written. A fresh run starts the file anew (the
 * CLI refuses an existing run folder without --overwrite, after validating everything else); a resumed run first
 * drops the records past the checkpoint's step (written by the run that was killed after its last checkpoint,
 * and about to be written again), through a temp file and a rename, then appends.
 */
public final class Metrics implements AutoCloseable {
    public static final String FILE = "metrics.jsonl";
    private final Writer w;
    private final Path file;

    public Metrics(Path dir, boolean append) throws IOException {
        Files.createDirectories(dir);
        file = dir.resolve(FILE);
        w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
    }

    /** Resumes DIR/metrics.jsonl at {@code step}: keeps the records whose "step" is at most {@code step}, then appends. */
    public static Metrics resume(Path dir, long step) throws IOException {
        truncateAfter(dir.resolve(FILE), step);
        return new Metrics(dir, true);
    }

    /**
     * Drops the records of {@code file} whose "step" is greater than {@code step} (and an unterminated last line, the
     * trace of a kill mid-write); the file is replaced atomically, so a failure leaves it as it was. Returns how
     * many records were dropped.
     */
    public static int truncateAfter(Path file, long step) throws IOException {
        if (!Files.isRegularFile(file)) return 0;
        String text = Files.readString(file, StandardCharsets.UTF_8);
        List<String> keep = new ArrayList<>();
        int dropped = 0;
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            if (line.isBlank()) continue;
            boolean last = i == lines.length - 1;    // no newline after it: a partial record
            Object s = null;
            try {
                if (!last && JsonReader.parse(line) instanceof Map<?, ?> m) s = m.get("step");
            } catch (IllegalArgumentException e) {
                s = null;
            }
            if (s instanceof Number n && n.longValue() <= step) keep.add(line);
            else dropped++;
        }
        if (dropped == 0) return 0;
        StringBuilder b = new StringBuilder();
        for (String l : keep) b.append(l).append('\n');
        AtomicFiles.write(file, tmp -> Files.writeString(tmp, b, StandardCharsets.UTF_8));
        return dropped;
    }

    public void log(Map<String, Object> record) throws IOException {
        try {
            w.write(Json.object(record));
            w.write('\n');
            w.flush();
        } catch (IOException e) {
            throw new IOException("could not write " + file + ": " + AtomicFiles.reason(e), e);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            w.close();
        } catch (IOException e) {
            throw new IOException("could not write " + file + ": " + AtomicFiles.reason(e), e);
        }
    }
}
