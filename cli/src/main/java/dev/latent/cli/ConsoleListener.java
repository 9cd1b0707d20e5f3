package dev.latent.cli;

import dev.latent.train.TrainingListener;

import dev.latent.io.AtomicFiles;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The CLI's training output: one plain line on stderr per logged step, evaluation and resume (as before issue 19), and
 * the run's curves drawn as {@code loss.png} in its folder ({@link Plot}; the core library draws nothing).
 */
final class ConsoleListener implements TrainingListener {
    static final ConsoleListener INSTANCE = new ConsoleListener();

    private ConsoleListener() {}

    @Override
    public void onStep(Step s) {
        double eta = s.etaSeconds();
        System.err.printf(Locale.ROOT, "step %d/%d  %s  elapsed %.0fs  eta %s%n", s.step(), s.totalSteps(), s.summary(),
                s.elapsedSeconds(), Double.isFinite(eta) ? String.format(Locale.ROOT, "%.0fs", eta) : "?");
    }

    @Override
    public void onEvaluation(Evaluation e) {
        System.err.println(e.summary());
    }

    @Override
    public void onResumed(Path checkpoint, long step) {
        System.err.printf("resumed from %s at step %d%n", checkpoint, step);
    }

    @Override
    public void onCurves(Curves c) {
        Path file = c.folder().resolve(LOSS_PNG);
        try {
            Plot.curves(file, c);
        } catch (IOException e) {   // a listener must not throw, and a run does not fail over its chart
            System.err.println("latent: " + file + " not written: " + AtomicFiles.reason(e));
        }
    }

    /** The chart of a run's curves, in its output folder. */
    static final String LOSS_PNG = "loss.png";
}
