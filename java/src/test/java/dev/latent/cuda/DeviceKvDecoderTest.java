package dev.latent.cuda;

import dev.latent.models.gpt.DecoderFixtures;
import dev.latent.models.gpt.DeviceKvDecoder;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.models.gpt.DecoderFixtures.CONFIGS;
import static dev.latent.models.gpt.DecoderFixtures.randomModel;
import static org.junit.jupiter.api.Assertions.*;

/**
 * GPT decoding on the device (DeviceKvDecoder: KV cache in device memory, attention_decode.cu) against the CPU decoder
 * (KvDecoder, in place) on the same weights, for three configurations (tied head and exact GELU; untied with GPT-2's
 * tanh GELU and three layers; one head of size 7):
 * <ul>
 *   <li>teacher-forced logits: the prompt at once, then one token a step (the CPU's greedy token fed to both), through
 *   the context's end, each step's logits within 2x KvDecoderTest's bound of decode against the full forward (both
 *   decoders err against the exact logits: ((2 hs + t + 16) + 4 (4 C + 2)) 2u per layer and op, 4 ops a layer, plus
 *   the head's (C + 2) 2u, times max |logit|);</li>
 *   <li>greedy tokens: at every teacher-forced step whose top-two margin (of the CPU's logits) exceeds twice that
 *   tolerance the device's argmax is the CPU's, and at least 75% of the steps must be such (the weights are scaled so
 *   margins are clear); free greedy generation gives the CPU's tokens up to the first step without a clear margin
 *   (after it a near tie could legitimately go either way), at least 3 of them;</li>
 *   <li>the context filling (prompt + tokens > context: the cache rebuilt from the newest half) gives the CPU's tokens
 *   under the same rule; sampling at temperature 0.8 with top-k / top-p draws the CPU's tokens where the logits agree
 *   (the same Philox uniform; compared up to the first token whose draw the tolerance could flip).</li>
 * </ul>
 * The host synchronisations per token are bounded in HostSyncTest.gptDecodeOnDevice.
 */
class DeviceKvDecoderTest {
    @BeforeAll
    static void gate() { device(); }

    /** Twice one decoder's bound (DecoderFixtures.tolerance, KvDecoderTest's): both decoders err against the exact logits. */
    static double tolerance(GptConfig cfg, int t, float[] ref) { return 2 * DecoderFixtures.tolerance(cfg, t, ref); }

    static int argmax(float[] l) {
        int b = 0;
        for (int i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
        return b;
    }

    static double margin(float[] l) {
        int b = argmax(l);
        double second = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < l.length; i++) if (i != b) second = Math.max(second, l[i]);
        return l[b] - second;
    }

    @Test
    void logitsAndGreedyTokensMatchTheCpuDecoder() {
        double worst = 0;
        for (int ci = 0; ci < CONFIGS.length; ci++) {
            GptConfig cfg = CONFIGS[ci];
            try (Scope cpuS = Scope.shared(); Scope gpuS = Scope.shared()) {
                Gpt cpu = randomModel(cpuS, cfg, 11 + ci), gpu = randomModel(gpuS, cfg, 11 + ci);
                gpu.to(gpuS, Device.CUDA);
                int[] prompt = {1, 4, 2, 0, 3};
                try (KvDecoder cd = new KvDecoder(cpu); DeviceKvDecoder dd = new DeviceKvDecoder(gpu, 2); KvDecoder.Cache cache = cd.new Cache();
                     DeviceKvDecoder.Cache dcache = dd.new Cache()) {
                    // teacher-forced: the prompt at once, then the CPU's greedy token, to the end of the context
                    List<int[]> feeds = new ArrayList<>();
                    feeds.add(prompt);
                    int pos = 0;
                    int clear = 0, prefix = 0;
                    boolean diverged = false;
                    for (int step = 0; pos + feeds.getLast().length <= cfg.context(); step++) {
                        int[] f = feeds.getLast();
                        float[] want = cd.forward(List.of(cache), List.of(f), false);
                        float[] got = dd.forward(List.of(dcache), List.of(f), false);
                        pos += f.length;
                        double tol = tolerance(cfg, pos, want);
                        for (int i = 0; i < want.length; i++) {
                            double e = Math.abs((double) got[i] - want[i]);
                            worst = Math.max(worst, e / tol);
                            assertTrue(e <= tol, "config " + ci + " step " + step + " (position " + pos + ") logit " + i + ": device " + got[i]
                                    + ", CPU " + want[i] + " (|diff| " + e + " > tol " + tol + ")");
                        }
                        if (margin(want) > 2 * tol) {   // teacher-forced, so every step is checked on its own
                            assertEquals(argmax(want), argmax(got), "config " + ci + " step " + step + ": greedy token with a clear margin");
                            clear++;
                            if (!diverged) prefix++;
                        } else {
                            diverged = true;   // free generation may legitimately part here
                        }
                        feeds.add(new int[] {argmax(want)});
                    }
                    int steps = feeds.size() - 1;
                    assertTrue(clear >= 0.75 * steps && prefix >= 3, "config " + ci + ": only " + clear + " of " + steps + " steps had a clear greedy margin (clear prefix " + prefix + ")");
                    // greedy generation end to end: the same tokens over that clear prefix
                    var greedy = new KvDecoder.Settings(steps, 0, 0, 1, 7);
                    int[] c = cd.generate(prompt, greedy), d = dd.generate(prompt, greedy);
                    assertArrayEquals(Arrays.copyOf(c, prefix), Arrays.copyOf(d, prefix), "config " + ci + ": greedy tokens (clear prefix " + prefix + ")");
                    System.out.printf("config %d: %d of %d steps with a clear greedy margin, free generation compared over the first %d tokens%n", ci, clear, steps, prefix);
                }
            }
        }
        System.out.printf("DeviceKvDecoderTest: worst |device - CPU| logit = %.3f of the tolerance%n", worst);
    }

