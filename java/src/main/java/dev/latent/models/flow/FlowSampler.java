package dev.latent.models.flow;

import dev.latent.autograd.Graph;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Samples of an image flow (RealNVP, Glow) as 8-bit pixels, for services: z ~ N(0, T^2 I) on Philox (seed) pushed
 * through the inverse, then the logit preprocessing undone. The same (n, temperature, seed) gives the same bits
 * alone or under any concurrency; many threads may sample at once (the model is only read).
 */
public final class FlowSampler {
    private FlowSampler() {}

    /** n images (n x h x w bytes, row-major), pixel = round(255 clamp((sigmoid(y) - a) / (1 - 2a), 0, 1)). */
    public static byte[] sample(ImageFlow model, int n, double temperature, long seed) {
        if (n < 1) throw new IllegalArgumentException("FlowSampler: n = " + n + ", expected >= 1");
        if (!(temperature >= 0) || Double.isInfinite(temperature))
            throw new IllegalArgumentException("FlowSampler: temperature = " + temperature + ", expected a finite value >= 0");
        try (Graph g = Graph.inference()) {
            Tensor y = model.sampleLogits(n, temperature, seed);
            if (y.device() != Device.CPU) y = y.to(g.scope(), Device.CPU);
            MemorySegment s = y.contiguous().segment();
            long m = y.numel();
            byte[] out = new byte[Math.toIntExact(m)];
            double a = model.alpha();
            for (int i = 0; i < m; i++) {
                double sig = 1 / (1 + Math.exp(-s.getAtIndex(JAVA_FLOAT, i)));
                out[i] = (byte) Math.round(255 * Math.max(0, Math.min(1, (sig - a) / (1 - 2 * a))));
            }
            return out;
        }
    }
}
