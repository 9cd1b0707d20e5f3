package example.service;

import dev.latent.serve.GptGenerator;
import dev.latent.serve.Pending;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextResult;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Does batching pay? In-process, no HTTP: {@code args[1]} requests (default 64) of 32 tokens submitted at
 * once to a {@link GptGenerator} per lanes/batch setting, the settings interleaved over 5 rounds (the machine
 * is shared: interleaving spreads its noise over all of them); prints each setting's median tokens/s.
 * {@code args[2]}: the native pool's size (default: cores).
 */
public final class BatchBench {
    public static void main(String[] args) throws Exception {
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        if (args.length > 2) dev.latent.nativ.LatentNative.get().setNumThreads(Integer.parseInt(args[2]));   // native pool size
        int[][] settings = {{1, 1}, {2, 1}, {1, 8}, {2, 4}, {2, 8}, {2, 16}, {2, 32}};
        double[][] tps = new double[settings.length][5];
        for (int round = -1; round < 5; round++) {          // round -1 warms the JIT up
            for (int k = 0; k < settings.length; k++) {
                try (GptGenerator g = GptGenerator.load(Path.of(args[0]), new GptGenerator.Options(settings[k][0], settings[k][1], 4096))) {
                    long t0 = System.nanoTime();
                    List<Pending<TextResult>> ps = new ArrayList<>();
                    for (int i = 0; i < n; i++) ps.add(g.submit(new TextRequest("The ", 32, 0.8, 0, 1.0, i, null)));
                    long tokens = 0;
                    for (Pending<TextResult> p : ps) tokens += p.await().tokens().length;
                    if (round >= 0) tps[k][round] = tokens / ((System.nanoTime() - t0) / 1e9);
                }
            }
        }
        for (int k = 0; k < settings.length; k++) {
            double[] t = tps[k].clone();
            Arrays.sort(t);
            System.out.printf("lanes %d  batch %2d: %7.0f tokens/s (median of 5; min %.0f, max %.0f)%n", settings[k][0], settings[k][1], t[2], t[0], t[4]);
        }
    }
}
