package dev.latent.spark.collective;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The one reduction every data-parallel path uses, so that they agree to the bit: element i of the result is
 * {@code ((p[0][i] + p[1][i]) + p[2][i] + ... + p[n-1][i]) * scale}, float additions left to right in rank
 * order, then one float multiplication. The TCP all-reduce applies it at each chunk's owner; the single-process
 * reference (N micro-batches in one JVM) applies it to its N gradients.
 */
public final class RankOrder {
    private RankOrder() {}

    /** out[i] = (sum over r in order of parts[r][i]) * scale, for {@code i < count}; out may be one of the parts. */
    public static void sum(MemorySegment[] parts, long count, float scale, MemorySegment out) {
        int n = parts.length;
        if (n == 1) {
            for (long i = 0; i < count; i++)
                out.setAtIndex(JAVA_FLOAT, i, parts[0].getAtIndex(JAVA_FLOAT, i) * scale);
            return;
        }
        for (long i = 0; i < count; i++) {
            float acc = parts[0].getAtIndex(JAVA_FLOAT, i);
            for (int r = 1; r < n; r++) acc += parts[r].getAtIndex(JAVA_FLOAT, i);
            out.setAtIndex(JAVA_FLOAT, i, acc * scale);
        }
    }
}
