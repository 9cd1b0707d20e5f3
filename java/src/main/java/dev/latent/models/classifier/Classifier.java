package dev.latent.models.classifier;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.io.SafeTensors;
import dev.latent.nn.Conv2d;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.nn.Module;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The feature network of our FID and Inception Score on 28 x 28 gray images: a small CNN classifier
 * (conv 3x3 32 -> conv 3x3/2 32 -> conv 3x3/2 64 -> linear 128 -> linear classes, ReLU), inputs scaled to [-1, 1].
 * Its 128-wide penultimate layer (after ReLU) is the feature vector. Owning it (instead of Inception-v3) keeps the
 * metric offline and cheap; its numbers are on our scale only, so every comparison is scored with this same net
 * (samples from another framework included).
 */
public final class Classifier implements Module {
    public static final String CHECKPOINT = "classifier.safetensors";
    static final String FORMAT = "latent-classifier-1";
    public static final int FEATURES = 128;

    final Conv2d c1, c2, c3;
    final Linear fc, out;
    public final int classes;
    private final Scope scope;

    public Classifier(Scope scope, int classes, long seed) {
        this.scope = scope;
        this.classes = classes;
        c1 = Conv2d.torchDefault(scope, 1, 32, 3, 1, 1, true, seed, 10);
        c2 = Conv2d.torchDefault(scope, 32, 32, 3, 2, 1, true, seed, 12);
        c3 = Conv2d.torchDefault(scope, 32, 64, 3, 2, 1, true, seed, 14);
        fc = new Linear(scope, Init.torchDefault(scope, seed, 16, 64 * 49, FEATURES, 64 * 49), Init.torchDefault(scope, seed, 17, 64 * 49, FEATURES));
        out = new Linear(scope, Init.torchDefault(scope, seed, 18, FEATURES, classes, FEATURES), Init.torchDefault(scope, seed, 19, FEATURES, classes));
    }

    /** Penultimate features (B, 128) of x (B, 1, 28, 28) in [-1, 1]. */
    public Var features(Var x) {
        Var h = F.relu(c1.forward(x));
        h = F.relu(c2.forward(h));
        h = F.relu(c3.forward(h));
        return F.relu(fc.forward(F.reshape(h, h.shape()[0], 64 * 49)));
    }

    public Var logits(Var x) { return out.forward(features(x)); }

    /**
     * Mean cross-entropy of {@link #logits} against int32 {@code targets} (B): the training loss. The logits are the
     * last Linear's fresh output and nothing reads them after the loss, so the gradient is written over them
     * ({@link F#crossEntropyInPlace}): one (B, classes) buffer less per step, crossEntropy's bits (InPlaceLossTest).
     */
    public Var loss(Var x, MemorySegment targets) { return F.crossEntropyInPlace(logits(x), targets); }

    @Override
    public void collect(String prefix, Map<String, Var> o) {
        c1.collect(prefix + "c1.", o); c2.collect(prefix + "c2.", o); c3.collect(prefix + "c3.", o);
        fc.collect(prefix + "fc.", o); out.collect(prefix + "out.", o);
    }

    /** Fills x (m, 1, 28, 28) with images idx[from..from+m) scaled to [-1, 1]. */
    static void batch(ImageData data, int[] idx, int from, int m, Tensor x) {
        data.fill(x, idx, from, m, 1f / 127.5f, -1f, 0);
    }

    private dev.latent.tensor.Precision precision = dev.latent.tensor.Precision.FP32;

    /**
     * Operand precision of {@link #train}'s steps (issue 15): BF16 runs the convolutions and the linear layers through
     * lt_conv2d_*_bf16 and lt_gemm_bf16 (operands rounded to bf16, fp32 sums); BatchNorm, the cross-entropy,
     * reductions, the master weights and AdamW's state stay fp32, and the test accuracy, features and probabilities
     * (FID, IS) are computed at fp32. BF16 on a CPU with AVX512_BF16; on CUDA (after {@link #on}; issue 18) TF32 and
     * BF16: elsewhere an exception naming why. Recorded in the checkpoint (metadata "precision"); a resume must ask the same.
     */
    public Classifier precision(dev.latent.tensor.Precision p) {
        this.precision = dev.latent.train.TrainingPrecision.requireRunnable("classifier", p, device(), true);
        return this;
    }

