package dev.latent.spi;

import java.lang.foreign.MemorySegment;

/**
 * A peer 2-D convolution that {@code bin/latent bench conv} times beside ours in the same run (latent-bench ships
 * oneDNN's, found with {@link java.util.ServiceLoader}). Shapes and buffers are NCHW fp32 as in {@code latent.h}'s
 * lt_conv2d_desc: x (N, C, H, W), w (K, C, R, S), y (N, K, OH, OW), no bias. A peer may keep its own preferred
 * layouts internally; reorders it needs happen in {@link #prepare}, outside the timed {@link Prepared#run}, so the
 * peer is measured at its best.
 */
public interface ConvPeer {
    /** Short name for reports, e.g. "onednn-3.11-avx2". */
    String name();

    /** Sets the peer's thread count; called before each timed series. */
    void setThreads(int threads);

    /** Which pass to run. */
    enum Pass { FWD, BWD_DATA, BWD_WEIGHT }

    /**
     * Builds the primitive for one shape and pass and binds it to the given NCHW buffers.
     * FWD: (a, b, out) = (x, w, y); BWD_DATA: (dy, w, dx); BWD_WEIGHT: (x, dy, dw).
     */
    Prepared prepare(long n, long c, long h, long w, long k, long r, long s, int stride, int pad, Pass pass,
                     MemorySegment a, MemorySegment b, MemorySegment out);

    /** One prepared pass: {@link #run} executes it once (synchronously). */
    interface Prepared extends AutoCloseable {
        void run();

        /** Copies the peer's result back to the NCHW output buffer given to prepare (for checking; untimed). */
        void readBack();

        @Override
        void close();
    }
}
