package dev.latent.serve;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.vae.ConvVae;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Anomaly scores from a trained VAE, for services: thread-safe (any number of threads score at once), batched
 * (a call's images go through the model {@link Options#batch} at a time), deterministic (an image's score depends
 * only on its pixels, the checkpoint and the options: sampling scores draw their noise from a stream keyed by the
 * image's content, so batching and concurrency do not change a bit).
 * <pre>{@code
 * try (VaeAnomalyScorer s = VaeAnomalyScorer.load(Path.of("runs/vae-no-bags"), VaeAnomalyScorer.Options.defaults())) {
 *     s.calibrate(normalImages, 0.05);            // threshold: at most 5% of normal images flagged
 *     boolean[] flagged = s.isAnomalous(batch);    // score > threshold
 * }
 * }</pre>
 * Images are 28 x 28 pixel arrays in [0, 1] (row-major, 784 floats each). Only the weights are kept: the
 * checkpoint's optimizer state is read once and freed.
 */
public final class VaeAnomalyScorer implements AutoCloseable {
    /** Which score, the IWAE sample count, images per forward pass, and the sampling seed. */
    public record Options(VaeScores.Kind score, int iwaeK, int batch, long seed) {
        public Options {
            if (score == null) throw new IllegalArgumentException("score kind is null");
            if (iwaeK < 1 || iwaeK > 10_000) throw new IllegalArgumentException("iwaeK must be in [1, 10000], got " + iwaeK);
            if (batch < 1 || batch > 4096) throw new IllegalArgumentException("batch must be in [1, 4096], got " + batch);
        }

        /** The reconstruction error at the posterior mean (no sampling), 256 images per pass. */
        public static Options defaults() { return new Options(VaeScores.Kind.REC, 16, 256, 1); }
    }

    public static final int PIXELS = 28 * 28;

    private final Scope scope;
    private final ConvVae model;
    private final VaeTrainer.Likelihood likelihood;
    private final double sigma;
    private final Options options;
    private final ReentrantReadWriteLock life = new ReentrantReadWriteLock();
    private volatile double threshold = Double.NaN;
    private boolean closed;

    private VaeAnomalyScorer(Scope scope, ConvVae model, VaeTrainer.Likelihood likelihood, double sigma, Options options) {
        this.scope = scope;
        this.model = model;
        this.likelihood = likelihood;
        this.sigma = sigma;
        this.options = options;
    }

    /** Loads a VAE checkpoint (a run folder or the .safetensors file); only its weights stay in memory. */
    public static VaeAnomalyScorer load(Path checkpoint, Options options) throws IOException {
        if (options == null) throw new IllegalArgumentException("options is null");
        Scope keep = Scope.shared();
        try (Scope tmp = Scope.confined()) {
            VaeTrainer t = VaeTrainer.load(checkpoint, tmp);
            ConvVae m = new ConvVae(keep, t.cfg.latent(), 0);
            Map<String, Var> dst = m.namedParameters();
            for (var e : t.model.namedParameters().entrySet()) {
                Tensor src = e.getValue().value();
                MemorySegment.copy(src.segment(), 0, dst.get(e.getKey()).value().segment(), 0, src.numel() * 4);
            }
            return new VaeAnomalyScorer(keep, m, t.cfg.likelihood(), t.cfg.sigma(), options);
        } catch (IOException | RuntimeException e) {
            keep.close();
            throw e;
        }
    }

    public Options options() { return options; }

    /** The calibrated threshold, if {@link #calibrate} or {@link #setThreshold} was called. */
    public OptionalDouble threshold() {
        double t = threshold;
        return Double.isNaN(t) ? OptionalDouble.empty() : OptionalDouble.of(t);
    }

    public void setThreshold(double t) {
        if (!Double.isFinite(t)) throw new IllegalArgumentException("threshold must be finite, got " + t);
        threshold = t;
    }

    /** Scores of {@code images} (each 784 pixels in [0, 1]); higher = more anomalous, in nats. */
    public double[] score(float[][] images) {
        if (images == null) throw new IllegalArgumentException("images is null");
        float[] flat = new float[Math.multiplyExact(images.length, PIXELS)];
        for (int i = 0; i < images.length; i++) {
            if (images[i] == null || images[i].length != PIXELS)
                throw new IllegalArgumentException("image " + i + " has " + (images[i] == null ? "no" : images[i].length)
                        + " pixels; expected " + PIXELS + " (28 x 28)");
            System.arraycopy(images[i], 0, flat, i * PIXELS, PIXELS);
        }
        return score(flat, images.length);
    }

    /** Scores of n images stored one after another in {@code pixels} (n * 784 floats in [0, 1]). */
    public double[] score(float[] pixels, int n) {
        if (pixels == null || n < 0 || (long) n * PIXELS != pixels.length)
            throw new IllegalArgumentException((pixels == null ? "null pixels" : pixels.length + " pixels") + " for " + n
                    + " images; expected n * 784");
        for (int i = 0; i < pixels.length; i++) {
            float v = pixels[i];
            if (!(v >= 0f && v <= 1f))
                throw new IllegalArgumentException("image " + i / PIXELS + ", pixel " + i % PIXELS + " is " + v + "; expected a value in [0, 1]");
        }
        double[] out = new double[n];
        life.readLock().lock();
        try {
            if (closed) throw new IllegalStateException("the anomaly scorer is closed");
            for (int from = 0; from < n; from += options.batch()) {
                int m = Math.min(options.batch(), n - from);
                try (Graph g = Graph.inference()) {
                    Tensor x = Tensor.of(g.scope(), Arrays.copyOfRange(pixels, from * PIXELS, (from + m) * PIXELS), m, 1, 28, 28);
                    long[] streams = new long[m];
                    for (int i = 0; i < m; i++) streams[i] = contentStream(pixels, (from + i) * PIXELS);
                    double[] s = VaeScores.score(model, likelihood, sigma, x, options.score(), options.iwaeK(), options.seed(), streams);
                    System.arraycopy(s, 0, out, from, m);
                }
            }
        } finally {
            life.readLock().unlock();
        }
        return out;
    }

    /**
     * Sets the threshold from images known to be normal so that at most {@code falsePositiveRate} of them score
     * above it (the smallest such threshold among their scores); returns it.
     */
    public double calibrate(float[][] normal, double falsePositiveRate) {
        if (!(falsePositiveRate > 0 && falsePositiveRate < 1))
            throw new IllegalArgumentException("falsePositiveRate must be in (0, 1), got " + falsePositiveRate);
        if (normal == null || normal.length == 0) throw new IllegalArgumentException("calibration needs at least one normal image");
        double[] s = score(normal);
        Arrays.sort(s);
        int allowed = (int) Math.floor(falsePositiveRate * s.length);
        double t = s[Math.max(0, s.length - 1 - allowed)];
        setThreshold(t);
        return t;
    }

    /** score > threshold, per image; needs a threshold ({@link #calibrate}). */
    public boolean[] isAnomalous(float[][] images) {
        double t = threshold;
        if (Double.isNaN(t)) throw new IllegalStateException("no threshold: call calibrate(normalImages, fpr) or setThreshold first");
        double[] s = score(images);
        boolean[] r = new boolean[s.length];
        for (int i = 0; i < s.length; i++) r[i] = s[i] > t;
        return r;
    }

    /** The image's own Philox stream: FNV-1a over its pixels' bits (so its score does not depend on its batch). */
    static long contentStream(float[] px, int off) {
        long h = 0xcbf29ce484222325L;
        for (int i = off; i < off + PIXELS; i++) {
            h ^= Float.floatToRawIntBits(px[i]);
            h *= 0x100000001b3L;
        }
        return h;
    }

    /** Frees the weights; waits for calls in progress; later calls fail with IllegalStateException. */
    @Override
    public void close() {
        life.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                scope.close();
            }
        } finally {
            life.writeLock().unlock();
        }
    }
}