    @Test
    void contextRefillAndSamplingDrawTheCpuTokens() {
        GptConfig cfg = CONFIGS[1];   // context 23
        try (Scope cpuS = Scope.shared(); Scope gpuS = Scope.shared()) {
            Gpt cpu = randomModel(cpuS, cfg, 5), gpu = randomModel(gpuS, cfg, 5);
            gpu.to(gpuS, Device.CUDA);
            int[] prompt = new int[20];
            for (int i = 0; i < prompt.length; i++) prompt[i] = (i * 7) % cfg.vocab();
            try (KvDecoder cd = new KvDecoder(cpu); DeviceKvDecoder dd = new DeviceKvDecoder(gpu)) {
                // greedy across two refills (20 + 30 > 23): the first tokens, whose margins the first test checks, must agree
                var greedy = new KvDecoder.Settings(30, 0, 0, 1, 3);
                int[] c = cd.generate(prompt, greedy), d = dd.generate(prompt, greedy);
                int same = 0;
                while (same < c.length && c[same] == d[same]) same++;
                assertTrue(same >= 20, "greedy past the context's end: device and CPU agree on only " + same + " leading tokens: "
                        + Arrays.toString(c) + " vs " + Arrays.toString(d));
                // sampling: Sampling.pick on the copied logits with the same Philox uniform as the CPU decoder
                var sampled = new KvDecoder.Settings(12, 0.8, 10, 0.95, 42);
                int[] cs = cd.generate(prompt, sampled), ds = dd.generate(prompt, sampled);
                int ss = 0;
                while (ss < cs.length && cs[ss] == ds[ss]) ss++;
                assertTrue(ss >= 8, "sampled tokens: device and CPU agree on only " + ss + " leading tokens: " + Arrays.toString(cs) + " vs "
                        + Arrays.toString(ds));
                // and the same seed on the device twice gives the same tokens (deterministic kernels)
                assertArrayEquals(ds, dd.generate(prompt, sampled), "the device decoder is deterministic");
            }
        }
    }

    /**
     * The residual adds fused into the LayerNorms (Kernels.layerNormResidual) against the path before (Kernels.axpby, then
     * Kernels.layerNorm) on the device, all three configurations: every logit's bits equal (the prompt as one chunk, then one
     * token a step to the context's end), and the same greedy and sampled tokens through a context rebuild.
     */
    @Test
    void fusedResidualLayerNormKeepsEveryBit() {
        for (int ci = 0; ci < CONFIGS.length; ci++) {
            GptConfig cfg = CONFIGS[ci];
            try (Scope s = Scope.shared()) {
                Gpt gpu = randomModel(s, cfg, 31 + ci);
                gpu.to(s, Device.CUDA);
                try (DeviceKvDecoder fused = new DeviceKvDecoder(gpu); DeviceKvDecoder plain = DecoderFixtures.unfusedDeviceDecoder(gpu)) {
                    int[] prompt = {1, 4, 2, 0, 3};
                    int pos = 0;
                    int[] feed = prompt;
                    try (DeviceKvDecoder.Cache fc = fused.new Cache(); DeviceKvDecoder.Cache pc = plain.new Cache()) {
                        while (pos + feed.length <= cfg.context()) {
                            float[] a = fused.forward(List.of(fc), List.of(feed), false), b = plain.forward(List.of(pc), List.of(feed), false);
                            for (int i = 0; i < a.length; i++)
                                assertEquals(Float.floatToRawIntBits(b[i]), Float.floatToRawIntBits(a[i]),
                                        "config " + ci + " position " + pos + " logit " + i + ": fused " + a[i] + ", unfused " + b[i]);
                            pos += feed.length;
                            feed = new int[] {argmax(a)};
                        }
                    }
                    int n = cfg.context() + 5;   // through the cache's rebuild
                    for (var st : List.of(new KvDecoder.Settings(n, 0, 0, 1, 1), new KvDecoder.Settings(n, 0.9, 5, 0.95, 77)))
                        assertArrayEquals(plain.generate(prompt, st), fused.generate(prompt, st), "config " + ci + " tokens at temperature " + st.temperature());
                }
            }
        }
    }

    @Test
    void refusesAModelOnTheCpu() {
        try (Scope s = Scope.shared()) {
            Gpt cpu = randomModel(s, CONFIGS[2], 1);
            var e = assertThrows(IllegalArgumentException.class, () -> new DeviceKvDecoder(cpu));
            assertTrue(e.getMessage().contains("not CUDA"), e.getMessage());
        }
    }
}
