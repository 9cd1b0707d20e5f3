package dev.latent.cli;

import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * {@code --overwrite} of every train command and the rule it relaxes: a train command never writes into a folder that
 * already holds files unless told to continue it ({@code --resume}, where supported) or to replace it
 * ({@code --overwrite}). {@link #check} runs after every other option is validated and before anything is written,
 * so a refused or invalid run leaves the folder exactly as it was.
 */
final class RunFolder {
    @Option(names = "--overwrite", description = "allow --out to be a folder that already holds a run; its files are replaced as the new run writes them")
    boolean overwrite;

    /** Checks {@code --out} for a run that does not resume. */
    void check(Path out) throws IOException {
        check(out, false, overwrite, false);
    }

    /** Checks {@code --out} (the option's name in messages) for a new run, or for a resumed one when {@code resume}. */
    static void check(Path out, boolean resume, boolean overwrite, boolean canResume) throws IOException {
        if (resume && overwrite) throw new IllegalArgumentException("--resume and --overwrite contradict each other: pick one");
        if (Files.exists(out) && !Files.isDirectory(out))
            throw new IllegalArgumentException("--out " + out + " is an existing file; a folder is expected");
        Path existing = out.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) existing = existing.getParent();
        if (existing == null) throw new IllegalArgumentException("--out " + out + ": no existing parent folder");
        if (!Files.isDirectory(existing))
            throw new IllegalArgumentException("--out " + out + ": " + existing + " is a file, so the folder cannot be created");
        if (!Files.isWritable(existing))
            throw new IllegalArgumentException("--out " + out + ": " + existing + " is not writable (permission denied)");
        if ((resume || overwrite) && Files.isDirectory(out)) removeStaleTemps(out);
        if (resume || overwrite || !Files.isDirectory(out)) return;
        try (Stream<Path> s = Files.list(out)) {
            var first = s.findFirst();
            if (first.isPresent())
                throw new IllegalArgumentException("--out " + out + " already holds files (" + first.get().getFileName()
                        + ", ...); pass " + (canResume ? "--resume to continue that run, " : "") + "--overwrite to replace it, or choose another folder");
        }
    }

    /**
     * Deletes the temp files a killed run left behind ({@code NAME.tmp} / {@code NAME.<random>.tmp} beside the files a
     * run writes, never renamed into place because the process died mid-write): a resumed or overwritten run would
     * otherwise keep them forever. Only regular files ending in ".tmp" directly in the run folder are touched.
     */
    static void removeStaleTemps(Path out) throws IOException {
        try (Stream<Path> s = Files.list(out)) {
            for (Path f : s.filter(f -> f.getFileName().toString().endsWith(".tmp") && Files.isRegularFile(f)).toList())
                Files.deleteIfExists(f);
        }
    }

    /** A --data file that must exist and be a readable regular file. */
    static Path dataFile(String option, Path p) {
        if (!Files.exists(p)) throw new IllegalArgumentException(option + " " + p + ": no such file");
        if (Files.isDirectory(p)) throw new IllegalArgumentException(option + " " + p + " is a folder; a file is expected");
        if (!Files.isReadable(p)) throw new IllegalArgumentException(option + " " + p + " is not readable (permission denied)");
        return p;
    }
}
