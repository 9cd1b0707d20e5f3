package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * E1's GPT (6 layers x 6 heads x 384, context 256, batch 8, vocab 65, tied) forward + backward, fused residual
 * LayerNorms (Gpt.loss) against the unfused blocks (GptUnfused.loss, the path before), alternating in one JVM so both
 * see the same machine; prints the median of each and checks the losses are the same bits. Not a test (no *Test name):
 * run by hand with the test classpath, e.g.
 * {@code java -cp java/target/classes:java/target/test-classes dev.latent.models.gpt.GptFusedResidualBench 12}.
 */
public final class GptFusedResidualBench {
    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 10, b = 8;
        GptConfig cfg = new GptConfig(65, 6, 6, 384, 256, true);
        int n = b * cfg.context();
        SplittableRandom r = new SplittableRandom(1);
        int[] ids = new int[n], tg = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(65); tg[i] = r.nextInt(65); }
        double[][] ms = new double[2][steps];
        try (Arena a = Arena.ofConfined(); Scope model = Scope.shared()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, tg);
            Gpt gpt = new Gpt(model, cfg, 5);
            float[] loss = new float[2];
            for (int s = -2; s < steps; s++)
                for (int v = 0; v < 2; v++) {
                    long t0 = System.nanoTime();
                    try (Graph g = Graph.open()) {
                        Var l = v == 1 ? gpt.loss(hi, ht, b, cfg.context()) : GptUnfused.loss(gpt, hi, ht, b, cfg.context());
                        g.backward(l);
                        loss[v] = F.item(l);
                    }
                    if (s >= 0) ms[v][s] = (System.nanoTime() - t0) / 1e6;
                }
            if (Float.floatToRawIntBits(loss[0]) != Float.floatToRawIntBits(loss[1]))
                throw new AssertionError("losses differ: unfused " + loss[0] + " fused " + loss[1]);
        }
        for (double[] m : ms) Arrays.sort(m);
        System.out.printf("E1 GPT fwd+bwd, %d steps each, alternating: unfused median %.1f ms (min %.1f), fused median %.1f ms (min %.1f), %.3fx%n",
                steps, ms[0][steps / 2], ms[0][0], ms[1][steps / 2], ms[1][0], ms[0][steps / 2] / ms[1][steps / 2]);
    }
}
