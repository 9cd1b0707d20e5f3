package dev.latent.models;

import dev.latent.data.Idx;
import dev.latent.data.ImageData;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The judge of the class-conditional tests: a nearest-class-mean classifier trained in the test on the labelled
 * synthetic set (10 classes: a bright bar at column 2 + 2k over faint noise), asked which class each generated image
 * shows (the class whose mean image is nearest in Euclidean distance over the pixels). Agreement with the requested
 * class is the fraction of generated images it assigns to that class (chance: 0.1). Pixels only, no network: it costs
 * nothing at any ISA level, and it cannot share a blind spot with the conv models it judges.
 */
public final class ClassJudge {
    final double[][] means;
    public final double testAccuracy;

    public ClassJudge(Path data) throws IOException {
        ImageData train = ImageData.load(data.toString(), "train"), test = ImageData.load(data.toString(), "test");
        int size = train.h * train.w;
        means = new double[10][size];
        int[] count = new int[10];
        for (int i = 0; i < train.n; i++) {
            count[train.labels[i]]++;
            for (int j = 0; j < size; j++) means[train.labels[i]][j] += train.pixels[i * size + j] & 0xff;
        }
        for (int c = 0; c < 10; c++)
            for (int j = 0; j < size; j++) means[c][j] /= Math.max(1, count[c]);
        testAccuracy = accuracy(test.pixels, test.labels);
    }

    /** The class of image i of {@code px} (28 x 28 bytes each). */
    public int classify(byte[] px, int i) {
        int size = means[0].length, best = 0;
        double bestD = Double.MAX_VALUE;
        for (int c = 0; c < 10; c++) {
            double d = 0;
            for (int j = 0; j < size; j++) {
                double e = (px[i * size + j] & 0xff) - means[c][j];
                d += e * e;
            }
            if (d < bestD) { bestD = d; best = c; }
        }
        return best;
    }

    double accuracy(byte[] px, int[] label) {
        int right = 0;
        for (int i = 0; i < label.length; i++) if (classify(px, i) == label[i]) right++;
        return (double) right / label.length;
    }

    /** Fraction of the IDX3 images in {@code file} the judge assigns to {@code label[i]}. */
    public double agreement(Path file, int[] label) throws IOException {
        Idx x = Idx.read(file);
        if (x.dims()[0] != label.length) throw new IllegalArgumentException(file + ": " + x.dims()[0] + " images for " + label.length + " labels");
        return accuracy(x.u8(), label);
    }

    /** Concatenates IDX3 files of 28 x 28 images into one (for a single judgement over several classes). */
    public static Path concat(Path out, Path... files) throws IOException {
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        int n = 0;
        for (Path f : files) {
            Idx i = Idx.read(f);
            b.write(i.u8());
            n += i.dims()[0];
        }
        Idx.writeU8(out, b.toByteArray(), n, 28, 28);
        return out;
    }

    /** Writes {@code n} IDX3 samples of class {@code cls} to {@code file} (a conditional model's writeSamples). */
    @FunctionalInterface
    public interface Sampler {
        void write(Path file, int n, int cls) throws IOException;
    }

    /**
     * The class-conditional check: after the judge shows it knows the classes (test accuracy above 0.9),
     * {@code perClass} samples of each class K (files in {@code dir}) must be judged class K far above chance
     * (agreement above 0.8) and not as another class, K + 3 mod 10 (agreement below 0.2).
     */
    public void assertSamplesJudgedAsAsked(Path dir, int perClass, Sampler sampler) throws IOException {
        assertTrue(testAccuracy > 0.9, "the judge must know the classes first: " + testAccuracy);
        Path[] files = new Path[10];
        int[] asked = new int[10 * perClass], wrong = new int[10 * perClass];
        for (int k = 0; k < 10; k++) {
            files[k] = dir.resolve("class-" + k + "-idx3-ubyte");
            sampler.write(files[k], perClass, k);
            for (int i = 0; i < perClass; i++) { asked[perClass * k + i] = k; wrong[perClass * k + i] = (k + 3) % 10; }
        }
        Path all = concat(dir.resolve("all-idx3-ubyte"), files);
        double hit = agreement(all, asked), miss = agreement(all, wrong);
        System.out.printf("class agreement: asked %.3f, a wrong class %.3f (judge test accuracy %.3f)%n", hit, miss, testAccuracy);
        assertTrue(hit > 0.8, "samples of class K must be judged class K far above chance (0.1): " + hit);
        assertTrue(miss < 0.2, "and not as another class: " + miss);
    }
}
