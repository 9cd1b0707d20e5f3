package dev.latent.cli;

import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;

/**
 * {@code --steps}, {@code --resume} and {@code --stop-after} of the image train commands (vae, dcgan, wgan-gp,
 * realnvp, glow, classifier), with the meaning {@code train gpt} gives them: optimizer steps in all (the older
 * {@code --epochs} / {@code --iters} / {@code --max-steps} convert to steps), continue the run in {@code --out} from
 * its checkpoint (weights, optimizer state, step) bit-identically, stop early with a checkpoint. The training
 * skeleton behind them is {@link dev.latent.train.TrainLoop}.
 */
final class TrainSteps {
    @Option(names = "--steps", description = "optimizer steps in all (default: what --epochs, or --iters, amounts to)")
    Long steps;
    @Option(names = "--resume", description = "continue the run in --out from its checkpoint (weights, optimizer state, step); pass the run's own settings")
    boolean resume;
    @Option(names = "--stop-after", description = "stop (with a checkpoint) after this many steps; --resume continues the same run")
    Long stopAfter;

    /** The steps asked for, 0 for "derive them from the epochs". */
    long steps() {
        if (steps != null && steps < 1) throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        return steps == null ? 0 : steps;
    }

    long stopAt() {
        if (stopAfter != null && stopAfter < 0) throw new IllegalArgumentException("--stop-after must be >= 0, got " + stopAfter);
        return stopAfter == null ? Long.MAX_VALUE : stopAfter;
    }

    /** Checks --out for this run: a new one (refusing a folder holding files unless --overwrite) or a resumed one. */
    void check(Path out, RunFolder folder, String checkpointFile) throws IOException {
        steps();
        stopAt();
        RunFolder.check(out, resume, folder.overwrite, true);
        if (resume && !java.nio.file.Files.isRegularFile(out.resolve(checkpointFile)))
            throw new IllegalArgumentException("--resume: no checkpoint in " + out + " (" + checkpointFile + " is missing)");
    }
}
