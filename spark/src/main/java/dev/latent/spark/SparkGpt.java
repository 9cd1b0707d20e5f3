package dev.latent.spark;

import dev.latent.spark.collective.TcpAllReduce;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.rdd.RDD;
import scala.Function1;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Runs {@link GptDataParallel} as one Spark barrier stage: {@code job.workers()} tasks started together (Spark's
 * gang scheduling), each a rank; they meet through {@link BarrierTaskContext#allGather}, open a
 * {@link TcpAllReduce}, and train. The tokenized corpus reaches the executors as a broadcast variable. If a task
 * fails, Spark fails the barrier stage and retries it whole; a retried attempt resumes every rank from the last
 * checkpoint in {@code job.out()} (which must be storage every executor sees: a shared or network file system on a
 * cluster; any local folder in local mode).
 */
public final class SparkGpt {
    private SparkGpt() {}

    /** For tests: makes rank {@code rank} fail at step {@code step} in the stage's first attempt. */
    public record Fault(int rank, long step, boolean killJvm) implements Serializable {}

    public static List<GptDataParallel.Result> train(JavaSparkContext sc, GptDataParallel.Job job, int[] tokens) {
        return train(sc, job, tokens, null);
    }

    public static List<GptDataParallel.Result> train(JavaSparkContext sc, GptDataParallel.Job job, int[] tokens, Fault fault) {
        Broadcast<int[]> corpus = sc.broadcast(tokens);
        String host = sc.getConf().get("spark.latent.collective.host", "");
        try {
            RDD<Integer> ranks = sc.parallelize(IntStream.range(0, job.workers()).boxed().toList(), job.workers()).rdd();
            Function1<Iterator<Integer>, Iterator<GptDataParallel.Result>> body =
                    (Function1<Iterator<Integer>, Iterator<GptDataParallel.Result>> & Serializable) it -> task(job, corpus, host, fault);
            // The shuffle after the barrier stage makes it a ShuffleMapStage: Spark retries a failed barrier
            // ShuffleMapStage whole (up to spark.stage.maxConsecutiveAttempts), but never a barrier ResultStage.
            Object collected = ranks.barrier().mapPartitions(body, false, ClassTag$.MODULE$.apply(GptDataParallel.Result.class))
                    .repartition(1, null).collect();
            List<GptDataParallel.Result> out = new ArrayList<>(Arrays.asList((GptDataParallel.Result[]) collected));
            out.sort(Comparator.comparingInt(GptDataParallel.Result::rank));
            return out;
        } finally {
            corpus.destroy();
        }
    }

    private static Iterator<GptDataParallel.Result> task(GptDataParallel.Job job, Broadcast<int[]> corpus, String host, Fault fault) {
        BarrierTaskContext ctx = BarrierTaskContext.get();
        boolean retry = ctx.stageAttemptNumber() > 0;
        try (TcpAllReduce c = TcpAllReduce.connect(new BarrierRendezvous(ctx, host), TcpAllReduce.DEFAULT_BUCKET_BYTES, TcpAllReduce.DEFAULT_TIMEOUT)) {
            long stopAt = Long.MAX_VALUE;
            if (fault != null && !retry && fault.rank() == c.rank()) stopAt = fault.step();
            GptDataParallel.Result r = GptDataParallel.worker(job, corpus.value(), c, job.resume() || retry, stopAt);
            if (stopAt != Long.MAX_VALUE) {
                if (fault.killJvm()) Runtime.getRuntime().halt(137);
                throw new IllegalStateException("injected fault: rank " + c.rank() + " dies at step " + fault.step());
            }
            return CollectionConverters.asScala(List.of(r).iterator());
        } catch (IOException e) {
            throw new UncheckedIOException("rank " + ctx.partitionId() + ": " + e.getMessage(), e);
        }
    }
}
