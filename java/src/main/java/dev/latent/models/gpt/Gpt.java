package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.nn.Embedding;
import dev.latent.nn.LayerNorm;
import dev.latent.nn.Linear;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * GPT (nanoGPT's shape): token + learned position embeddings, pre-LN blocks of causal self-attention and
 * a 4x GELU MLP, final LayerNorm, linear head. Init as nanoGPT: N(0, 0.02), residual projections
 * N(0, 0.02/sqrt(2L)), biases 0, LayerNorm (1, 0). Each parameter draws from its own Philox stream.
 */
public final class Gpt implements Module {
    public final GptConfig cfg;
    final Embedding wte, wpe;
    final List<Block> blocks = new ArrayList<>();
    final LayerNorm lnF;
    final Linear head;   // null when tied

    public Gpt(Scope scope, GptConfig cfg, long seed) {
        this.cfg = cfg;
        long[] stream = {0};
        double std = 0.02, projStd = 0.02 / Math.sqrt(2.0 * cfg.layers());
        wte = new Embedding(scope, cfg.vocab(), cfg.dim(), seed, stream[0]++, std);
        wpe = new Embedding(scope, cfg.context(), cfg.dim(), seed, stream[0]++, std);
        for (int l = 0; l < cfg.layers(); l++) blocks.add(new Block(scope, cfg, seed, stream, std, projStd));
        lnF = new LayerNorm(scope, cfg.dim(), true);   // feeds the head: its bf16 copy too at BF16 on CUDA
        head = cfg.tied() ? null : new Linear(scope, cfg.dim(), cfg.vocab(), true, seed, stream[0]++, std);
    }

    /** Multi-head causal self-attention: one (C, 3C) projection, fused attention, output projection. */
    static final class CausalSelfAttention implements Module {
        final Linear attn, proj;
        final int heads;

        CausalSelfAttention(Scope scope, GptConfig c, long seed, long[] stream, double std, double projStd) {
            heads = c.heads();
            attn = new Linear(scope, c.dim(), 3L * c.dim(), true, seed, stream[0]++, std);
            proj = new Linear(scope, c.dim(), c.dim(), true, seed, stream[0]++, projStd);
        }

        Var forward(Var x, int b, int t) {                                         // x: (B*T, C)
            long c = x.size(1), hs = c / heads;
            Var qkv = attn.forward(x);                                             // (B*T, 3C)
            Var packed = F.permute(qkv, new long[] {b, t, 3, heads, hs}, 2, 0, 3, 1, 4); // (3, B, NH, T, HS)
            Var o = F.attention(packed, true);                                     // (B, NH, T, HS)
            /* the permuted o is c_proj's A: at BF16 on CUDA the permute writes its bf16 copy too (reshape keeps it) */
            return proj.forward(F.reshape(F.permute(o, true, new long[] {b, heads, t, hs}, 0, 2, 1, 3), (long) b * t, c));
        }

        @Override
        public void collect(String p, Map<String, Var> out) {
            attn.collect(p + "c_attn.", out);
            proj.collect(p + "c_proj.", out);
        }
    }

    /** The 4x MLP with the config's GELU (exact, or tanh-approximated as GPT-2's). */
    static final class Mlp implements Module {
        final Linear fc, proj;
        final GptConfig.Activation act;

        Mlp(Scope scope, GptConfig c, long seed, long[] stream, double std, double projStd) {
            act = c.activation();
            fc = new Linear(scope, c.dim(), 4L * c.dim(), true, seed, stream[0]++, std);
            proj = new Linear(scope, 4L * c.dim(), c.dim(), true, seed, stream[0]++, projStd);
        }

        Var forward(Var x) {
            Var h = fc.forward(x);
            return proj.forward(act == GptConfig.Activation.GELU_TANH ? geluTanh(h) : F.gelu(h, true));   // gelu: c_proj's bf16 A too
        }

        @Override
        public void collect(String p, Map<String, Var> out) {
            fc.collect(p + "c_fc.", out);
            proj.collect(p + "c_proj.", out);
        }
    }

    /** Pre-LN transformer block: x + attn(ln1(x)), then + mlp(ln2(x)). */
    static final class Block implements Module {
        final LayerNorm ln1, ln2;
        final CausalSelfAttention attn;
        final Mlp mlp;

        Block(Scope scope, GptConfig c, long seed, long[] stream, double std, double projStd) {
            ln1 = new LayerNorm(scope, c.dim(), true);   // both feed a linear (c_attn, c_fc): bf16 copy too at BF16 on CUDA
            attn = new CausalSelfAttention(scope, c, seed, stream, std, projStd);
            ln2 = new LayerNorm(scope, c.dim(), true);
            mlp = new Mlp(scope, c, seed, stream, std, projStd);
        }

        Var forward(Var x, int b, int t) {
            x = F.add(x, attn.forward(ln1.forward(x), b, t));
            return F.add(x, mlp.forward(ln2.forward(x)));
        }

        /**
         * The same block with each residual add fused into the LayerNorm that reads its result: given the stream x and
         * h = ln1(x), returns {x', next(x')} for x' = forward(x) and the LayerNorm that follows the block (the next
         * block's ln1, or ln_f). The bits of {@link #forward} then next.forward (F.layerNormResidual).
         */
        Var[] forwardFused(Var x, Var h, LayerNorm next, int b, int t) {
            Var[] r = ln2.forwardResidual(x, attn.forward(h, b, t));
            return next.forwardResidual(r[0], mlp.forward(r[1]));
        }

        @Override
        public void collect(String p, Map<String, Var> out) {
            ln1.collect(p + "ln_1.", out);
            attn.collect(p + "attn.", out);
            ln2.collect(p + "ln_2.", out);
            mlp.collect(p + "mlp.", out);
        }
    }

    private static final float GELU_TANH_K = (float) Math.sqrt(2 / Math.PI);

    /**
     * GPT-2's gelu_new, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), composed from differentiable ops
     * (mul, scale, add, tanh): no native kernel of its own yet, so it costs several passes over the MLP's
     * hidden activations, and its backward is first order only (tanh's). Works on every device those ops do.
     */
    static Var geluTanh(Var x) {
        Var cube = F.mul(F.mul(x, x), x);
        Var inner = F.scale(F.add(x, F.scale(cube, 0.044715f)), GELU_TANH_K);
        return F.mul(F.scale(x, 0.5f), F.addScalar(F.tanh(inner), 1f));
    }

    /**
     * Loads a Hugging Face GPT-2 folder ({@code model.safetensors}, {@code config.json}): see
     * {@link GptHuggingFace#load} for the tokenizer too and for what is refused.
     */
    public static Gpt fromHuggingFace(java.nio.file.Path dir, Scope scope) throws java.io.IOException {
        return GptHuggingFace.load(dir, scope).model();
    }

    /** Logits (B*T, vocab) for int32 ids (B*T). */
    public Var logits(MemorySegment ids, int b, int t) {
        if (t > cfg.context()) throw new IllegalArgumentException("sequence length " + t + " > context " + cfg.context());
        Var x = F.addRows(wte.forward(ids, (long) b * t), F.narrowRows(wpe.weight, t));
        // pre-LN blocks with every residual add fused into the LayerNorm after it (ln_2, the next ln_1, ln_f):
        // the bits of x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) per block, then ln_f(x)
        if (blocks.isEmpty()) x = lnF.forward(x);
        else {
            Var h = blocks.get(0).ln1.forward(x);
            for (int i = 0; i < blocks.size(); i++) {
                Var[] r = blocks.get(i).forwardFused(x, h, i + 1 < blocks.size() ? blocks.get(i + 1).ln1 : lnF, b, t);
                x = r[0];
                h = r[1];
            }
            x = h;
        }
        return head == null ? F.matmul(x, F.transpose(wte.weight)) : head.forward(x);
    }

    /**
     * Mean cross-entropy of next-token prediction. The classifier is fused with the loss as llm.c's: the logits (B*T,
     * vocab) are read by nothing after the loss (the head's backward reads its input and weight), so the loss kernel
     * writes their gradient over them ({@link F#crossEntropyInPlace}): one logits-sized buffer per step instead of two,
     * the bits of {@link F#crossEntropy} (GptFusedClassifierTest).
     */
    public Var loss(MemorySegment ids, MemorySegment targets, int b, int t) {
        // on CUDA the batch's ids, targets and the embedding backward's id grouping go up in one copy (one host sync)
        if (wte.weight.value().device() == dev.latent.tensor.Device.CUDA) dev.latent.ops.Kernels.stageTokens(ids, targets, (long) b * t, cfg.vocab());
        return F.crossEntropyInPlace(logits(ids, b, t), targets);
    }

    @Override
    public void collect(String p, Map<String, Var> out) {
        wte.collect(p + "wte.", out);
        wpe.collect(p + "wpe.", out);
        for (int i = 0; i < blocks.size(); i++) blocks.get(i).collect(p + "h." + i + ".", out);
        lnF.collect(p + "ln_f.", out);
        if (head != null) head.collect(p + "lm_head.", out);
    }

    public long parameterCount() {
        long n = 0;
        for (Var v : parameters()) n += v.value().numel();
        return n;
    }
}
