package dev.latent.bench.peer;

import dev.latent.spi.ConvPeer;
import dev.latent.spi.ConvPeer.Pass;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Random;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Checks the oneDNN conv peer against a plain Java reference on one small shape (so we know it computes what
 * lt_conv2d computes), then times it on the conv workloads W3a, W3b, W3c, each pass, 1 and 2 threads, best of
 * several runs. With {@code -Dlatent.lib=/path/to/liblatent.so} it also times Latent's lt_conv2d_* in the same run,
 * in alternating blocks with oneDNN per shape and pass so both see the same machine load, and prints the ratio.
 * <pre>java -cp latent-bench.jar:$(cat bench/target/classpath.txt) --enable-native-access=ALL-UNNAMED \
 *     [-Dlatent.lib=build/liblatent.so] dev.latent.bench.peer.OneDnnConvMain [reps]</pre>
 */
public final class OneDnnConvMain {
    record Shape(String name, long n, long c, long h, long w, long k, long r, long s, int stride, int pad,
                 Pass[] passes) {
        long oh() { return (h + 2L * pad - r) / stride + 1; }
        long ow() { return (w + 2L * pad - s) / stride + 1; }
        double flops() { return 2.0 * n * k * oh() * ow() * c * r * s; }
    }

    static final String[] LABEL = {"fwd", "bwd_data", "bwd_weight"};

    public static void main(String[] args) throws Throwable {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        OneDnnConv peer = new OneDnnConv();
        check(peer);
        Latent lt = System.getProperty("latent.lib") != null ? new Latent(Path.of(System.getProperty("latent.lib"))) : null;
        Pass F = Pass.FWD, D = Pass.BWD_DATA, W = Pass.BWD_WEIGHT;
        // W3c = transposed conv 128 -> 64, 7x7 -> 14x14: the conv 64 -> 128, 14 -> 7 read backwards (latent.h)
        Shape[] shapes = {
            new Shape("W3a", 32, 64, 32, 32, 64, 3, 3, 1, 1, new Pass[] {F, D, W}),
            new Shape("W3b", 64, 64, 14, 14, 128, 4, 4, 2, 1, new Pass[] {F, D, W}),
            new Shape("W3c", 64, 64, 14, 14, 128, 4, 4, 2, 1, new Pass[] {D, F, W}),
        };
        for (int threads = 1; threads <= 2; threads++) {
            peer.setThreads(threads);
            double peak = lt != null ? lt.peak(threads) : Double.NaN;
            if (lt != null) lt.setThreads(threads);
            System.out.printf("threads %d%s%n", threads, lt != null ? String.format(", FMA peak %.1f GFLOP/s", peak) : "");
            for (Shape sh : shapes) {
                for (int pi = 0; pi < 3; pi++) {
                    Pass p = sh.passes[pi];
                    try (Arena arena = Arena.ofConfined()) {
                        long nx = sh.n * sh.c * sh.h * sh.w, nw = sh.k * sh.c * sh.r * sh.s, ny = sh.n * sh.k * sh.oh() * sh.ow();
                        MemorySegment x = rand(arena, nx, 1), wt = rand(arena, nw, 2), dy = rand(arena, ny, 3);
                        MemorySegment out = arena.allocate(4 * Math.max(nx, Math.max(nw, ny)), 64);
                        MemorySegment a = p == D ? dy : x, b = p == W ? dy : wt;
                        double tp = Double.MAX_VALUE, tl = Double.MAX_VALUE;
                        String impl;
                        try (ConvPeer.Prepared prep = peer.prepare(sh.n, sh.c, sh.h, sh.w, sh.k, sh.r, sh.s, sh.stride,
                                sh.pad, p, a, b, out)) {
                            impl = prep.toString();
                            prep.run();
                            if (lt != null) lt.run(sh, p, a, b, out);
                            // Alternating blocks of reps (peer, ours, peer, ours): both see the same machine load, and
                            // neither runs right behind the other's still-spinning worker threads (libgomp spins after a
                            // parallel region) except on the first rep of a block.
                            for (int round = 0; round < 2; round++) {
                                for (int rep = 0; rep < reps; rep++) {
                                    long t0 = System.nanoTime();
                                    prep.run();
                                    tp = Math.min(tp, (System.nanoTime() - t0) * 1e-9);
                                }
                                if (lt != null)
                                    for (int rep = 0; rep < reps; rep++) {
                                        long t0 = System.nanoTime();
                                        lt.run(sh, p, a, b, out);
                                        tl = Math.min(tl, (System.nanoTime() - t0) * 1e-9);
                                    }
                            }
                        }
                        double f = sh.flops();
                        System.out.printf("  %-4s %-10s onednn %8.3f ms %6.1f GFLOP/s", sh.name, LABEL[pi], tp * 1e3, f / tp / 1e9);
                        if (lt != null)
                            System.out.printf(" | latent %8.3f ms %6.1f GFLOP/s (%4.1f%% of peak) | latent/onednn speed %.2fx",
                                    tl * 1e3, f / tl / 1e9, 100 * f / tl / 1e9 / peak, tp / tl);
                        System.out.printf("  [%s]%n", impl);
                    }
                }
            }
        }
    }

    static MemorySegment rand(Arena arena, long n, long seed) {
        MemorySegment m = arena.allocate(4 * n, 64);
        Random r = new Random(seed);
        for (long i = 0; i < n; i++) m.setAtIndex(JAVA_FLOAT, i, r.nextFloat() * 2 - 1);
        return m;
    }

