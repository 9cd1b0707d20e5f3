package dev.latent.models.gpt;

import java.util.Arrays;

/** Drawing a token from logits: greedy, temperature, top-k and top-p (nucleus), with a given uniform. */
public final class Sampling {
    private Sampling() {}

    /**
     * Token ids by descending logit, ties by ascending id (Float.compare's order: -0 < 0, NaN first). Sorted
     * as primitive keys (order-preserving float bits, inverted, above the id): the order of a boxed
     * comparator sort without its boxing, which cost as much as a decode step per drawn token.
     */
    static int[] order(float[] logits) {
        int v = logits.length;
        long[] keys = new long[v];
        for (int i = 0; i < v; i++) {
            int b = Float.floatToIntBits(logits[i]);
            b ^= (b >> 31) & 0x7fffffff;          // monotone in Float.compare order, as a signed int
            keys[i] = ((long) ~b << 32) | i;      // ~b: descending; low half: the id, ascending on ties
        }
        Arrays.sort(keys);
        int[] order = new int[v];
        for (int i = 0; i < v; i++) order[i] = (int) keys[i];
        return order;
    }

    /** Draws from softmax(logits / T) restricted to the top-k and the top-p nucleus, with uniform u; T = 0 is the argmax (lowest id on ties). */
    public static int pick(float[] logits, double temperature, int topK, double topP, float u) {
        int v = logits.length;
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
            return best;
        }
        int[] order = order(logits);
        int keep = topK > 0 ? Math.min(topK, v) : v;
        double[] p = new double[keep];
        double max = logits[order[0]], sum = 0;
        for (int i = 0; i < keep; i++) { p[i] = Math.exp((logits[order[i]] - max) / temperature); sum += p[i]; }
        double cum = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            cum += p[i] / sum;
            if (cum >= topP) { nucleus = i + 1; break; }
        }
        double total = 0;
        for (int i = 0; i < nucleus; i++) total += p[i];
        double r = u * total, acc = 0;
        for (int i = 0; i < nucleus; i++) {
            acc += p[i];
            if (r < acc) return order[i];
        }
        return order[nucleus - 1];
    }
}
