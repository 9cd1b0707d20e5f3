package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.nn.Init;
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
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Data-parallel DCGAN training (non-saturating BCE loss, BatchNorm in both nets), and WGAN-GP, with
 * {@link dev.latent.models.gan.GanTrainer}'s iteration: one D step on real and G(z) (detached), then one G step
 * through the updated D on the same z; Adam (beta1, beta2, 1e-8, no decay) for each net.
 * <p><b>Two reductions per iteration.</b> D's gradients are all-reduced and every rank applies the same D update;
 * only then can the G step run (its loss goes through the updated D), and G's gradients are all-reduced for the
 * G update. G(z) is recomputed for the G step (the weights of G have not changed, BatchNorm uses batch statistics,
 * so the same bits) rather than kept from the D step, so a rank holds one graph at a time.
 * <p><b>Micro-batches fix the bits, and BatchNorm is per micro-batch.</b> An iteration's global batch is
 * {@code micro} micro-batches of {@code batch} images (micro-batch i: rows [iB, (i+1)B) of the iteration's slice of
 * the epoch's permutation {@code ImageData.permutation(n, seed, 2^40 + epoch)}, epochs from 0 as GanTrainer counts
 * them; a last partial global batch is dropped), z of micro-batch i from Philox stream 2 x 2^40 + iter + i x 2^32
 * (for i = 0 GanTrainer's). The N workers split the micro-batches evenly and every gradient is summed over the m
 * micro-batches in micro-batch order ({@link TcpAllReduce#allReduce(MemorySegment[], float)}), times 1/m. The
 * BatchNorm layers normalise each micro-batch by its own statistics (per-replica statistics, but keyed to the
 * micro-batch, not to the worker): synchronising the statistics across workers would cost two extra collectives
 * per BatchNorm layer and forward, and the GAN losses are means over the micro-batch anyway. The running
 * statistics (used only by inference in eval mode) are reduced too: every micro-batch updates them from the
 * iteration's starting values as GanTrainer would (D's three times, G's once), and the m results are averaged in
 * micro-batch order with the G gradients. So the weights and the running statistics do not depend on N (1, 2, 3
 * workers with m = 6: the same bits, equal to {@link #reference}), and with m = 1 the iteration is
 * GanTrainer's to the bit. With m > 1 it is not GanTrainer's with batch m x B: that normalises by the statistics of
 * all m x B images, a different model of the data (not only a different float summation).
 * <p>Checkpoints: rank 0 writes GanTrainer's format (both nets, running statistics, both optimizers, "iter"; {@code
 * GanTrainer.load}, {@code latent sample dcgan} and {@code SparkGenerate.ganSamples} read it) every
 * {@code checkpointInterval} iterations and at the end, atomically; a resumed run restores every rank from it and
 * ends with the uninterrupted run's bits.
 * <p>WGAN-GP ({@link Job#wganGp}): n_critic critic steps per iteration, each a reduction of D's gradients (the
 * gradient penalty is a mean over the micro-batch's images, so it decomposes like the loss), then one G step and
 * its reduction; the critic has no BatchNorm (none or LayerNorm, per image), and G's running statistics are
 * handled as for DCGAN (see {@code wganIteration}).
 */
public final class GanDataParallel {
    private GanDataParallel() {}

    static final long PERM = 1L << 40, LATENT = 2L << 40, EPS = 3L << 40;

    /**
     * Everything a run depends on (serialized to the workers); {@code data} only names the data in the checkpoint.
     * {@code loss} "gan" (DCGAN: BatchNorm critic, nCritic 1) or "wgan-gp" ({@code nCritic} critic steps per
     * generator step, penalty weight {@code lambda}, critic norm "none" or "layer").
     */
    public record Job(int workers, int micro, int batch, int nz, int ngf, int ndf, float lr, float beta1, float beta2, long seed,
                      int steps, String out, int checkpointInterval, boolean resume, String data,
                      String loss, int nCritic, float lambda, String criticNorm) implements Serializable {
        public Job {
            if (workers < 1 || micro < 1 || batch < 1 || nz < 1 || ngf < 1 || ndf < 1 || steps < 0 || checkpointInterval < 0)
                throw new IllegalArgumentException("workers, micro, batch, nz, ngf, ndf >= 1 and steps, checkpoint interval >= 0 required");
            if (micro % workers != 0)
                throw new IllegalArgumentException(micro + " micro-batches per iteration cannot be split evenly over " + workers + " workers");
            if (!"gan".equals(loss) && !"wgan-gp".equals(loss)) throw new IllegalArgumentException("loss must be gan or wgan-gp, got " + loss);
            if ("gan".equals(loss) && (nCritic != 1 || !"batch".equals(criticNorm)))
                throw new IllegalArgumentException("gan (DCGAN): one D step per iteration and a BatchNorm critic");
            if ("wgan-gp".equals(loss) && (nCritic < 1 || !(lambda >= 0) || !("none".equals(criticNorm) || "layer".equals(criticNorm))))
                throw new IllegalArgumentException("wgan-gp: n_critic >= 1, lambda >= 0 and critic norm none or layer (the penalty is per sample), got "
                        + nCritic + ", " + lambda + ", " + criticNorm);
            if (batch < 2) throw new IllegalArgumentException("batch per micro-batch must be >= 2 (BatchNorm's batch statistics), got " + batch);
        }

        /** DCGAN. */
        public Job(int workers, int micro, int batch, int nz, int ngf, int ndf, float lr, float beta1, float beta2, long seed,
                   int steps, String out, int checkpointInterval, boolean resume, String data) {
            this(workers, micro, batch, nz, ngf, ndf, lr, beta1, beta2, seed, steps, out, checkpointInterval, resume, data, "gan", 1, 0f, "batch");
        }

        /** WGAN-GP with GanTrainer's reference optimiser (Adam 0.5, 0.9). */
        public static Job wganGp(int workers, int micro, int batch, int nz, int ngf, int ndf, float lr, int nCritic, float lambda, String criticNorm,
                                 long seed, int steps, String out, int checkpointInterval, boolean resume, String data) {
            return new Job(workers, micro, batch, nz, ngf, ndf, lr, 0.5f, 0.9f, seed, steps, out, checkpointInterval, resume, data,
                    "wgan-gp", nCritic, lambda, criticNorm);
        }

        boolean wgan() { return "wgan-gp".equals(loss); }

        Dcgan.Norm norm() { return Dcgan.Norm.valueOf(criticNorm.toUpperCase(java.util.Locale.ROOT)); }

        Map<String, Object> config() {   // GanTrainer's checkpoint config keys
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("loss", loss); m.put("data", data); m.put("iters", steps); m.put("batch", micro * batch);
            m.put("nz", nz); m.put("ngf", ngf); m.put("ndf", ndf); m.put("lr", lr); m.put("beta1", beta1); m.put("beta2", beta2);
            m.put("n_critic", nCritic); m.put("lambda", lambda); m.put("critic_norm", criticNorm); m.put("seed", seed); m.put("train_limit", 0);
            m.put("workers", workers); m.put("micro_batches", micro); m.put("batch_per_micro", batch);
            return m;
        }
    }

    /** Trains on {@code workers} Spark barrier tasks; {@code fault} (tests) makes one rank fail once. */
    public static List<GptDataParallel.Result> train(JavaSparkContext sc, Job job, ImageData data, SparkGpt.Fault fault) {
        return train(sc, job, data, fault, null);
    }

    /** As above, with {@code threads} native threads per worker JVM (null: all cores). */
    public static List<GptDataParallel.Result> train(JavaSparkContext sc, Job job, ImageData data, SparkGpt.Fault fault, Integer threads) {
        return ImageWorkers.train(sc, job.workers(), job.resume(), data, fault, threads, "iteration",
                (images, c, resume, stopAt) -> worker(job, images, c, resume, stopAt));
    }

    public static GptDataParallel.Result worker(Job job, ImageData data, TcpAllReduce c, boolean resume, long stopAt) throws IOException {
        return ImageWorkers.worker(job.workers(), job.micro(), c, (rank, micro, reducer) -> run(job, data, rank, micro, reducer, resume, stopAt));
    }

    /** One process computing all the micro-batches of every iteration (the reference the workers equal). */
    public static GptDataParallel.Result reference(Job job, ImageData data, boolean resume, long stopAt) throws IOException {
        return ImageWorkers.reference(job.micro(), (rank, micro, reducer) -> run(job, data, rank, micro, reducer, resume, stopAt));
    }

    /** SHA-256 of both nets' parameters and BatchNorm running statistics, in checkpoint order. */
    public static String hash(Dcgan.Generator g, Dcgan.Discriminator d) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (var e : Dcgan.stateDict(g, d).entrySet()) {
                md.update(e.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                md.update(e.getValue().segment().asByteBuffer());
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The buffers (running statistics of G then D) as one list, for snapshot / restore / reduction. */
    private static final class Buffers {
        final Tensor[] t;
        final long floats;

        Buffers(Map<String, Tensor> checkpointBuffers) {
            t = checkpointBuffers.values().toArray(new Tensor[0]);
            long n = 0;
            for (Tensor x : t) n += x.numel();
            floats = n;
        }

        void save(MemorySegment dst, long offFloats) {
            for (Tensor x : t) {
                MemorySegment.copy(x.segment(), 0, dst, offFloats * 4, x.numel() * 4);
                offFloats += x.numel();
            }
        }

        void load(MemorySegment src, long offFloats) {
            for (Tensor x : t) {
                MemorySegment.copy(src, offFloats * 4, x.segment(), 0, x.numel() * 4);
                offFloats += x.numel();
            }
        }
    }

    private static GptDataParallel.Result run(Job job, ImageData data, int rank, int[] micro, MicroBatches.Reducer reducer,
                                              boolean resume, long stopAt) throws IOException {
        if (data.h != 28 || data.w != 28) throw new IllegalArgumentException("DCGAN here is for 28 x 28 images (padded to 32 x 32), got " + data.h + "x" + data.w);
        int m = job.micro(), b = job.batch(), global = m * b, k = micro.length;
        int perEpoch = data.n / global;
        if (perEpoch < 1) throw new IllegalArgumentException(data.n + " images are fewer than one global batch of " + m + " x " + b);
        Path out = Path.of(job.out()), file = out.resolve(TrainLoop.CHECKPOINT);
        try (Scope scope = Scope.shared(); Arena a = Arena.ofConfined()) {
            Dcgan.Generator g = new Dcgan.Generator(scope, job.nz(), job.ngf(), job.seed());
            Dcgan.Discriminator d = new Dcgan.Discriminator(scope, job.ndf(), job.norm(), job.seed());
            AdamW optG = new AdamW(scope, g.namedParameters(), job.beta1(), job.beta2(), 1e-8f, 0f);
            AdamW optD = new AdamW(scope, d.namedParameters(), job.beta1(), job.beta2(), 1e-8f, 0f);
            GanTrainer.Checkpoint fam = new GanTrainer.Checkpoint(job.wgan() ? "wgan-gp" : "dcgan", g, d, optG, optD, job.config()) {
                @Override public TrainLoop.StepResult step(long s) { throw new UnsupportedOperationException(); }
            };
            long first = resume && Files.isRegularFile(file) ? TrainLoop.restore(file, fam) : 0;
            if (rank == 0) Files.createDirectories(out);
            Gradients gD = new Gradients(d.namedParameters(), 1), gG = new Gradients(g.namedParameters(), 1);
            Buffers bufs = new Buffers(fam.buffers());
            long dFloats = gD.numel + 1, gFloats = gG.numel + bufs.floats + 1;   // D: grads, loss; G: grads, buffers, loss
            MemorySegment[] partD = new MemorySegment[k], partG = new MemorySegment[k];
            for (int i = 0; i < k; i++) {
                partD[i] = a.allocate(JAVA_FLOAT, dFloats);
                partG[i] = a.allocate(JAVA_FLOAT, gFloats);
            }
            MemorySegment start = a.allocate(JAVA_FLOAT, Math.max(1, bufs.floats));
            MemorySegment[] afterD = new MemorySegment[k];
            for (int i = 0; i < k; i++) afterD[i] = a.allocate(JAVA_FLOAT, Math.max(1, bufs.floats));
            double lossD = Double.NaN, lossG = Double.NaN;
            long t0 = System.nanoTime(), end = Math.min(job.steps(), stopAt);
            int[] perm = null;
            int permEpoch = -1;
            for (long q = first; q < end; q++) {
                long it = q + 1;
                int epoch = (int) (q / perEpoch);
                if (epoch != permEpoch) {
                    perm = ImageData.permutation(data.n, job.seed(), PERM + epoch);
                    permEpoch = epoch;
                }
                if (job.wgan()) {
                    double[] l = wganIteration(job, data, g, d, optG, optD, gD, gG, bufs, partD, partG, afterD, micro, reducer, it, perEpoch);
                    lossD = l[0];
                    lossG = l[1];
                } else {
                    int pos = (int) (q % perEpoch) * global;
                    int[] order = perm;
                    bufs.save(start, 0);
                    // D step: each micro-batch from the iteration's starting running statistics
                    lossD = reducedStep(micro, m, reducer, bufs, gD, partD, optD, job.lr(), afterD, j -> bufs.load(start, 0), (gr, i) -> {
                        Tensor x = Tensor.empty(gr.scope(), b, 1, 32, 32);
                        data.fill(x, order, pos + i * b, b, 1f / 127.5f, -1f, 2);
                        Var fake = g.forward(Var.constant(latent(gr.scope(), job, it, i)));
                        return F.add(F.bceWithLogits(d.forward(Var.constant(x)), 1f), F.bceWithLogits(d.forward(F.detach(fake)), 0f));
                    });
                    // G step through the updated D: G(z) recomputed from the starting statistics, D's from after its step
                    lossG = reducedStep(micro, m, reducer, bufs, gG, partG, optG, job.lr(), null, j -> {
                        bufs.load(afterD[j], 0);
                        restoreG(start, g);
                    }, (gr, i) -> {
                        Var fake = g.forward(Var.constant(latent(gr.scope(), job, it, i)));
                        Var loss = F.bceWithLogits(d.forward(fake), 1f);
                        gr.freeze(d.parameters());
                        return loss;
                    });
                }
                fam.iter(it);
                if (!Double.isFinite(lossD) || !Double.isFinite(lossG))
                    throw new IllegalStateException(job.loss() + " diverged at iteration " + it + " (lossD " + lossD + ", lossG " + lossG + "): lower the lr (" + job.lr() + ")");
                if (rank == 0 && job.checkpointInterval() > 0 && it % job.checkpointInterval() == 0 && it < end)
                    TrainLoop.save(file, fam, it);
            }
            if (rank == 0 && end > first && end == job.steps()) {
                fam.iter(end);
                TrainLoop.save(file, fam, end);
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            return new GptDataParallel.Result(rank, Math.max(first, end), lossD + lossG, hash(g, d), 0, end > first ? secs / (end - first) : 0);
        }
    }

    /**
     * One WGAN-GP iteration, as GanTrainer's: n_critic critic steps (critic step j of iteration it: global batch
     * (it - 1) n_critic + j of the epoch order, latents and interpolation weights from stream it n_critic + j), each
     * a reduction of D's gradients and a D update, then a G step (latents from stream 2^39 + it) and a reduction of
     * G's. Micro-batch i adds i x 2^32 to every stream. The critic has no BatchNorm; G's running statistics evolve
     * per micro-batch through the iteration (each critic step's G forward and the G step's update them, as in
     * GanTrainer) and are averaged with G's gradients. Returns {last critic loss, G loss} (means over micro-batches).
     */
    private static double[] wganIteration(Job job, ImageData data, Dcgan.Generator g, Dcgan.Discriminator d, AdamW optG, AdamW optD,
                                          Gradients gD, Gradients gG, Buffers bufs, MemorySegment[] partD, MemorySegment[] partG,
                                          MemorySegment[] state, int[] micro, MicroBatches.Reducer reducer, long it, int perEpoch) {
        int m = job.micro(), b = job.batch(), k = micro.length, nc = job.nCritic();
        double lossD = Double.NaN;
        for (int j = 0; j < k; j++) bufs.save(state[j], 0);
        try {
            for (int c = 0; c < nc; c++) {
                long q = (it - 1) * nc + c, step = it * nc + c;
                int[] perm = ImageData.permutation(data.n, job.seed(), PERM + q / perEpoch);
                int pos = (int) (q % perEpoch) * m * b;
                lossD = reducedStep(micro, m, reducer, bufs, gD, partD, optD, job.lr(), state, j -> bufs.load(state[j], 0), (gr, i) -> {
                    Tensor real = Tensor.empty(gr.scope(), b, 1, 32, 32);
                    data.fill(real, perm, pos + i * b, b, 1f / 127.5f, -1f, 2);
                    Var fake = F.detach(g.forward(Var.constant(Init.normal(gr.scope(), job.seed(), LATENT + step + ((long) i << 32), 1.0, b, job.nz(), 1, 1))));
                    Var dReal = F.mean(d.forward(Var.constant(real))), dFake = F.mean(d.forward(fake));
                    Var penalty = F.scale(GanTrainer.gradientPenalty(gr, d, real, fake.value(), job.seed(), EPS + step + ((long) i << 32)), job.lambda());
                    return F.add(F.sub(dFake, dReal), penalty);
                });
            }
            double lossG = reducedStep(micro, m, reducer, bufs, gG, partG, optG, job.lr(), null, j -> bufs.load(state[j], 0), (gr, i) -> {
                Var fake = g.forward(Var.constant(Init.normal(gr.scope(), job.seed(), LATENT + (1L << 39) + it + ((long) i << 32), 1.0, b, job.nz(), 1, 1)));
                Var loss = F.scale(F.mean(d.forward(fake)), -1f);
                gr.freeze(d.parameters());
                return loss;
            });
            return new double[] {lossD, lossG};
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** A micro-batch's loss, built in its own graph {@code gr} for micro-batch {@code i} ({@link #reducedStep} runs the backward). */
    @FunctionalInterface
    private interface MicroLoss {
        Var build(Graph gr, int i) throws IOException;
    }

    /**
     * One reduced update of one net over this rank's micro-batches (the j-th is micro-batch micro[j]), the D step's
     * and the G step's shape: {@code before.accept(j)} sets the running statistics the micro-batch starts from,
     * {@code loss} builds its loss in a graph of its own, and the backward's gradients and the loss go into part[j];
     * the running statistics after it go to {@code keep[j]} or, with keep null, into part[j] after the gradients,
     * to be averaged with them. After the last micro-batch (its graph still open) the parts are reduced in
     * micro-batch order times 1/m, the gradients (and averaged statistics) scattered back and {@code opt} updates.
     * Returns the reduced loss.
     */
    private static double reducedStep(int[] micro, int m, MicroBatches.Reducer reducer, Buffers bufs, Gradients grads, MemorySegment[] part,
                                      AdamW opt, float lr, MemorySegment[] keep, IntConsumer before, MicroLoss loss) throws IOException {
        int k = micro.length;
        long lossAt = keep == null ? grads.numel + bufs.floats : grads.numel;
        for (int j = 0; j < k; j++) {
            before.accept(j);
            Graph gr = Graph.open();
            try {
                Var l = loss.build(gr, micro[j]);
                gr.backward(l);
                grads.gather(part[j]);
                if (keep == null) bufs.save(part[j], grads.numel);
                else bufs.save(keep[j], 0);
                part[j].setAtIndex(JAVA_FLOAT, lossAt, (float) F.item(l));
                if (j == k - 1) {
                    MemorySegment red = reducer.reduce(part, 1f / m);
                    grads.scatter(red);
                    if (keep == null) bufs.load(red, grads.numel);
                    opt.update(lr, 0);
                    return red.getAtIndex(JAVA_FLOAT, lossAt);
                }
            } finally {
                gr.close();
            }
        }
        throw new IllegalStateException("no micro-batches");
    }

    /** G's running statistics back to the iteration's start (the recomputed G(z) updates them once more, as in the D step). */
    private static void restoreG(MemorySegment start, Dcgan.Generator g) {
        Map<String, Tensor> gb = new LinkedHashMap<>();
        g.buffers("G.", gb);
        long off = 0;
        for (Tensor x : gb.values()) {
            MemorySegment.copy(start, off * 4, x.segment(), 0, x.numel() * 4);
            off += x.numel();
        }
    }

    /** z ~ N(0, I) (B, nz, 1, 1) of micro-batch i at iteration it (i = 0: GanTrainer's latents). */
    static Tensor latent(Scope scope, Job job, long it, int i) {
        return Init.normal(scope, job.seed(), LATENT + it + ((long) i << 32), 1.0, job.batch(), job.nz(), 1, 1);
    }
}