    /** oneDNN vs a double-precision Java reference on one small odd shape, every pass. */
    static void check(OneDnnConv peer) {
        long n = 2, c = 3, h = 9, w = 7, k = 5, r = 3, s = 4;
        int st = 2, pad = 1;
        long oh = (h + 2 * pad - r) / st + 1, ow = (w + 2 * pad - s) / st + 1;
        peer.setThreads(2);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = rand(arena, n * c * h * w, 11), wt = rand(arena, k * c * r * s, 12), dy = rand(arena, n * k * oh * ow, 13);
            double[] y = new double[(int) (n * k * oh * ow)], dx = new double[(int) (n * c * h * w)], dw = new double[(int) (k * c * r * s)];
            for (int in = 0; in < n; in++)
                for (int ik = 0; ik < k; ik++)
                    for (int i = 0; i < oh; i++)
                        for (int j = 0; j < ow; j++)
                            for (int ic = 0; ic < c; ic++)
                                for (int ir = 0; ir < r; ir++)
                                    for (int is = 0; is < s; is++) {
                                        long ih = i * st - pad + ir, iw = j * st - pad + is;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                        int xi = (int) (((in * c + ic) * h + ih) * w + iw), wi = (int) (((ik * c + ic) * r + ir) * s + is);
                                        int yi = (int) (((in * k + ik) * oh + i) * ow + j);
                                        y[yi] += (double) x.getAtIndex(JAVA_FLOAT, xi) * wt.getAtIndex(JAVA_FLOAT, wi);
                                        dx[xi] += (double) dy.getAtIndex(JAVA_FLOAT, yi) * wt.getAtIndex(JAVA_FLOAT, wi);
                                        dw[wi] += (double) dy.getAtIndex(JAVA_FLOAT, yi) * x.getAtIndex(JAVA_FLOAT, xi);
                                    }
            double[][] want = {y, dx, dw};
            Pass[] passes = Pass.values();
            for (int pi = 0; pi < 3; pi++) {
                MemorySegment out = arena.allocate(4L * want[pi].length, 64);
                out.fill((byte) 0x7f); // NaN-ish garbage: must be overwritten
                MemorySegment a = passes[pi] == Pass.BWD_DATA ? dy : x, b = passes[pi] == Pass.BWD_WEIGHT ? dy : wt;
                try (ConvPeer.Prepared p = peer.prepare(n, c, h, w, k, r, s, st, pad, passes[pi], a, b, out)) {
                    p.run();
                    p.readBack();
                }
                double worst = 0;
                for (int i = 0; i < want[pi].length; i++)
                    worst = Math.max(worst, Math.abs(out.getAtIndex(JAVA_FLOAT, i) - want[pi][i]));
                System.out.printf("check %-10s n=%d c=%d h=%d w=%d k=%d r=%d s=%d stride=%d pad=%d: max |onednn - ref| = %.2e %s%n",
                        LABEL[pi], n, c, h, w, k, r, s, st, pad, worst, worst < 1e-4 ? "ok" : "MISMATCH");
                if (!(worst < 1e-4)) throw new AssertionError("oneDNN " + passes[pi] + " disagrees with the reference");
            }
        }
    }

    /** lt_conv2d_* of a liblatent.so, bound by hand (only for this comparison). */
    static final class Latent {
        final MethodHandle fwd, bwdData, bwdWeight, setThreads, peak;
        final Arena arena = Arena.ofShared();

        Latent(Path lib) {
            SymbolLookup l = SymbolLookup.libraryLookup(lib, arena);
            Linker ln = Linker.nativeLinker();
            fwd = ln.downcallHandle(l.find("lt_conv2d_fwd").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
            bwdData = ln.downcallHandle(l.find("lt_conv2d_bwd_data").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
            bwdWeight = ln.downcallHandle(l.find("lt_conv2d_bwd_weight").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT));
            setThreads = ln.downcallHandle(l.find("lt_set_num_threads").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT));
            peak = ln.downcallHandle(l.find("lt_peak_fma").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS));
        }

        void setThreads(int t) throws Throwable { int st = (int) setThreads.invokeExact(t); }

        double peak(int threads) throws Throwable {
            MemorySegment g = arena.allocate(8);
            double best = 0;
            for (int i = 0; i < 3; i++) {
                int st = (int) peak.invokeExact(threads, 30_000_000L, g);
                best = Math.max(best, g.get(ValueLayout.JAVA_DOUBLE, 0));
            }
            return best;
        }

        void run(Shape s, Pass p, MemorySegment a, MemorySegment b, MemorySegment out) throws Throwable {
            MemorySegment d = arena.allocate(9 * 8 + 4 * 4, 8);
            long[] v = {s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.oh(), s.ow()};
            for (int i = 0; i < 9; i++) d.setAtIndex(JAVA_LONG, i, v[i]);
            d.set(JAVA_INT, 72, s.stride); d.set(JAVA_INT, 76, s.stride); d.set(JAVA_INT, 80, s.pad); d.set(JAVA_INT, 84, s.pad);
            int st = switch (p) {
                case FWD -> (int) fwd.invokeExact(d, a, b, MemorySegment.NULL, out);
                case BWD_DATA -> (int) bwdData.invokeExact(d, a, b, MemorySegment.NULL, out);
                case BWD_WEIGHT -> (int) bwdWeight.invokeExact(d, a, b, out, MemorySegment.NULL, 0);
            };
            if (st != 0) throw new IllegalStateException("lt_conv2d " + p + " status " + st);
        }
    }
}
