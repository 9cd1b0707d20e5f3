package dev.latent.train;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Training events, for an application to show, record or route: logged steps, evaluations, checkpoints and sample
 * files written, a resume. The trainers (GPT, VAE, GAN, flows, the classifier) call it on their own thread, in order;
 * a listener must not throw. Every method has an empty default, so an implementation overrides only what it uses.
 * Without one, a trainer uses {@link #LOG}: the events go to {@link System.Logger} {@code dev.latent.train} at
 * {@code DEBUG} (nothing shows under the JDK's default logging configuration). The library prints nothing itself.
 */
public interface TrainingListener {
    /**
     * A logged training step.
     *
     * @param step           optimizer steps (or iterations) done
     * @param totalSteps     steps of the whole run
     * @param elapsedSeconds since the trainer started (this process)
     * @param etaSeconds     estimated seconds to go, NaN before the first estimate
     * @param summary        a short human-readable summary of the metrics, e.g. {@code "loss 2.1234  15000 tok/s"}
     * @param metrics        the step's numbers by name (as in {@code metrics.jsonl}; empty when the trainer logs none)
     */
    record Step(long step, long totalSteps, double elapsedSeconds, double etaSeconds, String summary,
                Map<String, Object> metrics) {}

    /**
     * An evaluation (GPT's train/val loss, a VAE or classifier epoch's test figures).
     *
     * @param step    optimizer steps done when it ran
     * @param summary one human-readable line, e.g. {@code "step 200: eval train 1.9000  val 2.0100"}
     * @param metrics its numbers by name (empty when the trainer gives none)
     */
    record Evaluation(long step, String summary, Map<String, Object> metrics) {}

    /**
     * The curves of a finished run (the steps this process trained), for a chart. The CLI draws them as
     * {@code loss.png} in {@code folder}; the library draws nothing (it needs no java.desktop).
     *
     * @param folder the run's output folder
     * @param title  a title for the chart, e.g. {@code "GPT training loss (nats/token)"}
     * @param xLabel the x axis, e.g. {@code "step"}
     * @param yLabel the y axis, e.g. {@code "loss"}
     * @param series the curves, in legend order
     */
    record Curves(Path folder, String title, String xLabel, String yLabel, List<Series> series) {
        /** Copies the list. */
        public Curves {
            series = List.copyOf(series);
        }
    }

    /**
     * One curve of {@link Curves}.
     *
     * @param name its legend
     * @param x    the x values (steps)
     * @param y    the y values, as long as {@code x}; non-finite values are gaps
     */
    record Series(String name, double[] x, double[] y) {
        /** Checks the lengths. */
        public Series {
            if (x.length != y.length) throw new IllegalArgumentException("series " + name + ": " + x.length + " x values, " + y.length + " y values");
        }
    }

    /** A logged step. */
    default void onStep(Step step) {}

    /** An evaluation or an epoch's summary. */
    default void onEvaluation(Evaluation evaluation) {}

    /** Training continues from {@code checkpoint}, which was written after {@code step} steps. */
    default void onResumed(Path checkpoint, long step) {}

    /** A checkpoint was written (atomically) after {@code step} steps. */
    default void onCheckpoint(Path file, long step) {}

    /** A sample file (an image grid, an IDX file of samples) was written after {@code step} steps. */
    default void onSample(Path file, long step) {}

    /** The run's curves (loss, bits/dim), once, when training ends (not when it diverged or failed). */
    default void onCurves(Curves curves) {}

    /** Ignores every event. */
    TrainingListener NONE = new TrainingListener() {};

    /** The default: each event as one {@code DEBUG} record of {@link System.Logger} {@code dev.latent.train}. */
    TrainingListener LOG = new TrainingListener() {
        private final System.Logger log = System.getLogger("dev.latent.train");

        @Override public void onStep(Step s) {
            if (log.isLoggable(System.Logger.Level.DEBUG))
                log.log(System.Logger.Level.DEBUG, String.format(Locale.ROOT, "step %d/%d  %s  elapsed %.0fs",
                        s.step(), s.totalSteps(), s.summary(), s.elapsedSeconds()));
        }

        @Override public void onEvaluation(Evaluation e) {
            log.log(System.Logger.Level.DEBUG, e.summary());
        }

        @Override public void onResumed(Path checkpoint, long step) {
            log.log(System.Logger.Level.DEBUG, () -> "resumed from " + checkpoint + " at step " + step);
        }

        @Override public void onCheckpoint(Path file, long step) {
            log.log(System.Logger.Level.DEBUG, () -> "checkpoint " + file + " at step " + step);
        }

        @Override public void onSample(Path file, long step) {
            log.log(System.Logger.Level.DEBUG, () -> "samples " + file + " at step " + step);
        }

        @Override public void onCurves(Curves c) {
            log.log(System.Logger.Level.DEBUG, () -> "curves '" + c.title() + "' for " + c.folder() + ": " + c.series().size() + " series");
        }
    };
}
