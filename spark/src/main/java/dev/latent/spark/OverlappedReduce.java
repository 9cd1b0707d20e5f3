package dev.latent.spark;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The all-reduce of one rank's gradients in buckets that overlap the backward pass.
 * <p><b>Buckets.</b> The gradients are laid out as {@link Gradients} lays them out (parameters in the model's named
 * order, no gaps), in a staging buffer this class owns; a bucket is a contiguous run of whole parameters of about
 * {@code bucketBytes} (a parameter larger than that is a bucket of its own). The loss (one float) is a last bucket
 * of its own, sent after the backward.
 * <p><b>Overlap.</b> The backward reports each parameter as soon as its gradient is final ({@link
 * Graph#onGradientReady}); the listener, on the backward's thread, copies that gradient into its place in the
 * staging buffer and, when it completes a bucket, hands the bucket to this rank's communication thread, which
 * all-reduces it ({@link TcpAllReduce}, tagged with the bucket's index) while the backward goes on with earlier
 * layers. Buckets are sent in the order they complete: the backward's order, the same on every rank (the same model,
 * so the same tape), and the tag makes any difference fail loudly instead of summing the wrong ranges. The named
 * order puts the last layers at the end, so the last buckets complete first.
 * <p><b>Bits.</b> Every element is reduced by {@link dev.latent.spark.collective.RankOrder} at its owner, in rank
 * order with one scale, whatever bucket it is in and whenever that bucket is sent: the result is bit-identical to the
 * all-reduce after the backward (GptOverlapTest checks it). After the backward the caller waits for every bucket
 * ({@link #finish}), then the staging buffer is copied back into the gradients the optimizer reads, as before.
 * <p>One rank, one micro-batch per step (the workers' case; the single-process reference keeps the plain path).
 */
final class OverlappedReduce implements AutoCloseable {
    /** Default bucket size: about one transformer block of E1 (6x6x384) per bucket. */
    static final long DEFAULT_BUCKET_BYTES = 4L << 20;

    private final TcpAllReduce c;
    private final Gradients grads;
    private final Map<Var, Integer> index = new IdentityHashMap<>();
    private final long[] offset;           // per parameter, floats into the staging buffer
    private final int[] bucketOf;          // per parameter
    private final long[][] buckets;        // [from, to) floats
    private final int[] size, pending;     // parameters per bucket; not yet final this step
    private final Arena arena = Arena.ofShared();
    private final MemorySegment staging, loss;
    private final ExecutorService comm;
    private final List<Future<?>> inFlight = new ArrayList<>();
    private volatile boolean failed;
    private final java.util.concurrent.atomic.AtomicLong commNanos = new java.util.concurrent.atomic.AtomicLong();
    private long waitNanos;
    private int steps;
    private float scale;
    private int remaining, sentEarly;
    private final List<Integer> sentOrder = new ArrayList<>();

    OverlappedReduce(TcpAllReduce c, Gradients grads, long bucketBytes) {
        if (bucketBytes < 4) throw new IllegalArgumentException("bucket of " + bucketBytes + " bytes: at least one float");
        this.c = c;
        this.grads = grads;
        int n = grads.params.size();
        offset = new long[n];
        bucketOf = new int[n];
        List<long[]> bs = new ArrayList<>();
        long at = 0, from = 0;
        for (int i = 0; i < n; i++) {
            Var p = grads.params.get(i);
            if (index.put(p, i) != null) throw new IllegalArgumentException("parameter " + grads.names.get(i) + " is listed twice");
            offset[i] = at;
            at += p.value().numel();
            bucketOf[i] = bs.size();
            if ((at - from) * 4 >= bucketBytes || i == n - 1) {
                bs.add(new long[] {from, at});
                from = at;
            }
        }
        buckets = bs.toArray(new long[0][]);
        size = new int[buckets.length];
        pending = new int[buckets.length];
        for (int b : bucketOf) size[b]++;
        staging = arena.allocate(Math.max(4, at * 4), 64);
        loss = arena.allocate(4, 64);
        int rank = c.rank();
        comm = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "latent-allreduce-rank-" + rank);
            t.setDaemon(true);
            return t;
        });
    }

    /** Number of gradient buckets (the loss's not counted). */
    int buckets() { return buckets.length; }

    /**
     * Buckets of the last step handed to the communication thread while some parameter's gradient was still being
     * computed (all but the last when the overlap works: each was reduced while the backward went on).
     */
    int sentEarly() { return sentEarly; }

    /** Steps finished. */
    int steps() { return steps; }

    /** Nanoseconds the communication thread spent in all-reduce calls, all steps so far. */
    long commNanos() { return commNanos.get(); }

    /** Nanoseconds the caller waited for the all-reduce after its backward, all steps so far (the exposed part). */
    long waitNanos() { return waitNanos; }

    /** The buckets' indices in the order the last step sent them (the loss's last). */
    List<Integer> sentOrder() { return List.copyOf(sentOrder); }

    /** Starts a step: the graph's backward will report its gradients here; the reduction scales by {@code scale}. */
    void begin(Graph g, float scale) throws IOException {
        if (failed) throw new IOException("rank " + c.rank() + ": an earlier all-reduce failed; the collective is unusable");
        if (!inFlight.isEmpty()) throw new IllegalStateException("begin: the previous step was not finished");
        this.scale = scale;
        System.arraycopy(size, 0, pending, 0, size.length);
        remaining = bucketOf.length;
        sentEarly = 0;
        sentOrder.clear();
        g.onGradientReady(this::ready);
    }

    /** The backward's listener: copies a final gradient into the staging buffer, sends a completed bucket. */
    private void ready(Var p) {
        Integer i = index.get(p);
        if (i == null) return;   // an input leaf, not one of the parameters
        Tensor t = p.grad().value();
        if (!t.isContiguous())
            throw new IllegalStateException("gradient of " + grads.names.get(i) + " is a strided view; cannot stage it for the all-reduce");
        MemorySegment.copy(t.segment(), 0, staging, offset[i] * 4, t.numel() * 4);
        int b = bucketOf[i];
        remaining--;
        if (--pending[b] == 0) {
            send(staging.asSlice(buckets[b][0] * 4, (buckets[b][1] - buckets[b][0]) * 4), b);
            if (remaining > 0) sentEarly++;
        }
    }

    private void send(MemorySegment seg, int tag) {
        float s = scale;
        sentOrder.add(tag);
        inFlight.add(comm.submit(() -> {
            if (failed) throw new IOException("skipped: an earlier bucket of this step failed");
            long t0 = System.nanoTime();
            try {
                c.allReduce(seg, s, tag);
                commNanos.addAndGet(System.nanoTime() - t0);
            } catch (Throwable t) {
                failed = true;
                throw t;
            }
            return null;
        }));
    }

    /**
     * After the backward: checks that every parameter got a gradient, sends the loss, waits for every bucket and
     * writes the reduced gradients back; returns the reduced (mean) loss.
     */
    float finish(float localLoss) throws IOException {
        for (int b = 0; b < buckets.length; b++) {
            if (pending[b] == 0) continue;
            for (int i = 0; i < bucketOf.length; i++)
                if (bucketOf[i] == b && grads.params.get(i).grad() == null) {
                    abort();
                    throw new IllegalStateException("parameter " + grads.names.get(i) + " got no gradient: data-parallel training needs"
                            + " every parameter in the loss (every rank reduces the same buffer)");
                }
            abort();
            throw new IllegalStateException("bucket " + b + " was not completed by the backward (a gradient was never reported final)");
        }
        loss.set(JAVA_FLOAT, 0, localLoss);
        send(loss, buckets.length);
        long t0 = System.nanoTime();
        try {
            for (Future<?> f : inFlight) f.get();
            waitNanos += System.nanoTime() - t0;
        } catch (InterruptedException e) {
            abort();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("rank " + c.rank() + ": interrupted while waiting for the all-reduce");
        } catch (ExecutionException e) {
            abort();
            Throwable t = e.getCause();
            if (t instanceof IOException io) throw io;
            if (t instanceof RuntimeException re) throw re;
            if (t instanceof Error err) throw err;
            throw new IOException(t);
        }
        inFlight.clear();
        steps++;
        grads.scatter(staging);
        return loss.get(JAVA_FLOAT, 0);
    }

    /** Stops this step's communication (the backward failed, or a bucket did): interrupts the thread, drops the rest. */
    void abort() {
        failed = true;
        for (Future<?> f : inFlight) f.cancel(true);
        inFlight.clear();
    }

    @Override
    public void close() {
        comm.shutdownNow();
        try {
            comm.awaitTermination(10, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        arena.close();
    }
}
