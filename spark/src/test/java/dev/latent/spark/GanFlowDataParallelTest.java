package dev.latent.spark;

import dev.latent.data.Idx;
import dev.latent.data.ImageData;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.tensor.Scope;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DCGAN and RealNVP data-parallel on Spark (local[3], one JVM): with m = 6 micro-batches per step, 1, 2 and 3
 * workers give the same weights (and, for the GAN, BatchNorm running statistics) to the bit, equal to one process
 * computing the 6 micro-batches; m = 1 equals the core trainer's step; a worker that fails makes Spark retry the
 * stage, which resumes from the last checkpoint and ends with the uninterrupted run's bits. Then the checkpoints as
 * Datasets: GAN samples and flow bits/dim, the same bits for 1 and 3 partitions and equal to one process.
 */
@Timeout(300)
class GanFlowDataParallelTest {
    static SparkSession spark;
    static JavaSparkContext sc;
    @TempDir static Path dir;

    @BeforeAll
    static void start() {
        // local[3,2]: 3 slots (a barrier stage of 3 needs them all at once), and a failed task may be retried.
        spark = SparkSession.builder().master("local[3,2]").appName("latent-gan-flow-test")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.latent.collective.host", "127.0.0.1").getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    }

    @AfterAll
    static void stop() {
        if (spark != null) spark.stop();
    }

    static ImageData images() { return VaeReproducibilityTest.images(); }

    static FlowDataParallel.Job flow(int workers, int micro, int steps, int ckpt, Path out) {
        return FlowDataParallel.Job.realNvp(workers, micro, 2, 2, 8, 1e-3f, 9, steps, out.toString(), ckpt, false, "synthetic");
    }

    static GanDataParallel.Job gan(int workers, int micro, int steps, int ckpt, Path out) {
        return new GanDataParallel.Job(workers, micro, 2, 8, 8, 8, 2e-4f, 0.5f, 0.999f, 3, steps, out.toString(), ckpt, false, "synthetic");
    }

    static String ganHash(Path run) throws Exception {
        try (Scope s = Scope.shared()) {
            GanTrainer t = GanTrainer.load(run, s, 1);
            return GanDataParallel.hash(t.g, t.d);
        }
    }

    static String flowHash(Path run) throws Exception {
        try (Scope s = Scope.shared()) {
            return Gradients.hash(FlowTrainer.load(run, s).model.namedParameters());
        }
    }

    @Test
    void realNvpGivesTheSameBitsForOneTwoAndThreeWorkers() throws Exception {
        ImageData data = images();
        Path ref = dir.resolve("flow-ref");
        GptDataParallel.Result one = FlowDataParallel.reference(flow(1, 6, 3, 0, ref), data, false, Long.MAX_VALUE);
        assertTrue(Double.isFinite(one.loss()) && one.loss() > 0, "bits/dim " + one.loss());
        String init;
        try (Scope s = Scope.shared()) {
            init = Gradients.hash(new dev.latent.models.flow.RealNvp(s, 28, 28, 2, 8, 0.05, 9).namedParameters());
        }
        assertNotEquals(init, one.weightsSha256(), "training changed nothing");
        for (int n : new int[] {1, 2, 3}) {
            Path out = dir.resolve("flow-" + n);
            List<GptDataParallel.Result> rs = FlowDataParallel.train(sc, flow(n, 6, 3, 0, out), data, null);
            assertEquals(n, rs.size());
            for (GptDataParallel.Result r : rs) {
                assertEquals(one.weightsSha256(), r.weightsSha256(), "RealNVP N=" + n + " rank " + r.rank() + " differs from the 6-micro-batch reference");
                assertEquals(one.loss(), r.loss(), 0.0, "N=" + n + " rank " + r.rank() + " loss");
            }
            assertEquals(one.weightsSha256(), flowHash(out), "N=" + n + ": rank 0's checkpoint");
        }
        // micro-batches, not workers, set the bits: 2 micro-batches of 2 are another run
        assertNotEquals(one.weightsSha256(), FlowDataParallel.reference(flow(1, 2, 3, 0, dir.resolve("flow-m2")), data, false, Long.MAX_VALUE).weightsSha256());
    }

    @Test
    void realNvpWithOneMicroBatchIsFlowTrainersStep() throws Exception {
        ImageData data = images();
        GptDataParallel.Result one = FlowDataParallel.reference(flow(1, 1, 3, 0, dir.resolve("flow-m1")), data, false, Long.MAX_VALUE);
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(new FlowTrainer.Config("unused", dir.resolve("flow-core"), 2, 8, 1, 2, 1e-3f, 0, 9, 0, 0, true), s, 28, 28);
            int[] perm = ImageData.permutation(data.n, 9, FlowDataParallel.PERM + 1);
            for (int k = 0; k < 3; k++) t.trainStep(data, perm, k * 2, 2);
            assertEquals(one.weightsSha256(), Gradients.hash(t.model.namedParameters()), "m=1 vs FlowTrainer.trainStep");
        }
    }

