package dev.latent;

import dev.latent.data.Idx;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;

/** A small labelled 28 x 28 image set written as IDX files, so model tests need no download. */
public final class SyntheticImages {
    private SyntheticImages() {}

    /** Class k: a bright vertical bar at column 2 + 2k over faint noise; files {stem}-images/labels-idx?-ubyte. */
    public static void write(Path folder, String stem, int n, long seed) throws IOException {
        Random r = new Random(seed);
        byte[] px = new byte[n * 784], lab = new byte[n];
        for (int i = 0; i < n; i++) {
            int k = i % 10;
            lab[i] = (byte) k;
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    int v = r.nextInt(30);
                    if (x >= 2 + 2 * k && x < 4 + 2 * k && y > 3 + (k % 3) && y < 24) v = 200 + r.nextInt(55);
                    px[i * 784 + y * 28 + x] = (byte) v;
                }
        }
        Idx.writeU8(folder.resolve(stem + "-images-idx3-ubyte"), px, n, 28, 28);
        Idx.writeU8(folder.resolve(stem + "-labels-idx1-ubyte"), lab, n);
    }
}
