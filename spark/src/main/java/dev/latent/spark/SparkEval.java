package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.flow.ImageFlow;
import dev.latent.models.flow.RealNvp;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Distributed evaluation over a Spark {@link Dataset} of images ({@link SparkGenerate#IMAGES}: id, 28 x 28 grey
 * pixels): per-image VAE scores (negative ELBO, IWAE bound, reconstruction error) and FID between two image sets.
 * <ul>
 * <li>Scores are keyed per image ({@link VaeScores}: image id draws its noise from Philox stream id), so each row's
 * score is the same bits for any partitioning and equals one process's; {@link #mean} adds them exactly (every
 * double is a finite binary fraction, summed in {@link BigDecimal} per partition and across partitions, rounded
 * once), so the mean does not depend on the partitioning either.</li>
 * <li>FID: each partition folds its features into a {@link Fid.Accumulator}; the driver merges them in partition
 * order with the exact pairwise update of mean and co-moment, so the statistics are those of the whole set (to
 * rounding; the same bits for the same partitioning).</li>
 * </ul>
 * Checkpoint paths must be readable by every executor, as for training.
 */
public final class SparkEval {
    private SparkEval() {}

    /** Per-image scores: {@code id} (long), {@code score} (double). */
    public static final StructType SCORES = new StructType()
            .add("id", DataTypes.LongType, false)
            .add("score", DataTypes.DoubleType, false);

    static final int BATCH = 64;

    /** {@code data} as an image Dataset in {@code partitions} partitions, ids 0 .. n-1 in the data's order. */
    public static Dataset<Row> images(SparkSession spark, ImageData data, int partitions) {
        if (data.h != 28 || data.w != 28) throw new IllegalArgumentException("images: 28 x 28 images expected, got " + data.h + " x " + data.w);
        List<Row> rows = new ArrayList<>(data.n);
        for (int i = 0; i < data.n; i++) rows.add(RowFactory.create((long) i, java.util.Arrays.copyOfRange(data.pixels, i * 784, (i + 1) * 784)));
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        return spark.createDataFrame(sc.parallelize(rows, partitions), SparkGenerate.IMAGES);
    }

    /** The images of one partition, batched: ids and their pixels. */
    private record Batch(long[] ids, ImageData data) {}

    private static Iterator<Batch> batches(Iterator<Row> rows) {
        return new Iterator<>() {
            public boolean hasNext() { return rows.hasNext(); }
            public Batch next() {
                List<Row> b = new ArrayList<>(BATCH);
                while (rows.hasNext() && b.size() < BATCH) b.add(rows.next());
                long[] ids = new long[b.size()];
                byte[] px = new byte[b.size() * 784];
                for (int i = 0; i < b.size(); i++) {
                    Row r = b.get(i);
                    ids[i] = r.getLong(0);
                    byte[] p = (byte[]) r.get(1);
                    if (p.length != 784) throw new IllegalArgumentException("image " + ids[i] + ": " + p.length + " pixel bytes, expected 784 (28 x 28)");
                    System.arraycopy(p, 0, px, i * 784, 784);
                }
                return new Batch(ids, new ImageData(ids.length, 28, 28, px, null, "partition"));
            }
        };
    }

