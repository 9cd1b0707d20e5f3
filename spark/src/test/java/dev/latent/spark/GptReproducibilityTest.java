package dev.latent.spark;

import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
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

/**
 * N Spark barrier tasks (local[4], one JVM) with batch B per worker give bit-identical weights to one process
 * computing the N micro-batches of B and reducing them in rank order, for N = 1, 2, 4; with N = 1 both equal the
 * plain GptTrainer. Also: a worker that fails mid-run makes Spark retry the stage, which resumes from the last
 * checkpoint and ends with the uninterrupted run's weights.
 */
@Timeout(240)
class GptReproducibilityTest {
    static JavaSparkContext sc;
    static final String TEXT;
    static {
        StringBuilder s = new StringBuilder();
        String[] words = {"call", "me", "ishmael", "some", "years", "ago", "never", "mind", "how", "long", "precisely", "having",
                "little", "or", "no", "money", "in", "my", "purse", "and", "nothing", "particular", "to", "interest", "on", "shore"};
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        while (s.length() < 20_000) s.append(words[r.nextInt(words.length)]).append(r.nextInt(9) == 0 ? ".\n" : " ");
        TEXT = s.toString();
    }

    @BeforeAll
    static void start() {
        // local[4,2]: 4 slots (a barrier stage of 4 needs them all at once), and a failed task may be retried.
        sc = new JavaSparkContext(new SparkConf().setMaster("local[4,2]").setAppName("latent-test")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.latent.collective.host", "127.0.0.1"));
        sc.setLogLevel("WARN");
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    static GptDataParallel.Job job(int workers, int steps, int ckpt, Path out, Tokenizer tok) {
        return new GptDataParallel.Job(workers, 2, 2, 2, 32, 16, false, tok.toJson(), steps, 1e-2, 1e-3, 2, 0.1, 1.0, 1, ckpt,
                42, out.toString(), false, null);
    }

    static String checkpointHash(Path dir) throws Exception {
        try (Scope s = Scope.shared()) {
            return Gradients.hash(GptCheckpoint.load(dir, s).model().namedParameters());
        }
    }

    @Test
    void nWorkersEqualOneProcessWithNMicroBatches(@TempDir Path tmp) throws Exception {
        Tokenizer tok = CharTokenizer.train(TEXT);
        int[] tokens = tok.encode(TEXT);
        String init;
        try (Scope s = Scope.shared()) {
            init = Gradients.hash(new Gpt(s, new GptConfig(tok.vocabSize(), 2, 2, 32, 16, false), 42).namedParameters());
        }
        for (int n : new int[] {1, 2, 4}) {
            Path dist = tmp.resolve("spark-" + n), ref = tmp.resolve("ref-" + n);
            List<GptDataParallel.Result> rs = SparkGpt.train(sc, job(n, 5, 0, dist, tok), tokens);
            GptDataParallel.Result one = GptDataParallel.reference(job(n, 5, 0, ref, tok), tokens, false, Long.MAX_VALUE);
            assertEquals(n, rs.size());
            assertNotEquals(init, one.weightsSha256(), "training changed nothing");
            for (GptDataParallel.Result r : rs) {
                assertEquals(5, r.step());
                assertEquals(one.weightsSha256(), r.weightsSha256(), "N=" + n + " rank " + r.rank() + " differs from the one-process reference");
                assertEquals(one.loss(), r.loss(), 0.0, "N=" + n + " rank " + r.rank() + " loss");
            }
            assertEquals(one.weightsSha256(), checkpointHash(dist), "N=" + n + ": rank 0's checkpoint");
            assertEquals(one.weightsSha256(), checkpointHash(ref));
            if (n > 1) {
                // the volume each rank sent: 2 (N-1)/N of (parameters + the loss) floats per step
                long floats = new Gpt(Scope.shared(), new GptConfig(tok.vocabSize(), 2, 2, 32, 16, false), 42).parameterCount() + 1;
                for (GptDataParallel.Result r : rs)
                    assertEquals(5 * 2.0 * (n - 1) / n * floats * 4, r.bytesSent(), 5 * 8.0 * n, "rank " + r.rank() + " bytes sent");
            }
        }
        // N = 1 is exactly the core's trainer (batch B)
        Path plain = tmp.resolve("plain");
        try (Scope s = Scope.shared()) {
            Gpt g = new Gpt(s, new GptConfig(tok.vocabSize(), 2, 2, 32, 16, false), 42);
            var o = new GptTrainer.Options(2, 5, 1e-2, 1e-3, 2, 0.1, 1.0, 1000, 1, 1234, 1, 0, 42);
            GptTrainer.train(g, tok, new TextData(tokens), o, plain, false, s);
        }
        assertEquals(checkpointHash(tmp.resolve("spark-1")), checkpointHash(plain), "N=1 through Spark vs the plain GptTrainer");
    }

    @Test
    void aFailedWorkerIsRetriedFromTheLastCheckpoint(@TempDir Path tmp) throws Exception {
        Tokenizer tok = CharTokenizer.train(TEXT);
        int[] tokens = tok.encode(TEXT);
        Path faulty = tmp.resolve("faulty"), clean = tmp.resolve("clean");
        // rank 1 dies at step 5 of 8 in the first attempt; the checkpoint of step 4 survives; the retry resumes there
        List<GptDataParallel.Result> rs = SparkGpt.train(sc, job(2, 8, 2, faulty, tok), tokens, new SparkGpt.Fault(1, 5, false));
        GptDataParallel.Result ref = GptDataParallel.reference(job(2, 8, 2, clean, tok), tokens, false, Long.MAX_VALUE);
        for (GptDataParallel.Result r : rs) {
            assertEquals(8, r.step());
            assertEquals(ref.weightsSha256(), r.weightsSha256(), "rank " + r.rank() + " after the retry");
        }
        assertEquals(ref.weightsSha256(), checkpointHash(faulty));
    }
}