    static FlowDataParallel.Job glow(int workers, int micro, int steps, Path out) {
        return FlowDataParallel.Job.glow(workers, micro, 2, 2, 1, 8, 1e-3f, 4, steps, out.toString(), 0, false, "synthetic");
    }

    @Test
    void glowGivesTheSameBitsForOneTwoAndThreeWorkersAndOneMicroBatchIsFlowTrainers() throws Exception {
        ImageData data = images();
        GptDataParallel.Result one = FlowDataParallel.reference(glow(1, 6, 2, dir.resolve("glow-ref")), data, false, Long.MAX_VALUE);
        assertTrue(Double.isFinite(one.loss()) && one.loss() > 0, "bits/dim " + one.loss());
        for (int n : new int[] {1, 2, 3}) {
            Path out = dir.resolve("glow-" + n);
            for (GptDataParallel.Result r : FlowDataParallel.train(sc, glow(n, 6, 2, out), data, null))
                assertEquals(one.weightsSha256(), r.weightsSha256(), "Glow N=" + n + " rank " + r.rank() + " differs from the 6-micro-batch reference");
            assertEquals(one.weightsSha256(), flowHash(out), "Glow N=" + n + ": rank 0's checkpoint");
        }
        GptDataParallel.Result m1 = FlowDataParallel.reference(glow(1, 1, 2, dir.resolve("glow-m1")), data, false, Long.MAX_VALUE);
        try (Scope s = Scope.shared()) {
            FlowTrainer t = new FlowTrainer(new FlowTrainer.Config("unused", dir.resolve("glow-core"), "glow", 0, 2, 1, 8, 1, 2, 1e-3f, 0, 4, 0, 0, true), s, 28, 28);
            int[] perm = ImageData.permutation(data.n, 4, FlowDataParallel.PERM + 1);
            for (int k = 0; k < 2; k++) t.trainStep(data, perm, k * 2, 2);
            assertEquals(m1.weightsSha256(), Gradients.hash(t.model.namedParameters()), "Glow m=1 vs FlowTrainer.trainStep (ActNorm's init included)");
        }
    }

    @Test
    void realNvpFailedWorkerResumesFromTheCheckpoint() throws Exception {
        ImageData data = images();
        Path faulty = dir.resolve("flow-faulty");
        GptDataParallel.Result clean = FlowDataParallel.reference(flow(2, 6, 5, 2, dir.resolve("flow-clean")), data, false, Long.MAX_VALUE);
        List<GptDataParallel.Result> rs = FlowDataParallel.train(sc, flow(2, 6, 5, 2, faulty), data, new SparkGpt.Fault(1, 3, false));
        for (GptDataParallel.Result r : rs) {
            assertEquals(5, r.step());
            assertEquals(clean.weightsSha256(), r.weightsSha256(), "rank " + r.rank() + " after the retry");
        }
        assertEquals(clean.weightsSha256(), flowHash(faulty));
    }

