package dev.latent.train;

import java.util.Locale;

/**
 * The one set of limits on options and checkpoint config fields, shared by the CLI, the Java API (configs and
 * loaders) and the service example, so all three accept and refuse the same values. Every check throws an
 * {@link IllegalArgumentException} whose one-line message names the thing, the value and what is expected.
 */
public final class Limits {
    private Limits() {}

    /** Tokens one {@code sample gpt} may generate unless its {@code --max-tokens} raises the cap. */
    public static final int DEFAULT_MAX_TOKENS = 100_000;
    /** Images one {@code sample} command may write unless its {@code --max-images} raises the cap. */
    public static final int DEFAULT_MAX_IMAGES = 10_000;

    /** A finite value > 0 (learning rates, sigma). */
    public static double positive(String name, double v) {
        if (!(v > 0) || Double.isInfinite(v)) throw new IllegalArgumentException(name + " must be finite and > 0, got " + fmt(v));
        return v;
    }

    /** A finite value >= 0 (clip, weight decay, beta, free bits). */
    public static double nonNegative(String name, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) throw new IllegalArgumentException(name + " must be finite and >= 0, got " + fmt(v));
        return v;
    }

    /** A finite value in [lo, hi]. */
    public static double range(String name, double v, double lo, double hi) {
        if (!(v >= lo && v <= hi)) throw new IllegalArgumentException(name + " must be in [" + fmt(lo) + ", " + fmt(hi) + "], got " + fmt(v));
        return v;
    }

    /** An integer >= min. */
    public static long atLeast(String name, long v, long min) {
        if (v < min) throw new IllegalArgumentException(name + " must be >= " + min + ", got " + v);
        return v;
    }

    /** An integer in [lo, hi]; {@code raise} names the option that lifts hi, or null. */
    public static long atMost(String name, long v, long lo, long hi, String raise) {
        if (v < lo) throw new IllegalArgumentException(name + " must be >= " + lo + ", got " + v);
        if (v > hi) throw new IllegalArgumentException(name + " " + v + " is over the limit of " + hi
                + (raise != null ? " (raise it with " + raise + ")" : ""));
        return v;
    }

    /** Sampling settings: temperature finite >= 0, top-k >= 0 (0: all), top-p in (0, 1]. */
    public static void sampling(double temperature, long topK, double topP) {
        nonNegative("temperature", temperature);
        atLeast("top-k", topK, 0);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top-p must be in (0, 1], got " + fmt(topP));
    }

    /**
     * Bytes of memory this process may reasonably use for native tensors: the machine's physical memory, or the
     * container's memory limit when that is lower (cgroup v2 {@code memory.max}, v1 {@code memory.limit_in_bytes}), as
     * the JDK's OperatingSystemMXBean reports it. Read from /proc and /sys (Linux, the only OS the native library
     * supports) so the core needs no java.management; {@code Long.MAX_VALUE} when nothing can be read.
     */
    public static long memoryBudget() {
        long total = Long.MAX_VALUE;
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo")))
                if (line.startsWith("MemTotal:")) {
                    String[] f = line.trim().split("\\s+");   // "MemTotal:  16318736 kB"
                    total = Long.parseLong(f[1]) * (f.length > 2 && f[2].equalsIgnoreCase("kB") ? 1024 : 1);
                    break;
                }
        } catch (java.io.IOException | RuntimeException e) {
            // not Linux, or /proc not mounted: no physical limit known
        }
        long limit = Long.MAX_VALUE;
        java.util.List<java.nio.file.Path> files = new java.util.ArrayList<>(java.util.List.of(
                java.nio.file.Path.of("/sys/fs/cgroup/memory.max"), java.nio.file.Path.of("/sys/fs/cgroup/memory/memory.limit_in_bytes")));
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/cgroup"))) {
                String[] f = line.split(":", 3);   // v2 "0::/path", v1 "N:memory:/path"
                if (f.length < 3 || f[2].equals("/") || f[2].contains("..")) continue;
                if (f[1].isEmpty()) files.add(java.nio.file.Path.of("/sys/fs/cgroup" + f[2], "memory.max"));
                else if (java.util.Arrays.asList(f[1].split(",")).contains("memory"))
                    files.add(java.nio.file.Path.of("/sys/fs/cgroup/memory" + f[2], "memory.limit_in_bytes"));
            }
        } catch (java.io.IOException | RuntimeException e) {
            // no cgroup information: the physical memory is the limit
        }
        for (java.nio.file.Path f : files) {
            try {
                String v = java.nio.file.Files.readString(f).trim();
                if (!v.equals("max") && !v.isEmpty()) {
                    long l = Long.parseLong(v);
                    if (l > 0 && l < limit) limit = l;   // v1 reports "no limit" as a huge number: min() with MemTotal drops it
                }
            } catch (java.io.IOException | RuntimeException e) {
                // this controller file is absent: try the next
            }
        }
        return Math.min(total, limit);
    }

    /**
     * Refuses {@code floats} fp32 values (times {@code copies}: weights, gradients, two Adam moments) that could not
     * fit in this machine's memory, before anything is allocated: a one-line error instead of an OutOfMemoryError.
     */
    public static void fitsInMemory(String what, long floats, int copies) {
        long budget = memoryBudget();
        double bytes = (double) floats * 4 * copies;
        if (floats < 0 || bytes > budget)
            throw new IllegalArgumentException(what + " needs " + (floats < 0 ? "more than 2^63 values" : gib(bytes) + " of memory")
                    + " but this machine has " + gib(budget));
    }

    /** Product of non-negative factors, or -1 past Long.MAX_VALUE. */
    public static long product(long... f) {
        long p = 1;
        for (long x : f) {
            if (x < 0) return -1;
            try { p = Math.multiplyExact(p, x); } catch (ArithmeticException e) { return -1; }
        }
        return p;
    }

    /** Count of NaN and infinite values in a CPU tensor (device tensors: 0, they are checked when copied back). */
    public static long nonFinite(dev.latent.tensor.Tensor t) {
        if (t.device() != dev.latent.tensor.Device.CPU) return 0;
        dev.latent.tensor.Tensor c = t.isContiguous() ? t : t.contiguous();
        java.lang.foreign.MemorySegment s = c.segment();
        long n = c.numel(), bad = 0;
        for (long i = 0; i < n; i++) if (!Float.isFinite(s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i))) bad++;
        return bad;
    }

    static String gib(double bytes) {
        return String.format(Locale.ROOT, "%.1f GiB", bytes / (1L << 30));
    }

    static String fmt(double v) {
        return v == Math.rint(v) && !Double.isInfinite(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }
}
