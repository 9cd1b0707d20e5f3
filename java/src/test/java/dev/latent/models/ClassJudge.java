package dev.latent.models;

import dev.latent.data.Idx;
import dev.latent.data.ImageData;
import dev.latent.models.classifier.Classifier;
import dev.latent.tensor.Scope;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The judge of the class-conditional tests: {@link Classifier} trained in the test on the labelled synthetic set
 * (10 classes: a bright bar at column 2 + 2k), then asked which class each generated image shows. Agreement with the
 * requested class is the fraction of generated images it classifies as that class (chance: 0.1).
 */
public final class ClassJudge {
    public final Classifier net;
    public final double testAccuracy;

    public ClassJudge(Scope scope, Path data, Path dir) throws IOException {
        ImageData train = ImageData.load(data.toString(), "train"), test = ImageData.load(data.toString(), "test");
        net = new Classifier(scope, 10, 7);
        testAccuracy = net.train(train, test, Files.createDirectories(dir), 3, 32, 2e-3f, 7, true).testAccuracy();
    }

    /** Fraction of the IDX3 images in {@code file} the classifier assigns to {@code label[i]}. */
    public double agreement(Path file, int[] label) throws IOException {
        ImageData x = ImageData.fromIdx(file, null);
        if (x.n != label.length) throw new IllegalArgumentException(file + ": " + x.n + " images for " + label.length + " labels");
        return net.accuracy(new ImageData(x.n, x.h, x.w, x.pixels, label, file.toString()));
    }

    /** n copies of k. */
    public static int[] all(int n, int k) {
        int[] l = new int[n];
        java.util.Arrays.fill(l, k);
        return l;
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