    /** Where the weights are (the CPU unless {@link #on} or {@code load(..., device)} moved them). */
    public dev.latent.tensor.Device device() { return out.weight.value().device(); }

    /**
     * Moves the weights to {@code device} (issue 18: {@code train classifier --device cuda}): {@link #train}'s steps, the
     * test accuracy and the checkpoint's weights then come from there. Call it before {@link #precision}, which checks
     * the precision against the device. Returns this.
     */
    public Classifier on(dev.latent.tensor.Device device) {
        java.util.Objects.requireNonNull(device, "device");
        if (device != device()) to(scope, device);
        return this;
    }

    /**
     * One AdamW step (learning rate {@code lr}) on images idx[from .. from + m) at {@link #precision()}, on the weights'
     * device; returns the batch's mean cross-entropy (one read of the loss).
     */
    public float trainStep(ImageData data, int[] idx, int from, int m, AdamW opt, float lr) {
        try (Graph g = Graph.open().precision(precision); Arena a = Arena.ofConfined()) {
            MemorySegment targets = a.allocate(JAVA_INT, m);
            Tensor x = g.empty(m, 1, 28, 28);
            batch(data, idx, from, m, x);
            for (int i = 0; i < m; i++) targets.setAtIndex(JAVA_INT, i, data.labels[idx == null ? from + i : idx[from + i]]);
            dev.latent.tensor.Device on = device();
            Var loss = loss(Var.constant(on == dev.latent.tensor.Device.CPU ? x : x.to(g.scope(), on)), targets);
            g.backward(loss);
            opt.update(lr, 0);
            return F.item(loss);
        }
    }

    /** The training precision: the one set, or for a {@link #load}ed classifier the checkpoint's (FP32 for older ones). */
    public dev.latent.tensor.Precision precision() { return precision; }

    /** What {@link #train} achieved: epochs run, final test accuracy (fraction correct), wall-clock seconds. */
    public record TrainResult(int epochs, double testAccuracy, double seconds) {}

    /** Trains on the train split, reports test accuracy per epoch to metrics.jsonl, saves the checkpoint in dir. */
    public TrainResult train(ImageData trainSet, ImageData testSet, Path dir, int epochs, int batch, float lr, long seed, boolean quiet)
            throws IOException {
        return train(trainSet, testSet, dir, epochs, batch, lr, seed, quiet, TrainingListener.LOG);
    }

    /** As above, reporting steps, each epoch's test accuracy and the checkpoint to {@code listener}. */
    public TrainResult train(ImageData trainSet, ImageData testSet, Path dir, int epochs, int batch, float lr, long seed, boolean quiet,
                             TrainingListener listener) throws IOException {
        return train(trainSet, testSet, dir, 0, false, Long.MAX_VALUE, epochs, batch, lr, seed, quiet, listener);
    }

