package dev.latent.ops;

import dev.latent.nativ.LatentBinding.AttentionDesc;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Tensor-level attention (FlashAttention-2 forward and backward, the lt_attention_fwd / _bwd contracts of latent.h):
 * fp32 through the tensors' {@link Backend}, and the reduced-precision overloads ({@link Precision#BF16} on the CPU's
 * lt_attention_*_bf16, TF32 / BF16 on CUDA through {@link CudaBackend}, optionally keeping the converted operands for
 * the backward in a {@link KeptOperands}). Validation as in {@link Kernels}: devices agree, tensors contiguous, q, k, v,
 * o (and dout, dq, dk, dv) all (B, NH, T, HS), lse (B, NH, T). Split from {@link Kernels}, whose other ops it shares
 * the checks with.
 */
public final class AttentionKernels {
    private AttentionKernels() {}

    private static final ThreadLocal<MemorySegment> ATT = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.ATTENTION_DESC));

    private static MemorySegment attDesc(String op, Tensor q, boolean causal, float scale, Tensor... same) {
        if (q.rank() != 4) throw new IllegalArgumentException(op + ": q must be (B, NH, T, HS), got " + q);
        for (Tensor t : same)
            if (t != null && !Arrays.equals(t.shape(), q.shape()))
                throw new IllegalArgumentException(op + ": shapes must all be " + Arrays.toString(q.shape()) + ", got " + t);
        MemorySegment d = ATT.get();
        AttentionDesc.setB(d, q.size(0));
        AttentionDesc.setNh(d, q.size(1));
        AttentionDesc.setT(d, q.size(2));
        AttentionDesc.setHs(d, q.size(3));
        AttentionDesc.setCausal(d, causal ? 1 : 0);
        AttentionDesc.setScale(d, scale);
        return d;
    }

    /** q, k, v, o (B, NH, T, HS); lse (B, NH, T). */
    public static void attention(Tensor q, Tensor k, Tensor v, boolean causal, float scale, Tensor o, Tensor lse) {
        Backend be = Backend.on("attention", q, k, v, o, lse);
        MemorySegment d = attDesc("attention", q, causal, scale, k, v, o);
        Kernels.numel("attention", q.numel() / q.size(3), lse);
        be.attention(d, q, k, v, o, lse);
    }

    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, boolean causal,
                                         float scale, Tensor dq, Tensor dk, Tensor dv) {
        Backend be = Backend.on("attentionBackward", q, k, v, o, lse, dout, dq, dk, dv);
        MemorySegment d = attDesc("attentionBackward", q, causal, scale, k, v, o, dout, dq, dk, dv);
        Kernels.numel("attentionBackward", q.numel() / q.size(3), lse);
        be.attentionBackward(d, q, k, v, o, lse, dout, dq, dk, dv);
    }

    /**
     * {@link #attention} at a chosen operand {@link Precision}: BF16 rounds the operands of Q K^T and P V to bf16 (RNE)
     * and sums in fp32 (lt_attention_fwd_bf16; softmax and lse stay fp32). BF16 is CPU-only and needs AVX512_BF16 at
     * ISA avx512; otherwise it is refused with {@link Gemm#bf16Unavailable()}'s reason, never emulated.
     */
    public static void attention(Tensor q, Tensor k, Tensor v, boolean causal, float scale, Tensor o, Tensor lse, Precision precision) {
        if (precision == null || precision == Precision.FP32) { attention(q, k, v, causal, scale, o, lse); return; }
        Backend be = Backend.on("attention", q, k, v, o, lse);
        if (be.device() == Device.CUDA) {   /* TF32 / BF16 on CUDA: CudaBackend's reduced-precision attention */
            MemorySegment d = attDesc("attention", q, causal, scale, k, v, o);
            Kernels.numel("attention", q.numel() / q.size(3), lse);
            CudaBackend.INSTANCE.attention(d, q, k, v, o, lse, precision);
            return;
        }
        bf16Cpu("attention", q, precision);
        MemorySegment d = attDesc("attention", q, causal, scale, k, v, o);
        Kernels.numel("attention", q.numel() / q.size(3), lse);
        LatentNative.get().attentionFwdBf16(d, q.segment(), k.segment(), v.segment(), o.segment(), lse.segment());
    }

    /** {@link #attentionBackward} at a chosen operand {@link Precision} (BF16: lt_attention_bwd_bf16, as {@link #attention}). */
    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, boolean causal,
                                         float scale, Tensor dq, Tensor dk, Tensor dv, Precision precision) {
        if (precision == null || precision == Precision.FP32) { attentionBackward(q, k, v, o, lse, dout, causal, scale, dq, dk, dv); return; }
        Backend be = Backend.on("attentionBackward", q, k, v, o, lse, dout, dq, dk, dv);
        if (be.device() == Device.CUDA) {
            MemorySegment d = attDesc("attentionBackward", q, causal, scale, k, v, o, dout, dq, dk, dv);
            Kernels.numel("attentionBackward", q.numel() / q.size(3), lse);
            CudaBackend.INSTANCE.attentionBackward(d, q, k, v, o, lse, dout, dq, dk, dv, precision);
            return;
        }
        bf16Cpu("attentionBackward", q, precision);
        MemorySegment d = attDesc("attentionBackward", q, causal, scale, k, v, o, dout, dq, dk, dv);
        Kernels.numel("attentionBackward", q.numel() / q.size(3), lse);
        LatentNative.get().attentionBwdBf16(d, q.segment(), k.segment(), v.segment(), o.segment(), lse.segment(), dout.segment(),
                dq.segment(), dk.segment(), dv.segment());
    }

    /**
     * {@link #attention(Tensor, Tensor, Tensor, boolean, float, Tensor, Tensor, Precision)} that may leave in {@code keep}
     * what its backward can reuse (h-sdpaconv): on CUDA at BF16 under cuDNN's SDPA, the bf16 q, k, v and o; elsewhere
     * nothing. Pass the same holder to {@link #attentionBackward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, boolean,
     * float, Tensor, Tensor, Tensor, Precision, KeptOperands)} with the same q, k, v, o and lse, unchanged since, then
     * {@link KeptOperands#release()} it. Results are bit-identical to the call without a holder.
     */
    public static void attention(Tensor q, Tensor k, Tensor v, boolean causal, float scale, Tensor o, Tensor lse, Precision precision,
                                 KeptOperands keep) {
        if (keep == null || precision == null || precision == Precision.FP32 || q.device() != Device.CUDA) {
            attention(q, k, v, causal, scale, o, lse, precision);
            return;
        }
        Backend.on("attention", q, k, v, o, lse);
        MemorySegment d = attDesc("attention", q, causal, scale, k, v, o);
        Kernels.numel("attention", q.numel() / q.size(3), lse);
        CudaBackend.INSTANCE.attention(d, q, k, v, o, lse, precision, keep);
    }

    /** {@link #attentionBackward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, boolean, float, Tensor, Tensor, Tensor, Precision)} reading what the forward left in {@code kept} (null or empty: converts as without it). */
    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, boolean causal,
                                         float scale, Tensor dq, Tensor dk, Tensor dv, Precision precision, KeptOperands kept) {
        if (kept == null || !kept.holds() || precision == null || precision == Precision.FP32 || q.device() != Device.CUDA) {
            attentionBackward(q, k, v, o, lse, dout, causal, scale, dq, dk, dv, precision);
            return;
        }
        Backend.on("attentionBackward", q, k, v, o, lse, dout, dq, dk, dv);
        MemorySegment d = attDesc("attentionBackward", q, causal, scale, k, v, o, dout, dq, dk, dv);
        Kernels.numel("attentionBackward", q.numel() / q.size(3), lse);
        CudaBackend.INSTANCE.attentionBackward(d, q, k, v, o, lse, dout, dq, dk, dv, precision, kept);
    }

    private static void bf16Cpu(String op, Tensor t, Precision precision) {
        if (precision == Precision.TF32 && t.device() == Device.CPU)
            throw new IllegalArgumentException(op + ": tf32 precision is CUDA-only (TF32 tensor-core math); CPU tensors run fp32 or bf16");
        if (t.device() != Device.CPU)
            throw new IllegalArgumentException(op + ": " + t.device() + " tensors have no reduced-precision attention");
        String why = Gemm.bf16Unavailable();
        if (why != null) throw new IllegalStateException(op + ": " + why);
    }
}
