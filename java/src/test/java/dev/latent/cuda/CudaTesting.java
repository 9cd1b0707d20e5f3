package dev.latent.cuda;

import dev.latent.nativ.LatentNative;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.IntToDoubleFunction;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Shared by the CUDA backend's tests: the device gate (skip only on a plain run without a GPU; on the emulated driver,
 * -Dlatent.cuda.driver set by surefire's cuda-emulated execution, a missing backend fails), host / device copies,
 * the emulation tests' fill (uniform in (-1, 1) from a fixed seed) and their per-element check
 * |got - want| <= tol, with NaN equal only to NaN, the first misses and the largest error / tolerance printed.
 */
final class CudaTesting {
    private CudaTesting() {}

    static final double U = 1.0 / (1 << 24);

    /** Indices into {@link #emuCounters()} (driver_emu.h, Counter). */
    static final int EMU_DTOH = 0, EMU_HTOD = 1, EMU_CTX_SYNC = 2, EMU_STREAM_SYNC = 3, EMU_FREE = 4, EMU_GEMM_EX = 5,
            EMU_GEMM_STRIDED_BATCHED_EX = 6, EMU_CONV_FWD = 7,
            EMU_CONV_BWD_DATA = 8, EMU_CONV_BWD_FILTER = 9, EMU_EVENT_SYNC = 10, EMU_HTOD_ASYNC = 11, EMU_LT_MATMUL = 12,
            EMU_SDPA_FWD = 13, EMU_SDPA_BWD = 14, EMU_LAUNCH = 15, EMU_GRAPH_LAUNCH = 16, EMU_COUNTERS = 17;

    private static java.lang.invoke.MethodHandle emuCounters;

    /** True on the emulated driver (libcuda_emu.so exports its counters), false on a real one. */
    static boolean emulated() { return emuHandle() != null; }

    private static synchronized java.lang.invoke.MethodHandle emuHandle() {
        if (emuCounters == null) {
            String lib = System.getProperty("latent.cuda.driver");
            if (lib == null || lib.isBlank()) return null;
            var sym = java.lang.foreign.SymbolLookup.libraryLookup(lib, Arena.global()).find("latent_emu_counters");
            if (sym.isEmpty()) return null;
            emuCounters = java.lang.foreign.Linker.nativeLinker().downcallHandle(sym.get(),
                    java.lang.foreign.FunctionDescriptor.of(JAVA_INT, java.lang.foreign.ValueLayout.ADDRESS, JAVA_INT));
        }
        return emuCounters;
    }

