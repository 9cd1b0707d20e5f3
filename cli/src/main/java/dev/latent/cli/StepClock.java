package dev.latent.cli;

import dev.latent.train.TrainingListener;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The steady-state speed of a train command, for its final JSON line (issue 18: training steps beside PyTorch's).
 * Wraps the CLI's listener and notes the wall-clock time of every logged step; {@link #steady} is the rate between the
 * second logged step and the last one of this process, so the first interval (the JIT, the first allocations, the
 * vendor libraries' plans, cuDNN's autotuning) is left out. Every step reads its loss (one host synchronisation), so on
 * a GPU a logged step's time is when its work finished. Anything the run does between two logged steps counts
 * (an evaluation, a checkpoint, a sample grid): a benchmark keeps those outside the window (evaluate at the end,
 * checkpoint at the end). The families' own rates differ in what they span (GPT's {@code tokens_per_s}: the last
 * logging interval's step time; DCGAN's {@code images_per_s}: all steps so far; the VAE's: whole epochs with their
 * start), which is why the CLI adds this one.
 */
final class StepClock implements TrainingListener {
    private final TrainingListener to;
    private final List<long[]> marks = new ArrayList<>();   // {step, System.nanoTime()} of each logged step

    StepClock(TrainingListener to) {
        this.to = to;
    }

    @Override public void onStep(Step s) {
        marks.add(new long[] {s.step(), System.nanoTime()});
        to.onStep(s);
    }

    @Override public void onEvaluation(Evaluation e) { to.onEvaluation(e); }
    @Override public void onResumed(Path checkpoint, long step) { to.onResumed(checkpoint, step); }
    @Override public void onCheckpoint(Path file, long step) { to.onCheckpoint(file, step); }
    @Override public void onSample(Path file, long step) { to.onSample(file, step); }
    @Override public void onCurves(Curves c) { to.onCurves(c); }

    /**
     * {"steady_steps", "steady_seconds", "steady_steps_per_s", "steady_UNIT_per_s"} over the logged steps after the
     * first: empty when fewer than three steps were logged (no interval past the first). {@code itemsPerStep}: tokens
     * or images an optimizer step consumes.
     */
    Map<String, Object> steady(double itemsPerStep, String unit) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (marks.size() < 3) return m;
        long[] a = marks.get(1), b = marks.get(marks.size() - 1);
        long steps = b[0] - a[0];
        double secs = (b[1] - a[1]) / 1e9;
        if (steps <= 0 || secs <= 0) return m;
        m.put("steady_steps", steps);
        m.put("steady_seconds", secs);
        m.put("steady_steps_per_s", steps / secs);
        m.put("steady_" + unit + "_per_s", steps * itemsPerStep / secs);
        return m;
    }
}
