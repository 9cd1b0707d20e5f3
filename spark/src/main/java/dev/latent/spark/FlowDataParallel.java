package dev.latent.spark;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.Json;
import dev.latent.models.flow.Glow;
import dev.latent.models.flow.ImageFlow;
import dev.latent.models.flow.RealNvp;
import dev.latent.optim.AdamW;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.TrainLoop;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.IOException;
import java.io.Serializable;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Data-parallel RealNVP and Glow training with {@link dev.latent.models.flow.FlowTrainer}'s step: Adam (0.9, 0.999, 1e-8, no
 * decay), the loss the batch's mean bits/dim of the dequantized images.
 * <p><b>Micro-batches, not workers, fix the bits.</b> A step's global batch is {@code micro} micro-batches of
 * {@code batch} images (micro-batch i: rows [iB, (i+1)B) of the step's slice of the epoch's permutation
 * {@code ImageData.permutation(n, seed, 2^40 + epoch)}, epochs counted from 1 as FlowTrainer does; a last partial
 * global batch is dropped), micro-batch i's dequantization noise from Philox stream 2 x 2^40 + step + i x 2^32 (for
 * i = 0 FlowTrainer's stream). The N workers split the micro-batches evenly (rank r computes [r m/N, (r+1) m/N)),
 * and the gradients are summed over the m micro-batches in micro-batch order ({@link TcpAllReduce#allReduce(
 * MemorySegment[], float)}), times 1/m. So the weights do not depend on N: 1, 2 or 3 workers with m = 6 give the
 * same bits, equal to {@link #reference} (one process, all m micro-batches). RealNVP and Glow have no batch
 * statistics, so a micro-batch's gradient depends only on its own images. Glow's ActNorm initialises from the data
 * of its first forward: every rank first runs micro-batch 0 of step 1 (whichever micro-batches it holds), so all
 * replicas start from the parameters FlowTrainer's first step would set. With m = 1 the step is
 * FlowTrainer.trainStep's to the bit.
 * <p>Checkpoints: rank 0 writes FlowTrainer's format (weights, Adam state, step; {@code FlowTrainer.load} and
 * {@code latent sample realnvp|glow} read it) every {@code checkpointInterval} steps and at the end, atomically; a
 * resumed run (or Spark's retry of a failed stage) restores every rank from it and ends with the uninterrupted
 * run's bits.
 */
public final class FlowDataParallel {
    private FlowDataParallel() {}

    static final long PERM = 1L << 40, NOISE = 2L << 40;

    /** Everything a run depends on (serialized to the workers); {@code data} only names the data in the checkpoint. */
    public record Job(int workers, int micro, int batch, String arch, int couplings, int levels, int depth, int hidden, float lr,
                      long seed, int steps, String out, int checkpointInterval, boolean resume, String data) implements Serializable {
        public Job {
            if (!"realnvp".equals(arch) && !"glow".equals(arch)) throw new IllegalArgumentException("flow arch must be realnvp or glow, got " + arch);
            if ("realnvp".equals(arch) ? couplings < 1 : levels < 1 || depth < 1)
                throw new IllegalArgumentException(arch + ": couplings (realnvp) or levels and depth (glow) must be >= 1");
            if (workers < 1 || micro < 1 || batch < 1 || hidden < 1 || steps < 0 || checkpointInterval < 0)
                throw new IllegalArgumentException("workers, micro, batch, hidden >= 1 and steps, checkpoint interval >= 0 required");
            if (micro % workers != 0)
                throw new IllegalArgumentException(micro + " micro-batches per step cannot be split evenly over " + workers + " workers");
        }

        /** RealNVP with {@code couplings} couplings of {@code hidden} channels. */
        public static Job realNvp(int workers, int micro, int batch, int couplings, int hidden, float lr, long seed, int steps,
                                  String out, int checkpointInterval, boolean resume, String data) {
            return new Job(workers, micro, batch, "realnvp", couplings, 0, 0, hidden, lr, seed, steps, out, checkpointInterval, resume, data);
        }

        /** Glow with {@code levels} levels of {@code depth} steps, coupling nets of {@code hidden} channels. */
        public static Job glow(int workers, int micro, int batch, int levels, int depth, int hidden, float lr, long seed, int steps,
                               String out, int checkpointInterval, boolean resume, String data) {
            return new Job(workers, micro, batch, "glow", 0, levels, depth, hidden, lr, seed, steps, out, checkpointInterval, resume, data);
        }

        ImageFlow model(Scope scope, int h, int w) {
            return "glow".equals(arch) ? new Glow(scope, h, w, levels, depth, hidden, 0.05, seed)
                    : new RealNvp(scope, h, w, couplings, hidden, 0.05, seed);
        }
    }

    /** Trains on {@code workers} Spark barrier tasks; {@code fault} (tests) makes one rank fail once. */
    public static List<GptDataParallel.Result> train(JavaSparkContext sc, Job job, ImageData data, SparkGpt.Fault fault) {
        return train(sc, job, data, fault, null);
    }

    /** As above, with {@code threads} native threads per worker JVM (null: all cores). */
    public static List<GptDataParallel.Result> train(JavaSparkContext sc, Job job, ImageData data, SparkGpt.Fault fault, Integer threads) {
        return ImageWorkers.train(sc, job.workers(), job.resume(), data, fault, threads, "step",
                (images, c, resume, stopAt) -> worker(job, images, c, resume, stopAt));
    }

    public static GptDataParallel.Result worker(Job job, ImageData data, TcpAllReduce c, boolean resume, long stopAt) throws IOException {
        return ImageWorkers.worker(job.workers(), job.micro(), c, (rank, micro, reducer) -> run(job, data, rank, micro, reducer, resume, stopAt));
    }

    /** One process computing all the micro-batches of every step (the reference the workers equal). */
    public static GptDataParallel.Result reference(Job job, ImageData data, boolean resume, long stopAt) throws IOException {
        return ImageWorkers.reference(job.micro(), (rank, micro, reducer) -> run(job, data, rank, micro, reducer, resume, stopAt));
    }

    /** The checkpoint's view: FlowTrainer's names and format. */
    static TrainLoop.Family family(ImageFlow model, AdamW opt, Job job) {
        return new TrainLoop.Family() {
            @Override public String name() { return job.arch(); }
            @Override public void restored(long step) {
                if (model instanceof Glow gl) gl.markInitialized();   // ActNorm's data-dependent init happened before the checkpoint
            }
            @Override public Map<String, Var> parameters() { return model.namedParameters(); }
            @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
            @Override public Map<String, String> metadata() {
                Map<String, String> meta = new LinkedHashMap<>();
                meta.put("format", model instanceof Glow ? "latent-glow-1" : "latent-realnvp-1");
                Map<String, Object> c = new LinkedHashMap<>(model.config());
                c.put("data", job.data());
                c.put("seed", job.seed());
                meta.put("config", Json.object(c));
                return meta;
            }
            @Override public TrainLoop.StepResult step(long s) { throw new UnsupportedOperationException(); }
        };
    }

    private static GptDataParallel.Result run(Job job, ImageData data, int rank, int[] micro, MicroBatches.Reducer reducer,
                                              boolean resume, long stopAt) throws IOException {
        int m = job.micro(), b = job.batch(), global = m * b;
        int perEpoch = data.n / global;
        if (perEpoch < 1) throw new IllegalArgumentException(data.n + " images are fewer than one global batch of " + m + " x " + b);
        Path out = Path.of(job.out()), file = out.resolve(TrainLoop.CHECKPOINT);
        try (Scope scope = Scope.shared(); Arena a = Arena.ofConfined()) {
            ImageFlow model = job.model(scope, data.h, data.w);
            Map<String, Var> named = model.namedParameters();
            AdamW opt = new AdamW(scope, named, 0.9f, 0.999f, 1e-8f, 0f);
            TrainLoop.Family fam = family(model, opt, job);
            long t0 = System.nanoTime(), end = Math.min(job.steps(), stopAt);
            long first = resume && Files.isRegularFile(file) ? TrainLoop.restore(file, fam) : 0;
            if (rank == 0) Files.createDirectories(out);
            if (first == 0 && model instanceof Glow && end > 0) {
                // Glow's ActNorm initialises from the data of the first forward: on every rank (and in the reference) that
                // is micro-batch 0 of step 1, so every replica starts from the same parameters whatever micro-batches it holds
                int[] perm0 = ImageData.permutation(data.n, job.seed(), PERM + 1);
                try (Graph g = Graph.inference()) {
                    Tensor[] pre = model.preprocess(g.scope(), data.pixels, perm0, 0, b, job.seed(), NOISE + 1);
                    model.bitsPerDim(Var.constant(pre[0]), pre[1]);
                }
            }
            Gradients grads = new Gradients(named, 1);
            MemorySegment[] parts = new MemorySegment[micro.length];
            for (int i = 0; i < parts.length; i++) parts[i] = a.allocate(JAVA_FLOAT, grads.floats());
            double last = Double.NaN;
            int[] perm = null;
            int permEpoch = -1;
            for (long s0 = first; s0 < end; s0++) {
                int epoch = (int) (s0 / perEpoch) + 1;
                if (epoch != permEpoch) {
                    perm = ImageData.permutation(data.n, job.seed(), PERM + epoch);
                    permEpoch = epoch;
                }
                int from = (int) (s0 % perEpoch) * global;
                int[] p = perm;
                long step = s0 + 1;
                last = MicroBatches.step(grads, parts, micro, m, reducer, (g, i) -> {
                    Tensor[] pre = model.preprocess(g.scope(), data.pixels, p, from + i * b, b, job.seed(), NOISE + step + ((long) i << 32));
                    Var bpd = model.bitsPerDim(Var.constant(pre[0]), pre[1]);
                    g.backward(bpd);
                    return (float) dev.latent.autograd.F.item(bpd);
                }, v -> {
                    opt.update(job.lr(), 0);
                    return 0;
                })[0];
                if (rank == 0 && job.checkpointInterval() > 0 && step % job.checkpointInterval() == 0 && step < end)
                    TrainLoop.save(file, fam, step);
            }
            if (rank == 0 && end > first && end == job.steps()) TrainLoop.save(file, fam, end);
            double secs = (System.nanoTime() - t0) / 1e9;
            return new GptDataParallel.Result(rank, Math.max(first, end), last, Gradients.hash(named), 0, end > first ? secs / (end - first) : 0);
        }
    }
}
