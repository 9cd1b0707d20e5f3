package dev.latent.cuda;

import java.util.List;
import java.util.Objects;

/**
 * A training step run as a CUDA graph (opt-in; off by default until a GPU measures whether it helps: bench/cuda/gpu_checks.sh).
 * Each {@link #step} runs {@code prepare} on the host, then {@code body}: plainly for the first {@code warmup} steps (so
 * every allocation the body makes is in the allocator's cache and every lazily made buffer exists), captured into a graph
 * on the next step and launched, and from then on only the graph is launched: the body's Java code no longer runs.
 *
 * <p>What this asks of the step, because a graph replays fixed pointers and fixed by-value arguments:
 * <ul>
 *   <li>{@code prepare} does everything that changes from step to step on the host and writes it into device buffers that
 *       stay at the same addresses (the batch: {@code Kernels.stageTokensFixed}; the optimizer's learning rate and bias
 *       corrections: {@code AdamW.stage}); it must not launch work that reads the body's results of this step.</li>
 *   <li>{@code body} is device work only, with static shapes: no host synchronisation, no upload, no allocation that
 *       the warm-up did not make, and no value passed by value that differs between steps. The last warm-up step's
 *       launches and the captured ones are compared (kernel, grid, block and every by-value argument): any difference
 *       is refused with an IllegalStateException naming the first one, since the graph would repeat the captured value
 *       forever. Results read after a step (a loss through {@code StepScalars}) are read outside the body.</li>
 * </ul>
 * The backend moves to its own stream on the first step ({@link Cuda#useCaptureStream()}), which a capture needs.
 */
public final class CudaGraphStep implements AutoCloseable {
    private final Cuda cu;
    private final int warmup;
    private long steps;
    private CudaGraph graph;
    private List<String> lastWarmup;
    private int cacheMisses;
    /** Captures retried after a cache miss (each after one more plain step) before the miss is thrown. */
    static final int MAX_CACHE_MISSES = 3;

    /** {@code warmup} >= 1 uncaptured steps before the capture. */
    public CudaGraphStep(int warmup) {
        if (warmup < 1) throw new IllegalArgumentException("CudaGraphStep: warmup must be >= 1 (the capture needs the step's allocations cached), got " + warmup);
        this.cu = Cuda.get();
        this.warmup = warmup;
    }

    /** One step: {@code prepare} on the host, then {@code body} plainly (warm-up), captured and launched, or replayed. */
    public void step(Runnable prepare, Runnable body) {
        Objects.requireNonNull(prepare, "prepare");
        Objects.requireNonNull(body, "body");
        cu.useCaptureStream();
        prepare.run();
        if (graph != null) {
            graph.launch();
        } else if (steps < warmup) {
            boolean last = steps == warmup - 1;
            if (last) cu.launchLog(true);
            try {
                body.run();
            } finally {
                if (last) lastWarmup = cu.launchLog(false);
            }
        } else {
            cu.launchLog(true);
            CudaGraph g;
            try {
                g = cu.capture(body);
            } catch (Cuda.CaptureCacheMiss miss) {
                /* Something between the last warm-up step and this one kept blocks the step needs (a tensor made to last,
                 * a resident constant): the capture ran nothing, so run the step plainly now, which caches them again,
                 * and capture the next step. A step that misses the cache every time is refused after a few tries. */
                cu.launchLog(false);
                if (++cacheMisses > MAX_CACHE_MISSES) throw miss;
                cu.launchLog(true);
                try {
                    body.run();
                } finally {
                    lastWarmup = cu.launchLog(false);
                }
                steps++;
                return;
            } catch (RuntimeException | Error e) {
                cu.launchLog(false);
                throw e;
            }
            List<String> captured = cu.launchLog(false);
            String diff = firstDifference(lastWarmup, captured);
            if (diff != null) {
                g.close();
                throw new IllegalStateException("CudaGraphStep: the step is not static, so a graph would replay stale values: " + diff
                        + ". Stage what changes per step into device memory in prepare, or run without a CUDA graph");
            }
            graph = g;
            graph.launch();   // the capture recorded the step without running it
        }
        steps++;
    }

    private static String firstDifference(List<String> a, List<String> b) {
        if (a == null || b == null) return "no launches recorded";
        for (int i = 0; i < Math.min(a.size(), b.size()); i++)
            if (!a.get(i).equals(b.get(i)))
                return "launch " + i + " was " + a.get(i) + " in the last warm-up step and " + b.get(i) + " when captured";
        if (a.size() != b.size()) return "the last warm-up step made " + a.size() + " launches, the captured step " + b.size();
        return null;
    }

    /** Whether the step has been captured (later steps replay the graph). */
    public boolean captured() { return graph != null; }

    /** Captures that missed the allocator's cache and were retried a step later (each such step ran plainly). */
    public int cacheMisses() { return cacheMisses; }

    /** Graph launches so far (the captured step's own launch included). */
    public long replays() { return graph == null ? 0 : graph.launches(); }

    /** The steps run so far. */
    public long steps() { return steps; }

    /** Releases the graph and its memory. */
    @Override
    public void close() {
        if (graph != null) graph.close();
        graph = null;
    }
}
