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

    /** A short reason for a failed write: "permission denied", "No space left on device", ... */
    public static String reason(IOException e) {
        if (e instanceof AccessDeniedException a) return "permission denied (" + a.getFile() + " is not writable)";
        if (e instanceof NoSuchFileException n) return "no such file or directory: " + n.getFile();
        if (e instanceof FileSystemException f && f.getReason() != null) return f.getReason() + (f.getFile() != null ? " (" + f.getFile() + ")" : "");
        return String.valueOf(e.getMessage() != null ? e.getMessage() : e);
    }
}
