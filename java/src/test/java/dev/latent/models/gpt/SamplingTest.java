package dev.latent.models.gpt;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

class SamplingTest {
    /** The sampler's ranking equals a boxed comparator sort (descending, ties by id) on hard cases. */
    @Test
    void tokenOrderMatchesTheComparatorSort() {
        SplittableRandom r = new SplittableRandom(3);
        float[][] cases = {{0f, -0f, 0f, -0f}, {1, 1, 1}, {Float.NaN, 1, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -1, Float.NaN},
                {-88, 88, -3.4e38f, 3.4e38f, Float.MIN_VALUE, -Float.MIN_VALUE}, new float[0]};
        for (float[] c : cases) assertArrayEquals(reference(c), Sampling.order(c), Arrays.toString(c));
        for (int t = 0; t < 200; t++) {
            float[] l = new float[1 + r.nextInt(300)];
            for (int i = 0; i < l.length; i++) l[i] = r.nextInt(4) == 0 ? r.nextInt(5) - 2 : (float) r.nextGaussian() * 10;   // many ties
            assertArrayEquals(reference(l), Sampling.order(l));
        }
    }

    private static int[] reference(float[] logits) {
        Integer[] o = new Integer[logits.length];
        for (int i = 0; i < o.length; i++) o[i] = i;
        Arrays.sort(o, (x, y) -> Float.compare(logits[y], logits[x]) != 0 ? Float.compare(logits[y], logits[x]) : Integer.compare(x, y));
        return Arrays.stream(o).mapToInt(Integer::intValue).toArray();
    }
}