    /**
     * Per-image scores of {@code images} under the VAE checkpoint: {@code kind} with {@code k} importance samples
     * for IWAE (ignored otherwise), noise of image id from Philox (seed, id). Lazy, like any Dataset.
     */
    public static Dataset<Row> vaeScores(Dataset<Row> images, String checkpoint, VaeScores.Kind kind, int k, long seed) {
        if (kind == VaeScores.Kind.IWAE && k < 1) throw new IllegalArgumentException("vaeScores: IWAE needs k >= 1, got " + k);
        MapPartitionsFunction<Row, Row> f = rows -> {
            List<Row> out = new ArrayList<>();
            try (Scope s = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(Path.of(checkpoint), s);
                for (Iterator<Batch> it = batches(rows); it.hasNext(); ) {
                    Batch b = it.next();
                    double[] sc;
                    try (Graph g = Graph.inference()) {
                        Tensor x = g.empty(b.ids().length, 1, 28, 28);
                        b.data().fill(x, null, 0, b.ids().length, 1f / 255f, 0f, 0);
                        sc = VaeScores.score(t.hostModel(), t.cfg.likelihood(), t.cfg.sigma(), x, kind, k, seed, b.ids());
                    }
                    for (int i = 0; i < sc.length; i++) out.add(RowFactory.create(b.ids()[i], sc[i]));
                }
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(checkpoint + ": " + e.getMessage(), e);
            }
            return out.iterator();
        };
        return images.select("id", "pixels").mapPartitions(f, Encoders.row(SCORES));
    }

    /**
     * Per-image bits/dim of {@code images} under the flow checkpoint (RealNVP or Glow, FlowTrainer's or
     * FlowDataParallel's format): image id dequantized with uniform noise from Philox (seed, id), then
     * -log2 p(x) / D + 8 with D = 28 x 28 (the bits/dim of the 8-bit image, FlowTrainer's loss for one image). RealNVP
     * treats a batch's images independently, so a partition runs them {@value #BATCH} at a time and each image's
     * value comes from its own z and log-determinant; Glow one image at a time. Either way a row's score is the same
     * bits for any partitioning and equals {@link #flowBitsPerDim} for the same ids in one process; {@link #mean}
     * gives the data set's bits/dim exactly merged. Lazy, like any Dataset.
     */
    public static Dataset<Row> flowScores(Dataset<Row> images, String checkpoint, long seed) {
        MapPartitionsFunction<Row, Row> f = rows -> {
            List<Row> out = new ArrayList<>();
            try (Scope s = Scope.shared()) {
                FlowTrainer t = FlowTrainer.load(Path.of(checkpoint), s);
                for (Iterator<Batch> it = batches(rows); it.hasNext(); ) {
                    Batch b = it.next();
                    double[] sc = flowBitsPerDim(t.model, b.data(), b.ids(), seed);
                    for (int i = 0; i < sc.length; i++) out.add(RowFactory.create(b.ids()[i], sc[i]));
                }
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(checkpoint + ": " + e.getMessage(), e);
            }
            return out.iterator();
        };
        return images.select("id", "pixels").mapPartitions(f, Encoders.row(SCORES));
    }

    /** Bits/dim of each image of {@code data} (image i has id ids[i]: its noise from Philox stream id), as {@link #flowScores}. */
    public static double[] flowBitsPerDim(ImageFlow model, ImageData data, long[] ids, long seed) {
        if (data.h != model.height() || data.w != model.width())
            throw new IllegalArgumentException("flow bits/dim: " + data.h + "x" + data.w + " images, the model is " + model.height() + "x" + model.width());
        int n = data.n;
        long hw = (long) data.h * data.w;
        double[] out = new double[n];
        try (Graph g = Graph.inference()) {
            Tensor y = g.empty(n, 1, data.h, data.w), ld = g.empty(n);
            for (int i = 0; i < n; i++) {   // image i's noise from its own stream, whatever its batch
                Tensor[] pre = model.preprocess(g.scope(), data.pixels, null, i, 1, seed, ids[i]);
                MemorySegment.copy(pre[0].segment(), 0, y.segment(), i * hw * 4, hw * 4);
                ld.segment().setAtIndex(JAVA_FLOAT, i, pre[1].segment().getAtIndex(JAVA_FLOAT, 0));
            }
            if (model instanceof RealNvp r) {
                Var[] zl = r.forward(Var.constant(y));
                MemorySegment z = zl[0].value().contiguous().segment(), logdet = zl[1].value().contiguous().segment();
                double c = hw * 0.5 * Math.log(2 * Math.PI), ln2 = Math.log(2);
                for (int i = 0; i < n; i++) {
                    double q = 0;
                    for (long j = i * hw; j < (i + 1) * hw; j++) {
                        double v = z.getAtIndex(JAVA_FLOAT, j);
                        q += v * v;
                    }
                    out[i] = (0.5 * q + c - logdet.getAtIndex(JAVA_FLOAT, i) - ld.segment().getAtIndex(JAVA_FLOAT, i)) / (hw * ln2) + 8.0;
                }
            } else {
                for (int i = 0; i < n; i++) {
                    Tensor[] pre = model.preprocess(g.scope(), data.pixels, null, i, 1, seed, ids[i]);
                    out[i] = F.item(model.bitsPerDim(Var.constant(pre[0]), pre[1]));
                }
            }
        }
        return out;
    }

