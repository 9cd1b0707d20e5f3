package dev.latent.cuda;

import dev.latent.cuda.CuDnnAlgos.Algo;
import dev.latent.cuda.CuDnnAlgos.Mode;
import dev.latent.cuda.CuDnnAlgos.Pass;
import dev.latent.cuda.CuDnnAlgos.Perf;
import dev.latent.ops.Conv;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static dev.latent.cuda.CudaTesting.cudnn;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.down;
import static dev.latent.cuda.CudaTesting.emulated;
import static dev.latent.cuda.CudaTesting.fill;
import static dev.latent.cuda.CudaTesting.up;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * cuDNN's algorithm pick (CuDnnAlgos): the perf struct read as cuDNN lays it out, the pick = the fastest deterministic
 * candidate of the declared math type within the workspace cap, one search per geometry, LATENT_CUDNN_FIND=0 (fixed
 * algorithms), a failed search falling back to the fixed algorithm, the measured search leaving the caller's outputs
 * alone, and results equal to the fixed algorithms'. On the emulated driver the expected picks come from the stand-in's
 * model (cudnn_algo_emu.cc), written out again below, and the workspace sizes from cudnnGet*WorkspaceSize (not from the
 * struct), so a misread field changes the pick; the algorithm each convolution ran is read back from the stand-in
 * (latent_emu_cudnn_algo_stats), so a pick that is not what runs, or an algorithm of another pass's enum, fails.
 * On a GPU the struct's invariants and the equality with the fixed algorithms (within fp32 tolerance) are checked.
 */
class CuDnnFindTest {
    static Cuda cu;
    static CuDnn dnn;
    static MethodHandle stats, failNext;

    @BeforeAll
    static void setUp() {
        cu = device();
        dnn = cudnn(cu);
        if (emulated()) {
            SymbolLookup l = SymbolLookup.libraryLookup(System.getProperty("latent.cuda.driver"), Arena.global());
            stats = Linker.nativeLinker().downcallHandle(l.find("latent_emu_cudnn_algo_stats").orElseThrow(),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
            failNext = Linker.nativeLinker().downcallHandle(l.find("latent_emu_cudnn_find_fail").orElseThrow(),
                    FunctionDescriptor.ofVoid(JAVA_INT));
        }
    }

    @AfterEach
    void restore() throws Throwable {
        CuDnnAlgos.force(null, null);
        CudaVendor.force(null);
        dnn.algos.clear();
        if (failNext != null) failNext.invokeExact(0);
    }

    /** The stand-in's counters: [0..2] Find*Ex calls, [3..5] _v7 calls, [6..8] the last algorithm each pass ran. */
    static long[] stats() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 9);
            assertEquals(9, (int) stats.invokeExact(out, 9));
            return out.toArray(JAVA_LONG);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // ---- the stand-in's model (cudnn_algo_emu.cc), written out independently ----
    static final double[][] COST = {
        {1.6, 1.0, 0.9, -1, 0.4, 0.6, 0.7, 0.5},
        {0.5, 1.0, 0.6, 0.8, 0.9, 0.7},
        {0.6, 1.0, 0.7, 0.4, -1, 0.8, 0.75},
    };
    static final int[][] DETERMINISTIC = {{1, 1, 1, 1, 1, 1, 1, 1}, {0, 1, 1, 1, 1, 1}, {0, 1, 1, 0, 1, 1, 1}};
    /** 0 any geometry, 1 stride 1 (FFT: no tensor cores), 2 3 x 3 stride 1, -1 never. */
    static final int[][] NEED = {{0, 0, 0, -1, 1, 1, 2, 2}, {0, 0, 1, 1, 2, 2}, {0, 0, 1, 0, -1, 2, 1}};

    static boolean runs(Pass p, int algo, CuDnn.Key g, boolean bf16) {
        boolean s1 = g.strideH() == 1 && g.strideW() == 1;
        return switch (NEED[p.ordinal()][algo]) {
            case 0 -> true;
            case 1 -> s1 && !bf16;
            case 2 -> s1 && g.r() == 3 && g.s() == 3 && !bf16;
            default -> false;
        };
    }

