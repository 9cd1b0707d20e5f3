package dev.latent.cli;

import dev.latent.train.TrainingListener;

import java.nio.file.Path;
import java.util.Locale;

/** The CLI's training output on stderr: one plain line per logged step, evaluation and resume (as before issue 19). */
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
}