    /**
     * The run on {@link TrainLoop}: {@code steps} optimizer steps in all (0: {@code epochs} full passes; the cosine
     * learning rate spans them), resumed from {@code dir}'s checkpoint (weights and AdamW state) when {@code resume},
     * stopping after {@code stopAt}. Batches come from the global step (epoch = step / batches per epoch, each epoch its
     * own shuffle), so a resumed run ends with the bits of an uninterrupted one. The test accuracy is measured at the
     * end of each pass over the data and at the last step.
     */
    public TrainResult train(ImageData trainSet, ImageData testSet, Path dir, long steps, boolean resume, long stopAt, int epochs, int batch,
                             float lr, long seed, boolean quiet, TrainingListener listener) throws IOException {
        if (trainSet.labels == null) throw new IOException(trainSet.source + ": the classifier needs labels (an IDX label file beside the images)");
        if (trainSet.h != 28 || trainSet.w != 28) throw new IOException("classifier: 28 x 28 images expected, got " + trainSet.h + "x" + trainSet.w);
        int perEpoch = trainSet.n / batch;
        if (perEpoch < 1) throw new IllegalArgumentException("classifier: batch " + batch + " is larger than the data (" + trainSet.n + " images)");
        AdamW opt = new AdamW(scope, namedParameters(), 0.9f, 0.999f, 1e-8f, 0f);
        long total = steps > 0 ? steps : (long) epochs * perEpoch;
        long t0 = System.nanoTime();
        double[] acc = {Double.NaN};
        {
            TrainLoop.Family family = new TrainLoop.Family() {
                int permEpoch = -1;
                int[] perm;

                @Override public String name() { return "classifier"; }
                @Override public String checkpointFile() { return CHECKPOINT; }
                @Override public Map<String, Var> parameters() { return namedParameters(); }
                @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
                @Override public boolean logAt(long done) { return done % 100 == 0; }
                @Override public String divergenceHint() { return "lower --lr (" + lr + ")"; }

                @Override public Map<String, String> metadata() {
                    Map<String, String> meta = new LinkedHashMap<>();
                    meta.put("format", FORMAT);
                    meta.put("classes", Integer.toString(classes));
                    meta.put("info", Json.object(Map.of("test_accuracy", acc[0], "epochs", epochs, "seed", seed)));
                    meta.put(dev.latent.train.TrainingPrecision.KEY, precision.id());
                    return meta;
                }

                @Override public TrainLoop.StepResult step(long s) {
                    int ep = (int) (s / perEpoch), pos = (int) (s % perEpoch) * batch;
                    if (ep != permEpoch) {
                        perm = ImageData.permutation(trainSet.n, seed, 1000 + ep);
                        permEpoch = ep;
                    }
                    float lrNow = (float) (lr * 0.5 * (1 + Math.cos(Math.PI * s / total)));
                    float l = trainStep(trainSet, perm, pos, batch, opt, lrNow);
                    return new TrainLoop.StepResult(l, "the cross-entropy", String.format(Locale.ROOT, "loss %.4f", l), Map.of("loss", l));
                }

                @Override public void after(long done, TrainLoop.Run run) throws IOException {
                    if (done % perEpoch != 0 && done != total) return;
                    acc[0] = accuracy(testSet);
                    int ep = (int) ((done - 1) / perEpoch) + 1;
                    Map<String, Object> rec = new LinkedHashMap<>();
                    rec.put("epoch", ep); rec.put("test_accuracy", acc[0]); rec.put("elapsed_s", (System.nanoTime() - t0) / 1e9);
                    run.evaluation(done, String.format(Locale.ROOT, "epoch %d: test accuracy %.4f", ep, acc[0]), rec);
                    run.checkpoint(done);
                }
            };
            TrainLoop.run(family, new TrainLoop.Options(dir, total, stopAt, resume, 0, listener, quiet));
        }
        return new TrainResult(epochs, acc[0], (System.nanoTime() - t0) / 1e9);
    }

    /** Fraction of correctly classified images. */
    public double accuracy(ImageData data) {
        if (data.labels == null) throw new IllegalArgumentException(data.source + ": accuracy needs labels");
        int correct = 0;
        for (int from = 0; from < data.n; from += 500) {
            int m = Math.min(500, data.n - from);
            try (Graph g = Graph.inference()) {
                Tensor x = g.empty(m, 1, 28, 28);
                batch(data, null, from, m, x);
                dev.latent.tensor.Device on = device();
                MemorySegment s = host(g, logits(Var.constant(on == dev.latent.tensor.Device.CPU ? x : x.to(g.scope(), on))).value());
                for (int i = 0; i < m; i++) {
                    int arg = 0;
                    for (int c = 1; c < classes; c++) if (s.getAtIndex(JAVA_FLOAT, (long) i * classes + c) > s.getAtIndex(JAVA_FLOAT, (long) i * classes + arg)) arg = c;
                    if (arg == data.labels[from + i]) correct++;
                }
            }
        }
        return (double) correct / data.n;
    }

    /** t's contiguous floats on the host (a copy in g's scope when t is on a device). */
    private static MemorySegment host(Graph g, Tensor t) {
        return t.device() == dev.latent.tensor.Device.CPU ? t.contiguous().segment() : t.to(g.scope(), dev.latent.tensor.Device.CPU).segment();
    }

