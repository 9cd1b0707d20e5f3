package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;

import java.lang.foreign.MemorySegment;

/**
 * GPT's loss through the unfused blocks (Block.forward: F.add then F.layerNorm, then ln_f), as Gpt.logits ran before the
 * residual adds were fused into the LayerNorms, and the loss with its gradient in a buffer of its own (F.crossEntropy;
 * Gpt.loss writes it over the logits, F.crossEntropyInPlace): the reference the fused path must match bit for bit
 * (GptFusedResidualTest on the CPU, CudaGptFusedResidualTest on the device).
 */
public final class GptUnfused {
    private GptUnfused() {}

    public static Var loss(Gpt m, MemorySegment ids, MemorySegment targets, int b, int t) {
        if (m.wte.weight.value().device() == dev.latent.tensor.Device.CUDA)
            dev.latent.ops.Kernels.stageTokens(ids, targets, (long) b * t, m.cfg.vocab());
        Var x = F.addRows(m.wte.forward(ids, (long) b * t), F.narrowRows(m.wpe.weight, t));
        for (Gpt.Block blk : m.blocks) x = blk.forward(x, b, t);
        x = m.lnF.forward(x);
        Var logits = m.head == null ? F.matmul(x, F.transpose(m.wte.weight)) : m.head.forward(x);
        return F.crossEntropy(logits, targets);
    }
}
