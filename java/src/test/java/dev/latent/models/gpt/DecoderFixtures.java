package dev.latent.models.gpt;

import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The decoding tests' shared fixtures (KvDecoderTest on the CPU, dev.latent.cuda.DeviceKvDecoderTest on the device): three
 * GPT configurations, random models whose logits spread, and the bound of one decoder's logits against the exact ones
 * (derived in KvDecoderTest's class comment).
 */
public final class DecoderFixtures {
    private DecoderFixtures() {}

    private static final double U = Math.ulp(1.0f) / 2;

    /** Tied head and exact GELU; untied with GPT-2's tanh GELU and three layers; one head of size 7. */
    public static final GptConfig[] CONFIGS = {
            new GptConfig(37, 2, 3, 48, 40, true),
            new GptConfig(29, 3, 2, 30, 23, false, GptConfig.Activation.GELU_TANH),
            new GptConfig(65, 1, 1, 7, 9, false),
    };

    /**
     * A GPT whose weights are large enough (std 1.5 / sqrt(fan-in), LayerNorm gains 1 +- 0.2, embeddings N(0, 1)) that the
     * logits spread over several units and greedy choices are not near-ties.
     */
    public static Gpt randomModel(Scope s, GptConfig cfg, long seed) {
        Gpt m = new Gpt(s, cfg, seed);
        SplittableRandom r = new SplittableRandom(seed);
        m.namedParameters().forEach((name, v) -> {
            MemorySegment seg = v.value().segment();
            long n = v.value().numel();
            long[] shape = v.value().shape();
            for (long i = 0; i < n; i++) {
                float x;
                if (name.contains("ln") && name.endsWith("weight")) x = (float) (1 + 0.2 * r.nextGaussian());
                else if (name.endsWith("bias")) x = (float) (0.1 * r.nextGaussian());
                else if (name.startsWith("wte") || name.startsWith("wpe")) x = (float) r.nextGaussian();
                else x = (float) (1.5 * r.nextGaussian() / Math.sqrt(shape[shape.length - 1]));
                seg.setAtIndex(JAVA_FLOAT, i, x);
            }
        });
        return m;
    }

    /** A device decoder on the path before the fused residual LayerNorm (axpby, then layerNorm): for the bit comparison in DeviceKvDecoderTest. */
    public static DeviceKvDecoder unfusedDeviceDecoder(Gpt model) {
        DeviceKvDecoder d = new DeviceKvDecoder(model);
        d.unfused = true;
        return d;
    }

    /** |decode - full| per logit at position t: (L G eps + 2 (C + 2) u) max|ref| (KvDecoderTest's class comment). */
    public static double tolerance(GptConfig cfg, int t, float[] ref) {
        double mx = 0;
        for (float v : ref) mx = Math.max(mx, Math.abs(v));
        double eps = 2.0 * ((2 * cfg.headSize() + t + 16) + 4.0 * (4 * cfg.dim() + 2)) * U;
        return (cfg.layers() * 4.0 * eps + 2.0 * (cfg.dim() + 2) * U) * mx;
    }
}
