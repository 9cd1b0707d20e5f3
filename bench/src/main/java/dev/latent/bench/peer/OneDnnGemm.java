package dev.latent.bench.peer;

import dev.latent.spi.GemmPeer;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * oneDNN's sgemm (bytedeco dnnl presets) as a peer. Two settings make the comparison fair:
 * <ul>
 *   <li>threads: the presets run on their bundled OpenMP; we call {@code omp_set_num_threads} on the
 *       calling thread, which is the one that then calls sgemm;</li>
 *   <li>ISA: uncapped by default, i.e. oneDNN's best on this CPU (AVX-512 where it has it), as Latent's own
 *       kernels now run at avx512 too (docs/decisions.md, "Peers run uncapped"). {@code
 *       -Dlatent.peer.onednn.isa=avx2} caps it with {@code dnnl_set_max_cpu_isa} for the AVX2-to-AVX2
 *       comparison (then run Latent with {@code LATENT_MAX_ISA=avx2}); oneDNN takes the cap once per process,
 *       so the capped and the uncapped run are two invocations. {@link #name()} carries the ISA oneDNN reports
 *       it runs at ({@code dnnl_get_effective_cpu_isa}), so every report names it.</li>
 * </ul>
 */
public final class OneDnnGemm implements GemmPeer {
    private static final MethodHandle OMP_SET_NUM_THREADS;
    private static final String ISA;
    private static final String EFFECTIVE;

    static {
        Loader.load(dnnl.class);
        ISA = System.getProperty("latent.peer.onednn.isa", "all");
        switch (ISA) {
            case "all" -> { }
            case "avx2" -> {
                int st = dnnl.dnnl_set_max_cpu_isa(dnnl.dnnl_cpu_isa_avx2);
                if (st != dnnl.dnnl_success) throw new IllegalStateException("dnnl_set_max_cpu_isa(avx2) failed: " + st);
            }
            default -> throw new IllegalArgumentException("-Dlatent.peer.onednn.isa=" + ISA + ": expected all (default) or avx2");
        }
        EFFECTIVE = isaName(dnnl.dnnl_get_effective_cpu_isa());
        // libgomp was loaded by javacpp; dlopen by soname returns that same instance.
        SymbolLookup gomp = SymbolLookup.libraryLookup("libgomp.so.1", Arena.global());
        OMP_SET_NUM_THREADS = Linker.nativeLinker().downcallHandle(
                gomp.find("omp_set_num_threads").orElseThrow(), FunctionDescriptor.ofVoid(JAVA_INT));
    }

    /** oneDNN's name for a dnnl_cpu_isa_t value (avx2, avx512_core_bf16, ...), from the presets' constants. */
    static String isaName(int isa) {
        for (java.lang.reflect.Field f : dnnl.class.getFields()) {
            String n = f.getName();
            if (!n.startsWith("dnnl_cpu_isa_") || f.getType() != int.class || n.equals("dnnl_cpu_isa_default")
                    || n.equals("dnnl_cpu_isa_no_hints") || n.equals("dnnl_cpu_isa_prefer_ymm")) continue;
            try {
                if (f.getInt(null) == isa) return n.substring("dnnl_cpu_isa_".length());
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }
        return "isa-0x" + Integer.toHexString(isa);
    }

    /** The ISA oneDNN runs at in this process (after the cap, if any): e.g. avx512_core_bf16 or avx2. */
    public static String effectiveIsa() { return EFFECTIVE; }

    /** e.g. "onednn-3.11-avx512_core_bf16" (uncapped) or "onednn-3.11-avx2" (capped). */
    @Override
    public String name() { return "onednn-3.11-" + EFFECTIVE; }

    @Override
    public void setThreads(int threads) {
        try {
            OMP_SET_NUM_THREADS.invokeExact(threads);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    @Override
    public void sgemm(long m, long n, long k, MemorySegment a, MemorySegment b, MemorySegment c) {
        int st = dnnl.dnnl_sgemm((byte) 'N', (byte) 'N', m, n, k, 1f, ptr(a), k, ptr(b), n, 0f, ptr(c), n);
        if (st != dnnl.dnnl_success) throw new IllegalStateException("dnnl_sgemm failed: " + st);
    }

    /** A javacpp view of an FFM segment's memory (no copy). */
    static FloatPointer ptr(MemorySegment s) {
        return new FloatPointer(new org.bytedeco.javacpp.Pointer() {
            { address = s.address(); capacity = limit = s.byteSize() / 4; }
        }).capacity(s.byteSize() / 4);
    }
}
