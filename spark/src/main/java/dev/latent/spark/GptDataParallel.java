package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.optim.AdamW;
import dev.latent.optim.Schedule;
import dev.latent.spark.collective.Nccl;
import dev.latent.spark.collective.Rendezvous;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;
import dev.latent.tensor.Scope;
import dev.latent.text.Tokenizer;
import dev.latent.train.Metrics;

import java.io.IOException;
import java.io.Serializable;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Data-parallel GPT training: the step of {@link dev.latent.models.gpt.GptTrainer} (same AdamW recipe, schedule,
 * clipping, checkpoint format) with the gradient of a global batch of N*B sequences computed as N micro-batches
 * of B, one per rank, reduced in rank order.
 * <p><b>The reproducibility contract.</b> At step s the global batch is {@code TextData.batch(train, N*B, T, seed,
 * s)}, exactly what one process with batch N*B draws; rank r takes its rows [rB, (r+1)B). Each rank computes the
 * mean loss over its B*T tokens and its gradient g_r; the reduced gradient is {@code (g_0 + ... + g_{N-1}) * (1/N)}
 * summed in rank order ({@link dev.latent.spark.collective.RankOrder}), the gradient of the global mean loss. The single-process reference
 * ({@link #reference}) computes the same N micro-batches one after another and reduces them with the same code,
 * so N workers give bit-identical weights to it. It is <i>not</i> bit-identical to one backward pass over all N*B
 * rows: that pass sums dW over all N*B*T rows inside the GEMM and scales the loss by 1/(N*B*T) at once, a different
 * float summation (equal to rounding, not to the bit; {@code ReproducibilityTest} measures the gap). With N = 1 the
 * step is exactly GptTrainer's (the reduction is a multiplication by 1).
 * <p>Every rank keeps a full replica and applies the identical optimizer step, so replicas never diverge; rank 0
 * writes metrics and checkpoints (atomic, as the core does) every {@code checkpointInterval} steps and at the end.
 */
public final class GptDataParallel {
    private GptDataParallel() {}

    /** Everything a run depends on (serialized to the workers). */
    public record Job(int workers, int batch, int layers, int heads, int dim, int context, boolean tied, String tokenizerJson,
                      int steps, double lr, double minLr, int warmup, double weightDecay, double clip, int logInterval,
                      int checkpointInterval, long seed, String out, boolean resume, Integer threads,
                      long overlapBucketBytes, Device device, Collective collective) implements Serializable {
        public Job {
            if (workers < 1 || batch < 1 || steps < 0 || logInterval < 1 || checkpointInterval < 0 || warmup < 0)
                throw new IllegalArgumentException("workers, batch, log interval >= 1 and steps, warmup, checkpoint interval >= 0 required");
            if (overlapBucketBytes < 0 || overlapBucketBytes > 0 && overlapBucketBytes < 4)
                throw new IllegalArgumentException("overlap bucket size " + overlapBucketBytes + " bytes: 0 (off) or >= 4");
            if (device == null) device = Device.CPU;
            if (collective == null) collective = Collective.AUTO;
            if (collective == Collective.NCCL && device != Device.CUDA)
                throw new IllegalArgumentException("--collective nccl needs CUDA workers (--device cuda): NCCL reduces device buffers");
        }

        /** A CPU job (the collective: TCP) with the overlap of {@code overlapBucketBytes}. */
        public Job(int workers, int batch, int layers, int heads, int dim, int context, boolean tied, String tokenizerJson,
                   int steps, double lr, double minLr, int warmup, double weightDecay, double clip, int logInterval,
                   int checkpointInterval, long seed, String out, boolean resume, Integer threads, long overlapBucketBytes) {
            this(workers, batch, layers, heads, dim, context, tied, tokenizerJson, steps, lr, minLr, warmup, weightDecay, clip,
                    logInterval, checkpointInterval, seed, out, resume, threads, overlapBucketBytes, Device.CPU, Collective.AUTO);
        }

        /** A job whose workers overlap the all-reduce with the backward in buckets of the default size. */
        public Job(int workers, int batch, int layers, int heads, int dim, int context, boolean tied, String tokenizerJson,
                   int steps, double lr, double minLr, int warmup, double weightDecay, double clip, int logInterval,
                   int checkpointInterval, long seed, String out, boolean resume, Integer threads) {
            this(workers, batch, layers, heads, dim, context, tied, tokenizerJson, steps, lr, minLr, warmup, weightDecay, clip,
                    logInterval, checkpointInterval, seed, out, resume, threads, OverlappedReduce.DEFAULT_BUCKET_BYTES);
        }

        /**
         * This job with the workers' all-reduce overlapping the backward in buckets of about {@code bytes} (0: off, the
         * whole gradient all-reduced after the backward). The weights are the same bits either way.
         */
        public Job withOverlap(long bytes) {
            return new Job(workers, batch, layers, heads, dim, context, tied, tokenizerJson, steps, lr, minLr, warmup, weightDecay,
                    clip, logInterval, checkpointInterval, seed, out, resume, threads, bytes, device, collective);
        }

        /**
         * This job with its workers on {@code device} and their gradients all-reduced by {@code collective}
         * ({@link Collective}: NCCL serves CUDA workers when found, TCP otherwise). CUDA workers all-reduce after the
         * backward (the overlap is a host-buffer path), so the overlap is turned off for them.
         */
        public Job on(Device device, Collective collective) {
            return new Job(workers, batch, layers, heads, dim, context, tied, tokenizerJson, steps, lr, minLr, warmup, weightDecay,
                    clip, logInterval, checkpointInterval, seed, out, resume, threads,
                    device == Device.CUDA ? 0 : overlapBucketBytes, device, collective);
        }

        Map<String, Object> args() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("batch", workers * batch); m.put("workers", workers); m.put("batch_per_worker", batch);
            m.put("steps", steps); m.put("lr", Double.toString(lr)); m.put("min_lr", Double.toString(minLr));
            m.put("warmup", warmup); m.put("weight_decay", Double.toString(weightDecay)); m.put("clip", Double.toString(clip));
            m.put("log_interval", logInterval); m.put("checkpoint_interval", checkpointInterval); m.put("seed", seed);
            return m;
        }
    }

    /** What a worker reports: its rank, the step it reached, the last mean loss, and a hash of its weights. */
    public record Result(int rank, long step, double loss, String weightsSha256, long bytesSent, double stepSeconds) implements Serializable {}

    /** One rank of N: its micro-batch, reduced with the others through {@code c} (CPU workers; no NCCL exchange). */
    public static Result worker(Job job, int[] tokens, TcpAllReduce c, boolean resume, long stopAt) throws IOException {
        return worker(job, tokens, c, null, resume, stopAt);
    }

    /**
     * One rank of N: its micro-batch, reduced with the others through NCCL (CUDA workers, {@link Collective#choose}
     * over {@code rv}, the rendezvous the TCP group was built on) or through {@code c}. Rank 0 logs which and why.
     */
    public static Result worker(Job job, int[] tokens, TcpAllReduce c, Rendezvous rv, boolean resume, long stopAt) throws IOException {
        if (c.size() != job.workers()) throw new IllegalArgumentException("job has " + job.workers() + " workers, the group " + c.size());
        if (job.device() == Device.CUDA) return deviceWorker(job, tokens, c, rv, resume, stopAt);
        String why = Collective.choose(job.collective(), job.device(), rv).reason();   // CPU: TCP, no exchange
        if (c.rank() == 0) System.err.println("collective: " + why);
        MicroBatches.Reducer over = MicroBatches.over(c);
        long[] reduce = {0, 0};   // nanoseconds, calls
        MicroBatches.Reducer timed = (parts, scale) -> {   // the all-reduce after the backward, timed for the log
            long t0 = System.nanoTime();
            MemorySegment out = over.reduce(parts, scale);
            reduce[0] += System.nanoTime() - t0;
            reduce[1]++;
            return out;
        };
        Result r = run(job, tokens, c.rank(), new int[] {c.rank()}, timed, job.overlapBucketBytes() > 0 ? c : null, resume, stopAt);
        if (reduce[1] > 0)
            System.err.printf(java.util.Locale.ROOT, "rank %d: all-reduce after the backward: %.1f ms/step (mean over %d steps)%n",
                    c.rank(), reduce[0] / 1e6 / reduce[1], reduce[1]);
        return new Result(r.rank(), r.step(), r.loss(), r.weightsSha256(), c.bytesSent(), r.stepSeconds());
    }

    /**
     * A CUDA rank: the model, optimizer state and gradients on the device; the all-reduce through NCCL on the device
     * when {@link Collective#choose} picks it, else through {@code c} over host copies of the gradients. Both sum in
     * rank order (NCCL: the stand-in does; see docs/decisions.md for real NCCL) and scale by 1/N in one float
     * multiplication, so the two give the same bits.
     */
    private static Result deviceWorker(Job job, int[] tokens, TcpAllReduce c, Rendezvous rv, boolean resume, long stopAt) throws IOException {
        Collective.Choice[] choice = {null};
        long[] reduce = {0, 0};
        try {
            Result r = run(job, tokens, c.rank(), new int[] {c.rank()}, MicroBatches.over(c), null, resume, stopAt, () -> {
                choice[0] = Collective.choose(job.collective(), Device.CUDA, rv);
                if (c.rank() == 0) System.err.println("collective: " + choice[0].reason());
                return choice[0].comm();
            }, reduce);
            if (reduce[1] > 0)
                System.err.printf(java.util.Locale.ROOT, "rank %d: %s all-reduce after the backward: %.1f ms/step (mean over %d steps)%n",
                        c.rank(), choice[0] != null && choice[0].nccl() ? "NCCL" : "TCP", reduce[0] / 1e6 / reduce[1], reduce[1]);
            return new Result(r.rank(), r.step(), r.loss(), r.weightsSha256(), c.bytesSent(), r.stepSeconds());
        } finally {
            if (choice[0] != null && choice[0].comm() != null) choice[0].comm().close();
        }
    }

    /** The single-process reference: all N micro-batches in this process, reduced in rank order. */
    public static Result reference(Job job, int[] tokens, boolean resume, long stopAt) throws IOException {
        return run(job, tokens, 0, MicroBatches.all(job.workers()), MicroBatches.local(), null, resume, stopAt);
    }

    private static Result run(Job job, int[] tokens, int rank, int[] micro, MicroBatches.Reducer reducer, TcpAllReduce overlap,
                              boolean resume, long stopAt) throws IOException {
        return run(job, tokens, rank, micro, reducer, overlap, resume, stopAt, null, null);
    }

    private static MicroBatches.Reducer timed(MicroBatches.Reducer r, long[] acc) {
        return (parts, scale) -> {
            long t0 = System.nanoTime();
            MemorySegment out = r.reduce(parts, scale);
            acc[0] += System.nanoTime() - t0;
            acc[1]++;
            return out;
        };
    }

    /** What opens a CUDA rank's NCCL communicator once the model is on the device (null: the TCP reducer serves). */
    interface NcclOpener {
        Nccl.Comm open() throws IOException;
    }

    private static Result run(Job job, int[] tokens, int rank, int[] micro, MicroBatches.Reducer reducer, TcpAllReduce overlap,
                              boolean resume, long stopAt, NcclOpener nccl, long[] reduceTime) throws IOException {
        if (job.threads() != null) dev.latent.Latent.setThreads(job.threads());
        Tokenizer tok = Tokenizer.fromJson(job.tokenizerJson());
        TextData data = new TextData(tokens);
        Path out = Path.of(job.out());
        boolean writer = rank == 0;
        int n = job.workers(), b = job.batch(), t = job.context();
        OverlappedReduce ov = null;
        try (Scope scope = Scope.shared(); Arena a = Arena.ofConfined()) {
            Gpt model = new Gpt(scope, new GptConfig(tok.vocabSize(), job.layers(), job.heads(), job.dim(), t, job.tied()), job.seed());
            Map<String, Var> named = model.namedParameters();
            AdamW opt = new AdamW(scope, named, 0.9f, 0.99f, 1e-8f, (float) job.weightDecay());
            if (resume && Files.isRegularFile(out.resolve(GptCheckpoint.FILE))) {
                GptCheckpoint.Loaded l = GptCheckpoint.load(out, scope);
                var src = l.model().namedParameters();
                named.forEach((k, v) -> MemorySegment.copy(src.get(k).value().segment(), 0, v.value().segment(), 0, v.value().numel() * 4));
                GptCheckpoint.restore(opt, l);
                if (writer) System.err.printf("rank 0: resumed from %s at step %d%n", out.resolve(GptCheckpoint.FILE), l.step());
            } else {
                resume = false;
            }
            boolean cuda = job.device() == Device.CUDA;
            if (cuda) {   // after a resume, so the checkpoint is copied into the CPU tensors first (as GptTrainer does)
                model.to(scope, Device.CUDA);
                opt.to(scope, Device.CUDA);
            }
            Nccl.Comm comm = nccl == null ? null : nccl.open();   // the model's copies made the CUDA context current here
            if (writer) Files.createDirectories(out);
            Schedule sched = new Schedule(job.lr(), job.minLr(), job.warmup(), job.steps());
            Gradients grads = new Gradients(named, 1);
            if (overlap != null) ov = new OverlappedReduce(overlap, grads, job.overlapBucketBytes());
            MemorySegment[] parts = new MemorySegment[ov == null && comm == null ? micro.length : 0];   // the overlapped and NCCL paths stage their own
            Tensor flatDevice = comm == null ? null : Tensor.empty(scope, Device.CUDA, grads.floats());
            for (int i = 0; i < parts.length; i++) parts[i] = a.allocate(JAVA_FLOAT, grads.floats());
            long rowInts = (long) b * t;
            MemorySegment x = a.allocate(JAVA_INT, n * rowInts), y = a.allocate(JAVA_INT, n * rowInts);
            double lastLoss = Double.NaN;
            long nanos = 0, timed = 0;
            long end = Math.min(job.steps(), stopAt), first = opt.step(), warm = Math.min(2, (end - first) / 2);
            try (Metrics metrics = writer ? new Metrics(out, resume) : null) {
                for (long step = opt.step(); step < end; step++) {
                    long t0 = System.nanoTime();
                    TextData.batch(data.train, n * b, t, job.seed(), step, x, y);
                    long st = step;
                    MicroBatches.Backward bw = (g, r) -> {
                        Var l = model.loss(x.asSlice(r * rowInts * 4, rowInts * 4), y.asSlice(r * rowInts * 4, rowInts * 4), b, t);
                        float loss = F.item(l);
                        g.backward(l);
                        return loss;
                    };
                    java.util.function.ToDoubleFunction<Void> update = cuda
                            ? v -> opt.update((float) sched.at(st), job.clip(), opt.gradNorm(job.clip())).value()   // clip factor on the device
                            : v -> opt.update((float) sched.at(st), job.clip(), opt.gradNorm());   // the norm is logged even without clipping
                    double[] lr = ov != null ? MicroBatches.stepOverlapped(ov, micro[0], n, bw, update)
                            : comm != null ? MicroBatches.stepNccl(grads, flatDevice, comm, micro[0], n, bw, update, reduceTime)
                            : MicroBatches.step(grads, parts, micro, n, reduceTime == null ? reducer : timed(reducer, reduceTime), bw, update);
                    lastLoss = lr[0];
                    double norm = lr[1];
                    if (step - first >= warm) {   // the step time excludes the first (warm-up) steps
                        nanos += System.nanoTime() - t0;
                        timed++;
                    }
                    long done = step + 1;
                    if (writer && (done % job.logInterval() == 0 || done == job.steps())) {
                        Map<String, Object> rec = new LinkedHashMap<>();
                        rec.put("step", done);
                        rec.put("loss", lastLoss);
                        rec.put("lr", sched.at(step));
                        rec.put("grad_norm", norm);
                        rec.put("workers", n);
                        rec.put("tokens_per_s", timed == 0 ? 0 : timed * (double) n * b * t / (nanos / 1e9));
                        metrics.log(rec);
                        System.err.printf("step %d: loss %.4f  %.0f tok/s (%d workers)%n", done, lastLoss, timed == 0 ? 0 : timed * (double) n * b * t / (nanos / 1e9), n);
                    }
                    if (writer && job.checkpointInterval() > 0 && done % job.checkpointInterval() == 0 && done < end)
                        GptCheckpoint.save(out, model, opt, tok, job.args());
                }
            }
            if (writer) GptCheckpoint.save(out, model, opt, tok, job.args());
            return new Result(rank, opt.step(), lastLoss, Gradients.hash(named), 0, timed == 0 ? 0 : nanos / 1e9 / timed);
        } finally {
            if (ov != null) {
                if (ov.steps() > 0)
                    System.err.printf(java.util.Locale.ROOT, "rank %d: all-reduce overlapped in %d buckets: %.1f ms/step on the communication"
                            + " thread, %.1f ms/step waited for after the backward (mean over %d steps)%n", rank, ov.buckets(),
                            ov.commNanos() / 1e6 / ov.steps(), ov.waitNanos() / 1e6 / ov.steps(), ov.steps());
                ov.close();
            }
        }
    }
}
