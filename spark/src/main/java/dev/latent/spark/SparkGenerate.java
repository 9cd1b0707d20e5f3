package dev.latent.spark;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gan.GanTrainer;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptSampler;
import dev.latent.models.vae.VaeSampler;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.nn.Init;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.ImageGrid;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Distributed generation: samples of a checkpoint as a Spark {@link Dataset}, computed by the executors, one model
 * load per partition. Every row is keyed by its id and draws its randomness from its own Philox stream (images:
 * {@link VaeSampler}; texts: a seed derived from (seed, id)), so the rows are the same bits for any number of
 * partitions, executors or threads, and equal to what one process computes for the same ids. The checkpoint path
 * must be readable by every executor (shared or network storage on a cluster; any path in local mode), as for
 * training.
 */
public final class SparkGenerate {
    private SparkGenerate() {}

    /** Images: {@code id} (long), {@code pixels} (binary: 28 x 28 8-bit grey, row-major). */
    public static final StructType IMAGES = new StructType()
            .add("id", DataTypes.LongType, false)
            .add("pixels", DataTypes.BinaryType, false);

    /** Texts: {@code id} (long), {@code prompt} (string), {@code text} (string: the generated continuation). */
    public static final StructType TEXTS = new StructType()
            .add("id", DataTypes.LongType, false)
            .add("prompt", DataTypes.StringType, false)
            .add("text", DataTypes.StringType, false);

    /** Images are decoded this many at a time in a partition (the memory of one batch, not the result). */
    static final int BATCH = 64;

    /**
     * {@code n} samples of the VAE checkpoint {@code checkpoint} (a run folder or its checkpoint file) in
     * {@code partitions} partitions: rows id = 0 .. n-1, image id decoded from z ~ N(0, I) on Philox (seed, 3 x 2^40 + id).
     * Lazy, like any Dataset: the executors sample when an action (count, write, collect) runs.
     */
    public static Dataset<Row> vaeSamples(SparkSession spark, String checkpoint, long n, int partitions, long seed) {
        if (n < 0 || n > (1L << 40)) throw new IllegalArgumentException("vaeSamples: n = " + n + ", expected 0 .. 2^40");
        if (partitions < 1) throw new IllegalArgumentException("vaeSamples: partitions = " + partitions + ", expected >= 1");
        MapPartitionsFunction<Long, Row> f = ids -> {
            List<Row> out = new ArrayList<>();
            try (Scope s = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(Path.of(checkpoint), s);
                long[] batch = new long[BATCH];
                int k = 0;
                while (true) {
                    boolean more = ids.hasNext();
                    if (more) batch[k++] = ids.next();
                    if (k == BATCH || (!more && k > 0)) {
                        long[] b = k == BATCH ? batch.clone() : java.util.Arrays.copyOf(batch, k);
                        byte[] px = VaeSampler.sample(t.hostModel(), t.cfg.likelihood(), seed, b);
                        for (int i = 0; i < b.length; i++)
                            out.add(RowFactory.create(b[i], java.util.Arrays.copyOfRange(px, i * 784, (i + 1) * 784)));
                        k = 0;
                    }
                    if (!more) break;
                }
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(checkpoint + ": " + e.getMessage(), e);
            }
            return out.iterator();
        };
        return spark.range(0, n, 1, partitions).mapPartitions(f, Encoders.row(IMAGES));
    }

    /** DCGAN samples are generated in groups of this many ids, each group one forward (see {@link #ganSamples}). */
    public static final int GAN_GROUP = 100;

