package dev.latent.train;

import dev.latent.autograd.Var;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;

/**
 * The free-disk check a training run makes before it writes anything into its run folder. A checkpoint holds the
 * weights and the two AdamW moments (12 bytes per fp32 parameter, which bounds the bf16 and moment-less cases from
 * above); an atomic save writes the new file beside the old one, so a run needs room for two checkpoints, plus a
 * margin for metrics.jsonl, sample grids and plots. A run that cannot fit is refused at once, with the numbers,
 * rather than failing at its first save after minutes of training. The check is an estimate made once: a disk that
 * another process fills during the run still makes a save fail, cleanly, leaving the previous checkpoint whole
 * (see AtomicFiles).
 */
public final class DiskSpace {
    private DiskSpace() {}

    /** Bytes per parameter in a checkpoint: fp32 weight, first and second AdamW moment. */
    public static final long CHECKPOINT_BYTES_PER_PARAMETER = 12;
    /** Room kept for metrics.jsonl, sample images and plots. */
    public static final long MARGIN_BYTES = 1L << 20;

    /** The number of scalars in {@code params}. */
    public static long parameterCount(Collection<Var> params) {
        long n = 0;
        for (Var p : params) n += p.value().numel();
        return n;
    }

    /** The bytes a run of a model with {@code parameters} parameters needs free in its run folder. */
    public static long needed(long parameters) {
        return Math.addExact(Math.multiplyExact(2 * CHECKPOINT_BYTES_PER_PARAMETER, parameters), MARGIN_BYTES);
    }

    /**
     * Refuses, with an {@link IllegalArgumentException} naming the folder and both sizes, a run whose folder's file
     * system has less usable space than {@link #needed} for a model of {@code parameters} parameters. The folder may
     * not exist yet: its nearest existing parent's file system is asked.
     */
    public static void require(Path runFolder, long parameters) throws IOException {
        long need = needed(parameters);
        Path existing = runFolder.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) existing = existing.getParent();
        if (existing == null) return;   // nothing to ask; the write itself will fail and say why
        long free = Files.getFileStore(existing).getUsableSpace();
        if (free < need)
            throw new IllegalArgumentException("--out " + runFolder + ": " + mib(free) + " free on its file system, and a run of this model ("
                    + parameters + " parameters) needs about " + mib(need) + " (two checkpoints, the new one written beside the old, and "
                    + mib(MARGIN_BYTES) + " for metrics and images); free some space or choose another folder");
    }

    private static String mib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }
}
