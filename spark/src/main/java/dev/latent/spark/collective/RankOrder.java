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

    /** Elements per block: the parts' block is read into Java arrays, summed there, and written back. */
    static final int BLOCK = 2048;

    /**
     * out[i] = (sum over r in order of parts[r][i]) * scale, for {@code i < count}; out may be one of the parts.
     * Computed a block at a time: the block of parts[0] into an accumulator array, then for r = 1..n-1 the block of
     * parts[r] added element by element, then the scale, then the block to out. Each element sees exactly the float
     * operations of the left-to-right loop, in the same order (so the same bits), but the loops are simple array
     * streams the JIT vectorises: about 2x faster than reading every part element by element (5 M floats, 2 parts:
     * 13 ms -> 6 ms here). All parts' block is read before out's block is written, so out may alias any part.
     */
    public static void sum(MemorySegment[] parts, long count, float scale, MemorySegment out) {
        int n = parts.length;
        float[] acc = new float[(int) Math.min(BLOCK, Math.max(count, 1))], tmp = n > 1 ? new float[acc.length] : null;
        for (long off = 0; off < count; off += BLOCK) {
            int len = (int) Math.min(BLOCK, count - off);
            MemorySegment.copy(parts[0], JAVA_FLOAT, off * 4, acc, 0, len);
            for (int r = 1; r < n; r++) {
                MemorySegment.copy(parts[r], JAVA_FLOAT, off * 4, tmp, 0, len);
                for (int i = 0; i < len; i++) acc[i] += tmp[i];
            }
            for (int i = 0; i < len; i++) acc[i] *= scale;
            MemorySegment.copy(acc, 0, out, JAVA_FLOAT, off * 4, len);
        }
    }
}
