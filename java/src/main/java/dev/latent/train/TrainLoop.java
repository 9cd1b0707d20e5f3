package dev.latent.train;

import dev.latent.autograd.Var;
import dev.latent.io.SafeTensors;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * The training skeleton every model family plugs into: the step loop, metrics.jsonl (truncated to the checkpoint's
 * step on a resume), progress and the {@link TrainingListener} events, the divergence stop, and atomic checkpoints
 * that carry the weights, the buffers (batch-norm statistics), every optimizer's moments and step, and the step
 * reached, so that {@code --resume} continues any family exactly where it stopped.
 *
 * <p>A family ({@link Family}) brings its step and its evaluation: {@link Family#step} runs optimizer step
 * {@code s + 1} and must depend only on the model and optimizer state and on {@code s} (data order, noise and
 * schedules keyed by the step index, never by how many steps this process ran): then a run of N steps and a run of
 * k steps resumed to N end with the same bits. {@link Family#after} runs after each step for the work that comes at
 * intervals (an epoch's evaluation and samples, GPT's eval batches), {@link Family#finish} once at the end.
 *
 * <p>Checkpoint layout (safetensors, written through a temp file and a rename by {@link SafeTensors#write}): the
 * parameters and buffers under their own names; for each optimizer with prefix {@code p} (e.g. {@code opt},
 * {@code optG}, {@code optD}) its moments as {@code p.m.<name>} and {@code p.v.<name>} and its step as metadata
 * {@code p.step}; the steps done as metadata {@code step}; and the family's own metadata ({@link Family#metadata}).
 * Checkpoints hold host copies: a model on a device is copied to the host as it is written and back on a resume.
 */
public final class TrainLoop {
    /** The checkpoint's file name inside the run folder. */
    public static final String CHECKPOINT = "checkpoint.safetensors";

    private TrainLoop() {}

    /** What one family brings to the loop. */
    public interface Family {
        /** The family's name in messages ("vae", "realnvp", "dcgan", ...). */
        String name();

        /** The checkpoint's file name in the run folder (default {@link TrainLoop#CHECKPOINT}). */
        default String checkpointFile() { return CHECKPOINT; }

        /** The weights, by checkpoint name. */
        Map<String, Var> parameters();

        /** State that is not trained but must survive a resume (batch-norm running statistics), by checkpoint name. */
        default Map<String, Tensor> buffers() { return Map.of(); }

        /** The optimizers, by checkpoint prefix ("opt", or "optG" and "optD"). */
        Map<String, AdamW> optimizers();

        /** Metadata written into every checkpoint (format, configuration); "step" and "&lt;prefix&gt;.step" are the loop's. */
        Map<String, String> metadata();

        /** Runs optimizer step {@code s + 1} (s = steps done before it) and returns its loss and metrics. */
        StepResult step(long s) throws IOException;

        /** Whether step {@code done} writes a metrics record and a progress report (default: every step). */
        default boolean logAt(long done) { return true; }

        /** Before the first step of this process (after a resume is restored): e.g. an evaluation at the start step. */
        default void begin(Run run) throws IOException {}

        /** After step {@code done}: evaluations, samples, extra checkpoints at the family's own intervals. */
        default void after(long done, Run run) throws IOException {}

        /** Once, after the last step (also when the run resumed at its end and ran no step). */
        default void finish(Run run) throws IOException {}

        /** Called after a checkpoint was restored into the model, at {@code step}. */
        default void restored(long step) {}

        /** The advice a divergence message ends with, e.g. "lower --lr (0.001)". */
        default String divergenceHint() { return null; }
    }

    /**
     * One step's outcome: its loss (checked for divergence under {@code lossName}), a one-line summary for progress
     * reports, and the metrics record (the loop adds "step").
     */
    public record StepResult(double loss, String lossName, String summary, Map<String, Object> metrics) {
        public StepResult {
            Objects.requireNonNull(lossName, "lossName");
            metrics = metrics == null ? Map.of() : metrics;
        }
    }

    /**
     * How to run: {@code steps} in all (schedules see this), stopping early after {@code stopAt} (a test's or a
     * caller's interruption; Long.MAX_VALUE for none), resuming from {@code out}'s checkpoint, a checkpoint every
     * {@code checkpointEvery} steps (0: only at the end and where the family asks), reporting to {@code listener}
     * ({@code quiet}: no step reports).
     */
    public record Options(Path out, long steps, long stopAt, boolean resume, long checkpointEvery, TrainingListener listener, boolean quiet) {
        public Options {
            Objects.requireNonNull(out, "out");
            Objects.requireNonNull(listener, "listener");
            if (steps < 0) throw new IllegalArgumentException("steps must be >= 0, got " + steps);
            if (stopAt < 0) throw new IllegalArgumentException("stopAt must be >= 0, got " + stopAt);
            if (checkpointEvery < 0) throw new IllegalArgumentException("checkpointEvery must be >= 0, got " + checkpointEvery);
        }

        /** {@code steps} steps into {@code out}, no early stop, checkpoints at the end and where the family asks. */
        public static Options of(Path out, long steps, boolean resume, TrainingListener listener) {
            return new Options(out, steps, Long.MAX_VALUE, resume, 0, listener, false);
        }
    }

    /** The running loop, as a family's hooks see it. */
    public static final class Run {
        private final Family family;
        private final Options options;
        private final Metrics metrics;
        private final Progress progress;
        private final long startStep;
        private long lastCheckpoint = -1;

        Run(Family family, Options options, Metrics metrics, Progress progress, long startStep) {
            this.family = family;
            this.options = options;
            this.metrics = metrics;
            this.progress = progress;
            this.startStep = startStep;
        }

        public Options options() { return options; }
        public TrainingListener listener() { return options.listener(); }
        public Path out() { return options.out(); }
        /** The step this process started at (0, or the checkpoint's on a resume). */
        public long startStep() { return startStep; }
        /** Seconds since this process started the loop. */
        public double elapsed() { return progress.elapsed(); }

        /** Appends one record to metrics.jsonl. */
        public void log(Map<String, Object> record) throws IOException { metrics.log(record); }

        /** Reports an evaluation (written to metrics.jsonl too, with its "step"). */
        public void evaluation(long step, String summary, Map<String, Object> record) throws IOException {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("step", step);
            r.putAll(record);
            metrics.log(r);
            if (!options.quiet()) listener().onEvaluation(new TrainingListener.Evaluation(step, summary, Collections.unmodifiableMap(r)));
        }

        /** Writes the checkpoint after {@code step} steps (once per step: a second call at the same step is a no-op). */
        public void checkpoint(long step) throws IOException {
            if (step == lastCheckpoint) return;
            Path f = options.out().resolve(family.checkpointFile());
            save(f, family, step);
            lastCheckpoint = step;
            listener().onCheckpoint(f, step);
        }
    }

    /**
     * Runs {@code family} as {@code o} says; returns the steps done (the checkpoint's step when resuming at the end).
     * A non-finite loss stops the run with a {@link DivergedException} before anything of that step is saved.
     */
    public static long run(Family family, Options o) throws IOException {
        Path file = o.out().resolve(family.checkpointFile());
        long start = 0;
        DiskSpace.require(o.out(), DiskSpace.parameterCount(family.parameters().values()));   // before the first write
        if (o.resume()) {
            if (!Files.isRegularFile(file)) throw new IOException("--resume: no checkpoint at " + file);
            start = restore(file, family);
            o.listener().onResumed(file, start);
        }
        Files.createDirectories(o.out());
        long end = Math.min(o.steps(), o.stopAt());
        try (Metrics metrics = o.resume() ? Metrics.resume(o.out(), start) : new Metrics(o.out(), false)) {
            Run run = new Run(family, o, metrics, new Progress(start, o.steps(), o.listener()), start);
            family.begin(run);
            long s = start;
            for (; s < end; s++) {
                StepResult r = family.step(s);
                long done = s + 1;
                DivergedException.check(family.name(), done, r.lossName(), r.loss(), family.divergenceHint());
                if (family.logAt(done)) {
                    Map<String, Object> rec = new LinkedHashMap<>();
                    rec.put("step", done);
                    rec.putAll(r.metrics());
                    metrics.log(rec);
                    if (!o.quiet()) run.progress.report(done, r.summary(), Collections.unmodifiableMap(rec));
                }
                family.after(done, run);
                if (o.checkpointEvery() > 0 && done % o.checkpointEvery() == 0) run.checkpoint(done);
            }
            if (s >= o.steps()) family.finish(run);
            run.checkpoint(s);
            return s;
        }
    }

    /** Writes {@code family}'s checkpoint after {@code step} steps (atomically: a temp file, then a rename). */
    public static void save(Path file, Family family, long step) throws IOException {
        Map<String, Tensor> t = new LinkedHashMap<>();
        family.parameters().forEach((k, v) -> t.put(k, v.value()));
        family.buffers().forEach(t::put);
        Map<String, String> meta = new LinkedHashMap<>(family.metadata());
        for (var o : family.optimizers().entrySet()) {
            String p = o.getKey();
            o.getValue().state().forEach((k, mv) -> {
                t.put(p + ".m." + k, mv[0]);
                t.put(p + ".v." + k, mv[1]);
            });
            meta.put(p + ".step", Long.toString(o.getValue().step()));
        }
        meta.put("step", Long.toString(step));
        SafeTensors.write(file, t, meta);
    }

    /**
     * Loads {@code file} into {@code family} (weights, buffers, optimizer moments and steps; onto the device each lives
     * on) and returns the steps it records. Everything is checked (names, shapes, finiteness of the weights) before
     * anything is copied, so a refused checkpoint leaves the model as it was.
     */
    public static long restore(Path file, Family family) throws IOException {
        try (Scope s = Scope.shared()) {
            SafeTensors.Loaded l = SafeTensors.read(file, s);
            Map<String, String> meta = l.metadata();
            String want = family.metadata().get("format");
            if (want != null && !want.equals(meta.get("format")))
                throw new IOException(file + ": a " + meta.get("format") + " checkpoint, this run needs " + want);
            long step = number(file, meta, "step");
            String wantPrecision = family.metadata().get(TrainingPrecision.KEY);
            if (wantPrecision != null) {   /* a family recording its precision resumes only at the checkpoint's (absent: fp32) */
                String have = TrainingPrecision.of(file, meta).id();
                if (!have.equals(wantPrecision))
                    throw new IOException(file + ": the run was trained at --precision " + have + ", this one asks " + wantPrecision
                            + " (a resumed run keeps its precision: pass --precision " + have + ", or start a new run)");
            }
            Map<String, Tensor[]> copies = new LinkedHashMap<>();   // destination -> source, all checked first
            family.parameters().forEach((k, v) -> copies.put(k, new Tensor[] {v.value(), null}));
            family.buffers().forEach((k, v) -> copies.put(k, new Tensor[] {v, null}));
            for (var o : family.optimizers().entrySet())
                o.getValue().state().forEach((k, mv) -> {
                    copies.put(o.getKey() + ".m." + k, new Tensor[] {mv[0], null});
                    copies.put(o.getKey() + ".v." + k, new Tensor[] {mv[1], null});
                });
            for (var e : copies.entrySet()) {
                Tensor src = l.tensors().get(e.getKey()), dst = e.getValue()[0];
                if (src == null) throw new IOException(file + ": missing tensor " + e.getKey() + " (a checkpoint without optimizer state cannot be resumed)");
                if (!Arrays.equals(src.shape(), dst.shape()))
                    throw new IOException(file + ": tensor " + e.getKey() + " has shape " + Arrays.toString(src.shape()) + ", the model needs "
                            + Arrays.toString(dst.shape()));
                long bad = Limits.nonFinite(src);
                if (bad > 0) throw new IOException(file + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite values (a diverged or damaged checkpoint)");
                e.getValue()[1] = src;
            }
            Map<String, Long> optSteps = new LinkedHashMap<>();
            for (String p : family.optimizers().keySet())
                optSteps.put(p, meta.containsKey(p + ".step") ? number(file, meta, p + ".step") : step);
            for (Tensor[] c : copies.values()) copyInto(c[1], c[0]);
            family.optimizers().forEach((p, opt) -> opt.setStep(optSteps.get(p)));
            family.restored(step);
            return step;
        }
    }

    private static long number(Path file, Map<String, String> meta, String key) throws IOException {
        String v = meta.get(key);
        if (v == null) throw new IOException(file + ": metadata lacks " + key);
        try {
            long n = Long.parseLong(v);
            if (n < 0) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IOException(file + ": bad " + key + " " + v + " (must be an integer >= 0)");
        }
    }

    /** dst = src (a host tensor) on dst's device. */
    static void copyInto(Tensor src, Tensor dst) {
        if (src.numel() == 0) return;
        Tensor s = src.isContiguous() ? src : src.contiguous();
        if (!dst.isContiguous()) throw new IllegalStateException("restore: destination " + dst + " is not contiguous");
        if (dst.device() == Device.CPU) MemorySegment.copy(s.segment(), 0, dst.segment(), 0, dst.numel() * 4);
        else dst.deviceBuffer().copyFrom(s.segment());
    }
}
