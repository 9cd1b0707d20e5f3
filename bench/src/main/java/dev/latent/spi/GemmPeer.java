package dev.latent.spi;

import java.lang.foreign.MemorySegment;

/**
 * A peer sgemm implementation that {@code bin/latent bench gemm} times beside ours in the same run.
 * Implementations live outside the main jar (latent-bench ships oneDNN's) and are found with
 * {@link java.util.ServiceLoader} when their jar is on the classpath.
 */
public interface GemmPeer {
    /** Short name for reports, e.g. "onednn-3.11". */
    String name();

    /** Sets the peer's thread count; called before each timed series. */
    void setThreads(int threads);

    /** Row-major C = A(M x K) * B(K x N), beta = 0, no transposes. */
    void sgemm(long m, long n, long k, MemorySegment a, MemorySegment b, MemorySegment c);
}