    /**
     * {@code n} samples of the DCGAN checkpoint {@code checkpoint} (GanTrainer's or GanDataParallel's) in up to
     * {@code partitions} partitions: rows id = 0 .. n-1 (columns of {@link #IMAGES}, the 32 x 32 output cropped to
     * 28 x 28, bytes round((x + 1) 127.5)). DCGAN's generator normalises with batch statistics (as it was trained and
     * as GanTrainer samples), so a sample depends on the others of its forward: the ids are generated in fixed groups
     * of {@value #GAN_GROUP} ([100 g, 100 g + 100), the last one shorter), group g's z from Philox (sampleSeed, 1 + g),
     * and a partition holds whole groups. The rows are therefore the same bits for any partitioning, and equal to the
     * IDX file {@code GanTrainer.writeSamples(file, n)} writes with the same sample seed ({@code latent sample dcgan}).
     */
    public static Dataset<Row> ganSamples(SparkSession spark, String checkpoint, long n, int partitions, long sampleSeed) {
        if (n < 0 || n > (1L << 40)) throw new IllegalArgumentException("ganSamples: n = " + n + ", expected 0 .. 2^40");
        if (partitions < 1) throw new IllegalArgumentException("ganSamples: partitions = " + partitions + ", expected >= 1");
        long groups = (n + GAN_GROUP - 1) / GAN_GROUP;
        MapPartitionsFunction<Long, Row> f = gs -> {
            List<Row> out = new ArrayList<>();
            if (!gs.hasNext()) return out.iterator();
            try (Scope s = Scope.shared()) {
                GanTrainer t = GanTrainer.load(Path.of(checkpoint), s, sampleSeed);
                while (gs.hasNext()) {
                    long grp = gs.next(), from = grp * GAN_GROUP;
                    int m = (int) Math.min(GAN_GROUP, n - from);
                    try (Graph g = Graph.inference()) {
                        Tensor z = Init.normal(g.scope(), sampleSeed, 1 + grp, 1.0, m, t.config().nz(), 1, 1);
                        MemorySegment x = t.g.forward(Var.constant(z)).value().segment();
                        for (int k = 0; k < m; k++) {
                            byte[] px = new byte[784];
                            for (int y = 0; y < 28; y++)
                                for (int xx = 0; xx < 28; xx++)
                                    px[y * 28 + xx] = (byte) ImageGrid.toByte(x.getAtIndex(JAVA_FLOAT, (long) k * 1024 + (y + 2) * 32 + xx + 2), -1f, 1f);
                            out.add(RowFactory.create(from + k, px));
                        }
                    }
                }
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(checkpoint + ": " + e.getMessage(), e);
            }
            return out.iterator();
        };
        return spark.range(0, groups, 1, (int) Math.max(1, Math.min(partitions, groups))).mapPartitions(f, Encoders.row(IMAGES));
    }

    /** The seed of text row {@code id}: a SplitMix64 step of (seed, id), so neighbouring ids get unrelated streams. */
    public static long rowSeed(long seed, long id) {
        long z = seed + 0x9E3779B97F4A7C15L * (id + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * Continuations of the GPT checkpoint for every row of {@code prompts} (columns {@code id} long and {@code prompt}
     * string), {@code settings.tokens()} tokens each, sampled with {@code settings} but the seed of row id replaced
     * by {@link #rowSeed}(settings.seed(), id). The prompt must be encodable by the checkpoint's tokenizer.
     */
    public static Dataset<Row> gptSamples(Dataset<Row> prompts, String checkpoint, GptSampler.Settings settings) {
        int tokens = settings.tokens(), topK = settings.topK();   // the record is not Serializable: its fields travel
        double temperature = settings.temperature(), topP = settings.topP();
        long seed = settings.seed();
        MapPartitionsFunction<Row, Row> f = rows -> {
            List<Row> out = new ArrayList<>();
            try (Scope s = Scope.shared()) {
                GptCheckpoint.Loaded l = GptCheckpoint.load(Path.of(checkpoint), s);
                GptSampler sampler = new GptSampler(l.model());
                while (rows.hasNext()) {
                    Row r = rows.next();
                    long id = r.getLong(0);
                    String prompt = r.getString(1);
                    int[] p = l.tokenizer().encode(prompt);
                    GptSampler.Settings row = new GptSampler.Settings(tokens, temperature, topK, topP, rowSeed(seed, id));
                    out.add(RowFactory.create(id, prompt, l.tokenizer().decode(sampler.generate(p, row))));
                }
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(checkpoint + ": " + e.getMessage(), e);
            }
            return out.iterator();
        };
        return prompts.select("id", "prompt").mapPartitions(f, Encoders.row(TEXTS));
    }

    /** {@code n} rows (id 0 .. n-1) that all carry {@code prompt}, in {@code partitions} partitions, for {@link #gptSamples}. */
    public static Dataset<Row> prompts(SparkSession spark, String prompt, long n, int partitions) {
        return spark.range(0, n, 1, partitions).toDF("id").withColumn("prompt", org.apache.spark.sql.functions.lit(prompt));
    }
}
