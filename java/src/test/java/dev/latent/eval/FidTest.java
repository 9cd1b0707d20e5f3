package dev.latent.eval;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class FidTest {
    static double[][] gaussian(long seed, int n, int d, double shift, double scale) {
        Random r = new Random(seed);
        double[][] x = new double[n][d];
        for (double[] row : x) for (int j = 0; j < d; j++) row[j] = shift + scale * r.nextGaussian();
        return x;
    }

    @Test
    void closedFormCases() {
        // 1-D: N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 sqrt(1 * 4) = 2
        Fid.Stats a = new Fid.Stats(new double[] {0}, new double[][] {{1}}, 2), b = new Fid.Stats(new double[] {1}, new double[][] {{4}}, 2);
        assertEquals(2.0, Fid.distance(a, b), 1e-9);
        // diagonal: sum of (sqrt(c1) - sqrt(c2))^2 + mean term
        Fid.Stats c = new Fid.Stats(new double[] {0, 0, 0}, new double[][] {{1, 0, 0}, {0, 4, 0}, {0, 0, 9}}, 2);
        Fid.Stats e = new Fid.Stats(new double[] {1, 2, 0}, new double[][] {{4, 0, 0}, {0, 1, 0}, {0, 0, 9}}, 2);
        assertEquals(5 + 1 + 1 + 0, Fid.distance(c, e), 1e-9);
        assertEquals(0.0, Fid.distance(c, c), 1e-9);
    }

    @Test
    void sqrtOfRandomSpdSquaresBack() {
        double[][] x = gaussian(1, 50, 12, 0, 1);
        double[][] cov = Fid.stats(x).cov();
        double[][] s = Fid.sqrtPsd(cov), s2 = Fid.mul(s, s);
        for (int i = 0; i < 12; i++) for (int j = 0; j < 12; j++) assertEquals(cov[i][j], s2[i][j], 1e-9);
    }

    @Test
    void sameDistributionIsNearZeroAndShiftIsLarge() {
        double same = Fid.distance(Fid.stats(gaussian(1, 4000, 8, 0, 1)), Fid.stats(gaussian(2, 4000, 8, 0, 1)));
        double shifted = Fid.distance(Fid.stats(gaussian(1, 4000, 8, 0, 1)), Fid.stats(gaussian(3, 4000, 8, 1, 2)));
        assertTrue(same < 0.05, "same " + same);
        assertEquals(8 * 1 + 8 * (1 + 4 - 4), shifted, 0.5);
    }

    @Test
    void inceptionScoreBounds() {
        double[][] uniform = new double[100][10], confident = new double[100][10];
        for (int i = 0; i < 100; i++) { java.util.Arrays.fill(uniform[i], 0.1); confident[i][i % 10] = 1; }
        assertEquals(1.0, Fid.inceptionScore(uniform, 1)[0], 1e-9);
        assertEquals(10.0, Fid.inceptionScore(confident, 1)[0], 1e-9);
    }
}
