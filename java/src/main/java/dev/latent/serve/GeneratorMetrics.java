package dev.latent.serve;

/**
 * A snapshot of a generator's recent work, for a health endpoint or a dashboard: counts since start, and percentiles
 * and rates over the most recent requests and decode steps (up to {@link #WINDOW} of each). Times in milliseconds;
 * NaN where nothing was measured yet.
 *
 * @param requests       requests finished since start (any outcome)
 * @param tokens         tokens drawn since start
 * @param steps          decode steps since start
 * @param meanBatch      sequences per decode step, mean over the recent steps
 * @param tokensPerSecond tokens drawn per second over the recent steps (from the first one's start to now)
 * @param queueWaitP50Ms queue wait (submission to the first decode step), median of the recent requests
 * @param queueWaitP99Ms its 99th percentile
 * @param latencyP50Ms   submission to result, median of the recent requests
 * @param latencyP99Ms   its 99th percentile
 */
public record GeneratorMetrics(long requests, long tokens, long steps, double meanBatch, double tokensPerSecond, double queueWaitP50Ms,
                               double queueWaitP99Ms, double latencyP50Ms, double latencyP99Ms) {
    /** How many recent requests and steps the percentiles and rates cover. */
    public static final int WINDOW = 1024;

    /** As a JSON object ({"requests", "tokens", "steps", "mean_batch", "tokens_per_s", "queue_wait_ms": {"p50", "p99"}, "latency_ms": {...}}). */
    public java.util.Map<String, Object> toMap() {
        java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("requests", requests);
        m.put("tokens", tokens);
        m.put("steps", steps);
        m.put("mean_batch", round(meanBatch));
        m.put("tokens_per_s", round(tokensPerSecond));
        m.put("queue_wait_ms", pair(queueWaitP50Ms, queueWaitP99Ms));
        m.put("latency_ms", pair(latencyP50Ms, latencyP99Ms));
        return m;
    }

    private static java.util.Map<String, Object> pair(double p50, double p99) {
        java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("p50", round(p50));
        m.put("p99", round(p99));
        return m;
    }

    private static Object round(double x) { return Double.isFinite(x) ? Math.round(x * 1000) / 1000.0 : null; }

    /** Thread-safe accumulator behind {@link GptGenerator#metrics()}: rings of the last {@link #WINDOW} samples. */
    static final class Recorder {
        private final long[] wait = new long[WINDOW], lat = new long[WINDOW], stepAt = new long[WINDOW];
        private final int[] stepBatch = new int[WINDOW], stepTokens = new int[WINDOW];
        private long requests, tokens, steps;

        synchronized void request(long queueNanos, long latencyNanos) {
            wait[(int) (requests % WINDOW)] = queueNanos;
            lat[(int) (requests % WINDOW)] = latencyNanos;
            requests++;
        }

        synchronized void step(long startNanos, int batch, int drawn) {
            int i = (int) (steps % WINDOW);
            stepAt[i] = startNanos;
            stepBatch[i] = batch;
            stepTokens[i] = drawn;
            steps++;
            tokens += drawn;
        }

        synchronized GeneratorMetrics snapshot() {
            int nr = (int) Math.min(requests, WINDOW), ns = (int) Math.min(steps, WINDOW);
            double batch = Double.NaN, rate = Double.NaN;
            if (ns > 0) {
                long first = Long.MAX_VALUE, sb = 0, st = 0;
                for (int i = 0; i < ns; i++) { first = Math.min(first, stepAt[i]); sb += stepBatch[i]; st += stepTokens[i]; }
                batch = (double) sb / ns;
                double secs = (System.nanoTime() - first) / 1e9;
                rate = secs > 0 ? st / secs : Double.NaN;
            }
            return new GeneratorMetrics(requests, tokens, steps, batch, rate, pct(wait, nr, 0.50), pct(wait, nr, 0.99), pct(lat, nr, 0.50),
                    pct(lat, nr, 0.99));
        }

        private static double pct(long[] ring, int n, double q) {
            if (n == 0) return Double.NaN;
            long[] v = java.util.Arrays.copyOf(ring, n);
            java.util.Arrays.sort(v);
            return v[Math.min(n - 1, (int) Math.ceil(q * n) - 1)] / 1e6;
        }
    }
}
