package dev.latent.tensor;

/**
 * Operand precision of a matrix multiply (and of the convolutions and attention that a training step's graph runs at
 * its {@link dev.latent.autograd.Graph#precision(Precision)}). Master weights, optimizer state, reductions, norms and
 * softmax statistics stay fp32 at every precision.
 * <ul>
 *   <li>{@code FP32}: exact fp32 operands (the default).</li>
 *   <li>{@code TF32} (CUDA only): op(A) and op(B) rounded to TF32 (10-bit mantissa, 11 significant bits, to nearest)
 *       by the tensor-core GEMM (our ltk_gemm_tf32 kernels, cuBLAS with CUBLAS_COMPUTE_32F_FAST_TF32, cuDNN with
 *       tensor-op math), products summed in fp32: per element {@code |C - exact| <= (2u + u^2) sum|alpha a b|} with
 *       u = 2^-11, + the fp32 summation error. Refused on CPU tensors (the CPU has no TF32 arithmetic; bf16 is its
 *       reduced precision).</li>
 *   <li>{@code BF16}: op(A) and op(B) rounded to bf16 (round to nearest even, u = 2^-8), products summed in fp32, C /
 *       alpha / beta fp32; per element {@code |C - exact| <= (2^-7 + 2^-16) sum|alpha a b|} + the fp32 summation
 *       error. On the CPU it needs AVX512_BF16 at ISA avx512 and is refused otherwise (an exception naming
 *       AVX512_BF16), never emulated: {@link dev.latent.Latent#bf16UnavailableReason()} says whether it can run here.
 *       On CUDA the operands are converted to bf16 on the device and multiplied by cuBLAS (cublasGemmEx, CUDA_R_16BF
 *       inputs, fp32 compute and output) where it serves, else by our ltk_gemm_bf16 (docs/cuda.md).</li>
 * </ul>
 * (Was {@code dev.latent.ops.Gemm.Precision}: moved here so the public API can name it without the internal ops package.)
 */
public enum Precision {
    FP32, TF32, BF16;

    /** The name used by {@code --precision} and saved in checkpoints: "fp32", "tf32" or "bf16". */
    public String id() { return name().toLowerCase(java.util.Locale.ROOT); }

    /** From {@link #id()} (fp32 | tf32 | bf16); refuses any other name. */
    public static Precision of(String id) {
        if (id != null) for (Precision p : values()) if (p.id().equals(id)) return p;
        throw new IllegalArgumentException("precision '" + id + "': expected fp32, tf32 or bf16");
    }
}
