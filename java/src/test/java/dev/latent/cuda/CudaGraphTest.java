package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.nativ.NativeException;
import dev.latent.ops.Kernels;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.EMU_GRAPH_LAUNCH;
import static dev.latent.cuda.CudaTesting.EMU_LAUNCH;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.emuCounters;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * CUDA graphs (Cuda.capture, CudaGraph, CudaGraphStep): a captured sequence of launches and copies replays with the
 * results of running it; what a real driver refuses during a capture (a synchronous copy, a synchronisation, an
 * allocation the cache cannot serve, an upload from a reused staging slot, capturing the legacy stream) fails with the
 * driver's error or a message naming it, and leaves the backend usable; and a GPT training step (forward, backward,
 * AdamW with global-norm clipping) replayed from a graph gives the uncaptured step's bits, loss and parameters, step
 * after step with a new batch each step, with no kernel launch calls and no host synchronisation during a replay.
 * On a GPU the same test runs against the real driver (bench/cuda/gpu_checks.sh).
 */
class CudaGraphTest {
    static Cuda cu;

    @BeforeAll
    static void setUp() {
        cu = device();
        cu.useCaptureStream();
    }

    private static float[] read(DeviceBuffer b, int n) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(4L * n);
            b.copyTo(h);
            return h.toArray(JAVA_FLOAT);
        }
    }

    private static DeviceBuffer upload(float[] v) {
        DeviceBuffer d = cu.alloc(4L * v.length);
        try (Arena a = Arena.ofConfined()) { d.copyFrom(a.allocateFrom(JAVA_FLOAT, v)); }
        return d;
    }

    @Test
    void capturedLaunchesReplayInOrder() {
        int n = 37;
        float[] x0 = new float[n], y0 = new float[n];
        for (int i = 0; i < n; i++) { x0[i] = i * 0.25f - 3; y0[i] = 1 - i * 0.5f; }
        try (DeviceBuffer x = upload(x0); DeviceBuffer y = upload(y0); DeviceBuffer z = cu.alloc(4L * n)) {
            // y = 2 x + 0.5 y; z = y (a stream-ordered copy); y = y * x
            Runnable body = () -> {
                CudaKernels.axpby(cu, n, 2f, x, 0.5f, y);
                z.copyFrom(y);
                CudaKernels.mul(cu, n, y, x, y);
            };
            float[] wantY = y0.clone(), wantZ = new float[n];
            long[] before = emuCounters();
            CudaGraph g = cu.capture(body);
            long[] afterCapture = emuCounters();
            assertArrayEquals(y0, read(y, n), "a capture records the work; it does not run it");
            try (g) {
                for (int r = 1; r <= 3; r++) {
                    long[] c0 = emuCounters();
                    g.launch();
                    long[] c1 = emuCounters();
                    for (int i = 0; i < n; i++) {
                        wantY[i] = 2f * x0[i] + 0.5f * wantY[i];
                        wantZ[i] = wantY[i];
                        wantY[i] = wantY[i] * x0[i];
                    }
                    assertArrayEquals(wantY, read(y, n), "y after replay " + r);
                    assertArrayEquals(wantZ, read(z, n), "z after replay " + r);
                    if (c0 != null) {
                        assertEquals(0, c1[EMU_LAUNCH] - c0[EMU_LAUNCH], "a replay makes no cuLaunchKernel call");
                        assertEquals(1, c1[EMU_GRAPH_LAUNCH] - c0[EMU_GRAPH_LAUNCH], "one cuGraphLaunch per replay");
                    }
                }
                assertEquals(3, g.launches());
            }
            if (before != null) assertEquals(2, afterCapture[EMU_LAUNCH] - before[EMU_LAUNCH], "the capture saw both launches");
            assertThrows(IllegalStateException.class, g::launch, "a closed graph");
        }
    }

    /** Runs a capture whose body does something a capture does not permit; returns the failure; the backend must still work. */
    private static RuntimeException refused(Runnable body) {
        RuntimeException e = assertThrows(RuntimeException.class, () -> cu.capture(body));
        assertFalse(cu.capturing(), "the capture ended");
        // still usable: an ordinary launch and a read
        try (DeviceBuffer d = upload(new float[] {1, 2, 3})) {
            CudaKernels.axpby(cu, 3, 2f, d, 0f, d);
            assertArrayEquals(new float[] {2, 4, 6}, read(d, 3));
        }
        return e;
    }

    @Test
    void whatBreaksACaptureOnAGpuFailsHere() {
        try (DeviceBuffer d = upload(new float[] {1, 2, 3, 4})) {
            // a synchronous device-to-host copy (the legacy stream, and a host synchronisation)
            RuntimeException e = refused(() -> { CudaKernels.axpby(cu, 4, 1f, d, 1f, d); read(d, 4); });
            assertTrue(e.getMessage().contains("CUDA_ERROR_STREAM_CAPTURE"), e.getMessage());
            // cuCtxSynchronize
            e = refused(cu::synchronize);
            assertTrue(e.getMessage().contains("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"), e.getMessage());
            // an allocation the cache cannot serve (cuMemAlloc is not permitted while capturing)
            e = refused(() -> cu.alloc(123L << 20));
            assertTrue(e.getMessage().contains("no cached block"), e.getMessage());
            // an upload from page-locked staging (its slot is reused before a replay would read it)
            e = refused(() -> Staging.upload(d, MemorySegment.ofArray(new float[] {9, 9, 9, 9})));
            assertTrue(e.getMessage().contains("inside the captured step"), e.getMessage());
            // a failure inside the body ends the capture too, and is the one thrown
            e = refused(() -> { throw new IllegalArgumentException("boom"); });
            assertEquals("boom", e.getMessage());
            assertArrayEquals(new float[] {1, 2, 3, 4}, read(d, 4), "nothing captured ran");
        }
        // the legacy default stream cannot be captured: the driver's own answer
        CudaDriver drv = cu.driver();
        cu.makeCurrent();
        NativeException ne = assertThrows(NativeException.class,
                () -> drv.call("cuStreamBeginCapture_v2", drv.cuStreamBeginCapture, MemorySegment.NULL, 0));
        assertTrue(ne.getMessage().contains("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"), ne.getMessage());
    }

    // ---- GPT: a training step replayed from a graph against the same step run plainly ----

    static final GptConfig CFG = new GptConfig(65, 2, 2, 32, 16, false);
    static final int B = 2, STEPS = 6;

    record Run(float[] losses, Map<String, float[]> params) {}

    /** STEPS GPT steps on CUDA, each with a new batch; through a CudaGraphStep (2 warm-up steps) or plainly. */
    static Run gpt(boolean graphed) {
        int n = B * CFG.context();
        SplittableRandom r = new SplittableRandom(11);
        float[] losses = new float[STEPS];
        try (Scope model = Scope.shared(); Arena a = Arena.ofConfined()) {
            Gpt gpt = new Gpt(model, CFG, 5);
            gpt.to(model, Device.CUDA);
            AdamW opt = new AdamW(model, gpt.namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            Tensor lossBuf = Tensor.zeros(model, Device.CUDA, 1);
            CudaGraphStep gs = graphed ? new CudaGraphStep(2) : null;
            for (int s = 0; s < STEPS; s++) {
                int[] ids = new int[n], targets = new int[n];
                for (int i = 0; i < n; i++) { ids[i] = r.nextInt(65); targets[i] = r.nextInt(65); }
                MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, targets);
                float lr = 1e-3f * (1 + s);   // a schedule: the learning rate changes every step
                Runnable body = () -> {
                    try (Graph g = Graph.open()) {
                        Var l = gpt.loss(hi, ht, B, CFG.context());
                        g.backward(l);
                        opt.updateStaged(1.0);
                        Kernels.copy(l.value().reshape(1), lossBuf);
                    }
                };
                if (graphed) {
                    long h0 = cu.hostSyncs();
                    long[] c0 = emuCounters();
                    gs.step(() -> { Kernels.stageTokensFixed(hi, ht, n, CFG.vocab()); opt.stage(lr); }, body);
                    long[] c1 = emuCounters();
                    if (s > 2) {   // a replay
                        assertEquals(0, cu.hostSyncs() - h0, "a replayed step (staging included) makes no host synchronisation");
                        if (c0 != null) {
                            assertEquals(0, c1[EMU_LAUNCH] - c0[EMU_LAUNCH], "a replayed step makes no cuLaunchKernel call");
                            assertEquals(1, c1[EMU_GRAPH_LAUNCH] - c0[EMU_GRAPH_LAUNCH], "a replayed step is one cuGraphLaunch");
                        }
                    }
                    assertEquals(s >= 2, gs.captured(), "captured after the warm-up, at step " + s);
                } else {
                    try (Graph g = Graph.open()) {
                        Var l = gpt.loss(hi, ht, B, CFG.context());
                        g.backward(l);
                        opt.update(lr, 1.0);
                        Kernels.copy(l.value().reshape(1), lossBuf);
                    }
                }
                losses[s] = lossBuf.toArray()[0];
            }
            if (graphed) {
                assertEquals(STEPS - 2, gs.replays(), "graph launches: the captured step and the replays");
                gs.close();
            }
            Map<String, float[]> params = new java.util.LinkedHashMap<>();
            gpt.namedParameters().forEach((k, v) -> params.put(k, v.value().toArray()));
            return new Run(losses, params);
        }
    }

    @Test
    void gptStepReplayedFromAGraphGivesTheUncapturedBits() {
        Run plain = gpt(false), graphed = gpt(true);
        for (int s = 0; s < STEPS; s++)
            assertEquals(Float.floatToRawIntBits(plain.losses[s]), Float.floatToRawIntBits(graphed.losses[s]),
                    "loss at step " + s + ": uncaptured " + plain.losses[s] + ", graph " + graphed.losses[s]);
        assertTrue(plain.losses[STEPS - 1] != plain.losses[STEPS - 2], "the batches differ, so do the losses");
        List<String> differ = new ArrayList<>();
        plain.params.forEach((k, v) -> { if (!java.util.Arrays.equals(v, graphed.params.get(k))) differ.add(k); });
        assertTrue(differ.isEmpty(), "parameters differ after " + STEPS + " steps: " + differ);
        System.out.printf("GPT through a CUDA graph: %d steps (2 warm-up, 1 captured, %d replayed), losses and parameters bit-identical"
                + " to the uncaptured steps; last loss %.6f%n", STEPS, STEPS - 3, graphed.losses[STEPS - 1]);
    }

    @Test
    void aStepThatPassesAChangingValueByValueIsRefused() {
        try (DeviceBuffer d = upload(new float[] {1, 2, 3}); CudaGraphStep gs = new CudaGraphStep(1)) {
            float[] a = {1f};
            Runnable body = () -> CudaKernels.axpby(cu, 3, a[0], d, 1f, d);   // the factor changes every step: by value
            gs.step(() -> a[0] = 2f, body);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> gs.step(() -> a[0] = 3f, body));
            assertTrue(e.getMessage().contains("ltk_axpby") && e.getMessage().contains("2.0f") && e.getMessage().contains("3.0f"), e.getMessage());
            assertFalse(gs.captured());
        }
    }

    /**
     * A block the step needs taken out of the cache between the last warm-up step and the capture (here held by the test;
     * in a trainer, a resident constant made by the sampling between steps): the capture misses the cache, runs nothing,
     * and the step runs plainly instead; the next step is captured. The results are those of three plain steps.
     */
    @Test
    void aCaptureThatMissesTheCacheRunsThatStepPlainlyAndCapturesTheNext() {
        long bytes = 7L << 20;   // a size class nothing else here uses
        try (DeviceBuffer d = upload(new float[] {1, 2, 3}); CudaGraphStep gs = new CudaGraphStep(1)) {
            Runnable body = () -> {
                try (DeviceBuffer t = cu.alloc(bytes)) { CudaKernels.axpby(cu, 3, 2f, d, 0f, d); }
            };
            gs.step(() -> {}, body);   // warm-up: the block is allocated and cached
            DeviceBuffer held = cu.alloc(bytes);   // ... and taken before the capture
            gs.step(() -> {}, body);
            assertFalse(gs.captured(), "the capture missed the cache");
            assertEquals(1, gs.cacheMisses());
            gs.step(() -> {}, body);
            assertTrue(gs.captured(), "captured a step later");
            held.close();
            assertArrayEquals(new float[] {8, 16, 24}, read(d, 3), "three steps ran, one each");
        }
    }

    // ---- the other families (vae, dcgan, wgan-gp, realnvp, glow): trainer steps through CUDA graphs ----

    /** Device-side work of one family step, counted: returns the step's values read after it. */
    interface FamilyStep { double[] run(int s); }

    record FamilyRun(double[][] values, Map<String, float[]> params) {}

    /**
     * Runs {@code steps} steps, reading each step's values after it; for a graphed run checks that every step from
     * {@code firstReplay} on (except those listed in {@code uncaptured}) is replayed: no cuLaunchKernel call, {@code
     * graphLaunches} cuGraphLaunch calls and no host synchronisation during the step.
     */
    static double[][] runSteps(int steps, boolean graphed, int firstReplay, int graphLaunches, java.util.Set<Integer> uncaptured, FamilyStep step) {
        double[][] out = new double[steps][];
        for (int s = 0; s < steps; s++) {
            long h0 = cu.hostSyncs();
            long[] c0 = emuCounters();
            out[s] = step.run(s);   // the step, then its values read (one copy)
            if (graphed && s >= firstReplay && !uncaptured.contains(s) && c0 != null) {
                long[] c1 = emuCounters();
                assertEquals(0, c1[EMU_LAUNCH] - c0[EMU_LAUNCH], "step " + s + ": a replayed step makes no cuLaunchKernel call");
                assertEquals(graphLaunches, c1[EMU_GRAPH_LAUNCH] - c0[EMU_GRAPH_LAUNCH], "step " + s + ": cuGraphLaunch calls");
                assertEquals(1, cu.hostSyncs() - h0, "step " + s + ": a replayed step makes no host synchronisation; reading its values one copy");
            }
        }
        return out;
    }

    static void sameBits(String family, FamilyRun plain, FamilyRun graphed) {
        for (int s = 0; s < plain.values.length; s++)
            for (int k = 0; k < plain.values[s].length; k++)
                assertEquals(Double.doubleToRawLongBits(plain.values[s][k]), Double.doubleToRawLongBits(graphed.values[s][k]),
                        family + ": value " + k + " of step " + s + ": uncaptured " + plain.values[s][k] + ", graph " + graphed.values[s][k]);
        assertNotEquals(plain.values[plain.values.length - 1][0], plain.values[plain.values.length - 2][0], family + ": the steps differ");
        List<String> differ = new ArrayList<>();
        plain.params.forEach((k, v) -> { if (!java.util.Arrays.equals(v, graphed.params.get(k))) differ.add(k); });
        assertTrue(differ.isEmpty(), family + ": parameters differ after " + plain.values.length + " steps: " + differ);
        assertEquals(plain.params.keySet(), graphed.params.keySet());
        System.out.printf("%s through CUDA graphs: %d steps, values and parameters bit-identical to the uncaptured steps; last %s%n",
                family, plain.values.length, java.util.Arrays.toString(graphed.values[plain.values.length - 1]));
    }

    static Map<String, float[]> params(Map<String, Var> named) {
        Map<String, float[]> m = new java.util.LinkedHashMap<>();
        named.forEach((k, v) -> m.put(k, v.value().toArray()));
        return m;
    }

    static final int FAMILY_STEPS = 6;

    static FamilyRun vae(boolean graphed, int warmup) { return vae(graphed, warmup, dev.latent.models.vae.VaeTrainer.Likelihood.BERNOULLI, 0, 0); }

    /** Images with labels over {@code classes} classes (0: none), different labels in every batch the runs below take. */
    static dev.latent.data.ImageData labelled(dev.latent.data.ImageData d, int classes) {
        if (classes == 0) return d;
        int[] lab = new int[d.n];
        for (int i = 0; i < d.n; i++) lab[i] = (i * 7 + 1) % classes;
        return new dev.latent.data.ImageData(d.n, d.h, d.w, d.pixels, lab, "random, labelled");
    }

    static FamilyRun vae(boolean graphed, int warmup, dev.latent.models.vae.VaeTrainer.Likelihood lik, double freeBits, int classes) {
        dev.latent.data.ImageData data = labelled(CudaVaeTest.images(6, 9), classes);
        try (Scope s = Scope.shared()) {
            var cfg = new dev.latent.models.vae.VaeTrainer.Config("unused", java.nio.file.Path.of("unused"), CudaVaeTest.LATENT, 1.0, 1,
                    CudaVaeTest.B, CudaVaeTest.LR, lik, 0.1, warmup, freeBits, 1, 0, 1234, 0, 0, 1, true).withClasses(classes);
            var t = new dev.latent.models.vae.VaeTrainer(cfg, s, Device.CUDA).cudaGraph(graphed);
            int[] perm = {4, 1, 0, 5, 2, 3};
            /* steps 1 .. warmup - 1 run uncaptured (beta still ramps), then 2 warm-up steps, the capture, the replays */
            int first = Math.max(0, warmup - 1) + 3;
            double[][] v = runSteps(FAMILY_STEPS, graphed, first, 1, java.util.Set.of(), st -> new double[] {t.step(data, perm, (st % 3) * 2, 2).negElbo()});
            if (graphed) {
                assertTrue(t.graphStep().captured());
                assertEquals(FAMILY_STEPS - first + 1, t.graphStep().replays(), "graph launches: the captured step and the replays");
            }
            FamilyRun r = new FamilyRun(v, params(t.model.namedParameters()));
            t.closeCudaGraph();
            return r;
        }
    }

    @Test
    void vaeStepsReplayedFromAGraphGiveTheUncapturedBits() {
        sameBits("VAE", vae(false, 0), vae(true, 0));
    }

    /**
     * The variants that were refused before h-graphs3: free bits (the free-bits KL on the device), and a conditional VAE
     * with the Gaussian likelihood (its sum of squares on the device; labels staged with the batch, different in every
     * step, so a replay that kept the captured step's labels would give other values than the uncaptured run).
     */
    @Test
    void vaeWithFreeBitsReplayedFromAGraphGivesTheUncapturedBits() {
        var B = dev.latent.models.vae.VaeTrainer.Likelihood.BERNOULLI;
        sameBits("VAE with free bits", vae(false, 0, B, 0.05, 0), vae(true, 0, B, 0.05, 0));
    }

    @Test
    void conditionalGaussianVaeReplayedFromAGraphGivesTheUncapturedBits() {
        var G = dev.latent.models.vae.VaeTrainer.Likelihood.GAUSSIAN;
        sameBits("conditional VAE, Gaussian likelihood", vae(false, 0, G, 0, 3), vae(true, 0, G, 0, 3));
    }

    @Test
    void vaeKlWarmupRunsUncapturedThenCaptures() {
        sameBits("VAE with a 2-step KL warm-up", vae(false, 2), vae(true, 2));
    }

    static GanTrainerHandle gan(dev.latent.models.gan.GanTrainer.Loss loss) { return gan(loss, 0); }

    static GanTrainerHandle gan(dev.latent.models.gan.GanTrainer.Loss loss, int classes) {
        return new GanTrainerHandle(new dev.latent.models.gan.GanTrainer(CudaGanTest.config(java.nio.file.Path.of("unused"), loss).withClasses(classes),
                Device.CUDA));
    }

    record GanTrainerHandle(dev.latent.models.gan.GanTrainer t) {}

    static FamilyRun gan(dev.latent.models.gan.GanTrainer.Loss loss, boolean graphed) { return gan(loss, graphed, 0); }

    static FamilyRun gan(dev.latent.models.gan.GanTrainer.Loss loss, boolean graphed, int classes) {
        dev.latent.data.ImageData data = labelled(CudaGanTest.images(6, 5), classes);
        var t = gan(loss, classes).t().cudaGraph(graphed);
        int[] perm = {0, 1, 2, 3, 4, 5};
        /* DCGAN: one graph per iteration; WGAN-GP (n_critic 1 here): the critic graph and the generator graph */
        int launches = loss == dev.latent.models.gan.GanTrainer.Loss.GAN ? 1 : 2;
        /* WGAN-GP's generator graph is captured one iteration after the critic's (a warm-up after the critic's capture) */
        double[][] v = runSteps(FAMILY_STEPS, graphed, launches == 1 ? 3 : 4, launches, java.util.Set.of(),
                st -> t.stepDeferred(data, perm, (st % 2) * CudaGanTest.B, st + 1).values());
        if (graphed) {
            assertTrue(t.graphStep().captured());
            assertEquals(FAMILY_STEPS - 2, t.graphStep().replays());
            if (launches == 2) assertEquals(FAMILY_STEPS - 3, t.generatorGraphStep().replays());
        }
        Map<String, float[]> p = params(t.g.namedParameters());
        params(t.d.namedParameters()).forEach((k, x) -> p.put("D." + k, x));
        t.closeCudaGraph();
        return new FamilyRun(v, p);
    }

    @Test
    void dcganStepsReplayedFromAGraphGiveTheUncapturedBits() {
        var L = dev.latent.models.gan.GanTrainer.Loss.GAN;
        sameBits("DCGAN", gan(L, false), gan(L, true));
    }

    /** Real labels from the batch and fake labels drawn per iteration, both staged with it (GraphLabels). */
    @Test
    void conditionalDcganStepsReplayedFromAGraphGiveTheUncapturedBits() {
        var L = dev.latent.models.gan.GanTrainer.Loss.GAN;
        sameBits("conditional DCGAN", gan(L, false, 3), gan(L, true, 3));
    }

    /**
     * Labels in a graph: a captured embedding forward and backward of a GraphLabels' ids read, on every replay, the
     * labels staged for that step (rows of the table and per-row counts equal to the host's for those labels, and
     * different from step to step); had the capture kept the address of an upload of the captured step's labels, the
     * replays would repeat them and this fails.
     */
    @Test
    void replayedEmbeddingReadsEachStepsStagedLabels() {
        int n = 5, vocab = 4, c = 3;
        float[] tab = new float[vocab * c];
        for (int i = 0; i < tab.length; i++) tab[i] = i + 0.5f;
        try (Scope sc = Scope.shared(); CudaGraphStep gs = new CudaGraphStep(1)) {
            var labels = new dev.latent.train.GraphLabels(sc, n, vocab);
            long[][] shapes = labels.slotShapes();
            var in = new dev.latent.train.GraphInputs(sc, shapes[0], shapes[1]);
            labels.bind(in.get(0), in.get(1));
            Tensor table = Tensor.of(sc, Device.CUDA, tab, vocab, c), out = Tensor.zeros(sc, Device.CUDA, n, c);
            float[] one = new float[n * c];
            java.util.Arrays.fill(one, 1f);
            Tensor ones = Tensor.of(sc, Device.CUDA, one, n, c), dtab = Tensor.zeros(sc, Device.CUDA, vocab, c);
            int[][] steps = {{0, 1, 2, 3, 0}, {3, 3, 1, 0, 2}, {2, 2, 2, 2, 2}, {1, 0, 3, 2, 1}, {0, 3, 0, 3, 1}};
            float[] prev = null;
            for (int[] y : steps) {
                gs.step(() -> {
                    try (Scope tmp = Scope.confined()) {
                        Tensor[] t = labels.stage(tmp, y);
                        in.stage(t[0], t[1]);
                    }
                }, () -> {
                    try (Graph g = Graph.inference()) {
                        Kernels.copy(dev.latent.autograd.F.embedding(labels.ids(), n, Var.constant(table)).value(), out);
                        Kernels.zero(dtab);
                        Kernels.embeddingBackward(labels.ids(), ones, dtab);
                    }
                });
                float[] got = out.toArray(), counts = dtab.toArray();
                float[] want = new float[n * c], wantCounts = new float[vocab * c];
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < c; j++) {
                        want[i * c + j] = tab[y[i] * c + j];
                        wantCounts[y[i] * c + j] += 1f;
                    }
                assertArrayEquals(want, got, "rows of the staged labels " + java.util.Arrays.toString(y));
                assertArrayEquals(wantCounts, counts, "the embedding backward of the staged labels " + java.util.Arrays.toString(y));
                if (prev != null) assertFalse(java.util.Arrays.equals(prev, got), "a step repeated the previous step's rows");
                prev = got;
            }
            assertTrue(gs.captured());
            assertEquals(steps.length - 1, gs.replays());
            labels.close();
        }
    }

    @Test
    void wganGpStepsReplayedFromGraphsGiveTheUncapturedBits() {
        var L = dev.latent.models.gan.GanTrainer.Loss.WGAN_GP;
        sameBits("WGAN-GP", gan(L, false), gan(L, true));
    }

    /** Flow steps over 7 images in batches of 3: step 3 is an epoch's last partial batch (1 image), run uncaptured. */
    static FamilyRun flow(String arch, boolean graphed) {
        dev.latent.data.ImageData data = new dev.latent.data.ImageData(7, CudaFlowTest.HW, CudaFlowTest.HW, CudaFlowTest.pixels(7, 4), null, "random");
        try (Scope s = Scope.shared()) {
            var t = new dev.latent.models.flow.FlowTrainer(CudaFlowTest.config(arch).withClip(0.5), s, CudaFlowTest.HW, CudaFlowTest.HW, Device.CUDA)
                    .cudaGraph(graphed);
            int[] perm = {6, 2, 0, 4, 1, 5, 3};
            int[] from = {0, 3, 6, 0, 3, 0, 3}, m = {3, 3, 1, 3, 3, 3, 3};
            double[][] v = runSteps(from.length, graphed, 4, 1, java.util.Set.of(2),   /* warm-up 0, 1; partial 2; capture 3 */
                    st -> new double[] {t.stepDeferred(data, perm, from[st], m[st]).get(0)});
            if (graphed) {
                assertTrue(t.graphStep().captured());
                assertEquals(from.length - 1, t.graphStep().steps(), "the partial batch ran uncaptured");
                assertEquals(from.length - 1 - 2, t.graphStep().replays());
            }
            FamilyRun r = new FamilyRun(v, params(t.model.namedParameters()));
            t.closeCudaGraph();
            return r;
        }
    }

    @Test
    void realNvpStepsReplayedFromAGraphGiveTheUncapturedBits() {
        sameBits("RealNVP", flow("realnvp", false), flow("realnvp", true));
    }

    /** Glow's ActNorm initialises from the first batch (host copies) in the first warm-up step; the capture comes after. */
    @Test
    void glowStepsReplayedFromAGraphGiveTheUncapturedBits() {
        sameBits("Glow", flow("glow", false), flow("glow", true));
    }

    /**
     * The reparameterisation's noise in a graph: with the Philox key in device memory each replay draws the eps of the key
     * staged for it (z equal, bit for bit, to the by-value sampler's for that key, and different every step); with the
     * key passed by value CudaGraphStep refuses the capture, since every replay would reuse the captured step's eps.
     */
    @Test
    void replayedReparamDrawsNewNoiseEveryStep() {
        int n = 37;
        float[] mu0 = new float[n], lv0 = new float[n];
        for (int i = 0; i < n; i++) { mu0[i] = 0.1f * i - 1; lv0[i] = 0.05f * i - 0.7f; }
        try (Scope sc = Scope.shared(); CudaGraphStep gs = new CudaGraphStep(1)) {
            Tensor mu = Tensor.of(sc, Device.CUDA, mu0, n), lv = Tensor.of(sc, Device.CUDA, lv0, n);
            Tensor key = Tensor.zeros(sc, Device.CUDA, 4), out = Tensor.zeros(sc, Device.CUDA, n);
            float[] prev = null;
            for (long s = 1; s <= 5; s++) {
                long step = s;
                gs.step(() -> Kernels.stageRngKey(key, 1234, 77 + step), () -> {
                    try (Graph g = Graph.inference()) {
                        Kernels.copy(dev.latent.autograd.F.reparam(Var.constant(mu), Var.constant(lv), key).z().value(), out);
                    }
                });
                float[] got = out.toArray(), want;
                try (Graph g = Graph.inference()) {
                    want = dev.latent.autograd.F.reparam(Var.constant(mu), Var.constant(lv), 1234, 77 + step).z().value().toArray();
                }
                assertArrayEquals(want, got, "step " + s + ": z of the staged key");
                if (prev != null) assertFalse(java.util.Arrays.equals(prev, got), "step " + s + " drew the previous step's eps");
                prev = got;
            }
            assertEquals(4, gs.replays());
        }
        try (Scope sc = Scope.shared(); CudaGraphStep gs = new CudaGraphStep(1)) {
            Tensor mu = Tensor.of(sc, Device.CUDA, mu0, n), lv = Tensor.of(sc, Device.CUDA, lv0, n);
            long[] stream = {1};
            Runnable body = () -> {
                try (Graph g = Graph.inference()) { dev.latent.autograd.F.reparam(Var.constant(mu), Var.constant(lv), 1234, stream[0]); }
            };
            gs.step(() -> stream[0] = 1, body);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> gs.step(() -> stream[0] = 2, body));
            assertTrue(e.getMessage().contains("ltk_reparam_fwd"), e.getMessage());
        }
    }

    /**
     * What stays refused, by name: off CUDA and at a precision other than fp32, for each trainer; the variants lifted by
     * h-graphs3 (free bits, the Gaussian likelihood, a conditional VAE, a conditional DCGAN) are accepted.
     */
    @Test
    void familiesThatCannotBeCapturedAreRefusedByName() {
        try (Scope s = Scope.shared()) {
            var base = new dev.latent.models.vae.VaeTrainer.Config("unused", java.nio.file.Path.of("unused"), 2, 1.0, 1, 2, 1e-3f,
                    dev.latent.models.vae.VaeTrainer.Likelihood.GAUSSIAN, 0.1, 0, 0.5, 1, 0, 0, 0, 0, 1, true).withClasses(3);
            var vae = new dev.latent.models.vae.VaeTrainer(base, s, Device.CUDA).cudaGraph(true);   /* free bits, Gaussian, conditional */
            assertNotNull(vae.graphStep());
            vae.closeCudaGraph();
            String m = assertThrows(IllegalArgumentException.class,
                    () -> new dev.latent.models.vae.VaeTrainer(base, s, Device.CUDA).precision(dev.latent.tensor.Precision.TF32).cudaGraph(true)).getMessage();
            assertTrue(m.startsWith("vae: --cuda-graph is checked with fp32 only, not TF32"), m);
            m = assertThrows(IllegalArgumentException.class, () -> new dev.latent.models.vae.VaeTrainer(base, s, Device.CPU).cudaGraph(true)).getMessage();
            assertTrue(m.startsWith("vae: --cuda-graph needs --device cuda"), m);
            m = assertThrows(IllegalArgumentException.class, () -> new dev.latent.models.flow.FlowTrainer(CudaFlowTest.config("glow"), s,
                    CudaFlowTest.HW, CudaFlowTest.HW, Device.CPU).cudaGraph(true)).getMessage();
            assertTrue(m.startsWith("glow: --cuda-graph needs --device cuda"), m);
        }
        var dcganCfg = CudaGanTest.config(java.nio.file.Path.of("unused"), dev.latent.models.gan.GanTrainer.Loss.GAN).withClasses(3);
        var dcgan = new dev.latent.models.gan.GanTrainer(dcganCfg, Device.CUDA).cudaGraph(true);   /* conditional */
        assertNotNull(dcgan.graphStep());
        dcgan.closeCudaGraph();
        String m = assertThrows(IllegalArgumentException.class, () -> new dev.latent.models.gan.GanTrainer(dcganCfg, Device.CUDA)
                .precision(dev.latent.tensor.Precision.TF32).cudaGraph(true)).getMessage();
        assertTrue(m.startsWith("dcgan: --cuda-graph is checked with fp32 only"), m);
        m = assertThrows(IllegalArgumentException.class, () -> new dev.latent.models.gan.GanTrainer(
                CudaGanTest.config(java.nio.file.Path.of("unused"), dev.latent.models.gan.GanTrainer.Loss.WGAN_GP), Device.CPU).cudaGraph(true)).getMessage();
        assertTrue(m.contains("wgan-gp: --cuda-graph needs --device cuda"), m);
    }
}
