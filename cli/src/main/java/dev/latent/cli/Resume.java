package dev.latent.cli;

import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;

/**
 * {@code --resume} and {@code --stop-after} of every train command that checkpoints a resumable run (gpt, dcgan,
 * wgan-gp, vae, realnvp, glow, pixelcnn, classifier, flow-toy): continue the run in {@code --out} from its checkpoint (weights, optimizer
 * state, step) bit-identically, or stop early with a checkpoint that {@code --resume} continues.
 */
final class Resume {
    @Option(names = "--resume", description = "continue the run in --out from its checkpoint (weights, optimizer state, step); pass the run's own settings")
    boolean resume;
    @Option(names = "--stop-after", description = "stop (with a checkpoint) after this many steps; --resume continues the same run")
    Long stopAfter;

    /** The step to stop at: --stop-after (at least 0), else no limit. */
    long stopAt() {
        if (stopAfter != null && stopAfter < 0) throw new IllegalArgumentException("--stop-after must be >= 0, got " + stopAfter);
        return stopAfter == null ? Long.MAX_VALUE : stopAfter;
    }

    /** Checks --out for this run: a new one (refusing a folder holding files unless --overwrite) or a resumed one. */
    void check(Mixins.Out out, String checkpointFile) throws IOException {
        stopAt();
        RunFolder.check(out.out, resume, out.folder.overwrite, true);
        if (resume && !Files.isRegularFile(out.out.resolve(checkpointFile)))
            throw new IllegalArgumentException("--resume: no checkpoint in " + out.out + " (" + checkpointFile + " is missing)");
    }
}
