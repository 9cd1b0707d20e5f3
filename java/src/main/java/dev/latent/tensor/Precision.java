package dev.latent.tensor;

/**
 * Operand precision of a matrix multiply. {@code FP32}: exact fp32 operands. {@code BF16}: op(A) and op(B) rounded to
 * bf16 (round to nearest even) as they are read, products summed in fp32, C / alpha / beta fp32; per element
 * {@code |C - exact| <= (2^-7 + 2^-16) sum|alpha a b|} + the fp32 summation error. On the CPU BF16 needs AVX512_BF16 at
 * ISA avx512 and is refused otherwise (an exception naming AVX512_BF16), never emulated:
 * {@link dev.latent.Latent#bf16UnavailableReason()} says whether it can run here. The autograd matmuls use it when
 * their {@link dev.latent.autograd.Graph#precision(Precision)} is BF16. (Was {@code dev.latent.ops.Gemm.Precision}:
 * moved here so the public API can name it without the internal ops package.)
 */
public enum Precision {
    FP32, BF16;

    /** The name used by {@code --precision} and saved in checkpoints: "fp32" or "bf16". */
    public String id() { return name().toLowerCase(java.util.Locale.ROOT); }

    /** From {@link #id()} (fp32 | bf16); refuses any other name. */
    public static Precision of(String id) {
        if (id != null) for (Precision p : values()) if (p.id().equals(id)) return p;
        throw new IllegalArgumentException("precision '" + id + "': expected fp32 or bf16");
    }
}
