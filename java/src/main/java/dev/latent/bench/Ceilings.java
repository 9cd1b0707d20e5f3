package dev.latent.bench;

import dev.latent.nativ.LatentNative;

/**
 * This machine's ceilings, measured in the same run as the kernels they grade (the peak moves by tens of
 * percent between runs on a shared machine): FMA peak per thread count and STREAM triad bandwidth.
 */
public final class Ceilings {
    private Ceilings() {}

    /** Best of {@code reps} FMA-peak measurements of ~40 ms each, GFLOP/s. */
    public static double fmaPeak(int threads, int reps) {
        LatentNative n = LatentNative.get();
        double best = 0;
        for (int r = 0; r < reps; r++) best = Math.max(best, n.peakFma(threads, 20_000_000L));
        return best;
    }

    /** STREAM triad over 3 x 256 MiB, best of {@code reps}, GB/s (3 arrays counted). */
    public static double triad(int threads, int reps) {
        return LatentNative.get().peakTriad(threads, 64L << 20, reps);
    }
}
