package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.spark.collective.Nccl;
import dev.latent.tensor.Tensor;
import dev.latent.spark.collective.RankOrder;
import dev.latent.spark.collective.TcpAllReduce;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.ToDoubleFunction;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The data-parallel step shared by every family: for each micro-batch this process computes (one on a worker,
 * all N in the single-process reference) a graph's loss and backward, gradients (+ the loss) copied into a flat
 * buffer; the buffers are reduced in rank order with scale 1/N (across ranks by {@link TcpAllReduce}, or here by
 * {@link RankOrder}); the result is written back into the last graph's gradients and the optimizer step runs
 * while that graph is open. Returns the reduced (mean) loss.
 */
final class MicroBatches {
    /** Reduces this process's micro-batch buffers into one (returned); scale is 1/N. */
    interface Reducer {
        MemorySegment reduce(MemorySegment[] parts, float scale) throws IOException;
    }

    interface Backward {
        /** Builds micro-batch {@code microRank}'s loss in the open graph, runs backward, returns the loss value. */
        float lossAndBackward(Graph g, int microRank);
    }

    static Reducer over(TcpAllReduce c) {
        return (parts, scale) -> {
            c.allReduce(parts, scale);   // this rank's micro-batches, in order (contributions rank * k .. rank * k + k - 1)
            return parts[0];
        };
    }

    static Reducer local() {
        return (parts, scale) -> {
            RankOrder.sum(parts, parts[0].byteSize() / 4, scale, parts[0]);
            return parts[0];
        };
    }

    /** Rank {@code rank}'s micro-batches when {@code m} are split over {@code workers}: [rank m/w, (rank + 1) m/w). */
    static int[] of(int rank, int workers, int m) {
        if (workers < 1 || m < 1 || m % workers != 0)
            throw new IllegalArgumentException(m + " micro-batches per step cannot be split evenly over " + workers + " workers");
        int k = m / workers;
        int[] a = new int[k];
        for (int i = 0; i < k; i++) a[i] = rank * k + i;
        return a;
    }

    static int[] all(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        return a;
    }

    /**
     * One step of a worker with one micro-batch, its gradients all-reduced in buckets while its backward runs
     * ({@link OverlappedReduce}); the same bits as {@link #step} over {@link #over} (GptOverlapTest).
     */
    static double[] stepOverlapped(OverlappedReduce o, int microRank, int n, Backward bw, ToDoubleFunction<Void> update)
            throws IOException {
        try (Graph g = Graph.open()) {
            float loss;
            o.begin(g, 1f / n);
            try {
                loss = bw.lossAndBackward(g, microRank);
            } catch (RuntimeException | Error e) {
                o.abort();
                throw e;
            }
            float mean = o.finish(loss);
            double r = update.applyAsDouble(null);
            return new double[] {mean, r};
        }
    }

    /**
     * One step of a CUDA worker whose all-reduce is NCCL's, all on the device: the gradients (+ the loss) gathered into
     * {@code flat} (device to device, {@link Gradients}' layout), summed over the ranks in place by
     * {@code ncclAllReduce}, scaled by 1/N in one float multiplication per element ({@code F.scale}: the same
     * operation {@link RankOrder#sum} ends with), written back into the gradients; one 4-byte copy reads the mean
     * loss. {@code time} accumulates the all-reduce's nanoseconds and calls.
     */
    static double[] stepNccl(Gradients grads, Tensor flat, Nccl.Comm comm, int microRank, int n, Backward bw,
                             ToDoubleFunction<Void> update, long[] time) throws IOException {
        try (Graph g = Graph.open(); Arena a = Arena.ofConfined()) {
            float loss = bw.lossAndBackward(g, microRank);
            grads.gatherDevice(flat.deviceBuffer());
            MemorySegment one = a.allocate(JAVA_FLOAT);
            one.set(JAVA_FLOAT, 0, loss);
            flat.deviceBuffer().slice(grads.numel * 4, 4).copyFrom(one);
            long t0 = System.nanoTime();
            comm.allReduceSum(flat.deviceBuffer().address(), grads.floats());
            if (time != null) {
                time[0] += System.nanoTime() - t0;
                time[1]++;
            }
            Tensor red = F.scale(Var.constant(flat), 1f / n).value();
            grads.scatterDevice(red.deviceBuffer());
            red.deviceBuffer().slice(grads.numel * 4, 4).copyTo(one);
            double r = update.applyAsDouble(null);
            return new double[] {one.get(JAVA_FLOAT, 0), r};
        }
    }

    /** One step; {@code update} runs the optimizer (gradients in place) and returns e.g. the gradient norm. */
    static double[] step(Gradients grads, MemorySegment[] parts, int[] micro, int n, Reducer reducer, Backward bw,
                         ToDoubleFunction<Void> update) throws IOException {
        for (int i = 0; i < micro.length; i++) {
            Graph g = Graph.open();
            try {
                float loss = bw.lossAndBackward(g, micro[i]);
                grads.gather(parts[i]);
                parts[i].setAtIndex(JAVA_FLOAT, grads.numel, loss);
                if (i == micro.length - 1) {
                    MemorySegment red = reducer.reduce(parts, 1f / n);
                    grads.scatter(red);
                    double r = update.applyAsDouble(null);
                    return new double[] {red.getAtIndex(JAVA_FLOAT, grads.numel), r};
                }
            } finally {
                g.close();
            }
        }
        throw new IllegalArgumentException("no micro-batches");
    }
}
