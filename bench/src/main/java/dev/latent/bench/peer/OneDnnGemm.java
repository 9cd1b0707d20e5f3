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
 *   <li>ISA: capped to AVX2 with {@code dnnl_set_max_cpu_isa}, the ISA Latent targets (this machine kind is
 *       specified as AVX2+FMA; a Zen 5 host may expose AVX-512, which our kernels do not use). Set
 *       {@code -Dlatent.peer.onednn.isa=all} to measure it uncapped.</li>
 * </ul>
 */
public final class OneDnnGemm implements GemmPeer {
    private static final MethodHandle OMP_SET_NUM_THREADS;
    private static final String ISA;

    static {
        Loader.load(dnnl.class);
        ISA = System.getProperty("latent.peer.onednn.isa", "avx2");
        if (!ISA.equals("all")) {
            int st = dnnl.dnnl_set_max_cpu_isa(dnnl.dnnl_cpu_isa_avx2);
            if (st != dnnl.dnnl_success) throw new IllegalStateException("dnnl_set_max_cpu_isa(avx2) failed: " + st);
        }
        // libgomp was loaded by javacpp; dlopen by soname returns that same instance.
        SymbolLookup gomp = SymbolLookup.libraryLookup("libgomp.so.1", Arena.global());
        OMP_SET_NUM_THREADS = Linker.nativeLinker().downcallHandle(
                gomp.find("omp_set_num_threads").orElseThrow(), FunctionDescriptor.ofVoid(JAVA_INT));
    }

    @Override
    public String name() { return "onednn-3.11" + (ISA.equals("all") ? "-uncapped" : "-avx2"); }

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
