package dev.latent.models.gpt;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaDecodeKernels;
import dev.latent.cuda.CudaKernels;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.cuda.Staging;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * KV-cache decoding of a {@link Gpt} whose parameters live on {@link Device#CUDA}: {@link KvDecoder}'s batched
 * incremental forward with every tensor, the KV caches included, in device memory, and the same API shape
 * ({@link Cache}, {@link Sequence}, {@link #forward}, {@link #step}), so {@code dev.latent.serve.GptGenerator} steps its
 * lanes through either ({@link BatchDecoder}). A step runs the pending tokens of all its sequences (a prompt whole at
 * its first step, then one token) as ONE batch of rows: embedding and position embedding (gathers by the rows' ids and
 * positions, uploaded asynchronously from page-locked staging with the rows' cache slots), per block LayerNorm (each
 * residual add fused into the LayerNorm that reads it, Kernels.layerNormResidual, as the training forward: the bits of
 * the add then the LayerNorm), the q | k | v projection over all rows (ops.Gemm: cuBLAS where present, else our GEMM),
 * {@code ltk_kv_append_rows} into each row's own cache at its own position, {@code ltk_attention_decode_rows} (each
 * row against its own cache, kernels/attention_decode/attention_decode.cu), the output projection, LayerNorm, the MLP
 * with the config's GELU; then the last residual add, the final LayerNorm and the head on the last row of each
 * sequence only (gathered). The single-sequence use ({@link #generate}) is this with a batch of one.
 * <p>
 * Caches: a pool of {@code slots} sequence caches allocated with the decoder (K and V of every layer, each
 * (slots, heads, context, head size): {@link #cacheBytes()} a slot), so at most {@code slots} {@link Cache}s or
 * {@link Sequence}s are open at once (one more: IllegalStateException); closing one gives its slot back.
 * <p>
 * Host synchronisations: ONE per step, for the whole batch. All greedy ({@code temperature 0}): the argmax of every
 * sequence's logits on the device ({@code ltk_argmax_rows}: Sampling.pick's rule, the first maximum) and one read of
 * those 4-byte ids; otherwise one copy of the sequences' last-row logits, drawn on the host exactly as
 * {@link KvDecoder} draws (Sampling.pick with the Philox uniform of (seed, token index)). A step with many prompt rows
 * runs in passes of at most {@link #MAX_ROWS} rows (bounding the scratch), all queued before that one read.
 * HostSyncTest counts them.
 * <p>
 * Numbers: against the CPU decoder, the same logits to float rounding, not bit for bit (different summation orders in
 * GEMM, attention and LayerNorm; DeviceKvDecoderTest states the tolerance); greedy tokens equal wherever the top two
 * logits are further apart than that. Batch composition: every kernel here but the GEMM computes a row from that row
 * alone with the same code (decode attention runs the single-sequence kernel's code on the row's slot), and our GEMM and
 * the emulated driver's sum an element in one order whatever the row count, so there a sequence gives the same bits
 * alone or in any batch (DeviceBatchDecodeTest); cuBLAS picks its algorithm by shape, so on a GPU with cuBLAS a row's
 * logits may differ with the batch's row count in the last bits (as the same prompt fed whole or token by token may).
 * When the context fills, a sequence's cache is rebuilt from the newest half of its window, as the CPU decoder does.
 * The model is only read; a decoder and its sequences belong to one thread at a time (the service runs one lane).
 */
public final class DeviceKvDecoder implements BatchDecoder<DeviceKvDecoder.Sequence> {
    private static final float LN_EPS = 1e-5f;
    private static final float GELU_TANH_K = (float) Math.sqrt(2 / Math.PI);
    /** Rows per pass of a step (a sequence's chunk is never split): bounds the scratch, ~(10 C + vocab) floats a row. */
    static final int MAX_ROWS = 512;

    private final Gpt m;
    private final int layers, heads, hs, c, ctx, vocab, slots;
    private final float scale;
    private final boolean tanhGelu;
    private final DeviceBuffer[] kc, vc;  // per layer, the pool: (slots, heads, ctx, hs) each
    private final DeviceBuffer tok;       // the greedy argmax of each sequence of a step (int32)
    private final boolean[] taken;        // slots held by open caches
    private final Tensor headT;           // head weight as (C, vocab): a transposed view
    private volatile boolean closed;

    /** A decoder for {@code model}, whose parameters must be on CUDA, with one cache slot (one sequence at a time). */
    public DeviceKvDecoder(Gpt model) { this(model, 1); }

    /**
     * A decoder for {@code model}, whose parameters must be on CUDA, with a pool of {@code slots} caches (the sequences
     * that may be open at once; {@link #cacheBytes()} each), allocated now.
     */
    public DeviceKvDecoder(Gpt model, int slots) {
        m = java.util.Objects.requireNonNull(model, "model");
        GptConfig cfg = model.cfg;
        if (model.wte.weight.value().device() != Device.CUDA)
            throw new IllegalArgumentException("DeviceKvDecoder: the model's parameters are on " + model.wte.weight.value().device()
                    + ", not CUDA; move them with model.to(scope, Device.CUDA) (or use KvDecoder on the CPU)");
        if (slots < 1) throw new IllegalArgumentException("DeviceKvDecoder: slots must be >= 1, got " + slots);
        layers = cfg.layers(); heads = cfg.heads(); hs = cfg.headSize(); c = cfg.dim(); ctx = cfg.context(); vocab = cfg.vocab();
        this.slots = slots;
        if (hs > CudaDecodeKernels.MAX_HS)
            throw new IllegalArgumentException("DeviceKvDecoder: head size " + hs + " > " + CudaDecodeKernels.MAX_HS + ", the decode kernel's limit");
        if (ctx > CudaDecodeKernels.maxContext(hs))
            throw new IllegalArgumentException("DeviceKvDecoder: context " + ctx + " > " + CudaDecodeKernels.maxContext(hs)
                    + ", the longest the decode kernel's shared memory holds at head size " + hs);
        scale = (float) (1.0 / Math.sqrt(hs));
        tanhGelu = cfg.activation() == GptConfig.Activation.GELU_TANH;
        taken = new boolean[slots];
        Cuda cu = Cuda.get();
        kc = new DeviceBuffer[layers];
        vc = new DeviceBuffer[layers];
        long bytes = Math.multiplyExact(4L * heads * ctx * hs, (long) slots);
        try {
            for (int l = 0; l < layers; l++) {
                kc[l] = cu.alloc(bytes);
                vc[l] = cu.alloc(bytes);
            }
            tok = cu.alloc(4L * slots);
        } catch (RuntimeException | Error e) {
            freeCaches();
            throw e;
        }
        headT = (model.head == null ? model.wte.weight : model.head.weight).value().transpose(0, 1);
    }

    @Override
    public GptConfig config() { return m.cfg; }

    /** The caches that may be open at once. */
    public int slots() { return slots; }

    /** Bytes of one sequence's KV cache in device memory (K and V of every layer, the whole context): a slot of the pool. */
    @Override
    public long cacheBytes() { return 2L * layers * ctx * c * 4; }

    @Override
    public void checkPrompt(int[] prompt) {
        if (prompt.length == 0) throw new IllegalArgumentException("prompt must hold at least one token");
        for (int id : prompt)
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("prompt token " + id + " outside [0, " + vocab + ")");
    }

    private synchronized int takeSlot() {
        if (closed) throw new IllegalStateException("the decoder is closed");
        for (int i = 0; i < slots; i++)
            if (!taken[i]) {
                taken[i] = true;
                return i;
            }
        throw new IllegalStateException("all " + slots + " KV cache slots of this DeviceKvDecoder are in use (close a sequence, or build it with more slots)");
    }

    private synchronized void giveSlot(int i) { taken[i] = false; }

    /**
     * One sequence's KV cache: a slot of the decoder's device pool, and the tokens at its positions. Low-level:
     * {@link #forward} appends to it; {@link Sequence} adds sampling. Closing it gives the slot back.
     */
    public final class Cache implements AutoCloseable {
        final int slot;
        final int[] window = new int[ctx];
        int length;
        private boolean open = true;

        public Cache() { slot = takeSlot(); }

        /** Positions filled. */
        public int length() { return length; }

        /** Forgets every position (the slot is kept). */
        public void reset() { length = 0; }

        DeviceKvDecoder decoder() { return DeviceKvDecoder.this; }

        @Override
        public void close() {
            if (!open) return;
            open = false;
            giveSlot(slot);
        }
    }

    /** A sequence in progress: its {@link Cache} (a slot of the pool) and, from {@link DecodeSequence}, its tokens and draws. */
    public final class Sequence extends DecodeSequence {
        private final Cache cache;

        public Sequence(int[] prompt, KvDecoder.Settings settings) {
            super(checked(prompt), settings, ctx);
            cache = new Cache();
        }

        @Override int[] window() { return cache.window; }
        @Override int cacheLength() { return cache.length; }
        @Override void resetCache() { cache.reset(); }
        @Override void closeCache() { cache.close(); }
    }

    private int[] checked(int[] prompt) {
        checkPrompt(prompt);
        return prompt;
    }

    @Override
    public Sequence open(int[] prompt, KvDecoder.Settings settings) { return new Sequence(prompt, settings); }

    /** Generates {@code s.tokens()} tokens after {@code prompt} (a batch of one; its cache takes a slot meanwhile). */
    public int[] generate(int[] prompt, KvDecoder.Settings s) { return generate(prompt, s, t -> {}); }

    /** As {@link #generate(int[], KvDecoder.Settings)}, handing each token to {@code onToken} as soon as it is drawn. */
    public int[] generate(int[] prompt, KvDecoder.Settings s, IntConsumer onToken) {
        if (closed) throw new IllegalStateException("the decoder is closed");
        try (Sequence q = new Sequence(prompt, s)) {
            List<Sequence> one = List.of(q);
            while (!q.done()) {
                step(one);
                onToken.accept(q.token(q.produced() - 1));
            }
            return q.generated();
        }
    }

    /**
     * Advances every sequence (none of them done, each of this decoder, no two the same) by one drawn token: their
     * pending rows as one batch, one host synchronisation (see the class comment).
     */
    @Override
    public void step(List<Sequence> seqs) {
        int n = seqs.size();
        if (n == 0) return;
        List<Cache> caches = new ArrayList<>(n);
        List<int[]> toks = new ArrayList<>(n);
        boolean greedy = true;
        for (int i = 0; i < n; i++) {
            Sequence q = seqs.get(i);
            if (q.done()) throw new IllegalArgumentException("sequence " + i + " is already done");
            caches.add(q.cache);
            greedy &= q.greedy();
        }
        checkCaches(caches);
        for (Sequence q : seqs) toks.add(q.pending(ctx));
        try (Scope sc = Scope.confined()) {
            Tensor logits = run(sc, caches, toks, false);
            if (greedy) {
                CudaDecodeKernels.argmaxRows(Cuda.get(), n, vocab, buf(logits), tok);
                int[] ids;
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment h = a.allocate(4L * n, 4);
                    tok.slice(0, 4L * n).copyTo(h);                 // the one host synchronisation of this step
                    ids = h.toArray(JAVA_INT);
                }
                for (int i = 0; i < n; i++) seqs.get(i).accept(ids[i]);
            } else {
                float[] l = logits.toArray();                       // the one host synchronisation of this step
                for (int i = 0; i < n; i++) seqs.get(i).draw(l, i, vocab);
            }
        }
    }

    /**
     * Runs {@code tokens.get(i)} at the next positions of {@code caches.get(i)} (all rows of all caches as one batch),
     * appending their K and V. Returns the logits of the last row of each cache, (caches, vocab) row-major, or, with
     * {@code allRows}, of every row in order (sum of token counts, vocab): one host synchronisation, their copy. A cache
     * must have room for its tokens, belong to this decoder, be open, and appear once.
     */
    public float[] forward(List<Cache> caches, List<int[]> tokens, boolean allRows) {
        int n = caches.size();
        if (tokens.size() != n) throw new IllegalArgumentException(n + " caches but " + tokens.size() + " token lists");
        if (n == 0) return new float[0];
        checkCaches(caches);
        try (Scope sc = Scope.confined()) {
            return run(sc, caches, tokens, allRows).toArray();
        }
    }

    private void checkCaches(List<Cache> caches) {
        if (closed) throw new IllegalStateException("the decoder is closed");
        java.util.Set<Cache> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (int i = 0; i < caches.size(); i++) {
            Cache q = caches.get(i);
            if (q.decoder() != this) throw new IllegalArgumentException("cache " + i + " belongs to another decoder");
            if (!q.open) throw new IllegalArgumentException("cache " + i + " is closed");
            if (!seen.add(q)) throw new IllegalArgumentException("cache " + i + " appears twice in one batch");
        }
    }

    /**
     * The batch on the device, in passes of at most {@link #MAX_ROWS} rows, all queued without waiting: returns the
     * logits (caches or rows, vocab) in {@code sc}, and advances the caches.
     */
    private Tensor run(Scope sc, List<Cache> caches, List<int[]> tokens, boolean allRows) {
        int n = caches.size(), rows = 0;
        for (int i = 0; i < n; i++) {
            int[] t = tokens.get(i);
            Cache q = caches.get(i);
            if (t.length == 0) throw new IllegalArgumentException("cache " + i + ": no tokens to run");
            if (q.length + t.length > ctx)
                throw new IllegalArgumentException("cache " + i + ": " + q.length + " positions + " + t.length + " tokens > context " + ctx);
            for (int id : t) if (id < 0 || id >= vocab) throw new IllegalArgumentException("token " + id + " outside [0, " + vocab + ")");
            rows += t.length;
        }
        Tensor logits = Tensor.empty(sc, Device.CUDA, allRows ? rows : n, vocab);
        int first = 0, passRows = 0, out = 0;
        for (int i = 0; i <= n; i++) {
            if (i == n || (passRows > 0 && passRows + tokens.get(i).length > MAX_ROWS)) {
                int outs = allRows ? passRows : i - first;
                pass(caches.subList(first, i), tokens.subList(first, i), passRows, allRows, logits.slice(0, out, out + outs));
                out += outs;
                first = i;
                passRows = 0;
                if (i == n) break;
            }
            passRows += tokens.get(i).length;
        }
        for (int i = 0; i < n; i++) {
            Cache q = caches.get(i);
            int[] t = tokens.get(i);
            System.arraycopy(t, 0, q.window, q.length, t.length);
            q.length += t.length;
        }
        return logits;
    }

    /**
     * One pass: {@code rows} rows (the caches' tokens at their next positions) through every block, appending K and V;
     * writes into {@code logits} the last row of each cache (or every row). Nothing waits for the device.
     */
    private void pass(List<Cache> caches, List<int[]> tokens, int rows, boolean allRows, Tensor logits) {
        int n = caches.size(), outs = allRows ? rows : n;
        // the rows' int32 data in one upload: ids | slots | positions | the row of each output
        int[] idx = new int[3 * rows + outs];
        int maxLen = 0;
        for (int i = 0, r = 0; i < n; i++) {
            Cache q = caches.get(i);
            int[] t = tokens.get(i);
            for (int j = 0; j < t.length; j++, r++) {
                idx[r] = t[j];
                idx[rows + r] = q.slot;
                idx[2 * rows + r] = q.length + j;
                if (allRows) idx[3 * rows + r] = r;
            }
            if (!allRows) idx[3 * rows + i] = r - 1;
            maxLen = Math.max(maxLen, q.length + t.length);
        }
        Cuda cu = Cuda.get();
        Device d = Device.CUDA;
        DeviceBuffer up = cu.alloc(4L * idx.length);
        try (Scope sc = Scope.confined()) {
            Staging.upload(up, 4L * idx.length, h -> MemorySegment.copy(idx, 0, h, JAVA_INT, 0, idx.length));
            DeviceBuffer ids = up.slice(0, 4L * rows), slot = up.slice(4L * rows, 4L * rows), pos = up.slice(8L * rows, 4L * rows),
                    last = up.slice(12L * rows, 4L * outs);
            Tensor x = Tensor.empty(sc, d, rows, c), h = Tensor.empty(sc, d, rows, c), y = Tensor.empty(sc, d, rows, c);
            Tensor qkv = Tensor.empty(sc, d, rows, 3L * c), f = Tensor.empty(sc, d, rows, 4L * c);
            Tensor f2 = tanhGelu ? Tensor.empty(sc, d, rows, 4L * c) : null;
            Tensor mean = Tensor.empty(sc, d, rows), rstd = Tensor.empty(sc, d, rows);
            CudaKernels.embedding(cu, rows, c, ids, buf(m.wte.weight.value()), buf(x));
            CudaKernels.embedding(cu, rows, c, pos, buf(m.wpe.weight.value()), buf(y));
            // x = wte[id], y = wpe[pos]: every residual add (this one included) is fused into the LayerNorm that reads its
            // sum (Kernels.layerNormResidual: the bits of the add then the LayerNorm), which leaves that sum in x
            for (int l = 0; l < layers; l++) {
                Gpt.Block b = m.blocks.get(l);
                addNorm(x, y, b.ln1, h, mean, rstd);                                            // x += y; h = ln_1(x)
                linear(h, b.attn.attn, qkv);                                                   // (R, 3C): q | k | v
                CudaDecodeKernels.kvAppendRows(cu, rows, heads, hs, ctx, slots, slot, pos, buf(qkv), 3L * c, kc[l], vc[l]);
                CudaDecodeKernels.attentionRows(cu, rows, heads, hs, ctx, slots, maxLen, slot, pos, scale, buf(qkv), 3L * c, kc[l], vc[l],
                        buf(h), c);
                linear(h, b.attn.proj, y);
                addNorm(x, y, b.ln2, h, mean, rstd);                                            // x += y; h = ln_2(x)
                linear(h, b.mlp.fc, f);
                Tensor act = gelu(f, f2);
                linear(act, b.mlp.proj, y);                                                    // the next LayerNorm adds y
            }
            // the last residual add on the output rows only (gathered), fused into ln_f
            Tensor xs = x, ys = y;
            if (outs != rows) {
                xs = Tensor.empty(sc, d, outs, c);
                ys = Tensor.empty(sc, d, outs, c);
                CudaKernels.embedding(cu, outs, c, last, buf(x), buf(xs));
                CudaKernels.embedding(cu, outs, c, last, buf(y), buf(ys));
            }
            Tensor hl = h.slice(0, 0, outs);
            addNorm(xs, ys, m.lnF, hl, mean.slice(0, 0, outs), rstd.slice(0, 0, outs));
            Gemm.matmul(hl, headT, logits, 1f, 0f);
            if (m.head != null && m.head.bias != null) Kernels.addRows(logits, m.head.bias.value(), logits);
        } finally {
            up.close();   // stream-ordered: the queued kernels still read it
        }
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

    /** Frees the KV cache pool; the decoder and its caches must not be used after. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        freeCaches();
        if (tok != null) tok.close();
    }
}