    /** The expected pick: the cheapest algorithm that runs, is deterministic, reports the math type and fits the cap. */
    static int expected(Pass p, CuDnn.Key g, long cap) {
        int best = -1;
        for (int a = 0; a < COST[p.ordinal()].length; a++) {
            if (!runs(p, a, g, false) || DETERMINISTIC[p.ordinal()][a] == 0) continue;
            if (g.math() == CuDnn.TENSOR_OP_MATH && NEED[p.ordinal()][a] == 1) continue;   // FFT reports DEFAULT_MATH there
            if (dnn.workspaceSize(p, g, a) > cap) continue;
            if (best < 0 || COST[p.ordinal()][a] < COST[p.ordinal()][best]) best = a;
        }
        return best < 0 ? p.fixed : best;
    }

    static CuDnn.Key key(int n, int c, int h, int w, int k, int r, int stride, int pad, int math) {
        int oh = (h + 2 * pad - r) / stride + 1, ow = (w + 2 * pad - r) / stride + 1;
        return new CuDnn.Key(n, c, h, w, k, r, r, oh, ow, stride, stride, pad, pad, CuDnn.CROSS_CORRELATION, math);
    }

    static final CuDnn.Key K3 = key(2, 3, 8, 8, 4, 3, 1, 1, CuDnn.FMA_MATH), K3TC = key(2, 3, 8, 8, 4, 3, 1, 1, CuDnn.TENSOR_OP_MATH),
            K4S2 = key(3, 2, 8, 8, 4, 4, 2, 1, CuDnn.FMA_MATH), K1 = key(2, 5, 5, 5, 7, 1, 1, 0, CuDnn.FMA_MATH);

    /** Buffers for the three passes of g, filled from a seed. */
    record Bufs(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dw, int nx, int nw, int ny)
            implements AutoCloseable {
        static Bufs of(CuDnn.Key g, long seed) {
            int nx = g.n() * g.c() * g.h() * g.w(), nw = g.k() * g.c() * g.r() * g.s(), ny = g.n() * g.k() * g.oh() * g.ow();
            return new Bufs(up(cu, fill(nx, seed)), up(cu, fill(nw, seed + 1)), up(cu, new float[ny]), up(cu, fill(ny, seed + 2)),
                    up(cu, new float[nx]), up(cu, fill(nw, seed + 3)), nx, nw, ny);
        }

        /** Forward, backward-data, backward-filter accumulating onto dw's fill: the three results. */
        float[][] run(CuDnn.Key g) {
            dnn.forward(g, x, w, null, y);
            dnn.backwardData(g, dy, w, null, dx);
            dnn.backwardFilter(g, x, dy, dw, true);
            return new float[][] {down(cu, y, ny), down(cu, dx, nx), down(cu, dw, nw)};
        }

        @Override
        public void close() {
            for (DeviceBuffer b : List.of(x, w, y, dy, dx, dw)) b.close();
        }
    }

    @Test
    void thePerfStructIsReadAsCudnnLaysItOut() {
        assertEquals(48, CuDnnAlgos.PERF.byteSize(), "sizeof(cudnnConvolutionFwdAlgoPerf_t)");
        assertArrayEquals(new long[] {0, 4, 8, 16, 24, 28}, new long[] {CuDnnAlgos.PERF_ALGO, CuDnnAlgos.PERF_STATUS, CuDnnAlgos.PERF_TIME,
                CuDnnAlgos.PERF_MEMORY, CuDnnAlgos.PERF_DETERMINISM, CuDnnAlgos.PERF_MATH});
        for (CuDnn.Key g : List.of(K3, K3TC, K4S2))
            for (Pass p : Pass.values()) {
                List<Perf> r = dnn.algos.heuristics(p, dnn.descriptorsOf(p, g));
                String what = p + " " + g + ": " + r;
                if (!emulated()) System.out.println("CuDnnFindTest: " + dnn.describe() + " heuristics " + what);
                assertFalse(r.isEmpty(), what);
                Set<Integer> seen = new HashSet<>();
                boolean failedSeen = false;
                for (Perf e : r) {
                    assertTrue(e.algo() >= 0 && e.algo() < p.names.size(), "algorithm outside the pass's enum: " + what);
                    assertTrue(seen.add(e.algo()), "an algorithm twice: " + what);
                    assertTrue(e.determinism() == 0 || e.determinism() == 1, "determinism: " + what);
                    assertTrue(e.mathType() >= 0 && e.mathType() <= 3, "math type: " + what);
                    if (e.status() != 0) { failedSeen = true; continue; }
                    assertFalse(failedSeen, "a usable entry after a failed one: " + what);
                    if (!emulated()) continue;
                    assertTrue(runs(p, e.algo(), g, false), "the stand-in reports " + p.name(e.algo()) + " as running: " + what);
                    assertEquals(dnn.workspaceSize(p, g, e.algo()), e.memory(), "memory vs cudnnGet*WorkspaceSize: " + what);
                    assertEquals(DETERMINISTIC[p.ordinal()][e.algo()], e.determinism(), "determinism of " + p.name(e.algo()) + ": " + what);
                    int math = g.math() == CuDnn.TENSOR_OP_MATH && NEED[p.ordinal()][e.algo()] == 1 ? 0 : g.math();
                    assertEquals(math, e.mathType(), "math type of " + p.name(e.algo()) + ": " + what);
                }
                if (emulated()) {
                    assertEquals(COST[p.ordinal()].length, r.size(), "every algorithm of the enum reported: " + what);
                    for (int a = 0; a < COST[p.ordinal()].length; a++) {
                        int algo = a;
                        assertEquals(runs(p, a, g, false), r.stream().anyMatch(e -> e.algo() == algo && e.status() == 0),
                                p.name(a) + " usable exactly where the model runs it: " + what);
                    }
                }
            }
    }

