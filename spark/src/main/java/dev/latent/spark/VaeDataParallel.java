package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.vae.ConvVae;
import dev.latent.optim.AdamW;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.io.Serializable;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Data-parallel training of the conv VAE (Bernoulli likelihood), with {@link dev.latent.models.vae.VaeTrainer}'s
 * step: Adam (0.9, 0.999, 1e-8, no decay, no clipping), reconstruction and KL each the mean over the batch,
 * optional linear KL warm-up. Epoch e visits the images in {@code ImageData.permutation(n, seed, 2^40 + e)},
 * VaeTrainer's order, in global batches of N*B (a last partial global batch is dropped); rank r takes rows
 * [rB, (r+1)B) and draws its reparameterization noise from Philox stream 2^41 + step + r * 2^32 (for r = 0
 * VaeTrainer's stream). The reference contract is {@link GptDataParallel}'s: N workers equal one process
 * computing the same N micro-batches and reducing them in rank order; N = 1 equals VaeTrainer.trainStep.
 * Free bits are not supported here yet (the clamp is per batch, so it does not decompose).
 */
public final class VaeDataParallel {
    private VaeDataParallel() {}

    static final long PERM = 1L << 40, EPS = 2L << 40;

    public record Job(int workers, int batch, int latent, double beta, int warmup, float lr, long seed, int steps) implements Serializable {
        public Job {
            if (workers < 1 || batch < 1 || latent < 1 || steps < 0 || warmup < 0)
                throw new IllegalArgumentException("workers, batch, latent >= 1, steps, warmup >= 0 required");
        }
    }

    /** One rank, its all-reduce overlapping the backward in buckets of the default size. */
    public static GptDataParallel.Result worker(Job job, ImageData data, TcpAllReduce c) throws IOException {
        return worker(job, data, c, OverlappedReduce.DEFAULT_BUCKET_BYTES);
    }

    /** One rank; {@code overlapBucketBytes} 0 all-reduces after the backward (the same bits either way). */
    public static GptDataParallel.Result worker(Job job, ImageData data, TcpAllReduce c, long overlapBucketBytes) throws IOException {
        if (c.size() != job.workers()) throw new IllegalArgumentException("job has " + job.workers() + " workers, the group " + c.size());
        if (overlapBucketBytes < 0) throw new IllegalArgumentException("overlap bucket size " + overlapBucketBytes + " bytes");
        GptDataParallel.Result r = run(job, data, c.rank(), new int[] {c.rank()}, MicroBatches.over(c), overlapBucketBytes > 0 ? c : null,
                overlapBucketBytes);
        return new GptDataParallel.Result(r.rank(), r.step(), r.loss(), r.weightsSha256(), c.bytesSent(), r.stepSeconds());
    }

    public static GptDataParallel.Result reference(Job job, ImageData data) throws IOException {
        return run(job, data, 0, MicroBatches.all(job.workers()), MicroBatches.local(), null, 0);
    }

    private static GptDataParallel.Result run(Job job, ImageData data, int rank, int[] micro, MicroBatches.Reducer reducer,
                                              TcpAllReduce overlap, long bucketBytes) throws IOException {
        int n = job.workers(), b = job.batch(), global = n * b;
        int perEpoch = data.n / global;
        if (perEpoch < 1) throw new IllegalArgumentException(data.n + " images are fewer than one global batch of " + n + " x " + b);
        OverlappedReduce ov = null;
        try (Scope scope = Scope.shared(); Arena a = Arena.ofConfined()) {
            ConvVae model = new ConvVae(scope, job.latent(), job.seed());
            Map<String, Var> named = model.namedParameters();
            AdamW opt = new AdamW(scope, named, 0.9f, 0.999f, 1e-8f, 0f);
            Gradients grads = new Gradients(named, 1);
            if (overlap != null) ov = new OverlappedReduce(overlap, grads, bucketBytes);
            MemorySegment[] parts = new MemorySegment[ov == null ? micro.length : 0];
            for (int i = 0; i < parts.length; i++) parts[i] = a.allocate(JAVA_FLOAT, grads.floats());
            double last = Double.NaN;
            long t0 = System.nanoTime();
            int[] perm = null;
            for (long step = 1; step <= job.steps(); step++) {
                long s0 = step - 1;
                int epoch = (int) (s0 / perEpoch) + 1;
                if (perm == null || s0 % perEpoch == 0) perm = ImageData.permutation(data.n, job.seed(), PERM + epoch);
                int from = (int) (s0 % perEpoch) * global;
                int[] p = perm;
                long st = step;
                double beta = job.warmup() > 0 ? job.beta() * Math.min(1.0, (double) step / job.warmup()) : job.beta();
                MicroBatches.Backward bw = (g, r) -> {
                    Tensor x = Tensor.empty(g.scope(), b, 1, data.h, data.w);
                    data.fill(x, p, from + r * b, b, 1f / 255f, 0f, 0);
                    Var[] h = model.encode(Var.constant(x));
                    F.Reparam rp = F.reparam(h[0], h[1], job.seed(), EPS + st + ((long) r << 32));
                    Var rec = F.bceWithLogitsSum(model.decode(rp.z()), x, 1f / b);
                    Var kl = F.scale(rp.kl(), (float) (beta / b));
                    g.backward(F.add(rec, kl));
                    return (float) (F.item(rec) + F.item(rp.kl()) / b);
                };
                java.util.function.ToDoubleFunction<Void> update = v -> {
                    opt.update(job.lr(), 0);
                    return 0;
                };
                last = (ov != null ? MicroBatches.stepOverlapped(ov, micro[0], n, bw, update)
                        : MicroBatches.step(grads, parts, micro, n, reducer, bw, update))[0];
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            return new GptDataParallel.Result(rank, job.steps(), last, Gradients.hash(named), 0, job.steps() == 0 ? 0 : secs / job.steps());
        } finally {
            if (ov != null) ov.close();
        }
    }
}
