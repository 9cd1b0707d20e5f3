package dev.latent.models.gpt;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaDecodeKernels;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.IntConsumer;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * KV-cache decoding of a {@link Gpt} whose parameters live on {@link Device#CUDA}: {@link KvDecoder}'s incremental
 * forward with every tensor, the KV cache included, in device memory. A step feeds the sequence's pending tokens (the
 * whole prompt first, then one token) as rows at the next positions: embedding (the ids go up asynchronously from
 * page-locked staging), per block LayerNorm (each residual add fused into the LayerNorm that reads it,
 * Kernels.layerNormResidual, as the training forward: the bits of the add then the LayerNorm), the q | k | v projection (ops.Gemm: cuBLAS where present, else our GEMM),
 * {@code ltk_kv_append} into the layer's head-major cache (K and V each (heads, context, head size), as the CPU
 * decoder's), {@code ltk_attention_decode} (kernels/attention_decode/attention_decode.cu), the output projection,
 * LayerNorm, the MLP with the config's GELU; then the final LayerNorm and the head on the last row only.
 * <p>
 * Host synchronisations: one per drawn token. Greedy decoding ({@code temperature 0}) takes the argmax on the device
 * ({@code ltk_argmax_rows}: Sampling.pick's rule, the first maximum) and reads its 4 bytes; sampling reads the row of
 * logits (one copy) and draws on the host exactly as {@link KvDecoder} does (Sampling.pick with the Philox uniform of
 * (seed, token index)). Nothing else in a step waits for the device (HostSyncTest bounds it).
 * <p>
 * Numbers: the same model's logits as the CPU decoder's to float rounding, not bit for bit (different summation
 * orders in GEMM, attention and LayerNorm; DeviceKvDecoderTest states the tolerance); greedy tokens equal wherever the
 * top two logits are further apart than that. When the context fills, the cache is rebuilt from the newest half of
 * the window, as the CPU decoder does. One sequence at a time, on the calling thread; the model is only read.
 */
public final class DeviceKvDecoder implements AutoCloseable {
    private static final float LN_EPS = 1e-5f;
    private static final float GELU_TANH_K = (float) Math.sqrt(2 / Math.PI);

    private final Gpt m;
    private final int layers, heads, hs, c, ctx, vocab;
    private final float scale;
    private final boolean tanhGelu;
    private final DeviceBuffer[] kc, vc;
    private final DeviceBuffer tok;       // the greedy argmax (int32)
    private final Tensor headT;           // head weight as (C, vocab): a transposed view
    private volatile boolean closed;

    /** A decoder for {@code model}, whose parameters must be on CUDA; allocates its KV cache (K and V of every layer, the whole context). */
    public DeviceKvDecoder(Gpt model) {
        m = java.util.Objects.requireNonNull(model, "model");
        GptConfig cfg = model.cfg;
        if (model.wte.weight.value().device() != Device.CUDA)
            throw new IllegalArgumentException("DeviceKvDecoder: the model's parameters are on " + model.wte.weight.value().device()
                    + ", not CUDA; move them with model.to(scope, Device.CUDA) (or use KvDecoder on the CPU)");
        layers = cfg.layers(); heads = cfg.heads(); hs = cfg.headSize(); c = cfg.dim(); ctx = cfg.context(); vocab = cfg.vocab();
        if (hs > CudaDecodeKernels.MAX_HS)
            throw new IllegalArgumentException("DeviceKvDecoder: head size " + hs + " > " + CudaDecodeKernels.MAX_HS + ", the decode kernel's limit");
        if (ctx > CudaDecodeKernels.maxContext(hs))
            throw new IllegalArgumentException("DeviceKvDecoder: context " + ctx + " > " + CudaDecodeKernels.maxContext(hs)
                    + ", the longest the decode kernel's shared memory holds at head size " + hs);
        scale = (float) (1.0 / Math.sqrt(hs));
        tanhGelu = cfg.activation() == GptConfig.Activation.GELU_TANH;
        Cuda cu = Cuda.get();
        kc = new DeviceBuffer[layers];
        vc = new DeviceBuffer[layers];
        long bytes = 4L * heads * ctx * hs;
        try {
            for (int l = 0; l < layers; l++) {
                kc[l] = cu.alloc(bytes);
                vc[l] = cu.alloc(bytes);
            }
            tok = cu.alloc(16);
        } catch (RuntimeException | Error e) {
            freeCaches();
            throw e;
        }
        headT = (model.head == null ? model.wte.weight : model.head.weight).value().transpose(0, 1);
    }

    /** Bytes of the KV cache in device memory (K and V of every layer, the whole context). */
    public long cacheBytes() { return 2L * layers * ctx * c * 4; }

    /** Generates {@code s.tokens()} tokens after {@code prompt}. */
    public int[] generate(int[] prompt, KvDecoder.Settings s) { return generate(prompt, s, t -> {}); }

    /** As {@link #generate(int[], KvDecoder.Settings)}, handing each token to {@code onToken} as soon as it is drawn. */
    public int[] generate(int[] prompt, KvDecoder.Settings s, IntConsumer onToken) {
        if (prompt.length == 0) throw new IllegalArgumentException("prompt must hold at least one token");
        for (int id : prompt)
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("prompt token " + id + " outside [0, " + vocab + ")");
        if (closed) throw new IllegalStateException("the decoder is closed");
        int[] out = new int[s.tokens()];
        int[] window = new int[ctx];
        int length = 0;
        int[] feed = Arrays.copyOfRange(prompt, Math.max(0, prompt.length - ctx), prompt.length);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ids = a.allocate(4L * ctx, 64), u = a.allocate(4), one = a.allocate(4);
            for (int produced = 0; produced < out.length; produced++) {
                if (length + feed.length > ctx) {   // full: refeed the newest half, then what is pending, from position 0
                    int keep = Math.min(ctx / 2, length);
                    int[] next = new int[keep + feed.length];
                    System.arraycopy(window, length - keep, next, 0, keep);
                    System.arraycopy(feed, 0, next, keep, feed.length);
                    feed = next;
                    length = 0;
                }
                MemorySegment.copy(feed, 0, ids, JAVA_INT, 0, feed.length);
                int t;
                try (Scope sc = Scope.confined()) {
                    Tensor logits = forward(sc, ids, feed.length, length);
                    if (s.temperature() == 0) {
                        CudaDecodeKernels.argmaxRows(Cuda.get(), 1, vocab, buf(logits), tok);
                        tok.slice(0, 4).copyTo(one);               // the one host synchronisation of this token
                        t = one.get(JAVA_INT, 0);
                    } else {
                        float[] l = logits.toArray();               // the one host synchronisation of this token
                        LatentNative.get().randUniform(u, 1, s.seed(), produced);
                        t = Sampling.pick(l, s.temperature(), s.topK(), s.topP(), u.get(JAVA_FLOAT, 0));
                    }
                }
                System.arraycopy(feed, 0, window, length, feed.length);
                length += feed.length;
                out[produced] = t;
                feed = new int[] {t};
                onToken.accept(t);
            }
        }
        return out;
    }

    /**
     * Low-level, for tests and tools (one host synchronisation: the logits' copy): runs {@code tokens} at positions
     * {@code p0} .. {@code p0 + tokens.length - 1} of this decoder's one cache (positions before p0 must have been run
     * before, by this method or the last {@link #generate}), appending their K and V, and returns the last row's logits.
     */
    public float[] stepLogits(int[] tokens, int p0) {
        if (closed) throw new IllegalStateException("the decoder is closed");
        for (int id : tokens) if (id < 0 || id >= vocab) throw new IllegalArgumentException("token " + id + " outside [0, " + vocab + ")");
        try (Arena a = Arena.ofConfined(); Scope sc = Scope.confined()) {
            return forward(sc, a.allocateFrom(JAVA_INT, tokens), tokens.length, p0).toArray();
        }
    }

    /**
     * Runs {@code rows} tokens (int32 at {@code ids}) at positions p0 .. p0 + rows - 1, appending their K and V; returns
     * the last row's logits (1, vocab) on the device, in {@code sc}.
     */
    private Tensor forward(Scope sc, MemorySegment ids, int rows, int p0) {
        if (rows < 1 || p0 < 0 || p0 + rows > ctx) throw new IllegalArgumentException(rows + " rows at position " + p0 + " exceed context " + ctx);
        Cuda cu = Cuda.get();
        Device d = Device.CUDA;
        Tensor x = Tensor.empty(sc, d, rows, c), h = Tensor.empty(sc, d, rows, c), y = Tensor.empty(sc, d, rows, c);
        Tensor qkv = Tensor.empty(sc, d, rows, 3L * c), f = Tensor.empty(sc, d, rows, 4L * c);
        Tensor f2 = tanhGelu ? Tensor.empty(sc, d, rows, 4L * c) : null;
        Tensor mean = Tensor.empty(sc, d, rows), rstd = Tensor.empty(sc, d, rows);
        Kernels.embedding(ids, m.wte.weight.value(), x);
        // x = wte[id], y = wpe[pos]: every residual add (this one included) is fused into the LayerNorm that reads its
        // sum (Kernels.layerNormResidual: the bits of the add then the LayerNorm), which leaves that sum in x
        Tensor a = m.wpe.weight.value().slice(0, p0, p0 + rows);
        for (int l = 0; l < layers; l++) {
            Gpt.Block b = m.blocks.get(l);
            addNorm(x, a, b.ln1, h, mean, rstd);                                            // x += a; h = ln_1(x)
            linear(h, b.attn.attn, qkv);                                                   // (R, 3C): q | k | v
            CudaDecodeKernels.kvAppend(cu, rows, heads, hs, ctx, p0, buf(qkv), 3L * c, kc[l], vc[l]);
            CudaDecodeKernels.attention(cu, rows, heads, hs, ctx, p0, scale, buf(qkv), 3L * c, kc[l], vc[l], buf(h), c);
            linear(h, b.attn.proj, y);
            addNorm(x, y, b.ln2, h, mean, rstd);                                            // x += y; h = ln_2(x)
            linear(h, b.mlp.fc, f);
            Tensor act = gelu(f, f2);
            linear(act, b.mlp.proj, y);                                                    // the next LayerNorm adds y
            a = y;
        }
        // the last residual add on the last row only, fused into ln_f
        Tensor last = x.slice(0, rows - 1, rows), hl = h.slice(0, 0, 1);
        addNorm(last, a.slice(0, rows - 1, rows), m.lnF, hl, mean.slice(0, 0, 1), rstd.slice(0, 0, 1));
        Tensor logits = Tensor.empty(sc, d, 1, vocab);
        Gemm.matmul(hl, headT, logits, 1f, 0f);
        if (m.head != null && m.head.bias != null) Kernels.addRows(logits, m.head.bias.value(), logits);
        return logits;
    }

    /**
     * Tests only: each residual add as Kernels.axpby and then Kernels.layerNorm, the path before the fused op, which must
     * give the same bits (DeviceKvDecoderTest.fusedResidualLayerNormKeepsEveryBit).
     */
    boolean unfused;

    /** x += a, then h = LayerNorm(x) with ln's gain and bias: fused (Kernels.layerNormResidual) unless {@link #unfused}; the same bits either way. */
    private void addNorm(Tensor x, Tensor a, dev.latent.nn.LayerNorm ln, Tensor h, Tensor mean, Tensor rstd) {
        if (unfused) {
            Kernels.axpby(1f, a, 1f, x);
            Kernels.layerNorm(x, ln.weight.value(), ln.bias.value(), LN_EPS, h, mean, rstd);
        } else {
            Kernels.layerNormResidual(x, a, ln.weight.value(), ln.bias.value(), LN_EPS, x, h, mean, rstd);
        }
    }

    /** y (rows, out) = x W^T + b. */
    private static void linear(Tensor x, dev.latent.nn.Linear lin, Tensor y) {
        Gemm.matmul(x, lin.weight.value().transpose(0, 1), y, 1f, 0f);
        if (lin.bias != null) Kernels.addRows(y, lin.bias.value(), y);
    }

    /** The MLP's activation of f: exact GELU in place, or GPT-2's tanh form into t (as KvDecoder composes it). */
    private Tensor gelu(Tensor f, Tensor t) {
        if (!tanhGelu) {
            Kernels.gelu(f, f);
            return f;
        }
        Kernels.mul(f, f, t);                          // x^2
        Kernels.mul(t, f, t);                          // x^3
        Kernels.axpby(1f, f, 0.044715f, t);            // x + 0.044715 x^3
        Kernels.axpby(0f, f, GELU_TANH_K, t);          // * k
        Kernels.activation(LatentNative.ACT_TANH, 0f, t, t);
        Kernels.mul(f, t, t);                          // x tanh
        Kernels.axpby(0.5f, f, 0.5f, t);               // 0.5 x + 0.5 x tanh
        return t;
    }

    private static DeviceBuffer buf(Tensor t) { return DeviceBuffer.of(t.deviceBuffer()); }

    private void freeCaches() {
        for (DeviceBuffer[] bs : new DeviceBuffer[][] {kc, vc})
            if (bs != null) for (DeviceBuffer b : bs) if (b != null) b.close();
    }

    /** Frees the KV cache. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        freeCaches();
        if (tok != null) tok.close();
    }
}
