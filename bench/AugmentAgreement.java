import dev.latent.data.ImageData;
import dev.latent.models.classifier.Classifier;
import dev.latent.tensor.Scope;

import java.nio.file.Path;

/**
 * Part of bench/augment_study.sh: how often a trained classifier (the study's real-only arm) assigns a conditional
 * model's generated images to the class they were asked for. A single-file program run on the library jars:
 *   java --enable-native-access=ALL-UNNAMED -cp java/target/latent-*.jar:java/target/latent-*-linux-x86_64.jar \
 *       bench/AugmentAgreement.java CLASSIFIER_DIR PREFIX      (reads PREFIX-K-idx3-ubyte, K = 0..9)
 * Prints one JSON object: the agreement per class and overall (chance 0.1).
 */
public class AugmentAgreement {
    public static void main(String[] a) throws Exception {
        if (a.length != 2) throw new IllegalArgumentException("usage: AugmentAgreement CLASSIFIER_DIR PREFIX");
        try (Scope s = Scope.shared()) {
            Classifier c = Classifier.load(Path.of(a[0]), s);
            StringBuilder per = new StringBuilder();
            long right = 0, n = 0;
            for (int k = 0; k < 10; k++) {
                ImageData x = ImageData.fromIdx(Path.of(a[1] + "-" + k + "-idx3-ubyte"), null);
                int[] lab = new int[x.n];
                java.util.Arrays.fill(lab, k);
                double acc = c.accuracy(new ImageData(x.n, x.h, x.w, x.pixels, lab, x.source));
                right += Math.round(acc * x.n);
                n += x.n;
                per.append(k == 0 ? "" : ",").append(String.format(java.util.Locale.ROOT, "%.3f", acc));
            }
            System.out.printf(java.util.Locale.ROOT, "{\"agreement\":%.4f,\"per_class\":[%s],\"images\":%d}%n", (double) right / n, per, n);
        }
    }
}
