package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.ops.Kernels;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Does a CUDA graph shorten the GPT training step? (bench/cuda/gpu_checks.sh, STEPS=graph.) For each model size, the
 * step (forward, backward, AdamW with global-norm clipping, a new batch every step, the learning rate changing every
 * step) is timed plainly and replayed from a graph (CudaGraphStep: 2 warm-up steps, then the capture), in the same
 * process on the same stream, from the same weights and batches, with no host read inside the timed steps (one
 * synchronisation at the end of each group); the losses of the two runs are compared bit for bit. The VAE step is not
 * here: it is not capturable yet (its sampler's Philox key is passed by value and its batch is uploaded inside the
 * step, which CudaGraphStep would refuse). Writes one JSON object.
 *
 *     java ... dev.latent.cuda.GraphBench OUT.json [--tiny]     (--tiny: a model the emulated driver runs in seconds)
 */
public final class GraphBench {
    private GraphBench() {}

    record Row(String model, String path, double msPerStep, float lastLoss) {}

    public static void main(String[] args) throws IOException {
        if (args.length < 1) throw new IllegalArgumentException("usage: GraphBench OUT.json [--tiny]");
        boolean tiny = Arrays.asList(args).contains("--tiny");
        Cuda cu = Cuda.get();
        System.out.println(cu.describe());
        cu.useCaptureStream();   // both paths on the same stream
        record Cfg(String name, GptConfig cfg, int batch, int steps) {}
        List<Cfg> cfgs = tiny ? List.of(new Cfg("tiny", new GptConfig(65, 1, 2, 16, 8, false), 2, 6))
                : List.of(new Cfg("small 4x128 ctx128 b16", new GptConfig(65, 4, 4, 128, 128, false), 16, 40),
                          new Cfg("big 6x384 ctx256 b32", new GptConfig(65, 6, 6, 384, 256, false), 32, 20));
        List<Row> rows = new ArrayList<>();
        StringBuilder json = new StringBuilder("{\"device\":\"" + cu.describe() + "\",\"rows\":[");
        boolean allSame = true;
        for (Cfg c : cfgs) {
            float[] plain = new float[c.steps], graphed = new float[c.steps];
            double msPlain = run(cu, c.cfg, c.batch, c.steps, false, plain), msGraph = run(cu, c.cfg, c.batch, c.steps, true, graphed);
            boolean same = Arrays.equals(plain, graphed);
            allSame &= same;
            rows.add(new Row(c.name, "plain", msPlain, plain[c.steps - 1]));
            rows.add(new Row(c.name, "graph", msGraph, graphed[c.steps - 1]));
            System.out.printf(Locale.ROOT, "%-24s plain %8.3f ms/step, graph %8.3f ms/step (%.2fx); losses %s%n", c.name, msPlain, msGraph,
                    msPlain / msGraph, same ? "bit-identical" : "DIFFER: " + Arrays.toString(plain) + " vs " + Arrays.toString(graphed));
            json.append(rows.size() > 2 ? "," : "").append(String.format(Locale.ROOT,
                    "{\"model\":\"%s\",\"plain_ms\":%.4f,\"graph_ms\":%.4f,\"speedup\":%.4f,\"same_losses\":%b}", c.name, msPlain, msGraph,
                    msPlain / msGraph, same));
        }
        json.append("]}");
        Files.writeString(Path.of(args[0]), json.toString());
        if (!allSame) throw new AssertionError("a graph's losses differ from the plain step's (see above)");
    }

    /** ms per step over the steps after the first three (warm-up and capture), losses of every step read afterwards. */
    static double run(Cuda cu, GptConfig cfg, int b, int steps, boolean graphed, float[] losses) {
        int n = b * cfg.context();
        SplittableRandom r = new SplittableRandom(7);
        try (Scope model = Scope.shared(); Arena a = Arena.ofConfined()) {
            Gpt gpt = new Gpt(model, cfg, 5);
            gpt.to(model, Device.CUDA);
            AdamW opt = new AdamW(model, gpt.namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            Tensor lossOut = Tensor.zeros(model, Device.CUDA, steps);
            MemorySegment[] hx = new MemorySegment[steps], hy = new MemorySegment[steps];
            for (int s = 0; s < steps; s++) {
                int[] ids = new int[n], tg = new int[n];
                for (int i = 0; i < n; i++) { ids[i] = r.nextInt(cfg.vocab()); tg[i] = r.nextInt(cfg.vocab()); }
                hx[s] = a.allocateFrom(JAVA_INT, ids);
                hy[s] = a.allocateFrom(JAVA_INT, tg);
            }
            Tensor lossBuf = Tensor.zeros(model, Device.CUDA, 1);
            long t0 = 0;
            try (CudaGraphStep gs = graphed ? new CudaGraphStep(2) : null) {
                for (int s = 0; s < steps; s++) {
                    if (s == 3) { cu.synchronize(); t0 = System.nanoTime(); }
                    MemorySegment x = hx[s], y = hy[s];
                    float lr = 1e-3f * (1 + s % 7);
                    if (graphed) {
                        gs.step(() -> { Kernels.stageTokensFixed(x, y, n, cfg.vocab()); opt.stage(lr); }, () -> {
                            try (Graph g = Graph.open()) {
                                Var l = gpt.loss(x, y, b, cfg.context());
                                g.backward(l);
                                opt.updateStaged(1.0);
                                Kernels.copy(l.value().reshape(1), lossBuf);
                            }
                        });
                    } else {
                        try (Graph g = Graph.open()) {
                            Var l = gpt.loss(x, y, b, cfg.context());
                            g.backward(l);
                            opt.update(lr, 1.0);
                            Kernels.copy(l.value().reshape(1), lossBuf);
                        }
                    }
                    Kernels.copy(lossBuf, lossOut.slice(0, s, s + 1));   // outside the graph: every step's loss, read at the end
                }
                cu.synchronize();
            }
            double ms = (System.nanoTime() - t0) / 1e6 / (steps - 3);
            System.arraycopy(lossOut.toArray(), 0, losses, 0, steps);
            return ms;
        }
    }
}
