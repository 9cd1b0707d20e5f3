package dev.latent.eval;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** AUROC against the pairwise definition, AUPRC against hand-computed cases and a brute-force step-curve area. */
class RankingTest {
    /** P(score+ > score-) + 0.5 P(equal), over all pairs. */
    static double pairwise(double[] s, boolean[] y) {
        double num = 0; long pairs = 0;
        for (int i = 0; i < s.length; i++)
            for (int j = 0; j < s.length; j++)
                if (y[i] && !y[j]) { pairs++; num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0; }
        return num / pairs;
    }

    /** Precision-recall step area by explicit thresholds at every distinct score. */
    static double bruteAp(double[] s, boolean[] y) {
        double[] th = java.util.Arrays.stream(s).distinct().sorted().toArray();
        long pos = 0; for (boolean b : y) if (b) pos++;
        double ap = 0, prevRecall = 0;
        for (int t = th.length - 1; t >= 0; t--) {
            long tp = 0, k = 0;
            for (int i = 0; i < s.length; i++) if (s[i] >= th[t]) { k++; if (y[i]) tp++; }
            double recall = (double) tp / pos;
            ap += (recall - prevRecall) * ((double) tp / k);
            prevRecall = recall;
        }
        return ap;
    }

    @Test
    void handComputedCases() {
        // perfect separation
        assertEquals(1.0, Ranking.auroc(new double[] {0.1, 0.2, 0.8, 0.9}, new boolean[] {false, false, true, true}));
        assertEquals(1.0, Ranking.auprc(new double[] {0.1, 0.2, 0.8, 0.9}, new boolean[] {false, false, true, true}));
        // inverted
        assertEquals(0.0, Ranking.auroc(new double[] {0.9, 0.8, 0.2, 0.1}, new boolean[] {false, false, true, true}));
        // sklearn's documented example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> AUROC 0.75, AP 0.8333...
        double[] s = {0.1, 0.4, 0.35, 0.8};
        boolean[] y = {false, false, true, true};
        assertEquals(0.75, Ranking.auroc(s, y), 1e-15);
        assertEquals(0.8333333333333333, Ranking.auprc(s, y), 1e-15);
        // all tied: AUROC 1/2, AP = the positive rate
        assertEquals(0.5, Ranking.auroc(new double[] {3, 3, 3, 3, 3}, new boolean[] {true, false, false, true, false}));
        assertEquals(0.4, Ranking.auprc(new double[] {3, 3, 3, 3, 3}, new boolean[] {true, false, false, true, false}), 1e-15);
    }

    @Test
    void agreesWithDefinitionsOnRandomDataWithTies() {
        Random r = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            int n = 2 + r.nextInt(60);
            double[] s = new double[n];
            boolean[] y = new boolean[n];
            for (int i = 0; i < n; i++) { s[i] = r.nextInt(8); y[i] = r.nextBoolean(); }
            y[0] = true; y[1] = false;
            assertEquals(pairwise(s, y), Ranking.auroc(s, y), 1e-12, "auroc trial " + trial);
            assertEquals(bruteAp(s, y), Ranking.auprc(s, y), 1e-12, "auprc trial " + trial);
        }
    }

    @Test
    void badInputsAreNamed() {
        var e = assertThrows(IllegalArgumentException.class, () -> Ranking.auroc(new double[] {1, 2}, new boolean[] {true, true}));
        assertTrue(e.getMessage().contains("both classes"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Ranking.auprc(new double[] {1, Double.NaN}, new boolean[] {true, false}));
        assertTrue(e.getMessage().contains("NaN"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Ranking.auroc(new double[] {1}, new boolean[] {true, false}));
        assertTrue(e.getMessage().contains("1 scores for 2 labels"), e.getMessage());
    }
}
