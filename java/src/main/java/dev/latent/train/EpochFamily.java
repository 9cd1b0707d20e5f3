package dev.latent.train;

import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.JsonReader;
import dev.latent.io.SafeTensors;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import java.util.function.Supplier;

/**
 * A {@link TrainLoop.Family} of a model with one optimizer ("opt") trained in epochs of shuffled mini-batches over
 * a training set (the VAE, PixelCNN): global step s is batch s mod stepsPerEpoch of epoch s / stepsPerEpoch + 1,
 * its images that slice of the permutation {@code ImageData.permutation(n, seed, permStream + epoch)} (a last
 * partial batch is kept), so N steps and k steps resumed to N see the same batches. Metrics come at an epoch's
 * first step and every logEvery-th after it; after each full pass over the training set, and after the last step,
 * {@link #endOfEpoch} (the evaluation, sample files) and then a checkpoint. A resumed epoch's train loss averages
 * the steps this process ran. The subclass trains a batch ({@link #trainBatch}) and names a step's metrics
 * ({@link #stepResult}).
 */
public abstract class EpochFamily implements TrainLoop.Family {
    /** What the checkpoint holds: the family name, the weights, the optimizer "opt" and the metadata "format" and "config". */
    public record Checkpoint(String name, Supplier<Map<String, Var>> parameters, AdamW opt, String format, Supplier<Map<String, Object>> config,
                             dev.latent.tensor.Precision precision) {
        public Checkpoint {
            java.util.Objects.requireNonNull(precision, "precision");
        }

        /** A checkpoint of an fp32 run. */
        public Checkpoint(String name, Supplier<Map<String, Var>> parameters, AdamW opt, String format, Supplier<Map<String, Object>> config) {
            this(name, parameters, opt, format, config, dev.latent.tensor.Precision.FP32);
        }

        /** The metadata: "format", then "config" (the config as JSON), then the training precision ({@link TrainingPrecision}). */
        public Map<String, String> metadata() {
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", format);
            meta.put("config", Json.object(config.get()));
            meta.put(TrainingPrecision.KEY, precision.id());
            return meta;
        }


        /** A family that only writes this checkpoint ({@link TrainLoop#save}); its step is never run. */
        public TrainLoop.Family saveOnly() {
            return new TrainLoop.Family() {
                @Override public String name() { return name; }
                @Override public Map<String, Var> parameters() { return parameters.get(); }
                @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
                @Override public Map<String, String> metadata() { return Checkpoint.this.metadata(); }
                @Override public TrainLoop.StepResult step(long s) { throw new UnsupportedOperationException(); }
            };
        }
    }

    /** A {@link Checkpoint} read back: the file, its tensors and metadata, and its config (parsed). */
    public record Saved(Path file, SafeTensors.Loaded loaded, Map<String, Object> config) {
        /**
         * Reads the checkpoint at {@code dirOrFile} (a run folder: its {@link TrainLoop#CHECKPOINT}) into {@code scope},
         * refusing a missing file, another format and a missing or malformed config; {@code what} ("VAE") names the
         * family in the messages.
         */
        public static Saved read(Path dirOrFile, String format, String what, Scope scope) throws IOException {
            Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(TrainLoop.CHECKPOINT) : dirOrFile;
            if (!Files.isRegularFile(f)) throw new IOException("no " + what + " checkpoint at " + f);
            SafeTensors.Loaded l = SafeTensors.read(f, scope);
            if (!format.equals(l.metadata().get("format"))) throw new IOException(f + ": not a Latent " + what + " checkpoint (format " + l.metadata().get("format") + ")");
            String cj = l.metadata().get("config");
            if (cj == null) throw new IOException(f + ": metadata lacks config");
            try {
                return new Saved(f, l, JsonReader.parseObject(cj));
            } catch (IllegalArgumentException e) {
                throw new IOException(f + ": bad config metadata: " + e.getMessage());
            }
        }

        /** The optimizer steps done (metadata "step"; 0 when absent). */
        public long step() throws IOException {
            try {
                return Long.parseLong(loaded.metadata().getOrDefault("step", "0"));
            } catch (NumberFormatException e) {
                throw new IOException(file + ": bad step " + loaded.metadata().get("step"));
            }
        }
    }