    @Test
    void dcganGivesTheSameBitsForOneTwoAndThreeWorkers() throws Exception {
        ImageData data = images();
        GptDataParallel.Result one = GanDataParallel.reference(gan(1, 6, 3, 0, dir.resolve("gan-ref")), data, false, Long.MAX_VALUE);
        assertTrue(Double.isFinite(one.loss()));
        String init;
        try (Scope s = Scope.shared()) {
            init = GanDataParallel.hash(new Dcgan.Generator(s, 8, 8, 3), new Dcgan.Discriminator(s, 8, Dcgan.Norm.BATCH, 3));
        }
        assertNotEquals(init, one.weightsSha256(), "training changed nothing");
        for (int n : new int[] {1, 2, 3}) {
            Path out = dir.resolve("gan-" + n);
            List<GptDataParallel.Result> rs = GanDataParallel.train(sc, gan(n, 6, 3, 0, out), data, null);
            assertEquals(n, rs.size());
            for (GptDataParallel.Result r : rs) {
                assertEquals(one.weightsSha256(), r.weightsSha256(), "DCGAN N=" + n + " rank " + r.rank() + " differs from the 6-micro-batch reference");
                assertEquals(one.loss(), r.loss(), 0.0, "N=" + n + " rank " + r.rank() + " loss");
            }
            assertEquals(one.weightsSha256(), ganHash(out), "N=" + n + ": rank 0's checkpoint (weights and running statistics)");
        }
    }

    @Test
    void dcganWithOneMicroBatchIsGanTrainersIteration() throws Exception {
        ImageData data = images();
        GptDataParallel.Result one = GanDataParallel.reference(gan(1, 1, 3, 0, dir.resolve("gan-m1")), data, false, Long.MAX_VALUE);
        var cfg = new GanTrainer.Config(GanTrainer.Loss.GAN, "unused", dir.resolve("gan-core"), 3, 2, 8, 8, 8, 2e-4f, 0.5f, 0.999f, 1, 0f,
                Dcgan.Norm.BATCH, 3, 1, 0, 0, 1234, true);
        GanTrainer t = new GanTrainer(cfg);
        int[] perm = ImageData.permutation(data.n, 3, GanDataParallel.PERM);
        for (int it = 1; it <= 3; it++) t.step(data, perm, (it - 1) * 2, it);
        assertEquals(one.weightsSha256(), GanDataParallel.hash(t.g, t.d), "m=1 vs GanTrainer.step (weights and running statistics)");
    }

    static GanDataParallel.Job wgan(int workers, int micro, Path out) {
        return GanDataParallel.Job.wganGp(workers, micro, 2, 8, 8, 8, 1e-4f, 2, 10f, "layer", 6, 2, out.toString(), 0, false, "synthetic");
    }

    @Test
    void wganGpGivesTheSameBitsForOneTwoAndThreeWorkersAndOneMicroBatchIsGanTrainers() throws Exception {
        ImageData data = images();
        GptDataParallel.Result one = GanDataParallel.reference(wgan(1, 6, dir.resolve("wgan-ref")), data, false, Long.MAX_VALUE);
        assertTrue(Double.isFinite(one.loss()));
        for (int n : new int[] {1, 2, 3}) {
            Path out = dir.resolve("wgan-" + n);
            for (GptDataParallel.Result r : GanDataParallel.train(sc, wgan(n, 6, out), data, null))
                assertEquals(one.weightsSha256(), r.weightsSha256(), "WGAN-GP N=" + n + " rank " + r.rank() + " differs from the 6-micro-batch reference");
            assertEquals(one.weightsSha256(), ganHash(out), "WGAN-GP N=" + n + ": rank 0's checkpoint");
        }
        GptDataParallel.Result m1 = GanDataParallel.reference(wgan(1, 1, dir.resolve("wgan-m1")), data, false, Long.MAX_VALUE);
        // the core trainer's whole run loop on the same images (an IDX file), its checkpoint read back
        Path idx = dir.resolve("wgan-images-idx3-ubyte"), core = dir.resolve("wgan-core");
        Idx.writeU8(idx, data.pixels, data.n, 28, 28);
        var cfg = new GanTrainer.Config(GanTrainer.Loss.WGAN_GP, idx.toString(), core, 2, 2, 8, 8, 8, 1e-4f, 0.5f, 0.9f, 2, 10f,
                Dcgan.Norm.LAYER, 6, 1, 0, 0, 1234, true);
        new GanTrainer(cfg).run();
        assertEquals(m1.weightsSha256(), ganHash(core), "WGAN-GP m=1 vs GanTrainer.run");
    }

