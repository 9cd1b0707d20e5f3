package dev.latent.ops;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaKernels;
import dev.latent.cuda.CudaVendor;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.tensor.Device;
import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

/**
 * bf16 GEMM inputs written by the ops that produce them (h-bf16act, issue 18). At {@code Precision.BF16} on CUDA a GEMM
 * converts its fp32 operands to bf16 (ltk_f32_to_bf16: one launch, 6 bytes of traffic per element). Where an op's output
 * y is the A operand of a linear or matmul that follows (GPT: ln_1 -> c_attn, ln_2 -> c_fc, ln_f -> the head, GELU ->
 * the MLP's c_proj, the attention output's permute -> the attention's c_proj), the op's kernel writes bf16(y) as well
 * (ltk_layernorm_fwd_bf16, ltk_layernorm_residual_fwd_bf16, ltk_gelu_fwd_bf16, ltk_copy_strided_bf16: 2 more bytes per
 * element, no launch) into a {@link KeptOperands} block of the graph's scope keyed
 * by y's device address and element count; the GEMM reads it instead of converting y (forward, where it converts) and
 * its backward reads it for dW = dy^T y ({@link Gemm#matmul(Tensor, Tensor, Tensor, Precision, KeptOperands, boolean,
 * boolean, KeptOperands)}, {@link Gemm#matmulBackward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Precision,
 * KeptOperands, KeptOperands)}). The fp32 y stays (autograd's backward and everything else read it). The same bits:
 * the copy is the same round to nearest even (__float2bfloat16_rn) of the same fp32 values the conversion would read.
 * Elsewhere (CPU, FP32 / TF32, {@link CudaVendor#bf16GemmInputs()} off) nothing is written and {@link #forOutput}
 * answers null.
 */
public final class GemmInputs {
    private GemmInputs() {}

    /**
     * A holder for the bf16 copy of {@code y} (2 bytes per element, allocated in {@code scope}) that y's producer writes
     * for a GEMM at {@code precision} reading y as A: only where that pays and is the same bits (y a non-empty contiguous
     * CUDA tensor, BF16, the switch on), else null. The caller hands it to the producing kernel ({@link Kernels}'
     * overloads taking one), then to the consumer; whoever reads it last {@link KeptOperands#release()}s it (else the
     * scope's close frees it).
     */
    public static KeptOperands forOutput(Scope scope, Tensor y, Precision precision) {
        if (precision != Precision.BF16 || y.device() != Device.CUDA || !CudaVendor.bf16GemmInputs() || !y.isContiguous() || y.numel() == 0)
            return null;
        KeptOperands h = new KeptOperands(scope);
        h.hold(Math.multiplyExact(y.numel(), 2L), key(y));
        return h;
    }

    /** Whether {@code in} holds the bf16 copy of exactly {@code t} (its device address and element count). */
    public static boolean holdsCopyOf(KeptOperands in, Tensor t) {
        return in != null && t.device() == Device.CUDA && in.block(key(t)) != null;
    }

    /** The bf16 copy of a GEMM operand's first {@code elems} elements at device address {@code address} held by in, or null. */
    static DeviceBuffer copy(KeptOperands in, long address, long elems) {
        DeviceMemory m = in == null ? null : in.block(address, elems);
        return m == null ? null : DeviceBuffer.of(m).slice(0, elems * 2);
    }

    private static long[] key(Tensor t) { return new long[] {DeviceBuffer.of(t.deviceBuffer()).address(), t.numel()}; }

    /** y's copy in y16 for the kernel to write, or null when y16 is null; IllegalArgumentException when y16 holds no copy of y. */
    private static DeviceBuffer out(KeptOperands y16, Tensor y) {
        if (y16 == null) return null;
        DeviceMemory m = y16.block(key(y));
        if (m == null) throw new IllegalArgumentException("bf16 output: " + y16 + " holds no copy of " + y + " (GemmInputs.forOutput makes one)");
        return DeviceBuffer.of(m);
    }

    private static DeviceBuffer buf(Tensor t) { return DeviceBuffer.of(t.deviceBuffer()); }

    /** {@link Kernels#layerNorm}'s CUDA launch writing y16 too; false (nothing done) when y16 is null. Checked by Kernels. */
    static boolean layerNorm(KeptOperands y16, long n, long c, float eps, Tensor x, Tensor w, Tensor b, Tensor y, Tensor mean, Tensor rstd) {
        DeviceBuffer o = out(y16, y);
        if (o == null) return false;
        CudaKernels.layerNormBf16(Cuda.get(), n, c, eps, buf(x), buf(w), buf(b), buf(y), buf(mean), buf(rstd), o);
        return true;
    }

    /** {@link Kernels#layerNormResidual}'s CUDA launch writing y16 too; false (nothing done) when y16 is null. */
    static boolean layerNormResidual(KeptOperands y16, long n, long c, float eps, Tensor x, Tensor a, Tensor w, Tensor b, Tensor s,
                                     Tensor y, Tensor mean, Tensor rstd) {
        DeviceBuffer o = out(y16, y);
        if (o == null) return false;
        CudaKernels.layerNormResidualBf16(Cuda.get(), n, c, eps, buf(x), buf(a), buf(w), buf(b), buf(s), buf(y), buf(mean), buf(rstd), o);
        return true;
    }

    /**
     * dst = a copy of src (same shape; GPT's permute of the attention output), plus bf16(dst) into y16 (a CUDA strided
     * copy, ltk_copy_strided_bf16); false (nothing done) when y16 is null: the caller then runs {@link Kernels#copy}.
     */
    public static boolean copy(KeptOperands y16, Tensor src, Tensor dst) {
        DeviceBuffer o = out(y16, dst);
        if (o == null) return false;
        if (src.device() != Device.CUDA || !java.util.Arrays.equals(src.shape(), dst.shape()))
            throw new IllegalArgumentException("bf16 copy: " + src + " -> " + dst + ": shapes or devices differ");
        CudaKernels.copyStrided(Cuda.get(), Kernels.copyDesc(src, dst), buf(src), buf(dst), o);
        return true;
    }

    /** {@link Kernels#gelu}'s CUDA launch writing y16 too; false (nothing done) when y16 is null. */
    static boolean gelu(KeptOperands y16, Tensor x, Tensor y) {
        DeviceBuffer o = out(y16, y);
        if (o == null) return false;
        CudaKernels.geluBf16(Cuda.get(), x.numel(), buf(x), buf(y), o);
        return true;
    }
}
