package example.spark;

import dev.latent.models.gpt.GptSampler;
import dev.latent.spark.GptDataParallel;
import dev.latent.spark.SparkGenerate;
import dev.latent.spark.SparkGpt;
import dev.latent.text.CharTokenizer;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Trains a small character GPT on a text file with two data-parallel Spark workers (local[2]: one JVM here; on a
 * cluster, one executor per worker), then samples four continuations as a Spark Dataset from the checkpoint.
 * Usage: TrainAndSample CORPUS.txt OUT_DIR
 */
public final class TrainAndSample {
    public static void main(String[] args) throws Exception {
        Path corpus = Path.of(args[0]), out = Path.of(args[1]);
        String text = Files.readString(corpus);
        CharTokenizer tok = CharTokenizer.train(text);
        SparkSession spark = SparkSession.builder().master("local[2]").appName("latent-example")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1").config("spark.latent.collective.host", "127.0.0.1")
                .getOrCreate();
        try {
            JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            // 2 workers x batch 4, a 2-layer GPT (2 heads, dim 64, context 64), 40 steps, AdamW lr 3e-3 -> 3e-4,
            // warm-up 5, weight decay 0.1, clip 1.0, log every 10, checkpoint every 20, seed 1, 1 native thread each
            GptDataParallel.Job job = new GptDataParallel.Job(2, 4, 2, 2, 64, 64, false, tok.toJson(), 40, 3e-3, 3e-4, 5, 0.1, 1.0,
                    10, 20, 1, out.toString(), false, 1);
            List<GptDataParallel.Result> ranks = SparkGpt.train(sc, job, tok.encode(text));
            for (GptDataParallel.Result r : ranks)
                System.out.printf("rank %d: step %d, loss %.4f, weights %s%n", r.rank(), r.step(), r.loss(), r.weightsSha256().substring(0, 16));
            if (!ranks.stream().allMatch(r -> r.weightsSha256().equals(ranks.get(0).weightsSha256())))
                throw new IllegalStateException("the replicas disagree");

            Dataset<Row> samples = SparkGenerate.gptSamples(SparkGenerate.prompts(spark, "The ", 4, 2), out.toString(),
                    new GptSampler.Settings(60, 0.8, 0, 1.0, 7));
            for (Row r : samples.orderBy("id").collectAsList())
                System.out.println("sample " + r.getLong(0) + ": " + (r.getString(1) + r.getString(2)).replace('\n', ' '));
        } finally {
            spark.stop();
        }
    }
}
