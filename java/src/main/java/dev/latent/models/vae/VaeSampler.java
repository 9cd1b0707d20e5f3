package dev.latent.models.vae;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Samples of a VAE keyed by image id: image {@code id} is the decoder's mean at z ~ N(0, I) drawn from Philox
 * (seed, {@link #STREAM} + id). An image therefore does not depend on which other ids are sampled in the same call
 * or on how a set of ids is split into calls (the decoder treats the rows of a batch independently), which is what
 * lets a distributed sampler (latent-spark's SparkGenerate) give the same images for any partitioning. Runs in the
 * calling thread's inference graph; many threads may sample at once (the model is only read).
 */
public final class VaeSampler {
    private VaeSampler() {}

    /** Philox stream of image 0's latent draw; ids must be in [0, 2^40). */
    public static final long STREAM = 3L << 40;

    /**
     * The 8-bit grey pixels (ids.length x 28 x 28, row-major) of the images {@code ids}: the decoder's mean (the
     * Bernoulli probability, or the Gaussian mean clamped to [0, 1]) times 255, rounded.
     */
    public static byte[] sample(ConvVae model, VaeTrainer.Likelihood likelihood, long seed, long[] ids) {
        int m = ids.length, d = model.latent;
        if (m == 0) return new byte[0];
        for (long id : ids)
            if (id < 0 || id >= (1L << 40)) throw new IllegalArgumentException("VaeSampler: image id " + id + " outside [0, 2^40)");
        try (Graph g = Graph.inference()) {
            Tensor z = g.empty(m, d);
            for (int i = 0; i < m; i++) {
                Tensor zi = Init.normal(g.scope(), seed, STREAM + ids[i], 1.0, 1, d);
                MemorySegment.copy(zi.segment(), 0, z.segment(), (long) i * d * 4, (long) d * 4);
            }
            Tensor out = model.decode(Var.constant(z)).value().contiguous();
            if (likelihood == VaeTrainer.Likelihood.BERNOULLI) {
                Tensor p = g.empty(out.shape());
                Kernels.activation(dev.latent.nativ.LatentNative.ACT_SIGMOID, 0f, out, p);
                out = p;
            }
            long n = out.numel();
            if (n != (long) m * 784) throw new IllegalStateException("VaeSampler: the decoder gave " + n + " values for " + m + " images");
            byte[] px = new byte[(int) n];
            MemorySegment s = out.segment();
            for (int i = 0; i < n; i++) {
                float v = s.getAtIndex(JAVA_FLOAT, i);
                px[i] = (byte) Math.round(Math.min(1f, Math.max(0f, v)) * 255f);
            }
            return px;
        }
    }
}