    /**
     * Features (n x 128) and class probabilities (n x classes) of every image, in double. The forward runs where the
     * classifier's weights are (the CPU, or a device after {@code load(..., device)}); features and logits come back in
     * one copy each per chunk of 500 images.
     */
    public double[][][] featuresAndProbs(ImageData data) {
        double[][] feats = new double[data.n][], probs = new double[data.n][];
        for (int from = 0; from < data.n; from += 500) {
            int m = Math.min(500, data.n - from);
            try (Graph g = Graph.inference()) {
                Tensor x = g.empty(m, 1, 28, 28);
                batch(data, null, from, m, x);
                dev.latent.tensor.Device on = out.weight.value().device();
                Var f = features(Var.constant(on == dev.latent.tensor.Device.CPU ? x : x.to(g.scope(), on)));
                Var lg = out.forward(f);
                MemorySegment fs = host(g, f.value()), ls = host(g, lg.value());
                for (int i = 0; i < m; i++) {
                    double[] fi = new double[FEATURES], pi = new double[classes];
                    for (int j = 0; j < FEATURES; j++) fi[j] = fs.getAtIndex(JAVA_FLOAT, (long) i * FEATURES + j);
                    double mx = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int c = 0; c < classes; c++) mx = Math.max(mx, ls.getAtIndex(JAVA_FLOAT, (long) i * classes + c));
                    for (int c = 0; c < classes; c++) sum += pi[c] = Math.exp(ls.getAtIndex(JAVA_FLOAT, (long) i * classes + c) - mx);
                    for (int c = 0; c < classes; c++) pi[c] /= sum;
                    feats[from + i] = fi;
                    probs[from + i] = pi;
                }
            }
        }
        return new double[][][] {feats, probs};
    }

    public void save(Path file, Map<String, Object> info) throws IOException {
        Map<String, Tensor> t = new LinkedHashMap<>();
        namedParameters().forEach((k, v) -> t.put(k, v.value()));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.put("classes", Integer.toString(classes));
        meta.put("info", Json.object(info));
        meta.put(dev.latent.train.TrainingPrecision.KEY, precision.id());
        SafeTensors.write(file, t, meta);
    }

    /** Loads a classifier from its checkpoint file or the folder holding it. */
    public static Classifier load(Path dirOrFile, Scope scope) throws IOException { return load(dirOrFile, scope, dev.latent.tensor.Device.CPU); }

    /** A classifier on {@code device}: {@link #featuresAndProbs} (the FID / IS feature net) then runs its forward there. */
    public static Classifier load(Path dirOrFile, Scope scope, dev.latent.tensor.Device device) throws IOException {
        Path f = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(CHECKPOINT) : dirOrFile;
        if (!Files.isRegularFile(f))
            throw new IOException("no classifier at " + f + ": train one with `bin/latent train classifier --out " + dirOrFile + "`");
        SafeTensors.Loaded l = SafeTensors.read(f, scope);
        if (!FORMAT.equals(l.metadata().get("format"))) throw new IOException(f + ": not a Latent classifier checkpoint");
        int classes;
        try {
            classes = Integer.parseInt(l.metadata().getOrDefault("classes", "10"));
        } catch (NumberFormatException e) {
            throw new IOException(f + ": bad class count " + l.metadata().get("classes"));
        }
        Classifier c = new Classifier(scope, classes, 0);
        c.precision = dev.latent.train.TrainingPrecision.of(f, l.metadata());   /* read, not required: features run fp32 */
        for (var e : c.namedParameters().entrySet()) {
            Tensor src = l.tensors().get(e.getKey());
            if (src == null) throw new IOException(f + ": missing tensor " + e.getKey());
            if (!java.util.Arrays.equals(src.shape(), e.getValue().shape()))
                throw new IOException(f + ": tensor " + e.getKey() + " has shape " + java.util.Arrays.toString(src.shape()));
            MemorySegment.copy(src.segment(), 0, e.getValue().value().segment(), 0, src.numel() * 4);
        }
        if (device != dev.latent.tensor.Device.CPU) c.to(scope, device);
        return c;
    }
}
