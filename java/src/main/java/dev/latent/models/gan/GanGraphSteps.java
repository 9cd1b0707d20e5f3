package dev.latent.models.gan;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.cuda.CudaGraphStep;
import dev.latent.data.ImageData;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import dev.latent.train.GraphInputs;
import dev.latent.train.GraphLabels;
import dev.latent.train.StepScalars;

import java.lang.foreign.MemorySegment;

/**
 * {@link GanTrainer}'s CUDA graphs (train dcgan|wgan-gp --cuda-graph; {@link GanTrainer#cudaGraph}), split out of it:
 * DCGAN's D and G steps as one graph; WGAN-GP's critic step as one graph launched n_critic times per iteration (after
 * two warm-up critic steps) and its generator step as another (after three warm-up iterations: one after the critic's
 * capture). Before each launch the host stages what the step reads into fixed device memory, in one upload: the real
 * batch, z (drawn on the host from Philox keyed by the iteration, as without a graph, so every replay gets new noise),
 * a conditional DCGAN's real and fake labels with their embedding groupings ({@link GraphLabels}: the fake labels drawn
 * from Philox keyed by the iteration, as without a graph), WGAN-GP's per-sample mixing weights e and 1 - e; then Adam's
 * step constants. The same bits as without a graph.
 */
final class GanGraphSteps {
    private final GanTrainer t;
    private final GanTrainer.Config cfg;
    /* DCGAN: the whole iteration. WGAN-GP: the critic step (replayed n_critic times per iteration) and the generator step. */
    final CudaGraphStep graph, graphG;
    /* staged inputs, fixed on the device: the real batch and z (DCGAN, + its labels when conditional); + e and 1 - e
     * (WGAN-GP's critic); G's z (WGAN-GP) */
    private final GraphInputs graphIn, graphInG;
    private final GraphLabels yReal, yFake;
    private final Scope scope = Scope.shared();

    GanGraphSteps(GanTrainer t) {
        this.t = t;
        this.cfg = t.config();
        graph = new CudaGraphStep(2);
        /* the generator's capture comes one iteration later: the critic's capture takes the cached blocks of its size
         * classes into its graph's pool, so the generator needs a warm-up step after it to cache its own again */
        graphG = cfg.loss() == GanTrainer.Loss.WGAN_GP ? new CudaGraphStep(3) : null;
        long[] real = {cfg.batch(), 1, 32, 32}, z = {cfg.batch(), cfg.nz(), 1, 1};
        if (cfg.loss() == GanTrainer.Loss.GAN && cfg.conditional()) {
            yReal = new GraphLabels(scope, cfg.batch(), cfg.classes());
            yFake = new GraphLabels(scope, cfg.batch(), cfg.classes());
            long[][] r = yReal.slotShapes(), f = yFake.slotShapes();
            graphIn = new GraphInputs(scope, real, z, r[0], r[1], f[0], f[1]);
            yReal.bind(graphIn.get(2), graphIn.get(3));
            yFake.bind(graphIn.get(4), graphIn.get(5));
            graphInG = null;
        } else if (cfg.loss() == GanTrainer.Loss.GAN) {
            yReal = yFake = null;
            graphIn = new GraphInputs(scope, real, z);
            graphInG = null;
        } else {
            yReal = yFake = null;
            graphIn = new GraphInputs(scope, real, z, new long[] {cfg.batch()}, new long[] {cfg.batch()});
            graphInG = new GraphInputs(scope, z);
        }
    }

    /** Releases the graphs, the label bindings and the fixed buffers. */
    void close() {
        graph.close();
        if (graphG != null) graphG.close();
        if (yReal != null) yReal.close();
        if (yFake != null) yFake.close();
        scope.close();
    }

    /** The real batch data[perm[pos ..]] on the host, in [-1, 1], padded to 32 x 32. */
    private Tensor hostBatch(Scope sc, ImageData data, int[] perm, int pos) {
        Tensor x = Tensor.empty(sc, cfg.batch(), 1, 32, 32);
        data.fill(x, perm, pos, cfg.batch(), 1f / 127.5f, -1f, 2);
        return x;
    }

    /** One DCGAN iteration through the graph; its values stay on the device until read. */
    GanTrainer.StepValues gan(ImageData data, int[] perm, int pos, long it) {
        StepScalars values = t.stepValues();
        MemorySegment yr = yReal == null ? null : yReal.ids(), yf = yFake == null ? null : yFake.ids();
        graph.step(() -> {
            try (Scope sc = Scope.confined()) {   /* one upload: the real batch and z (and the labels) */
                Tensor real = hostBatch(sc, data, perm, pos), z = GanTrainer.latent(sc, cfg.seed(), GanTrainer.LATENT + it, cfg.batch(), cfg.nz());
                if (yReal == null) {
                    graphIn.stage(real, z);
                } else {
                    Tensor[] r = yReal.stage(sc, t.realLabels(sc, data, perm, pos));
                    Tensor[] f = yFake.stage(sc, GanTrainer.randomLabels(sc, cfg.seed(), GanTrainer.LABEL + it, cfg.batch(), cfg.classes()));
                    graphIn.stage(real, z, r[0], r[1], f[0], f[1]);
                }
            }
            t.optD.stage(cfg.lr());
            t.optG.stage(cfg.lr());
        }, () -> {
            try (Graph gr = Graph.open().precision(t.precision())) {
                Var[] v = t.ganBody(gr, Var.constant(graphIn.get(0)), Var.constant(graphIn.get(1)), yr, yf, true);
                values.capture(v[0].value(), v[1].value(), v[2].value().contiguous(), v[3].value().contiguous());
            }
        });
        return new GanTrainer.StepValues(null, values.again());
    }

    /** One WGAN-GP critic step through the critic's graph (values kept on the device). */
    void critic(ImageData data, int[] perm, int pos, long step) {
        float[][] w = t.penaltyWeights(step);
        graph.step(() -> {
            try (Scope sc = Scope.confined()) {   /* one upload: the real batch, z, e and 1 - e */
                graphIn.stage(hostBatch(sc, data, perm, pos), GanTrainer.latent(sc, cfg.seed(), GanTrainer.LATENT + step, cfg.batch(), cfg.nz()),
                        Tensor.of(sc, w[0], cfg.batch()), Tensor.of(sc, w[1], cfg.batch()));
            }
            t.optD.stage(cfg.lr());
        }, () -> {
            try (Graph gr = Graph.open().precision(t.precision())) {
                t.criticBody(gr, graphIn.get(0), Var.constant(graphIn.get(1)), graphIn.get(2), graphIn.get(3), step, true);
            }
        });
    }

    /** One WGAN-GP generator step through the generator's graph (its loss kept on the device). */
    void generator(long it) {
        graphG.step(() -> {
            try (Scope sc = Scope.confined()) {
                graphInG.stage(GanTrainer.latent(sc, cfg.seed(), GanTrainer.LATENT + (1L << 39) + it, cfg.batch(), cfg.nz()));
            }
            t.optG.stage(cfg.lr());
        }, () -> {
            try (Graph gr = Graph.open().precision(t.precision())) {
                Var loss = F.scale(F.mean(t.d.forward(t.g.forward(Var.constant(graphInG.get(0))))), -1f);
                gr.freeze(t.d.parameters());
                gr.backward(loss);
                t.optG.updateStaged(0);
                t.keep(1, loss.value());
            }
        });
    }
}