    @Test
    void anAlgorithmOutsideThePassOrWithoutAKernelIsRefused() {
        assumeTrue(emulated(), "the stand-in's refusals");
        assertEquals(-2000, dnn.workspaceSize(Pass.FORWARD, K3, 8), "forward algorithm 8 is outside cudnnConvolutionFwdAlgo_t");
        assertEquals(-2000, dnn.workspaceSize(Pass.BACKWARD_DATA, K3, 6), "backward-data algorithm 6 is outside its enum");
        assertEquals(-3000, dnn.workspaceSize(Pass.BACKWARD_FILTER, K3, 4), "backward-filter WINOGRAD has no kernel");
        assertEquals(-3000, dnn.workspaceSize(Pass.FORWARD, K4S2, 4), "forward FFT needs stride 1");
        assertEquals(4096, dnn.workspaceSize(Pass.FORWARD, K3, 1), "the fixed forward algorithm asks for the minimum");
    }

    @Test
    void thePickIsTheFastestDeterministicCandidateWithinTheCap() {
        assumeTrue(emulated(), "the expected picks are the stand-in's model");
        CuDnnAlgos.force(Mode.HEURISTIC, null);
        for (CuDnn.Key g : List.of(K3, K3TC, K4S2, K1)) {
            long big = 1L << 30, mid = dnn.workspaceSize(Pass.FORWARD, g, 7) > 0 ? dnn.workspaceSize(Pass.FORWARD, g, 7) : 8192;
            for (long cap : new long[] {big, mid, 4096}) {
                CuDnnAlgos.force(Mode.HEURISTIC, cap);
                try (Bufs b = Bufs.of(g, 11)) {
                    b.run(g);
                    long[] st = stats();
                    for (Pass p : Pass.values()) {
                        int want = expected(p, g, cap);
                        Algo got = dnn.algos.picked(p, g, false);
                        assertNotNull(got, p + " " + g + ": no pick kept");
                        assertEquals(want, got.algo(), p + " " + g + " cap " + cap + ": picked " + got);
                        assertEquals(want, st[6 + p.ordinal()], p + " " + g + " cap " + cap + ": the convolution ran another algorithm");
                        assertTrue(got.workspace() <= cap, got.toString());
                    }
                }
            }
        }
        // the model's nondeterministic algorithms are the fastest of both backward passes: skipped, with the reason kept
        CuDnnAlgos.force(Mode.HEURISTIC, 1L << 30);
        assertTrue(dnn.algos.picked(Pass.BACKWARD_FILTER, K3, false).how().contains("ALGO_3 (nondeterministic)"),
                dnn.algos.picked(Pass.BACKWARD_FILTER, K3, false).how());
        assertEquals(2, dnn.algos.picked(Pass.BACKWARD_FILTER, K3, false).algo(), "backward-filter 3x3 stride 1: FFT");
        assertEquals(4, dnn.algos.picked(Pass.FORWARD, K3, false).algo(), "forward 3x3 stride 1, fp32: FFT");
        assertEquals(7, dnn.algos.picked(Pass.FORWARD, K3TC, false).algo(), "forward 3x3 stride 1, tensor-op math: WINOGRAD_NONFUSED");
        assertEquals(2, dnn.algos.picked(Pass.FORWARD, K4S2, false).algo(), "forward 4x4 stride 2: GEMM");
    }

