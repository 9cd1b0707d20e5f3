package dev.latent.train;

import java.util.Map;

/**
 * Step reports of a training run (step, summary, elapsed time, ETA) handed to a {@link TrainingListener}; the CLI's
 * listener prints them as plain lines, fit for logs and terminals.
 */
public final class Progress {
    private final long total;
    private final long t0 = System.nanoTime();
    private final long startStep;
    private final TrainingListener listener;

    /** Reports to {@link TrainingListener#LOG}. */
    public Progress(long startStep, long total) {
        this(startStep, total, TrainingListener.LOG);
    }

    public Progress(long startStep, long total, TrainingListener listener) {
        this.startStep = startStep;
        this.total = total;
        this.listener = listener;
    }

    public double elapsed() { return (System.nanoTime() - t0) / 1e9; }

    public void report(long step, String what) {
        report(step, what, Map.of());
    }

    /** Reports step {@code step} with its summary and metrics (ETA from the rate since the start step). */
    public void report(long step, String what, Map<String, Object> metrics) {
        double el = elapsed();
        long done = step - startStep;
        double eta = done > 0 ? el / done * (total - step) : Double.NaN;
        listener.onStep(new TrainingListener.Step(step, total, el, eta, what, metrics));
    }
}
