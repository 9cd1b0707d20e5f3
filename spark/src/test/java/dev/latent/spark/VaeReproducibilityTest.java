package dev.latent.spark;

import dev.latent.data.ImageData;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The VAE: N = 1, 2, 4 Spark workers bit-identical to one process with N micro-batches; N = 1 to VaeTrainer. */
@Timeout(240)
class VaeReproducibilityTest {
    static JavaSparkContext sc;

    @BeforeAll
    static void start() {
        sc = new JavaSparkContext(new SparkConf().setMaster("local[4]").setAppName("latent-vae-test")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.latent.collective.host", "127.0.0.1"));
        sc.setLogLevel("WARN");
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    /** 64 synthetic 28 x 28 images: a bright disc at a random place and size, on noise. */
    static ImageData images() {
        int n = 64;
        byte[] px = new byte[n * 28 * 28];
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        for (int i = 0; i < n; i++) {
            int cx = r.nextInt(6, 22), cy = r.nextInt(6, 22), rad = r.nextInt(3, 7);
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++)
                    px[i * 784 + y * 28 + x] = (byte) ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= rad * rad ? 230 : r.nextInt(30));
        }
        return new ImageData(n, 28, 28, px, null, "synthetic");
    }

    @Test
    void nWorkersEqualOneProcessWithNMicroBatches() throws Exception {
        ImageData data = images();
        for (int n : new int[] {1, 2, 4}) {
            VaeDataParallel.Job job = new VaeDataParallel.Job(n, 4, 4, 1.0, 2, 1e-3f, 5, 3);
            List<GptDataParallel.Result> rs = SparkGpt.trainVae(sc, job, data);
            GptDataParallel.Result one = VaeDataParallel.reference(job, data);
            assertEquals(n, rs.size());
            assertTrue(Double.isFinite(one.loss()));
            for (GptDataParallel.Result r : rs)
                assertEquals(one.weightsSha256(), r.weightsSha256(), "VAE N=" + n + " rank " + r.rank() + " differs from the one-process reference");
        }
    }

    @Test
    void oneWorkerIsVaeTrainersStep(@TempDir Path tmp) throws Exception {
        ImageData data = images();
        VaeDataParallel.Job job = new VaeDataParallel.Job(1, 4, 4, 1.0, 2, 1e-3f, 5, 3);
        GptDataParallel.Result one = VaeDataParallel.reference(job, data);
        var cfg = new VaeTrainer.Config("unused", tmp, 4, 1.0, 1, 4, 1e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 2, 0, 5, 0, 1234, 0, 0, 1, true);
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(cfg, s);
            int[] perm = ImageData.permutation(data.n, 5, VaeDataParallel.PERM + 1);
            for (int k = 0; k < 3; k++) t.trainStep(data, perm, k * 4, 4);
            assertEquals(one.weightsSha256(), Gradients.hash(t.model.namedParameters()), "N=1 vs VaeTrainer.trainStep");
        }
    }
}