    private final Checkpoint checkpoint;
    private final float lr;
    private final int n, batch, logEvery;
    private final long seed, permStream;
    private final LongConsumer atStep;
    /** Steps in a full pass over the training set (the last batch may be partial). */
    protected final int stepsPerEpoch;
    /** Steps in the whole run. */
    protected final long total;
    private final List<double[]> curve = new ArrayList<>();
    private int permEpoch = -1;
    private int[] perm;
    private double tot;
    private long images, t0 = System.nanoTime();

    /**
     * {@code n} training images in batches of {@code batch}; {@code steps} in all (0: {@code epochs} full passes);
     * the shuffle of epoch e from Philox ({@code seed}, {@code permStream} + e); {@code lr} is named in a
     * divergence's advice; {@code atStep} sets the trainer's step count (the steps done) before each step and on a
     * restore.
     */
    protected EpochFamily(Checkpoint checkpoint, float lr, int n, int batch, long steps, int epochs, long seed, long permStream, int logEvery,
                          LongConsumer atStep) {
        this.checkpoint = checkpoint;
        this.lr = lr;
        this.n = n; this.batch = batch; this.logEvery = logEvery;
        this.seed = seed; this.permStream = permStream;
        this.atStep = atStep;
        this.stepsPerEpoch = (n + batch - 1) / batch;
        this.total = steps > 0 ? steps : (long) stepsPerEpoch * epochs;
    }

    /** Runs the next step on the images perm[from .. from + m) and returns the batch's loss. */
    protected abstract double trainBatch(int[] perm, int from, int m);

    /** Step {@code s + 1}'s result (its metrics record starting with "epoch"), of loss {@code loss} in epoch {@code epoch}. */
    protected abstract TrainLoop.StepResult stepResult(long s, int epoch, double loss);

    /**
     * After the last step of epoch {@code epoch} (step {@code done}): the evaluation, sample files; the checkpoint
     * follows. {@code trainLoss}: the mean over the images this process trained in the epoch, in {@code seconds}.
     */
    protected abstract void endOfEpoch(long done, int epoch, double trainLoss, double seconds, double imagesPerSecond, TrainLoop.Run run)
            throws IOException;

    @Override public String name() { return checkpoint.name(); }
    @Override public Map<String, Var> parameters() { return checkpoint.parameters().get(); }
    @Override public Map<String, AdamW> optimizers() { return Map.of("opt", checkpoint.opt()); }
    @Override public Map<String, String> metadata() { return checkpoint.metadata(); }
    @Override public String divergenceHint() { return "lower --lr (" + lr + ")"; }
    @Override public void restored(long s) { atStep.accept(s); }

    @Override public final TrainLoop.StepResult step(long s) {
        int ep = (int) (s / stepsPerEpoch) + 1, i = (int) (s % stepsPerEpoch);
        if (ep != permEpoch) {
            perm = ImageData.permutation(n, seed, permStream + ep);
            permEpoch = ep;
        }
        int from = i * batch, m = Math.min(batch, n - from);
        atStep.accept(s);
        double l = trainBatch(perm, from, m);
        tot += l * m;
        images += m;
        if (logAt(s + 1)) curve.add(new double[] {s + 1, l});
        return stepResult(s, ep, l);
    }

    /** The first step of an epoch and every logEvery-th after it. */
    @Override public boolean logAt(long done) { return ((done - 1) % stepsPerEpoch) % logEvery == 0; }

    @Override public final void after(long done, TrainLoop.Run run) throws IOException {
        if (done % stepsPerEpoch != 0 && done != total) return;
        int ep = (int) ((done - 1) / stepsPerEpoch) + 1;
        double secs = (System.nanoTime() - t0) / 1e9;
        endOfEpoch(done, ep, tot / Math.max(images, 1), secs, images / secs, run);
        run.checkpoint(done);
        tot = 0;
        images = 0;
        t0 = System.nanoTime();
    }

    /** The logged steps' losses as one curve (step on x) to {@code listener}, when any step was logged. */
    public void plotCurve(TrainingListener listener, Path folder, String title, String yLabel, String series) {
        if (curve.isEmpty()) return;
        listener.onCurves(new TrainingListener.Curves(folder, title, "step", yLabel,
                List.of(new TrainingListener.Series(series, curve.stream().mapToDouble(c -> c[0]).toArray(), curve.stream().mapToDouble(c -> c[1]).toArray()))));
    }

    /** The steps in the whole run. */
    public long total() { return total; }
}
