package dev.latent.spark;

import dev.latent.data.ImageData;
import dev.latent.spark.collective.TcpAllReduce;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

import java.io.IOException;
import java.io.Serializable;
import java.util.List;

/**
 * The Spark wiring {@link GanDataParallel} and {@link FlowDataParallel} share: the images broadcast once, one barrier
 * task per worker (its native thread count set, a test's injected fault applied, a retried attempt resuming from the
 * checkpoint), and a worker's run over its share of the micro-batches, or the single-process reference over all.
 */
final class ImageWorkers {
    private ImageWorkers() {}

    /** One rank's run over {@code data} (a worker of the group {@code c}), resuming when asked, stopping after {@code stopAt}. */
    @FunctionalInterface
    interface Worker extends Serializable {
        GptDataParallel.Result run(ImageData data, TcpAllReduce c, boolean resume, long stopAt) throws IOException;
    }

    /** A run over the micro-batches {@code micro}, reduced by {@code reducer}. */
    @FunctionalInterface
    interface Run {
        GptDataParallel.Result run(int rank, int[] micro, MicroBatches.Reducer reducer) throws IOException;
    }

    /**
     * Trains on {@code workers} Spark barrier tasks; {@code fault} (tests) makes one rank fail once after
     * {@code fault.step()} (named {@code unit}s in the message); {@code threads} native threads per worker JVM
     * (null: all cores).
     */
    static List<GptDataParallel.Result> train(JavaSparkContext sc, int workers, boolean resume, ImageData data, SparkGpt.Fault fault,
                                              Integer threads, String unit, Worker worker) {
        Broadcast<SparkGpt.Images> images = sc.broadcast(new SparkGpt.Images(data.n, data.h, data.w, data.pixels));
        try {
            return SparkGpt.run(sc, workers, (c, retry) -> {
                if (threads != null) dev.latent.Latent.setThreads(threads);
                long stopAt = fault != null && !retry && fault.rank() == c.rank() ? fault.step() : Long.MAX_VALUE;
                GptDataParallel.Result r = worker.run(images.value().data(), c, resume || retry, stopAt);
                if (stopAt != Long.MAX_VALUE) throw new IllegalStateException("injected fault: rank " + c.rank() + " dies at " + unit + " " + fault.step());
                return r;
            });
        } finally {
            images.destroy();
        }
    }

    /** Rank c.rank() of {@code workers}: its share of {@code micro} micro-batches, all-reduced over {@code c}; the result counts c's bytes sent. */
    static GptDataParallel.Result worker(int workers, int micro, TcpAllReduce c, Run run) throws IOException {
        if (c.size() != workers) throw new IllegalArgumentException("job has " + workers + " workers, the group " + c.size());
        GptDataParallel.Result r = run.run(c.rank(), MicroBatches.of(c.rank(), workers, micro), MicroBatches.over(c));
        return new GptDataParallel.Result(r.rank(), r.step(), r.loss(), r.weightsSha256(), c.bytesSent(), r.stepSeconds());
    }

    /** One process computing all {@code micro} micro-batches (the reference the workers equal). */
    static GptDataParallel.Result reference(int micro, Run run) throws IOException {
        return run.run(0, MicroBatches.all(micro), MicroBatches.local());
    }
}