    @Test
    void dcganFailedWorkerResumesFromTheCheckpoint() throws Exception {
        ImageData data = images();
        Path faulty = dir.resolve("gan-faulty");
        GptDataParallel.Result clean = GanDataParallel.reference(gan(3, 6, 5, 2, dir.resolve("gan-clean")), data, false, Long.MAX_VALUE);
        List<GptDataParallel.Result> rs = GanDataParallel.train(sc, gan(3, 6, 5, 2, faulty), data, new SparkGpt.Fault(2, 3, false));
        for (GptDataParallel.Result r : rs) {
            assertEquals(5, r.step());
            assertEquals(clean.weightsSha256(), r.weightsSha256(), "rank " + r.rank() + " after the retry");
        }
        assertEquals(clean.weightsSha256(), ganHash(faulty));
    }

    @Test
    void ganSamplesAreTheSameBitsForAnyPartitioningAndEqualWriteSamples() throws Exception {
        ImageData data = images();
        Path run = dir.resolve("gan-samples");
        GanDataParallel.reference(gan(1, 2, 2, 0, run), data, false, Long.MAX_VALUE);
        int n = 230;
        List<Row> a = SparkGenerate.ganSamples(spark, run.toString(), n, 1, 5).collectAsList();
        List<Row> b = SparkGenerate.ganSamples(spark, run.toString(), n, 3, 5).collectAsList();
        Path file = dir.resolve("gan-samples.idx");
        try (Scope s = Scope.shared()) {
            GanTrainer.load(run, s, 5).writeSamples(file, n);
        }
        byte[] ref = Idx.read(file).u8();
        assertEquals(n, a.size());
        assertEquals(n, b.size());
        Set<String> distinct = new HashSet<>();
        for (List<Row> rows : List.of(a, b))
            for (Row r : rows) {
                int id = (int) r.getLong(0);
                byte[] px = (byte[]) r.get(1);
                assertArrayEquals(Arrays.copyOfRange(ref, id * 784, (id + 1) * 784), px, "sample " + id + " vs GanTrainer.writeSamples");
                distinct.add(Arrays.toString(px));
            }
        assertTrue(distinct.size() > n / 2, "samples are not all alike (" + distinct.size() + " distinct)");
    }

    @Test
    void flowBitsPerDimAreTheSameBitsForAnyPartitioning() throws Exception {
        ImageData data = images();
        Path run = dir.resolve("flow-scores");
        FlowDataParallel.reference(flow(1, 2, 2, 0, run), data, false, Long.MAX_VALUE);
        var one = SparkEval.flowScores(SparkEval.images(spark, data, 1), run.toString(), 77).collectAsList();
        var three = SparkEval.flowScores(SparkEval.images(spark, data, 3), run.toString(), 77).collectAsList();
        long[] ids = new long[data.n];
        for (int i = 0; i < ids.length; i++) ids[i] = i;
        double[] direct;
        try (Scope s = Scope.shared()) {
            direct = SparkEval.flowBitsPerDim(FlowTrainer.load(run, s).model, data, ids, 77);
        }
        assertEquals(data.n, one.size());
        assertEquals(data.n, three.size());
        for (var rows : List.of(one, three))
            for (Row r : rows) {
                int id = (int) r.getLong(0);
                assertEquals(Double.doubleToRawLongBits(direct[id]), Double.doubleToRawLongBits(r.getDouble(1)), "image " + id);
            }
        assertTrue(direct[0] > 0 && direct[0] < 20, "bits/dim " + direct[0]);
        double m1 = SparkEval.mean(SparkEval.flowScores(SparkEval.images(spark, data, 1), run.toString(), 77));
        double m3 = SparkEval.mean(SparkEval.flowScores(SparkEval.images(spark, data, 5), run.toString(), 77));
        assertEquals(m1, m3, 0.0, "exact mean over 1 and 5 partitions");
        // the per-image value is the bits/dim FlowTrainer's loss gives for that image alone (to float rounding)
        try (Scope s = Scope.shared(); var g = dev.latent.autograd.Graph.inference()) {
            FlowTrainer t = FlowTrainer.load(run, s);
            var pre = t.model.preprocess(g.scope(), data.pixels, null, 7, 1, 77, 7);
            double alone = dev.latent.autograd.F.item(t.model.bitsPerDim(dev.latent.autograd.Var.constant(pre[0]), pre[1]));
            assertEquals(alone, direct[7], 1e-4, "image 7 alone");
        }
    }
}
