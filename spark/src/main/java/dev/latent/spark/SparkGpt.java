package dev.latent.spark;

import dev.latent.data.ImageData;
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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Runs data-parallel training as one Spark barrier stage: {@code workers} tasks started together (Spark's gang
 * scheduling), each a rank; they meet through {@link BarrierTaskContext#allGather}, open a {@link TcpAllReduce},
 * and train ({@link GptDataParallel}, {@link VaeDataParallel}). The data reaches the executors as a broadcast
 * variable. If a task fails, Spark fails the barrier stage and retries it whole; a retried attempt resumes every
 * rank from the last checkpoint in the job's output folder (which must be storage every executor sees: a shared
 * or network file system on a cluster; any local folder in local mode).
 */
public final class SparkGpt {
    private SparkGpt() {}

    /** For tests: makes rank {@code rank} fail at step {@code step} in the stage's first attempt. */
    public record Fault(int rank, long step, boolean killJvm) implements Serializable {}

    /** What one barrier task runs, given its connected collective and whether this is a retried attempt. */
    @FunctionalInterface
    public interface Worker extends Serializable {
        GptDataParallel.Result run(TcpAllReduce c, boolean retry) throws IOException;
    }

    public static List<GptDataParallel.Result> train(JavaSparkContext sc, GptDataParallel.Job job, int[] tokens) {
        return train(sc, job, tokens, null);
    }

    public static List<GptDataParallel.Result> train(JavaSparkContext sc, GptDataParallel.Job job, int[] tokens, Fault fault) {
        Broadcast<int[]> corpus = sc.broadcast(tokens);
        try {
            return run(sc, job.workers(), (c, retry) -> {
                long stopAt = fault != null && !retry && fault.rank() == c.rank() ? fault.step() : Long.MAX_VALUE;
                // the barrier context is the rendezvous of the NCCL unique id too (CUDA workers), as of the TCP addresses
                GptDataParallel.Result r = GptDataParallel.worker(job, corpus.value(), c, new BarrierRendezvous(BarrierTaskContext.get(), ""),
                        job.resume() || retry, stopAt);
                if (stopAt != Long.MAX_VALUE) {
                    if (fault.killJvm()) Runtime.getRuntime().halt(137);
                    throw new IllegalStateException("injected fault: rank " + c.rank() + " dies at step " + fault.step());
                }
                return r;
            });
        } finally {
            corpus.destroy();
        }
    }

    /** Images as a broadcast-able value (ImageData itself is not Serializable). */
    record Images(int n, int h, int w, byte[] pixels) implements Serializable {
        ImageData data() { return new ImageData(n, h, w, pixels, null, "broadcast"); }
    }

    public static List<GptDataParallel.Result> trainVae(JavaSparkContext sc, VaeDataParallel.Job job, ImageData data) {
        Broadcast<Images> images = sc.broadcast(new Images(data.n, data.h, data.w, data.pixels));
        try {
            return run(sc, job.workers(), (c, retry) -> VaeDataParallel.worker(job, images.value().data(), c));
        } finally {
            images.destroy();
        }
    }

    /** Runs {@code worker} on {@code n} barrier tasks; returns their results by rank. */
    public static List<GptDataParallel.Result> run(JavaSparkContext sc, int n, Worker worker) {
        String host = sc.getConf().get("spark.latent.collective.host", "");
        RDD<Integer> ranks = sc.parallelize(IntStream.range(0, n).boxed().toList(), n).rdd();
        Function1<Iterator<Integer>, Iterator<GptDataParallel.Result>> body =
                (Function1<Iterator<Integer>, Iterator<GptDataParallel.Result>> & Serializable) it -> task(worker, host);
        // The shuffle after the barrier stage makes it a ShuffleMapStage: Spark retries a failed barrier
        // ShuffleMapStage whole (up to spark.stage.maxConsecutiveAttempts), but never a barrier ResultStage.
        Object collected = ranks.barrier().mapPartitions(body, false, ClassTag$.MODULE$.apply(GptDataParallel.Result.class))
                .repartition(1, null).collect();
        List<GptDataParallel.Result> out = new ArrayList<>(Arrays.asList((GptDataParallel.Result[]) collected));
        out.sort(Comparator.comparingInt(GptDataParallel.Result::rank));
        return out;
    }

    private static Iterator<GptDataParallel.Result> task(Worker worker, String host) {
        BarrierTaskContext ctx = BarrierTaskContext.get();
        boolean retry = ctx.stageAttemptNumber() > 0;
        try (TcpAllReduce c = TcpAllReduce.connect(new BarrierRendezvous(ctx, host), TcpAllReduce.DEFAULT_BUCKET_BYTES, TcpAllReduce.DEFAULT_TIMEOUT)) {
            return CollectionConverters.asScala(List.of(worker.run(c, retry)).iterator());
        } catch (IOException e) {
            throw new UncheckedIOException("rank " + ctx.partitionId() + ": " + e.getMessage(), e);
        }
    }
}
