package dev.latent.train;

import java.util.Locale;

/** Progress lines on stderr: step, loss, throughput, ETA. Plain lines (one per report), fit for logs and terminals. */
public final class Progress {
    private final long total;
    private final long t0 = System.nanoTime();
    private final long startStep;

    public Progress(long startStep, long total) {
        this.startStep = startStep;
        this.total = total;
    }

    public double elapsed() { return (System.nanoTime() - t0) / 1e9; }

    public void report(long step, String what) {
        double el = elapsed();
        long done = step - startStep;
        double eta = done > 0 ? el / done * (total - step) : Double.NaN;
        System.err.printf(Locale.ROOT, "step %d/%d  %s  elapsed %.0fs  eta %s%n", step, total, what, el,
                Double.isFinite(eta) ? String.format(Locale.ROOT, "%.0fs", eta) : "?");
    }
}