    /** The emulated driver's counters (host synchronisations by kind, vendor stand-in calls), or null on a real driver. */
    static long[] emuCounters() {
        var h = emuHandle();
        if (h == null) return null;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(java.lang.foreign.ValueLayout.JAVA_LONG, EMU_COUNTERS);
            int n = (int) h.invokeExact(out, EMU_COUNTERS);
            assertEquals(EMU_COUNTERS, n, "latent_emu_counters' count (driver_emu.h, Counter)");
            return out.toArray(java.lang.foreign.ValueLayout.JAVA_LONG);
        } catch (Throwable t) {
            throw new AssertionError("latent_emu_counters", t);
        }
    }

    /** The emulated driver's host synchronisations so far: its first five counters and cuEventSynchronize. */
    static long emuSyncs() {
        long[] c = emuCounters();
        return c[EMU_DTOH] + c[EMU_HTOD] + c[EMU_CTX_SYNC] + c[EMU_STREAM_SYNC] + c[EMU_FREE] + c[EMU_EVENT_SYNC];
    }

    static Cuda device() {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        else assumeTrue(Cuda.available(), Cuda::unavailableReason);
        return Cuda.get();
    }

    /** {@link #emuCounters}, or zeros on a real driver (so differences of counters read 0 there). */
    static long[] emuCountersOrZeros() {
        long[] c = emuCounters();
        return c == null ? new long[EMU_COUNTERS] : c;
    }

    /**
     * A vendor library on {@code cu}, {@code load} of CudaVendor (dnn, blas, blasLt, attention) after the vendor routing is
     * reset to the environment's: a failure when -D{@code property} is set (the cuda-emulated execution sets it) and
     * {@code what} did not load, else the test is skipped where it is absent ("no {@code absent} here").
     */
    static <T> T vendor(Cuda cu, java.util.function.Function<Cuda, T> load, String property, String what, String absent) {
        CudaVendor.force(null);
        T lib = load.apply(cu);
        String why = String.join("; ", CudaVendor.describe());
        if (System.getProperty(property) != null) org.junit.jupiter.api.Assertions.assertNotNull(lib,
                "-D" + property + " is set but " + what + " did not load: " + why);
        else assumeTrue(lib != null, "no " + absent + " here: " + why);
        return lib;
    }

    /** cuDNN's SDPA on {@code cu} ({@link #vendor}): required under -Dlatent.cudnn.path, else skipped without cuDNN 9. */
    static CuDnnAttention sdpa(Cuda cu) { return vendor(cu, CudaVendor::attention, "latent.cudnn.path", "cuDNN's SDPA", "cuDNN 9"); }

    /** cuDNN on {@code cu} ({@link #vendor}): required under -Dlatent.cudnn.path, else skipped where none is found. */
    static CuDnn cudnn(Cuda cu) { return vendor(cu, CudaVendor::dnn, "latent.cudnn.path", "cuDNN", "cuDNN"); }

    /** The device, with cuDNN's SDPA loaded ({@link #sdpa}). */
    static Cuda deviceWithSdpa() {
        Cuda cu = device();
        sdpa(cu);
        return cu;
    }

    /** The emulation tests compare with the C reference at ISA ref; so do these (restored by {@link #restoreIsa}). */
    static int refIsa() {
        LatentNative nat = LatentNative.get();
        int was = nat.isa();
        nat.setIsa(LatentNative.ISA_REF);
        return was;
    }

    static void restoreIsa(int was) { LatentNative.get().setIsa(was); }

    static float[] fill(int n, long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return a;
    }

    static MemorySegment host(Arena a, float[] v) { return a.allocateFrom(JAVA_FLOAT, v); }

    static MemorySegment hostInts(Arena a, int[] v) { return a.allocateFrom(JAVA_INT, v); }

    static DeviceBuffer up(Cuda cu, float[] v) {
        DeviceBuffer d = cu.alloc(Math.max(1, v.length) * 4L);
        try (Arena a = Arena.ofConfined()) { d.copyFrom(a.allocateFrom(JAVA_FLOAT, v)); }
        return d;
    }

    static DeviceBuffer upInts(Cuda cu, int[] v) {
        DeviceBuffer d = cu.alloc(Math.max(1, v.length) * 4L);
        try (Arena a = Arena.ofConfined()) { d.copyFrom(a.allocateFrom(JAVA_INT, v)); }
        return d;
    }

    /** A device buffer of n floats, all NaN: a kernel that skips an element leaves it visible. */
    static DeviceBuffer nans(Cuda cu, int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, Float.NaN);
        return up(cu, v);
    }

    static float[] down(Cuda cu, DeviceBuffer d, int n) {
        cu.synchronize();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(JAVA_FLOAT, Math.max(1, n));
            d.copyTo(s.asSlice(0, n * 4L));
            return s.asSlice(0, n * 4L).toArray(JAVA_FLOAT);
        }
    }

    static float[] floats(MemorySegment s, int n) { return s.asSlice(0, n * 4L).toArray(JAVA_FLOAT); }

    /** A gradient's tolerance against the CPU's: 1e-5 of its largest |g| (plus 1e-12 for all-zero gradients). */
    static double gradTol(float[] cpu) {
        double max = 0;
        for (float v : cpu) max = Math.max(max, Math.abs(v));
        return 1e-5 * max + 1e-12;
    }

    /** Every gradient of gpu within {@link #gradTol} of cpu's (same names); returns the largest error / tolerance. */
    static double compareGrads(String what, java.util.Map<String, float[]> cpu, java.util.Map<String, float[]> gpu) {
        assertEquals(cpu.keySet(), gpu.keySet());
        double worst = 0;
        for (String k : cpu.keySet()) {
            float[] gc = cpu.get(k), gg = gpu.get(k);
            double tol = gradTol(gc);
            for (int i = 0; i < gc.length; i++) worst = Math.max(worst, Math.abs(gg[i] - gc[i]) / tol);
            close(what + " grad " + k, gg, gc, i -> tol);
        }
        return worst;
    }

    static void close(String what, float[] got, float[] want, IntToDoubleFunction tol) {
        int bad = 0;
        double worst = 0;
        StringBuilder msg = new StringBuilder();
        for (int i = 0; i < want.length; i++) {
            double t = tol.applyAsDouble(i), d = Math.abs((double) got[i] - want[i]);
            boolean ok = Float.isNaN(want[i]) ? Float.isNaN(got[i]) : !Float.isNaN(got[i]) && (got[i] == want[i] || d <= t);
            if (ok && t > 0 && !Float.isNaN(want[i])) worst = Math.max(worst, d / t);
            if (!ok && bad++ < 3) msg.append(String.format("%n  %s[%d]: got %.9g want %.9g tol %.3g", what, i, got[i], want[i], t));
        }
        if (bad > 0) fail(what + ": " + bad + " of " + want.length + " outside tolerance" + msg);
        System.out.printf("%s: largest error / tolerance %.3f%n", what, worst);
    }

    /** Bit-for-bit (NaN payloads aside). */
    static void same(String what, float[] got, float[] want) {
        for (int i = 0; i < want.length; i++)
            if (Float.floatToIntBits(got[i]) != Float.floatToIntBits(want[i]) && !(Float.isNaN(got[i]) && Float.isNaN(want[i])))
                fail(what + "[" + i + "]: " + got[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(got[i])) + ") differs from the CPU's "
                        + want[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(want[i])) + ")");
    }
}
