package dev.latent.serve;

import dev.latent.SyntheticImages;
import dev.latent.data.ImageData;
import dev.latent.eval.Ranking;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A small VAE trained without class 9 of the synthetic bar images (class k: a bar at column 2 + 2k) must rank class 9
 * above the others by every score; scores are bit-identical alone, in a batch and from several threads; calibration
 * keeps the false-positive rate on normal images at or below the one asked; bad inputs are named.
 */
class VaeAnomalyScorerTest {
    @TempDir static Path dir;
    static Path run;
    static ImageData test;

    @BeforeAll
    static void train() throws IOException {
        Path data = Files.createDirectories(dir.resolve("synthetic"));
        SyntheticImages.write(data, "train", 600, 1);
        SyntheticImages.write(data, "t10k", 200, 2);
        run = dir.resolve("vae");
        var cfg = new VaeTrainer.Config(data.toString(), run, 4, 1.0, 3, 32, 2e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 0, 0, 1, 0, 1234, 0, 0,
                100, true, 9);
        try (Scope s = Scope.shared()) {
            new VaeTrainer(cfg, s).run();
        }
        test = ImageData.load(data.toString(), "test");
    }

    static float[][] images(ImageData d, boolean anomalous) {
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < d.n; i++) {
            if ((d.labels[i] == 9) != anomalous) continue;
            float[] px = new float[784];
            for (int p = 0; p < 784; p++) px[p] = (d.pixels[i * 784 + p] & 0xff) / 255f;
            out.add(px);
        }
        return out.toArray(float[][]::new);
    }

    @Test
    void heldOutClassRanksHighByEveryScore() throws IOException {
        float[][] normal = images(test, false), anom = images(test, true);
        float[][] all = new float[normal.length + anom.length][];
        boolean[] y = new boolean[all.length];
        System.arraycopy(normal, 0, all, 0, normal.length);
        System.arraycopy(anom, 0, all, normal.length, anom.length);
        for (int i = normal.length; i < all.length; i++) y[i] = true;
        for (VaeScores.Kind kind : VaeScores.Kind.values()) {
            try (VaeAnomalyScorer s = VaeAnomalyScorer.load(run, new VaeAnomalyScorer.Options(kind, 8, 64, 1))) {
                double[] sc = s.score(all);
                double auroc = Ranking.auroc(sc, y);
                assertTrue(auroc > 0.9, kind + ": AUROC " + auroc);
            }
        }
    }

    @Test
    void scoresDoNotDependOnBatchingOrThreads() throws Exception {
        float[][] imgs = images(test, false);
        float[][] some = java.util.Arrays.copyOf(imgs, 37);
        for (VaeScores.Kind kind : VaeScores.Kind.values()) {
            try (VaeAnomalyScorer big = VaeAnomalyScorer.load(run, new VaeAnomalyScorer.Options(kind, 5, 16, 7));
                 VaeAnomalyScorer one = VaeAnomalyScorer.load(run, new VaeAnomalyScorer.Options(kind, 5, 1, 7))) {
                double[] batched = big.score(some);
                // reversed order, one image per pass: the same bits per image
                float[][] rev = new float[some.length][];
                for (int i = 0; i < some.length; i++) rev[i] = some[some.length - 1 - i];
                double[] singles = one.score(rev);
                for (int i = 0; i < some.length; i++)
                    assertEquals(batched[i], singles[some.length - 1 - i], 0.0, kind + " image " + i);
                ExecutorService pool = Executors.newFixedThreadPool(4);
                try {
                    List<Future<double[]>> fs = new ArrayList<>();
                    for (int t = 0; t < 8; t++) fs.add(pool.submit(() -> big.score(some)));
                    for (Future<double[]> f : fs) assertArrayEquals(batched, f.get(), kind + " from another thread");
                } finally {
                    pool.shutdownNow();
                }
            }
        }
    }

    @Test
    void calibrationBoundsTheFalsePositiveRate() throws IOException {
        float[][] normal = images(test, false);
        try (VaeAnomalyScorer s = VaeAnomalyScorer.load(run, VaeAnomalyScorer.Options.defaults())) {
            assertTrue(s.threshold().isEmpty());
            assertThrows(IllegalStateException.class, () -> s.isAnomalous(normal));
            for (double fpr : new double[] {0.01, 0.05, 0.2}) {
                double t = s.calibrate(normal, fpr);
                assertEquals(t, s.threshold().getAsDouble());
                int flagged = 0;
                for (boolean b : s.isAnomalous(normal)) if (b) flagged++;
                assertTrue(flagged <= fpr * normal.length, fpr + ": " + flagged + " of " + normal.length + " flagged");
                assertTrue(flagged >= fpr * normal.length - 2, fpr + ": threshold too loose, " + flagged + " flagged");
            }
            boolean[] a = s.isAnomalous(images(test, true));
            int hit = 0;
            for (boolean b : a) if (b) hit++;
            assertTrue(hit > a.length / 2, "most held-out images flagged at 20% FPR: " + hit + " of " + a.length);
        }
    }

    @Test
    void badInputsAreNamed() throws IOException {
        VaeAnomalyScorer s = VaeAnomalyScorer.load(run, VaeAnomalyScorer.Options.defaults());
        var e = assertThrows(IllegalArgumentException.class, () -> s.score(new float[][] {new float[783]}));
        assertTrue(e.getMessage().contains("783 pixels"), e.getMessage());
        float[] nan = new float[784];
        nan[5] = Float.NaN;
        e = assertThrows(IllegalArgumentException.class, () -> s.score(new float[][] {new float[784], nan}));
        assertTrue(e.getMessage().contains("image 1, pixel 5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> s.calibrate(new float[][] {new float[784]}, 1.5));
        assertTrue(e.getMessage().contains("falsePositiveRate"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new VaeAnomalyScorer.Options(VaeScores.Kind.IWAE, 0, 1, 1));
        assertTrue(e.getMessage().contains("iwaeK"), e.getMessage());
        s.close();
        var c = assertThrows(IllegalStateException.class, () -> s.score(new float[][] {new float[784]}));
        assertTrue(c.getMessage().contains("closed"), c.getMessage());
        assertThrows(IOException.class, () -> VaeAnomalyScorer.load(dir.resolve("missing"), VaeAnomalyScorer.Options.defaults()));
    }
}
