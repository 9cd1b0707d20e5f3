package dev.latent.models;

import dev.latent.data.Idx;
import dev.latent.data.ImageData;

import java.io.IOException;
import java.nio.file.Path;

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
}
