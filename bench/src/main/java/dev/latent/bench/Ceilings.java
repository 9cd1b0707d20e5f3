package dev.latent.bench;

import dev.latent.nativ.LatentNative;

/**
 * This machine's ceilings, measured in the same run as the kernels they grade (the peak moves by tens of
 * percent between runs on a shared machine): FMA peaks per thread count (AVX2 ymm, AVX-512 zmm; the AVX512_BF16
 * dot-product ceiling) and STREAM triad bandwidth.
 */
public final class Ceilings {
    private Ceilings() {}

    /** Best of {@code reps} AVX2 FMA-peak measurements (12 ymm chains) of ~40 ms each, GFLOP/s. */
    public static double fmaPeak(int threads, int reps) {
        LatentNative n = LatentNative.get();
        double best = 0;
        for (int r = 0; r < reps; r++) best = Math.max(best, n.peakFma(threads, 20_000_000L));
        return best;
    }

    /** A named FMA ceiling: {@code name} is what every "% of peak" it grades prints beside it. */
    public record Peak(String name, double gflops) {
        @Override
        public String toString() { return String.format("%s %.1f GFLOP/s", name, gflops); }
    }

    /** Best of {@code reps} AVX-512 FMA-ceiling measurements (12 zmm chains), GFLOP/s; needs ISA avx512. */
    public static double avx512FmaPeak(int threads, int reps) {
        LatentNative n = LatentNative.get();
        double best = 0;
        for (int r = 0; r < reps; r++) best = Math.max(best, n.peakFmaIsa(LatentNative.ISA_AVX512, threads, 20_000_000L));
        return best;
    }

    /** Best of {@code reps} AVX512_BF16 dot-product ceilings (64 flops per vdpbf16ps), GFLOP/s; needs AVX512_BF16. */
    public static double bf16Peak(int threads, int reps) {
        LatentNative n = LatentNative.get();
        double best = 0;
        for (int r = 0; r < reps; r++) best = Math.max(best, n.peakBf16(threads, 20_000_000L));
        return best;
    }

    /** The FMA ceiling of the ISA level Latent runs at now: AVX-512 at avx512, else AVX2 (the fp32 kernels' roof). */
    public static Peak levelFmaPeak(int threads, int reps) {
        return LatentNative.get().isa() >= LatentNative.ISA_AVX512
                ? new Peak("AVX-512 FMA", avx512FmaPeak(threads, reps))
                : new Peak("AVX2 FMA", fmaPeak(threads, reps));
    }

    /** STREAM triad over 3 x 256 MiB, best of {@code reps}, GB/s (3 arrays counted). */
    public static double triad(int threads, int reps) {
        return LatentNative.get().peakTriad(threads, 64L << 20, reps);
    }
}
