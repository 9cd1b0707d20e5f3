package dev.latent.cli;

import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;

/**
 * {@code --steps} (with {@link Resume}'s {@code --resume} and {@code --stop-after}) of the image train commands that
 * count in epochs (vae, realnvp, glow, pixelcnn, classifier), with the meaning {@code train gpt} gives it: optimizer steps in all
 * (the older {@code --epochs} / {@code --max-steps} convert to steps). The training skeleton behind them is
 * {@link dev.latent.train.TrainLoop}.
 */
final class TrainSteps {
    @Option(names = "--steps", description = "optimizer steps in all (default: what --epochs amounts to)")
    Long steps;
    @Mixin Resume resume;

    /** The steps asked for, 0 for "derive them from the epochs". */
    long steps() {
        if (steps != null && steps < 1) throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        return steps == null ? 0 : steps;
    }

    long stopAt() {
        return resume.stopAt();
    }

    boolean resume() {
        return resume.resume;
    }

    /** Checks --steps, --stop-after and --out (see {@link Resume#check}). */
    void check(Mixins.Out out, String checkpointFile) throws IOException {
        steps();
        resume.check(out, checkpointFile);
    }
}
