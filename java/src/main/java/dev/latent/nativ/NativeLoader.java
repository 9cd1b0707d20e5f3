package dev.latent.nativ;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;

/**
 * Finds liblatent.so, in this order, and says what it tried when all fail:
 * <ol>
 *   <li>{@code -Dlatent.library.path=/path/liblatent.so} (a file, or a folder holding it);</li>
 *   <li>the classpath resource {@code dev/latent/native/linux-x86_64/liblatent.so} from the classifier jar,
 *       extracted to {@code ~/.cache/latent/native/<sha256>/liblatent.so} (or {@code -Dlatent.cache.dir}).
 *       The file is written to a unique temp name and renamed into place, so two JVMs starting at once
 *       both end with a complete file; an existing file is re-hashed and replaced if it does not match.</li>
 * </ol>
 */
public final class NativeLoader {
    public static final String PLATFORM = "linux-x86_64";
    static final String RESOURCE_DIR = "dev/latent/native/" + PLATFORM + "/";
    static final String LIB = "liblatent.so";

    private NativeLoader() {}

    /** Finds the library and opens it in {@code arena} (global for the process-wide binding). */
    static Path locate(ClassLoader cl) {
        List<String> tried = new ArrayList<>();
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        String explicit = System.getProperty("latent.library.path");
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit);
            if (Files.isDirectory(p)) p = p.resolve(LIB);
            if (Files.isRegularFile(p)) return p;
            tried.add("-Dlatent.library.path=" + explicit + " (no such file)");
        } else {
            tried.add("-Dlatent.library.path (not set)");
        }
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            tried.add("classpath resource (none for " + os + "/" + arch + "; Latent ships " + PLATFORM + " only)");
        } else {
            try {
                Path p = extract(cl, cacheRoot());
                if (p != null) return p;
                tried.add("classpath resource " + RESOURCE_DIR + LIB + " (not found: add the latent-<version>-"
                        + PLATFORM + ".jar classifier artifact to the classpath)");
            } catch (IOException e) {
                tried.add("classpath resource " + RESOURCE_DIR + LIB + " (extraction failed: " + e.getMessage() + ")");
            }
        }
        throw new UnsatisfiedLinkError("liblatent.so not found. Tried: " + String.join("; ", tried));
    }

    static Path cacheRoot() {
        String dir = System.getProperty("latent.cache.dir");
        if (dir != null && !dir.isBlank()) return Path.of(dir);
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("latent").resolve("native");
    }

    /** Extracts the resource into {@code root/<sha256>/liblatent.so}; null when the jar is not on the classpath. */
    static Path extract(ClassLoader cl, Path root) throws IOException {
        byte[] lib, sum;
        try (InputStream in = cl.getResourceAsStream(RESOURCE_DIR + LIB)) {
            if (in == null) return null;
            lib = in.readAllBytes();
        }
        try (InputStream in = cl.getResourceAsStream(RESOURCE_DIR + LIB + ".sha256")) {
            if (in == null) throw new IOException("checksum resource " + RESOURCE_DIR + LIB + ".sha256 missing");
            sum = in.readAllBytes();
        }
        String expected = new String(sum, StandardCharsets.US_ASCII).trim().split("\\s+")[0].toLowerCase(Locale.ROOT);
        String actual = sha256(lib);
        if (!actual.equals(expected))
            throw new IOException("bundled " + LIB + " has SHA-256 " + actual + " but its .sha256 says " + expected);
        Path dir = root.resolve(expected);
        Path target = dir.resolve(LIB);
        if (Files.isRegularFile(target) && sha256(Files.readAllBytes(target)).equals(expected)) return target;
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, LIB + ".", ".tmp");
        try {
            Files.write(tmp, lib);
            try {   /* atomic where the file system can; a cache entry needs no directory fsync (it is re-hashed on use) */
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        return target;
    }

    static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    /** Opens {@code lib} in {@code arena}. */
    static SymbolLookup open(Path lib, Arena arena) {
        try {
            return SymbolLookup.libraryLookup(lib, arena);
        } catch (IllegalArgumentException e) {
            throw new UnsatisfiedLinkError("cannot open " + lib + ": " + e.getMessage());
        }
    }
}