    @Test
    void oneSearchPerGeometryAndThePickIsKept() {
        CuDnnAlgos.force(Mode.HEURISTIC, null);
        long s0 = dnn.algos.searches();
        long[] before = emulated() ? stats() : null;
        try (Bufs b = Bufs.of(K3, 3); Bufs c = Bufs.of(K4S2, 4)) {
            for (int i = 0; i < 3; i++) b.run(K3);
            assertEquals(3, dnn.algos.searches() - s0, "one search per pass of one geometry");
            c.run(K4S2);
            c.run(K4S2);
            assertEquals(6, dnn.algos.searches() - s0, "one search per pass of each geometry");
        }
        if (before != null) {
            long[] after = stats();
            for (int p = 0; p < 3; p++) {
                assertEquals(2, after[3 + p] - before[3 + p], "cudnnGet*Algorithm_v7 calls of pass " + p);
                assertEquals(0, after[p] - before[p], "no Find*Ex in heuristic mode");
            }
        }
    }

    @Test
    void latentCudnnFind0KeepsTheFixedAlgorithms() {
        assertEquals(Mode.FIXED, CuDnnAlgos.parse("0", "LATENT_CUDNN_FIND"));
        assertEquals(Mode.HEURISTIC, CuDnnAlgos.parse(null, "LATENT_CUDNN_FIND"));
        assertEquals(Mode.MEASURE, CuDnnAlgos.parse("measure", "LATENT_CUDNN_FIND"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CuDnnAlgos.parse("fastest", "LATENT_CUDNN_FIND"));
        assertTrue(e.getMessage().contains("LATENT_CUDNN_FIND=fastest"), e.getMessage());
        CuDnnAlgos.force(Mode.FIXED, null);
        long s0 = dnn.algos.searches();
        long[] before = emulated() ? stats() : null;
        try (Bufs b = Bufs.of(K3, 5)) {
            b.run(K3);
        }
        assertEquals(s0, dnn.algos.searches(), "no search with LATENT_CUDNN_FIND=0");
        if (before != null) {
            long[] after = stats();
            for (Pass p : Pass.values()) {
                assertEquals(p.fixed, after[6 + p.ordinal()], p + " ran the fixed algorithm");
                assertEquals(before[3 + p.ordinal()], after[3 + p.ordinal()], "no _v7 call");
            }
        }
    }

    @Test
    void aFailedSearchFallsBackToTheFixedAlgorithm() throws Throwable {
        assumeTrue(emulated(), "the failure is injected into the stand-in");
        for (Mode m : new Mode[] {Mode.HEURISTIC, Mode.MEASURE}) {
            dnn.algos.clear();
            CuDnnAlgos.force(m, 1L << 30);
            failNext.invokeExact(1);   // the forward's search fails; the backward passes' succeed
            try (Bufs b = Bufs.of(K3, 6)) {
                b.run(K3);
            }
            Algo f = dnn.algos.picked(Pass.FORWARD, K3, false);
            assertEquals(Pass.FORWARD.fixed, f.algo(), m + ": " + f);
            assertTrue(f.how().contains("search failed") && f.how().contains("INTERNAL_ERROR"), f.how());
            assertEquals(Pass.FORWARD.fixed, stats()[6], m + ": the forward ran the fixed algorithm");
            assertEquals(expected(Pass.BACKWARD_FILTER, K3, 1L << 30), dnn.algos.picked(Pass.BACKWARD_FILTER, K3, false).algo(), m.toString());
        }
    }

    @Test
    void theMeasuredSearchPicksAndLeavesTheOutputsAlone() {
        CuDnnAlgos.force(Mode.FIXED, null);
        float[][] fixed;
        try (Bufs b = Bufs.of(K3, 7)) {
            fixed = b.run(K3);
        }
        CuDnnAlgos.force(Mode.MEASURE, 1L << 30);
        long[] before = emulated() ? stats() : null;
        float[][] measured;
        try (Bufs b = Bufs.of(K3, 7)) {
            measured = b.run(K3);   // the backward-filter accumulates: the search must not have written dw
        }
        for (Pass p : Pass.values()) {
            Algo a = dnn.algos.picked(p, K3, false);
            assertNotNull(a, p.toString());
            assertTrue(a.how().startsWith("find"), p + ": " + a);
            if (before != null) assertEquals(expected(p, K3, 1L << 30), a.algo(), p + ": " + a);
        }
        if (before != null) {
            long[] after = stats();
            for (int p = 0; p < 3; p++) assertEquals(1, after[p] - before[p], "one Find*Ex of pass " + p);
        }
        compare("measured", fixed, measured);
    }

    @Test
    void resultsEqualTheFixedAlgorithmsThroughOpsConv() {
        Conv.Geometry[] shapes = {Conv.Geometry.of(2, 3, 8, 8, 4, 3, 1, 1), Conv.Geometry.of(3, 2, 8, 8, 4, 4, 2, 1),
                Conv.Geometry.of(2, 5, 5, 5, 7, 1, 1, 0), new Conv.Geometry(1, 4, 9, 6, 3, 3, 2, 2, 1, 1, 0)};
        CudaVendor.force(true);
        for (Conv.Geometry g : shapes) {
            CuDnnAlgos.force(Mode.FIXED, null);
            float[][] fixed = convPasses(g);
            for (Mode m : new Mode[] {Mode.HEURISTIC, Mode.MEASURE}) {
                CuDnnAlgos.force(m, null);
                compare(m + " " + g, fixed, convPasses(g));
            }
        }
    }

    @Test
    void bf16PassesPickAmongTheBf16Candidates() {
        assumeTrue(emulated(), "the expected picks are the stand-in's model");
        CuDnnAlgos.force(Mode.HEURISTIC, 1L << 30);
        try (Bufs b = Bufs.of(K3, 9)) {
            assertTrue(dnn.forwardBf16(K3, b.x, b.w, null, b.y));
            assertTrue(dnn.backwardDataBf16(K3, b.dy, b.w, null, b.dx));
            assertTrue(dnn.backwardFilterBf16(K3, b.x, b.dy, b.dw, true));
        }
        long[] st = stats();
        // bf16 data: no FFT or Winograd kernels in the model, so GEMM forward and ALGO_1 for both backward passes
        int[] want = {2, 1, 1};
        for (Pass p : Pass.values()) {
            assertEquals(want[p.ordinal()], dnn.algos.picked(p, K3, true).algo(), p + ": " + dnn.algos.picked(p, K3, true));
            assertEquals(want[p.ordinal()], st[6 + p.ordinal()], p + " ran another algorithm");
        }
    }

    static float[][] convPasses(Conv.Geometry g) {
        float[] x = fill((int) (g.n() * g.c() * g.h() * g.w()), 21), w = fill((int) (g.k() * g.c() * g.r() * g.s()), 22),
                dy = fill((int) (g.n() * g.k() * g.oh() * g.ow()), 23), dw0 = fill((int) (g.k() * g.c() * g.r() * g.s()), 24);
        try (Scope s = Scope.confined()) {
            Tensor tx = Tensor.of(s, Device.CUDA, x, g.inShape()), tw = Tensor.of(s, Device.CUDA, w, g.weightShape()),
                    tdy = Tensor.of(s, Device.CUDA, dy, g.outShape());
            Tensor y = Tensor.zeros(s, Device.CUDA, g.outShape()), dx = Tensor.zeros(s, Device.CUDA, g.inShape()),
                    dw = Tensor.of(s, Device.CUDA, dw0, g.weightShape());
            Conv.forward(g, tx, tw, null, y);
            Conv.backwardData(g, tdy, tw, null, dx);
            Conv.backwardWeight(g, tx, tdy, dw, null, true);
            return new float[][] {y.toArray(), dx.toArray(), dw.toArray()};
        }
    }

    /** Equal bits on the stand-in (every algorithm is the same sum there); on a GPU within fp32 tolerance of the largest value. */
    static void compare(String what, float[][] want, float[][] got) {
        String[] names = {"forward", "backward-data", "backward-filter (accumulating)"};
        for (int i = 0; i < 3; i++) {
            if (emulated()) {
                assertArrayEquals(want[i], got[i], what + " " + names[i]);
                continue;
            }
            double max = 0;
            for (float v : want[i]) max = Math.max(max, Math.abs(v));
            for (int j = 0; j < want[i].length; j++)
                assertEquals(want[i][j], got[i][j], 1e-4 * max + 1e-6, what + " " + names[i] + " [" + j + "]");
        }
    }
}
