package dev.latent.data;

import org.junit.jupiter.api.Test;

import java.io.IOException;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The real dataset, as Debian's dataset-fashion-mnist installs it (ci/test.sh installs the package when missing):
 * both splits load with their labels and the standard sizes. Fails, naming the package, when it is absent.
 */
class FashionMnistTest {
    @Test
    void bothSplitsLoadWithLabels() throws IOException {
        ImageData train = ImageData.load("fashion-mnist", "train"), test = ImageData.load("fashion-mnist", "test");
        assertEquals(60000, train.n);
        assertEquals(10000, test.n);
        assertEquals(28, train.h);
        assertEquals(28, train.w);
        int[] hist = new int[10];
        for (int l : train.labels) hist[l]++;
        for (int c : hist) assertEquals(6000, c, "Fashion-MNIST's train split has 6,000 images per class");
        long sum = 0;
        for (byte b : test.pixels) sum += b & 0xff;
        double mean = sum / (double) test.pixels.length;
        assertTrue(mean > 60 && mean < 80, "mean pixel of the test split ~72.9, got " + mean);
    }
}
