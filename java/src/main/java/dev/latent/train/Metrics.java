package dev.latent.train;

import dev.latent.io.Json;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/** DIR/metrics.jsonl: one JSON object per logged step, flushed as written (appends on --resume). */
public final class Metrics implements AutoCloseable {
    private final Writer w;

    public Metrics(Path dir, boolean append) throws IOException {
        Files.createDirectories(dir);
        w = Files.newBufferedWriter(dir.resolve("metrics.jsonl"), StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
    }

    public void log(Map<String, Object> record) throws IOException {
        w.write(Json.object(record));
        w.write('\n');
        w.flush();
    }

    @Override
    public void close() throws IOException { w.close(); }
}
