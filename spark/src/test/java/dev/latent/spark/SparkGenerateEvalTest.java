package dev.latent.spark;

import dev.latent.autograd.Graph;
import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.io.SafeTensors;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptSampler;
import dev.latent.models.vae.ConvVae;
import dev.latent.models.vae.VaeSampler;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.text.CharTokenizer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Distributed generation and evaluation (issue 20): every row is the same bits for 1 and for several partitions,
 * and equal to one process computing the same ids in one call (so rows do not depend on batch composition either);
 * the exact mean of the scores is one double for any partitioning; FID's merged statistics match the statistics of
 * the whole set computed in one pass.
 */
@Timeout(240)
class SparkGenerateEvalTest {
    static SparkSession spark;
    @TempDir static Path dir;
    static Path vae, classifier, gpt;

    @BeforeAll
    static void start() throws Exception {
        spark = SparkSession.builder().master("local[3]").appName("latent-generate-test")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "3").getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        try (Scope s = Scope.shared()) {
            ConvVae m = new ConvVae(s, 4, 11);
            Map<String, Tensor> t = new LinkedHashMap<>();
            m.namedParameters().forEach((k, v) -> t.put(k, v.value()));
            vae = dir.resolve("vae.safetensors");
            SafeTensors.write(vae, t, Map.of("format", "latent-vae-1", "step", "0",
                    "config", "{\"data\":\"synthetic\",\"latent\":4,\"likelihood\":\"bernoulli\",\"sigma\":0.1}"));
            classifier = dir.resolve("classifier.safetensors");
            new Classifier(s, 10, 5).save(classifier, Map.of("note", "untrained, for the test"));
            String text = "call me ishmael. some years ago, never mind how long precisely, having little or no money in my purse.\n".repeat(4);
            CharTokenizer tok = CharTokenizer.train(text);
            Gpt g = new Gpt(s, new GptConfig(tok.vocabSize(), 1, 2, 16, 16, false), 3);
            gpt = dir.resolve("gpt");
            GptCheckpoint.save(gpt, g, new AdamW(s, g.namedParameters(), 0.9f, 0.99f, 1e-8f, 0f), tok, Map.of());
        }
    }

    @AfterAll
    static void stop() {
        if (spark != null) spark.stop();
    }

    static List<Row> sorted(Dataset<Row> d) {
        return d.collectAsList().stream().sorted(Comparator.comparingLong(r -> r.getLong(0))).toList();
    }

    @Test
    void vaeSamplesAreTheSameBitsForAnyPartitioning() throws Exception {
        long n = 150, seed = 9;
        List<Row> one = sorted(SparkGenerate.vaeSamples(spark, vae.toString(), n, 1, seed));
        List<Row> four = sorted(SparkGenerate.vaeSamples(spark, vae.toString(), n, 4, seed));
        assertEquals(n, one.size());
        byte[] direct;
        try (Scope s = Scope.shared()) {
            VaeTrainer t = VaeTrainer.load(vae, s);
            direct = VaeSampler.sample(t.hostModel(), t.cfg.likelihood(), seed, LongStream.range(0, n).toArray());
        }
        int distinct = 0;
        for (int i = 0; i < n; i++) {
            assertEquals(i, one.get(i).getLong(0));
            byte[] a = (byte[]) one.get(i).get(1), b = (byte[]) four.get(i).get(1);
            assertArrayEquals(a, b, "image " + i + ": 1 vs 4 partitions");
            assertArrayEquals(java.util.Arrays.copyOfRange(direct, i * 784, (i + 1) * 784), a, "image " + i + ": Spark vs one call of 150");
            if (i > 0 && !java.util.Arrays.equals(a, (byte[]) one.get(i - 1).get(1))) distinct++;
        }
        assertTrue(distinct > n / 2, "images differ from one id to the next: " + distinct);
        byte[] other = (byte[]) sorted(SparkGenerate.vaeSamples(spark, vae.toString(), 3, 1, seed + 1)).get(0).get(1);
        assertFalse(java.util.Arrays.equals(other, (byte[]) one.get(0).get(1)), "another seed, another image");
    }

    /** 100 synthetic images: a bright disc at a random place and size, on noise. */
    static ImageData discs(int n, long seed) {
        byte[] px = new byte[n * 784];
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        for (int i = 0; i < n; i++) {
            int cx = r.nextInt(6, 22), cy = r.nextInt(6, 22), rad = r.nextInt(3, 7);
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++)
                    px[i * 784 + y * 28 + x] = (byte) ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= rad * rad ? 230 : r.nextInt(30));
        }
        return new ImageData(n, 28, 28, px, null, "synthetic");
    }

    @Test
    void vaeScoresAndTheirMeanDoNotDependOnThePartitioning() throws Exception {
        ImageData data = discs(100, 3);
        for (VaeScores.Kind kind : VaeScores.Kind.values()) {
            List<Row> one = sorted(SparkEval.vaeScores(SparkEval.images(spark, data, 1), vae.toString(), kind, 3, 17));
            Dataset<Row> threeDs = SparkEval.vaeScores(SparkEval.images(spark, data, 3), vae.toString(), kind, 3, 17);
            List<Row> three = sorted(threeDs);
            double[] direct;
            try (Scope s = Scope.shared(); Graph g = Graph.inference()) {
                VaeTrainer t = VaeTrainer.load(vae, s);
                Tensor x = g.empty(100, 1, 28, 28);
                data.fill(x, null, 0, 100, 1f / 255f, 0f, 0);
                direct = VaeScores.score(t.hostModel(), t.cfg.likelihood(), t.cfg.sigma(), x, kind, 3, 17, LongStream.range(0, 100).toArray());
            }
            for (int i = 0; i < 100; i++) {
                assertEquals(direct[i], one.get(i).getDouble(1), 0.0, kind + " image " + i + ": Spark (1 partition) vs one call");
                assertEquals(direct[i], three.get(i).getDouble(1), 0.0, kind + " image " + i + ": Spark (3 partitions) vs one call");
                assertTrue(Double.isFinite(direct[i]) && direct[i] > 0, kind + " score " + direct[i]);
            }
            double exact = SparkEval.ExactSum.of(direct).mean();
            assertEquals(exact, SparkEval.mean(threeDs), 0.0, kind + ": the exact mean over 3 partitions");
            assertEquals(exact, SparkEval.mean(threeDs.repartition(7)), 0.0, kind + ": and over 7");
            assertEquals(java.util.Arrays.stream(direct).average().orElseThrow(), exact, 1e-12 * Math.abs(exact), kind + ": the plain mean");
        }
    }

    @Test
    void fidMergesPartitionStatisticsExactly() throws Exception {
        ImageData a = discs(120, 4), b = discs(90, 5);
        double[][] fa, fb;
        try (Scope s = Scope.shared()) {
            Classifier c = Classifier.load(classifier, s);
            fa = c.featuresAndProbs(a)[0];
            fb = c.featuresAndProbs(b)[0];
        }
        Fid.Stats whole = Fid.stats(fa), merged = SparkEval.featureStats(SparkEval.images(spark, a, 5), classifier.toString());
        assertEquals(120, merged.n());
        for (int i = 0; i < Classifier.FEATURES; i++) {
            assertEquals(whole.mean()[i], merged.mean()[i], 1e-12 * (1 + Math.abs(whole.mean()[i])), "mean " + i);
            for (int j = 0; j < Classifier.FEATURES; j++)
                assertEquals(whole.cov()[i][j], merged.cov()[i][j], 1e-10 * (1 + Math.abs(whole.cov()[i][i]) + Math.abs(whole.cov()[j][j])), "cov " + i + "," + j);
        }
        double ref = Fid.distance(Fid.stats(fa), Fid.stats(fb));
        double d1 = SparkEval.fid(SparkEval.images(spark, a, 1), SparkEval.images(spark, b, 1), classifier.toString());
        double d4 = SparkEval.fid(SparkEval.images(spark, a, 4), SparkEval.images(spark, b, 3), classifier.toString());
        assertTrue(ref > 0, "two different sets have FID > 0: " + ref);
        assertEquals(ref, d1, 1e-8 * ref);
        assertEquals(ref, d4, 1e-8 * ref);
        double self = SparkEval.fid(SparkEval.images(spark, a, 2), SparkEval.images(spark, a, 3), classifier.toString());
        assertEquals(0, self, 1e-8 * ref, "a set against itself");
    }

    @Test
    void gptSamplesAreTheSameTextsForAnyPartitioning() throws Exception {
        GptSampler.Settings st = new GptSampler.Settings(12, 0.9, 0, 1.0, 21);
        List<Row> one = sorted(SparkGenerate.gptSamples(SparkGenerate.prompts(spark, "call me", 10, 1), gpt.toString(), st));
        List<Row> three = sorted(SparkGenerate.gptSamples(SparkGenerate.prompts(spark, "call me", 10, 3), gpt.toString(), st));
        assertEquals(10, one.size());
        try (Scope s = Scope.shared()) {
            GptCheckpoint.Loaded l = GptCheckpoint.load(gpt, s);
            GptSampler sampler = new GptSampler(l.model());
            int distinct = 0;
            for (int i = 0; i < 10; i++) {
                String direct = l.tokenizer().decode(sampler.generate(l.tokenizer().encode("call me"),
                        new GptSampler.Settings(12, 0.9, 0, 1.0, SparkGenerate.rowSeed(21, i))));
                assertEquals(direct, one.get(i).getString(2), "row " + i);
                assertEquals(direct, three.get(i).getString(2), "row " + i + ", 3 partitions");
                assertEquals("call me", one.get(i).getString(1));
                if (i > 0 && !direct.equals(one.get(i - 1).getString(2))) distinct++;
            }
            assertTrue(distinct >= 5, "rows draw different texts: " + distinct + " changes in 10");
        }
    }

    @Test
    void badArgumentsAreNamed() {
        assertThrows(IllegalArgumentException.class, () -> SparkGenerate.vaeSamples(spark, vae.toString(), -1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> SparkGenerate.vaeSamples(spark, vae.toString(), 5, 0, 0));
        var e = assertThrows(Exception.class, () -> SparkGenerate.vaeSamples(spark, dir.resolve("missing").toString(), 5, 1, 0).count());
        String all = String.valueOf(e.getMessage()) + (e.getCause() == null ? "" : e.getCause().getMessage());
        assertTrue(all.contains("missing"), all);
    }
}
