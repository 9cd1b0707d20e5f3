package dev.latent;

import dev.latent.cuda.Cuda;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;

/**
 * The library's process-wide settings and what this machine can run, in one public place: the native thread pool,
 * the CPU instruction-set level the kernels use, bf16 availability, and CUDA. Applications, the CLI and the examples
 * use this class; the raw binding behind it ({@code dev.latent.nativ}) is internal and not exported by the module.
 * Setters validate first and throw an {@link IllegalArgumentException} naming the setting and the value refused; nothing
 * changes then. Every setting is process-wide: set them at start-up, not while another thread runs kernels.
 * <pre>{@code
 * Latent.setThreads(4);
 * if (!Latent.bf16Available()) System.err.println(Latent.bf16UnavailableReason());
 * Device d = Latent.cudaAvailable() ? Device.CUDA : Device.CPU;
 * }</pre>
 */
public final class Latent {
    /** The most native worker threads {@link #setThreads} accepts (the native pool's fixed capacity). */
    public static final int MAX_THREADS = 256;

    private Latent() {}

    // ---- threads ----

    /** The number of threads the native kernels use (the calling thread included). */
    public static int threads() { return LatentNative.get().numThreads(); }

    /**
     * Sets the number of threads the native kernels use, 1 to {@link #MAX_THREADS}. Not from inside a kernel task.
     * @throws IllegalArgumentException for a count outside [1, {@value #MAX_THREADS}], naming it
     */
    public static void setThreads(int n) {
        if (n < 1 || n > MAX_THREADS)
            throw new IllegalArgumentException("threads must be in [1, " + MAX_THREADS + "], got " + n);
        LatentNative.get().setNumThreads(n);
    }

    // ---- instruction set ----

    /** The instruction-set level the CPU kernels use now: "ref", "avx2" or "avx512". */
    public static String isa() { return LatentNative.isaName(LatentNative.get().isa()); }

    /** The best level this CPU (and OS) supports: "ref", "avx2" or "avx512". */
    public static String isaSupported() { return LatentNative.isaName(LatentNative.get().isaSupported()); }

    /**
     * Why {@link #isa()} is below "avx512" (the CPU lacks a feature, LATENT_MAX_ISA capped it, or {@link #setIsa}
     * lowered it); "" when it is not.
     */
    public static String isaReason() { return LatentNative.get().isaReason(); }

    /**
     * Sets the instruction-set level the CPU kernels use: "ref", "avx2" or "avx512" (results are bit-identical
     * across levels where the kernels document it; lower levels are for comparison and testing).
     * @throws IllegalArgumentException for a null or unknown name, or a level above what this CPU supports
     *         (naming the CPU's best level and why)
     */
    public static void setIsa(String name) {
        if (name == null) throw new IllegalArgumentException("ISA is null: expected ref, avx2 or avx512");
        int level = LatentNative.parseIsa(name);
        LatentNative n = LatentNative.get();
        if (level > n.isaSupported()) {
            String why = n.isaSupported() == LatentNative.ISA_AVX512 ? "" : reasonCpu(n);
            throw new IllegalArgumentException("ISA " + name + " is above what this CPU supports ("
                    + LatentNative.isaName(n.isaSupported()) + (why.isEmpty() ? "" : ": " + why) + ")");
        }
        n.setIsa(level);
    }

    /** The CPU's own limit, not a cap set by LATENT_MAX_ISA or setIsa. */
    private static String reasonCpu(LatentNative n) {
        return n.isaSupported() == LatentNative.ISA_REF ? "CPU lacks AVX2+FMA (or the OS does not save YMM state)"
                : "CPU lacks AVX-512 F+BW+VL+DQ (or the OS does not save ZMM/opmask state)";
    }

    // ---- precision ----

    /**
     * Whether {@link dev.latent.tensor.Precision#BF16} matmuls can run here on the CPU (AVX512_BF16, at ISA avx512).
     * Nothing emulates bf16: where this is false, BF16 is refused with {@link #bf16UnavailableReason()}.
     */
    public static boolean bf16Available() { return Gemm.bf16Unavailable() == null; }

    /** "" when {@link #bf16Available()}, else one line naming AVX512_BF16 and the ISA in use. */
    public static String bf16UnavailableReason() {
        String why = Gemm.bf16Unavailable();
        return why == null ? "" : why;
    }

    /**
     * CUDA matmuls on TF32 tensor cores (faster; inputs rounded to a 10-bit mantissa, ~2^-10 relative error per
     * product) or exact fp32 (the default). Process-wide; CPU matmuls are unaffected.
     */
    public static void setCudaTf32(boolean on) { Gemm.setCudaTf32(on); }

    /** Whether CUDA matmuls run on TF32 tensor cores (see {@link #setCudaTf32}). */
    public static boolean cudaTf32() { return Gemm.cudaTf32(); }

    // ---- CUDA ----

    /**
     * True when a usable GPU (sm_80 or newer, a recent enough driver) and the library's CUDA kernels are there, so
     * {@link dev.latent.tensor.Device#CUDA} tensors work. The first call probes; the answer is cached.
     */
    public static boolean cudaAvailable() { return Cuda.available(); }

    /** "" when {@link #cudaAvailable()}, else "CUDA unavailable: " and the reason (no driver, no device, ...). */
    public static String cudaUnavailableReason() { return Cuda.unavailableReason(); }

    /**
     * One line describing the GPU in use (device, compute capability, driver version) when {@link #cudaAvailable()},
     * else {@link #cudaUnavailableReason()}.
     */
    public static String cudaDescription() { return Cuda.available() ? Cuda.get().describe() : Cuda.unavailableReason(); }

    /**
     * Where Latent looks for an optional NVIDIA library (as it does for cuBLAS and cuDNN), in order: the system property
     * {@code property} (a file, or a folder holding one of {@code sonames}), the folders of {@code LD_LIBRARY_PATH},
     * the CUDA toolkit ({@code $CUDA_HOME}, {@code $CUDA_PATH}, /usr/local/cuda*), NVIDIA's Python wheels
     * ({@code site-packages/nvidia/*}{@code /lib}), then the bare sonames for the dynamic linker's own search. Each
     * entry is an absolute path of a file that exists, or a bare soname; nothing is loaded. latent-spark finds NCCL
     * this way, so every NVIDIA library is looked for in one order.
     */
    public static java.util.List<String> nvidiaLibraryCandidates(String property, java.util.List<String> sonames) {
        return dev.latent.cuda.CudaVendor.candidates(property, sonames);
    }

    // ---- the native library ----

    /** The path of the native library loaded (liblatent.so; extracted from the classifier jar unless set). */
    public static String nativeLibrary() { return LatentNative.get().path().toString(); }
}
