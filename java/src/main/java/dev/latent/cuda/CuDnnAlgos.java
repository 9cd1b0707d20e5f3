package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuDNN's convolution algorithm pick, once per (pass, geometry, data type, math type) and kept: the ranked candidates of
 * {@code cudnnGetConvolution*Algorithm_v7} (cuDNN's heuristics, the default) or of {@code cudnnFindConvolution*AlgorithmEx}
 * (measured on the device, {@code LATENT_CUDNN_FIND=measure}), of which the first that ran ({@code status} SUCCESS),
 * is {@code CUDNN_DETERMINISTIC} (same seed, same bits: no atomics), reports the descriptor's math type (the three passes
 * share one convolution descriptor, so an entry timed under another math type is not what would run) and whose
 * workspace ({@code memory}, and {@code cudnnGet*WorkspaceSize} for it) is within the cap, from our caching allocator.
 * Without one, or when the search fails, the fixed algorithms serve (forward IMPLICIT_PRECOMP_GEMM, backward-data and
 * backward-filter ALGO_1), logged; nothing throws.
 *
 * <p>Why heuristics by default: they depend on the geometry, the GPU and the cuDNN version only, so two runs with the
 * same seed pick the same algorithms and give the same bits; a measured pick can change between runs when two
 * algorithms time alike (PyTorch's {@code cudnn.benchmark} has the same caveat). Measuring blocks the host once per
 * geometry and cannot run inside a CUDA-graph capture: a geometry first met while capturing takes the heuristic pick.
 *
 * <p>{@code LATENT_CUDNN_FIND} (or {@code -Dlatent.cudnn.find}): {@code 0} / {@code off} / {@code false} / {@code fixed}
 * the fixed algorithms, unset / {@code 1} / {@code heuristic} the heuristics, {@code measure} the timed search.
 * {@code LATENT_CUDNN_WORKSPACE_MIB} (or {@code -Dlatent.cudnn.workspaceMiB}): the workspace cap, 256 MiB by default.
 * The pick is logged once per geometry at DEBUG ({@code System.Logger} "dev.latent.cuda"), a failed search at WARNING.
 */
final class CuDnnAlgos {
    private static final System.Logger LOG = System.getLogger("dev.latent.cuda");

    enum Mode { FIXED, HEURISTIC, MEASURE }

    /** The three passes, their enum's algorithm names (cudnn_cnn.h) and the fixed algorithm. */
    enum Pass {
        FORWARD("forward", "Forward", 1, "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING", "WINOGRAD",
                "WINOGRAD_NONFUSED"),
        BACKWARD_DATA("backward-data", "BackwardData", 1, "ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"),
        BACKWARD_FILTER("backward-filter", "BackwardFilter", 1, "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED",
                "FFT_TILING");

        final String text, symbol;
        final int fixed;
        final List<String> names;

        Pass(String text, String symbol, int fixed, String... names) {
            this.text = text;
            this.symbol = symbol;
            this.fixed = fixed;
            this.names = List.of(names);
        }

        String name(int algo) { return algo >= 0 && algo < names.size() ? names.get(algo) : "algorithm " + algo; }
    }

    /** One entry of cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t (the three share this layout). */
    record Perf(int algo, int status, float time, long memory, int determinism, int mathType) {}

    /** The pick: the algorithm, the workspace it is called with, and how it was chosen (for the log and the tests). */
    record Algo(int algo, long workspace, String how) {}

    /** cudnnConvolution*AlgoPerf_t: int algo, status; float time; size_t memory; int determinism, mathType, reserved[3]. */
    static final StructLayout PERF = MemoryLayout.structLayout(JAVA_INT.withName("algo"), JAVA_INT.withName("status"),
            JAVA_FLOAT.withName("time"), MemoryLayout.paddingLayout(4), JAVA_LONG.withName("memory"), JAVA_INT.withName("determinism"),
            JAVA_INT.withName("mathType"), MemoryLayout.sequenceLayout(3, JAVA_INT).withName("reserved"), MemoryLayout.paddingLayout(4));
    static final long PERF_ALGO = PERF.byteOffset(MemoryLayout.PathElement.groupElement("algo")),
            PERF_STATUS = PERF.byteOffset(MemoryLayout.PathElement.groupElement("status")),
            PERF_TIME = PERF.byteOffset(MemoryLayout.PathElement.groupElement("time")),
            PERF_MEMORY = PERF.byteOffset(MemoryLayout.PathElement.groupElement("memory")),
            PERF_DETERMINISM = PERF.byteOffset(MemoryLayout.PathElement.groupElement("determinism")),
            PERF_MATH = PERF.byteOffset(MemoryLayout.PathElement.groupElement("mathType"));
    static final int DETERMINISTIC = 1;
    static final long DEFAULT_CAP = 256L << 20;

    private static volatile Mode forcedMode;
    private static volatile Long forcedCap;

    /** The mode the environment asks for (or a test's {@link #force}). */
    static Mode mode() {
        Mode f = forcedMode;
        if (f != null) return f;
        String p = System.getProperty("latent.cudnn.find");
        return parse(p != null ? p : System.getenv("LATENT_CUDNN_FIND"), p != null ? "-Dlatent.cudnn.find" : "LATENT_CUDNN_FIND");
    }

    static Mode parse(String v, String what) {
        if (v == null || v.isBlank()) return Mode.HEURISTIC;
        return switch (v.trim().toLowerCase(Locale.ROOT)) {
            case "0", "off", "false", "no", "fixed" -> Mode.FIXED;
            case "1", "on", "true", "yes", "heuristic", "heuristics" -> Mode.HEURISTIC;
            case "measure", "find", "exhaustive", "benchmark" -> Mode.MEASURE;
            default -> throw new IllegalArgumentException(what + "=" + v + ": expected 0 (fixed algorithms), heuristic or measure");
        };
    }

    /** The pick's mode and cap in words, for the load-time log line (an invalid setting is named, not thrown). */
    static String describeMode() {
        try {
            return switch (mode()) {
                case FIXED -> "fixed: LATENT_CUDNN_FIND=0";
                case HEURISTIC -> "cuDNN's heuristics pick per geometry, workspace cap " + (workspaceCap() >> 20) + " MiB";
                case MEASURE -> "timed search per geometry (LATENT_CUDNN_FIND=measure), workspace cap " + (workspaceCap() >> 20) + " MiB";
            };
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
    }

    /** The workspace cap in bytes. */
    static long workspaceCap() {
        Long f = forcedCap;
        if (f != null) return f;
        String p = System.getProperty("latent.cudnn.workspaceMiB");
        String v = p != null ? p : System.getenv("LATENT_CUDNN_WORKSPACE_MIB");
        if (v == null || v.isBlank()) return DEFAULT_CAP;
        try {
            long mib = Long.parseLong(v.trim());
            if (mib >= 0 && mib <= (1L << 40)) return mib << 20;
        } catch (NumberFormatException ignored) {
            /* the message below */
        }
        throw new IllegalArgumentException((p != null ? "-Dlatent.cudnn.workspaceMiB" : "LATENT_CUDNN_WORKSPACE_MIB") + "=" + v
                + ": expected a whole number of MiB");
    }

    /** Tests and A/B runs: the mode and cap (bytes) to use, or null for the environment's. */
    static void force(Mode mode, Long capBytes) {
        forcedMode = mode;
        forcedCap = capBytes;
    }

    private record PickKey(CuDnn.Key g, Pass pass, boolean bf16, Mode mode, long cap) {}

    private final Cuda cu;
    private final MemorySegment handle;
    private final VendorLib lib;
    private final MethodHandle[] maxCount = new MethodHandle[3], heuristic = new MethodHandle[3], find = new MethodHandle[3],
            wsSize = new MethodHandle[3];
    private final Map<PickKey, Algo> picks = new HashMap<>();
    private long searches;

    CuDnnAlgos(Cuda cu, VendorLib lib, MemorySegment handle) {
        this.cu = cu;
        this.lib = lib;
        this.handle = handle;
        for (Pass p : Pass.values()) {
            int i = p.ordinal();
            String s = p.symbol;
            maxCount[i] = lib.optional("cudnnGetConvolution" + s + "AlgorithmMaxCount", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
            heuristic[i] = lib.optional("cudnnGetConvolution" + s + "Algorithm_v7", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
            find[i] = lib.optional("cudnnFindConvolution" + s + "AlgorithmEx", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
            wsSize[i] = lib.status("cudnnGetConvolution" + s + "WorkspaceSize", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                    ADDRESS);
        }
    }

    /**
     * The descriptors of one pass in its entry points' order: forward (x, w, conv, y), backward-data (w, dy, conv, dx),
     * backward-filter (x, dy, conv, dw); and, for the measured search, the two input buffers and the output's bytes
     * (the search writes a scratch output of ours, never the caller's).
     */
    record Call(MemorySegment a, MemorySegment b, MemorySegment conv, MemorySegment out, DeviceBuffer inA, DeviceBuffer inB, long outBytes) {}

    /**
     * The algorithm for pass p of geometry g ({@code bf16}: the PSEUDO_BFLOAT16 descriptors; math: the descriptor's math
     * type), picked once per mode and cap and kept; fixedWs is the fixed algorithm's workspace. Never throws for a failed
     * search (the fixed algorithm then serves).
     */
    synchronized Algo pick(Pass p, CuDnn.Key g, boolean bf16, int math, Call c, long fixedWs) {
        Mode m = mode();
        Algo fixed = new Algo(p.fixed, fixedWs, "fixed");
        if (m == Mode.FIXED) return fixed;
        long cap = workspaceCap();
        PickKey k = new PickKey(g, p, bf16, m, cap);
        Algo a = picks.get(k);
        if (a != null) return a;
        String what = describe(p, g, bf16);
        try {
            Mode used = m;
            String note = "";
            if (m == Mode.MEASURE && find[p.ordinal()] == null) { used = Mode.HEURISTIC; note = " (this cuDNN lacks cudnnFind*Ex)"; }
            else if (m == Mode.MEASURE && cu.capturing()) { used = Mode.HEURISTIC; note = " (met first inside a CUDA-graph capture)"; }
            if (heuristic[p.ordinal()] == null || maxCount[p.ordinal()] == null) {
                a = new Algo(p.fixed, fixedWs, "fixed (this cuDNN lacks cudnnGetConvolution" + p.symbol + "Algorithm_v7)");
            } else {
                List<Perf> ranked = used == Mode.MEASURE ? measured(p, c, cap) : heuristics(p, c);
                List<String> skipped = new ArrayList<>();
                a = choose(p, ranked, math, cap, c, skipped, used == Mode.MEASURE ? "find" + note : "heuristic" + note);
                if (a == null) a = new Algo(p.fixed, fixedWs, "fixed (no candidate fits: " + String.join(", ", skipped) + ")");
                else if (!skipped.isEmpty()) a = new Algo(a.algo, a.workspace, a.how + "; skipped " + String.join(", ", skipped));
            }
        } catch (RuntimeException e) {
            a = new Algo(p.fixed, fixedWs, "fixed (the search failed: " + e.getMessage() + ")");
            LOG.log(System.Logger.Level.WARNING, "cuDNN " + what + ": algorithm search failed, the fixed " + p.name(p.fixed)
                    + " serves: " + e.getMessage());
        }
        picks.put(k, a);
        Algo chosen = a;
        LOG.log(System.Logger.Level.DEBUG, () -> "cuDNN " + what + ": " + p.name(chosen.algo) + " (" + chosen.algo + "), workspace "
                + chosen.workspace + " bytes, " + chosen.how);
        return a;
    }

    /** The pick kept for (p, g, bf16) under the current mode and cap, or null (tests). */
    synchronized Algo picked(Pass p, CuDnn.Key g, boolean bf16) {
        return picks.get(new PickKey(g, p, bf16, mode(), workspaceCap()));
    }

    /** Forgets every pick (tests). */
    synchronized void clear() { picks.clear(); }

    /** Searches run so far (each geometry and pass once per mode and cap). */
    synchronized long searches() { return searches; }

    private static String describe(Pass p, CuDnn.Key g, boolean bf16) {
        return p.text + " " + g.n() + "x" + g.c() + "x" + g.h() + "x" + g.w() + " * " + g.k() + "x" + g.c() + "x" + g.r() + "x" + g.s()
                + " stride " + g.strideH() + "," + g.strideW() + " pad " + g.padH() + "," + g.padW() + (bf16 ? " bf16" : " fp32 math " + g.math());
    }

    private Algo choose(Pass p, List<Perf> ranked, int math, long cap, Call c, List<String> skipped, String how) {
        for (Perf r : ranked) {
            if (r.status != 0) continue;
            String n = p.name(r.algo);
            if (r.algo < 0 || r.algo >= p.names.size()) { skipped.add(n + " (unknown to us)"); continue; }
            if (r.determinism != DETERMINISTIC) { skipped.add(n + " (nondeterministic)"); continue; }
            if (r.mathType != math) { skipped.add(n + " (math type " + r.mathType + ", not " + math + ")"); continue; }
            if (r.memory > cap) { skipped.add(n + " (workspace " + r.memory + " > cap " + cap + ")"); continue; }
            long ws = workspaceOf(p, c, r.algo);
            if (ws < 0) { skipped.add(n + " (cudnnGet*WorkspaceSize refuses it: " + (-ws) + ")"); continue; }
            ws = Math.max(ws, r.memory);
            if (ws > cap) { skipped.add(n + " (workspace " + ws + " > cap " + cap + ")"); continue; }
            return new Algo(r.algo, ws, how + (r.time >= 0 ? String.format(Locale.ROOT, ", %.3g ms", r.time) : ""));
        }
        return null;
    }

    /** cudnnGet*WorkspaceSize of algo, or minus the status it refused with. */
    long workspaceOf(Pass p, Call c, int algo) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sz = a.allocate(JAVA_LONG);
            int rc = (int) wsSize[p.ordinal()].invokeExact(handle, c.a, c.b, c.conv, c.out, algo, sz);
            return rc == 0 ? sz.get(JAVA_LONG, 0) : -(long) Math.max(rc, 1);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cudnnGetConvolution" + p.symbol + "WorkspaceSize", t);
        }
    }

    private int count(Pass p) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            lib.check("cudnnGetConvolution" + p.symbol + "AlgorithmMaxCount", maxCount[p.ordinal()], handle, n);
            int v = n.get(JAVA_INT, 0);
            if (v < 1 || v > 64) throw new IllegalStateException("cudnnGetConvolution" + p.symbol + "AlgorithmMaxCount answered " + v);
            return v;
        }
    }

    /** The heuristics' ranked entries (cudnnGetConvolution*Algorithm_v7), in cuDNN's order. */
    List<Perf> heuristics(Pass p, Call c) {
        int n = count(p);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ret = a.allocate(JAVA_INT), perf = a.allocate(PERF, n);
            searches++;
            lib.check("cudnnGetConvolution" + p.symbol + "Algorithm_v7", heuristic[p.ordinal()], handle, c.a, c.b, c.conv, c.out, n, ret, perf);
            return read(perf, ret.get(JAVA_INT, 0), n);
        }
    }

    /**
     * The measured entries (cudnnFindConvolution*AlgorithmEx) on the caller's inputs, a scratch output and a workspace
     * of the largest size a candidate within the cap asks for; sorted by time as cuDNN returns them.
     */
    List<Perf> measured(Pass p, Call c, long cap) {
        int n = count(p);
        long ws = 0;
        for (int algo = 0; algo < n; algo++) {
            long w = workspaceOf(p, c, algo);
            if (w >= 0 && w <= cap) ws = Math.max(ws, w);
        }
        try (Arena a = Arena.ofConfined(); DeviceBuffer out = cu.alloc(Math.max(c.outBytes, 1));
             DeviceBuffer work = ws > 0 ? cu.alloc(ws) : null) {
            MemorySegment ret = a.allocate(JAVA_INT), perf = a.allocate(PERF, n);
            searches++;
            lib.check("cudnnFindConvolution" + p.symbol + "AlgorithmEx", find[p.ordinal()], handle, c.a, seg(c.inA), c.b, seg(c.inB), c.conv,
                    c.out, seg(out), n, ret, perf, seg(work), ws);
            return read(perf, ret.get(JAVA_INT, 0), n);
        }
    }

    private static MemorySegment seg(DeviceBuffer b) { return b == null ? MemorySegment.NULL : MemorySegment.ofAddress(b.address()); }

    static List<Perf> read(MemorySegment perf, int returned, int capacity) {
        if (returned < 0 || returned > capacity) throw new IllegalStateException("cuDNN returned " + returned + " algorithms for " + capacity + " slots");
        List<Perf> l = new ArrayList<>(returned);
        for (int i = 0; i < returned; i++) {
            MemorySegment e = perf.asSlice(i * PERF.byteSize(), PERF.byteSize());
            l.add(new Perf(e.get(JAVA_INT, PERF_ALGO), e.get(JAVA_INT, PERF_STATUS), e.get(JAVA_FLOAT, PERF_TIME), e.get(JAVA_LONG, PERF_MEMORY),
                    e.get(JAVA_INT, PERF_DETERMINISM), e.get(JAVA_INT, PERF_MATH)));
        }
        return l;
    }
}