    /** An exact sum of doubles and their count (BigDecimal holds every finite double sum without rounding). */
    public record ExactSum(BigDecimal sum, long n) implements Serializable {
        public ExactSum plus(ExactSum o) { return new ExactSum(sum.add(o.sum), n + o.n); }
        public double mean() { return n == 0 ? Double.NaN : sum.divide(BigDecimal.valueOf(n), MathContext.DECIMAL128).doubleValue(); }

        /** The exact sum of {@code xs}; refuses non-finite values, naming the first. */
        public static ExactSum of(double... xs) {
            BigDecimal s = BigDecimal.ZERO;
            for (int i = 0; i < xs.length; i++) {
                if (!Double.isFinite(xs[i])) throw new IllegalArgumentException("exact sum: value " + i + " is " + xs[i]);
                s = s.add(new BigDecimal(xs[i]));
            }
            return new ExactSum(s, xs.length);
        }
    }

    /** The mean of the {@code score} column, summed exactly: the same double for any partitioning of the rows. */
    public static double mean(Dataset<Row> scores) {
        MapPartitionsFunction<Row, ExactSum> f = rows -> {
            List<Double> v = new ArrayList<>();
            while (rows.hasNext()) { Row r = rows.next(); v.add(r.getDouble(0)); }
            return List.of(ExactSum.of(v.stream().mapToDouble(Double::doubleValue).toArray())).iterator();
        };
        List<ExactSum> parts = scores.select("score").mapPartitions(f, Encoders.javaSerialization(ExactSum.class)).collectAsList();
        ExactSum total = new ExactSum(BigDecimal.ZERO, 0);
        for (ExactSum p : parts) total = total.plus(p);
        return total.mean();
    }

    /** Feature statistics of an image Dataset under the classifier checkpoint (the FID feature net), merged per partition. */
    public static Fid.Stats featureStats(Dataset<Row> images, String classifier) {
        MapPartitionsFunction<Row, Fid.Accumulator> f = rows -> {
            Fid.Accumulator acc = new Fid.Accumulator(Classifier.FEATURES);
            try (Scope s = Scope.shared()) {
                Classifier c = Classifier.load(Path.of(classifier), s);
                for (Iterator<Batch> it = batches(rows); it.hasNext(); )
                    for (double[] v : c.featuresAndProbs(it.next().data())[0]) acc.add(v);
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(classifier + ": " + e.getMessage(), e);
            }
            return List.of(acc).iterator();
        };
        List<Fid.Accumulator> parts = images.select("id", "pixels").mapPartitions(f, Encoders.javaSerialization(Fid.Accumulator.class)).collectAsList();
        Fid.Accumulator all = new Fid.Accumulator(Classifier.FEATURES);
        for (Fid.Accumulator p : parts) all.merge(p);
        return all.stats();
    }

    /** FID between two image Datasets under the classifier checkpoint's features. */
    public static double fid(Dataset<Row> a, Dataset<Row> b, String classifier) {
        return Fid.distance(featureStats(a, classifier), featureStats(b, classifier));
    }
}
