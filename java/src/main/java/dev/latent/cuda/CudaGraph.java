package dev.latent.cuda;

import java.lang.foreign.MemorySegment;

/**
 * An instantiated CUDA graph ({@code cuGraphInstantiateWithFlags} of a captured stream, {@link Cuda#capture}): one
 * {@link #launch()} replays every kernel, copy and vendor-library call the capture recorded, in order, on the backend's
 * stream, with the arguments they had when captured (the same device pointers, the same by-value scalars). The device
 * memory those pointers name is the graph's until {@link #close()}: blocks the captured step freed stay in the graph's
 * pool, and blocks it allocated go back there, never to the allocator's cache. Buffers the step read or wrote that
 * were allocated before the capture (parameters, optimizer state, staged inputs) must stay alive while the graph does.
 * Not thread-safe; one graph per training loop.
 */
public final class CudaGraph implements AutoCloseable {
    private final Cuda cu;
    private MemorySegment exec;
    private final Cuda.GraphPool pool;
    private long launches;

    CudaGraph(Cuda cu, MemorySegment exec, Cuda.GraphPool pool) {
        this.cu = cu;
        this.exec = exec;
        this.pool = pool;
    }

    /** Replays the graph on the backend's stream (cuGraphLaunch; the host does not wait). */
    public void launch() {
        if (exec == null) throw new IllegalStateException("CudaGraph: launched after close()");
        cu.graphLaunch(exec);
        launches++;
    }

    /** The number of {@link #launch()} calls so far. */
    public long launches() { return launches; }

    /** Destroys the executable graph and returns its memory pool to the allocator's cache. Idempotent. */
    @Override
    public void close() {
        if (exec == null) return;
        MemorySegment e = exec;
        exec = null;
        cu.graphDestroy(e, pool);
    }
}
