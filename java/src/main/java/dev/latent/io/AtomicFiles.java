package dev.latent.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Replace-by-rename: a reader sees the old file or the new one, never a partial one. The writer fsyncs the
 * temp file before {@link #replace}, and {@code replace} fsyncs the directory after the rename, so a crash
 * (kill -9, or power loss on a journaling file system) leaves either file whole; a killed writer may leave
 * its {@code *.tmp} beside the target, which nothing reads.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** Moves a finished temp file over {@code target} (atomic where the file system allows it). */
    public static void replace(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
        Path dir = target.toAbsolutePath().getParent();
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);       // make the rename itself durable
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every file system lets a directory be opened or synced; the rename is still atomic
        }
    }

    /**
     * Gives a temp file (created 0600) the permissions of the file it will replace, or rw-r--r-- for a new
     * one, so a checkpoint written by a training job stays readable by the service that loads it.
     */
    public static void shareLike(Path tmp, Path target) throws IOException {
        try {
            Files.setPosixFilePermissions(tmp, Files.exists(target) ? Files.getPosixFilePermissions(target)
                    : java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException ignored) {
            // not a POSIX file system: its defaults apply
        }
    }

    /** Writes a temp file beside {@code target}. */
    @FunctionalInterface
    public interface Writer {
        void write(Path tmp) throws IOException;
    }

    /**
     * Writes {@code target} through a sibling {@code .tmp} file and {@link #replace}: on any failure (no space, no
     * permission, a bug) the temp file is removed and the previous {@code target}, if any, is left as it was. A
     * target that is a directory is refused before anything is written.
     */
    public static void write(Path target, Writer w) throws IOException {
        if (Files.isDirectory(target)) throw new IOException(target + " is a directory; a file name is expected");
        Path parent = target.toAbsolutePath().getParent();
        if (parent != null) {
            if (Files.exists(parent) && !Files.isDirectory(parent)) throw new IOException(parent + " is a file, not a folder (writing " + target + ")");
            Files.createDirectories(parent);
        }
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        boolean done = false;
        try {
            w.write(tmp);
            replace(tmp, target);
            done = true;
        } catch (IOException e) {
            throw new IOException("could not write " + target + ": " + reason(e) + " (any previous " + target.getFileName() + " is unchanged)", e);
        } finally {
            if (!done) {
                try { Files.deleteIfExists(tmp); } catch (IOException ignored) { /* the first failure is the one to report */ }
            }
        }
    }

    /**
     * A PNG file, written as {@link #write} does, carrying the {@link Provenance} in force on this thread (or a record
     * that Latent wrote it) as a text chunk.
     */
    public static void writePng(Path target, Png.Image img) throws IOException {
        var text = Provenance.chunksForCurrent();
        write(target, tmp -> {
            try (var os = new java.io.BufferedOutputStream(Files.newOutputStream(tmp))) {
                Png.write(os, img, text);
            }
        });
    }

    /** A short reason for a failed write: "permission denied", "No space left on device", ... */
    public static String reason(IOException e) {
        if (e instanceof AccessDeniedException a) return "permission denied (" + a.getFile() + " is not writable)";
        if (e instanceof NoSuchFileException n) return "no such file or directory: " + n.getFile();
        if (e instanceof FileSystemException f && f.getReason() != null) return f.getReason() + (f.getFile() != null ? " (" + f.getFile() + ")" : "");
        return String.valueOf(e.getMessage() != null ? e.getMessage() : e);
    }
}
