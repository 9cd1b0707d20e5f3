package example.service;

import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.serve.GptGenerator;
import dev.latent.serve.Pending;
import dev.latent.serve.TextRequest;
import dev.latent.serve.TextResult;
import dev.latent.tensor.Scope;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Does batching pay? In-process, no HTTP. First the decoder alone on this thread: the cost of one
 * sequence-step (a token of one request) when B sequences step together, best of 40 runs of 36 steps (the
 * best is what the code costs; the machine's noise only adds). Then the generator: {@code args[1]} requests (default 64) of 32 tokens submitted at
 * once to a {@link GptGenerator} per lanes/batch setting, the settings interleaved over 5 rounds (the machine
 * is shared: interleaving spreads its noise over all of them); prints each setting's median tokens/s.
 * {@code args[2]}: the native pool's size (default: cores).
 */
public final class BatchBench {
    public static void main(String[] args) throws Exception {
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        if (args.length > 2) dev.latent.Latent.setThreads(Integer.parseInt(args[2]));   // native pool size
        try (Scope s = Scope.shared()) {
            GptCheckpoint.Loaded l = GptCheckpoint.load(Path.of(args[0]), s);
            KvDecoder d = new KvDecoder(l.model());
            int[] prompt = l.tokenizer().encode("The ");
            for (double temp : new double[] {0.8, 0.8, 0}) {     // the first pass warms the JIT up
                for (int b : new int[] {1, 2, 4, 8, 16, 32}) {
                    double best = Double.MAX_VALUE;
                    for (int rep = 0; rep < 40; rep++) {
                        List<KvDecoder.Sequence> seqs = new ArrayList<>();
                        for (int i = 0; i < b; i++) seqs.add(d.new Sequence(prompt, new KvDecoder.Settings(32, temp, 0, 1.0, i)));
                        long t0 = System.nanoTime();
                        int steps = 0;
                        while (!seqs.get(0).done()) { d.step(seqs); steps++; }
                        best = Math.min(best, (System.nanoTime() - t0) / 1e3 / ((double) b * steps));
                        for (KvDecoder.Sequence q : seqs) q.close();
                    }
                    System.out.printf("decoder, temperature %.1f, batch %2d: %6.2f us per sequence-step (%.0f tokens/s per core)%n", temp, b, best, 1e6 / best);
                }
            }
        }
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
