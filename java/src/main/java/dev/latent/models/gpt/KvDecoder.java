package dev.latent.models.gpt;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.IntConsumer;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * KV-cache decoding of a {@link Gpt} on the model's own native kernels: a batched incremental forward in which every
 * row is one position of one sequence. Per step the rows of all sequences go through each block as one (R, C) batch:
 * the residual add fused into the LayerNorm that reads it ({@code lt_layernorm_residual_fwd}, as the training forward
 * does: the bits of the add then {@code lt_layernorm_fwd}; the embedding's add into the first ln_1, the last block's
 * into ln_f on the rows whose logits are asked for), the projections and the MLP as {@code lt_gemm_rows} calls on the model's
 * weights (by default read in place: {@link Gemm#sgemmRows}, the GEMM for a few rows; or packed once, see below), GELU ({@code lt_gelu_fwd}), and attention as {@code lt_attention_decode_fwd}, one
 * query per row against its own sequence's cache (K and V per layer, in native memory owned by the sequence). A
 * sequence feeds its whole prompt in its first step (as many rows as tokens, each seeing the cache up to itself) and
 * one token per step after that.
 * <p>
 * Bits: every kernel here computes an output row with the same code whatever the number of rows and threads
 * (lt_gemm_rows sums each element in one fixed order, LayerNorm and GELU are row- and element-wise, decode attention computes a
 * (row, head) pair in one task), so a sequence gives the same logits alone, in any batch, with its prompt fed at
 * once or token by token, and on any thread count: a request's tokens depend only on the model and its settings.
 * Against the full forward ({@link Gpt#logits}, whose attention is the tiled FlashAttention kernel) the logits agree
 * to float rounding, not bit for bit (KvDecoderTest states the tolerance).
 * <p>
 * Weights: {@link Weights#IN_PLACE} (the default) reads the model's matrices where they are; {@link Weights#PACKED}
 * copies them once, at construction, into k-major panels ({@code lt_gemm_rows_pack}) that {@code lt_gemm_rows_packed}
 * streams with up to 16 rows in registers and the bias fused: 1.2-1.5x faster per step at 16 sequences
 * (BENCHMARKS.md S2), for one more copy of the matrices in native memory, held until {@link #close()}; or, with
 * {@link #packed(GptConfig, TensorSource)} (what {@code GptGenerator.load} and {@code sample gpt} use), packed straight
 * from stored tensors with no model and no copy of the matrices in their original layout (~1x the weight bytes). The two layouts
 * sum each element in a different order, so their logits differ in the last bits (both within the tolerance of the
 * full forward); each is deterministic in itself as stated above.
 * <p>
 * When the context fills, a sequence's cache is rebuilt from the newest half of its window (learned absolute
 * positions forbid sliding in place), fed as one chunk. The model is only read, so one decoder serves any number of
 * threads, each stepping its own sequences; a {@link Sequence} belongs to the thread that opened it.
 */
public final class KvDecoder implements BatchDecoder<KvDecoder.Sequence> {
    /** How a decoder reads the model's weight matrices (see the class comment). */
    public enum Weights {
        /** In place, as the model stores them ({@code lt_gemm_rows}): no memory beyond the model's. */
        IN_PLACE,
        /** Packed once into the decoder's own native memory ({@code lt_gemm_rows_packed}): faster, one more copy. */
        PACKED
    }

    private static final float LN_EPS = 1e-5f;

    private final Gpt m;                  // the model read in place or packed from; null when built from stored tensors
    private final GptConfig cfg;
    private final int layers, heads, hs, c, ctx, vocab;
    private final float scale;
    private final boolean tanhGelu;
    private final Layer[] ls;
    private final MemorySegment wte, wpe, lnFw, lnFb, headW, headB;
    private final Weights weights;
    private final Scope own;              // what the decoder holds itself (the packed matrices, and when built from stored tensors the rest), else null
    private final MemorySegment headP;    // the head packed, else null
    private final MemorySegment panels;   // PACKED: one block on huge pages holding every packed matrix, else null
    private long panelsUsed;              // bytes of panels handed out so far (pack, in construction order)
    private long ownBytes;
    private volatile boolean closed;
    /**
     * Tests only: each residual add as lt_axpby and then lt_layernorm_fwd, the path before the fused op, which must give
     * the same bits (KvDecoderTest.fusedResidualLayerNormKeepsEveryBit).
     */
    boolean unfused;

    /** One block's weights as native segments (views of the model's parameters); the *P ones packed, or null. */
    private record Layer(MemorySegment ln1w, MemorySegment ln1b, MemorySegment qkvW, MemorySegment qkvB, MemorySegment projW,
                         MemorySegment projB, MemorySegment ln2w, MemorySegment ln2b, MemorySegment fcW, MemorySegment fcB,
                         MemorySegment fc2W, MemorySegment fc2B, MemorySegment qkvP, MemorySegment projP, MemorySegment fcP,
                         MemorySegment fc2P) {}

    /**
     * Where {@link #packed(GptConfig, TensorSource)} reads the model's tensors: by the parameter names of {@link Gpt}
     * ({@code h.0.attn.c_attn.weight}, ...), each converted to F32 into {@code dst} with the given shape. An implementation
     * checks the stored shape and values (and names the problem in its exception).
     */
    @FunctionalInterface
    public interface TensorSource {
        /** Writes the tensor {@code name}, of {@code shape}, as F32 into {@code dst} (exactly its bytes). */
        void read(String name, long[] shape, MemorySegment dst) throws java.io.IOException;
    }

    /** A decoder reading the model's weights in place ({@link Weights#IN_PLACE}). */
    public KvDecoder(Gpt model) { this(model, Weights.IN_PLACE); }

    /**
     * A decoder with the given weight layout. {@link Weights#PACKED} copies the weight matrices now (the model's later
     * changes are not seen) into native memory that {@link #close()} frees; the model's scope must stay open either way
     * (the embeddings, LayerNorms and biases are read in place).
     */
    public KvDecoder(Gpt model, Weights weights) {
        this(java.util.Objects.requireNonNull(model, "model").cfg, model, weights, null);
    }

    /**
     * A {@link Weights#PACKED} decoder built straight from stored tensors, with no {@link Gpt} and no copy of the matrices
     * in their original layout: each weight matrix is read through a temporary buffer (freed at once) and packed into the
     * decoder's own memory; the embeddings, LayerNorms and biases (what the packed path reads in place) are kept as read.
     * The decoder then holds ~1x the weight bytes (a tied model's token embedding twice: as the embedding table and packed
     * as the head, vocab x dim floats more), all freed by {@link #close()}. Its bits are those of
     * {@code new KvDecoder(model, PACKED)} on a model holding the same weights. {@link #model()} is not available.
     */
    public static KvDecoder packed(GptConfig cfg, TensorSource source) throws java.io.IOException {
        try {
            return new KvDecoder(java.util.Objects.requireNonNull(cfg, "cfg"), null, Weights.PACKED, java.util.Objects.requireNonNull(source, "source"));
        } catch (java.io.UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private KvDecoder(GptConfig cfg, Gpt model, Weights weights, TensorSource src) {
        m = model;
        this.cfg = cfg;
        this.weights = java.util.Objects.requireNonNull(weights, "weights");
        layers = cfg.layers(); heads = cfg.heads(); hs = cfg.headSize(); c = cfg.dim(); ctx = cfg.context(); vocab = cfg.vocab();
        scale = (float) (1.0 / Math.sqrt(hs));
        tanhGelu = cfg.activation() == GptConfig.Activation.GELU_TANH;
        ls = new Layer[layers];
        own = weights == Weights.PACKED ? Scope.shared() : null;
        java.util.Map<String, dev.latent.autograd.Var> params = model == null ? null : model.namedParameters();
        Get get = src == null ? (name, shape) -> seg(params.get(name)) : (name, shape) -> read(src, name, shape);
        try {
            // All packed matrices in one block on 2 MiB pages (Scope.allocateHugePages): a step streams them all, and on
            // 4 KiB pages every 4 KiB of panel costs a TLB miss and a hardware prefetcher restart (BENCHMARKS.md S2).
            panels = own == null ? null : own.allocateHugePages(packedBytes(cfg));
            if (panels != null) ownBytes += panels.byteSize();
            long c3 = 3L * c, c4 = 4L * c;
            for (int l = 0; l < layers; l++) {
                String p = "h." + l + ".";
                MemorySegment[] qkv = mat(get, src, p + "attn.c_attn.weight", c3, c), proj = mat(get, src, p + "attn.c_proj.weight", c, c),
                        fc = mat(get, src, p + "mlp.c_fc.weight", c4, c), fc2 = mat(get, src, p + "mlp.c_proj.weight", c, c4);
                ls[l] = new Layer(get.at(p + "ln_1.weight", c), get.at(p + "ln_1.bias", c), qkv[0], get.at(p + "attn.c_attn.bias", c3), proj[0],
                        get.at(p + "attn.c_proj.bias", c), get.at(p + "ln_2.weight", c), get.at(p + "ln_2.bias", c), fc[0], get.at(p + "mlp.c_fc.bias", c4),
                        fc2[0], get.at(p + "mlp.c_proj.bias", c), qkv[1], proj[1], fc[1], fc2[1]);
            }
            wte = get.at("wte.weight", vocab, c);
            wpe = get.at("wpe.weight", ctx, c);
            lnFw = get.at("ln_f.weight", c);
            lnFb = get.at("ln_f.bias", c);
            if (cfg.tied()) {            // the head is the embedding: kept as read for the lookup, packed for the head
                headW = wte;
                headP = pack(wte, vocab, c);
                headB = null;
            } else {
                MemorySegment[] hd = mat(get, src, "lm_head.weight", vocab, c);
                headW = hd[0];
                headP = hd[1];
                headB = get.at("lm_head.bias", vocab);
            }
        } catch (java.io.IOException e) {
            if (own != null) own.close();
            throw new java.io.UncheckedIOException(e);
        } catch (RuntimeException | Error e) {
            if (own != null) own.close();
            throw e;
        }
    }

    /** Fetches one tensor by parameter name and shape: a view of the model's parameter, or read into the decoder's memory. */
    @FunctionalInterface
    private interface Get {
        MemorySegment get(String name, long[] shape) throws java.io.IOException;

        default MemorySegment at(String name, long... shape) throws java.io.IOException { return get(name, shape); }
    }

    /** A tensor read from {@code src} into the decoder's own memory. */
    private MemorySegment read(TensorSource src, String name, long[] shape) throws java.io.IOException {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        MemorySegment s = own.allocateUninitialized(4 * n);
        ownBytes += 4 * n;
        src.read(name, shape.clone(), s);
        return s;
    }

    /**
     * A weight matrix (n, k): {in place or null, packed or null}. From a model: its parameter, packed when PACKED. From
     * stored tensors: read into a temporary buffer outside the scopes (returned to the system at once), packed, dropped.
     */
    private MemorySegment[] mat(Get get, TensorSource src, String name, long n, long k) throws java.io.IOException {
        if (src == null) {
            MemorySegment w = get.at(name, n, k);
            return new MemorySegment[] {weights == Weights.PACKED ? null : w, pack(w, n, k)};
        }
        try (java.lang.foreign.Arena tmp = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment w = tmp.allocate(4 * n * k, Scope.ALIGNMENT);
            src.read(name, new long[] {n, k}, w);
            return new MemorySegment[] {null, pack(w, n, k)};
        }
    }

    /** W (n, k) packed into the next piece of {@link #panels}, or null when reading in place. */
    private MemorySegment pack(MemorySegment w, long n, long k) {
        if (own == null) return null;
        LatentNative nat = LatentNative.get();
        long bytes = 4 * nat.gemmRowsPackedSize(n, k);
        MemorySegment p = panels.asSlice(panelsUsed, bytes);
        panelsUsed += align(bytes);
        nat.gemmRowsPack(n, k, w, k, p);
        return p;
    }

    private static long align(long bytes) { return (bytes + Scope.ALIGNMENT - 1) / Scope.ALIGNMENT * Scope.ALIGNMENT; }

    /** Bytes of all packed matrices (each 64-byte aligned), in the order the constructor packs them. */
    private static long packedBytes(GptConfig cfg) {
        LatentNative nat = LatentNative.get();
        long c = cfg.dim(), per = align(4 * nat.gemmRowsPackedSize(3 * c, c)) + align(4 * nat.gemmRowsPackedSize(c, c))
                + align(4 * nat.gemmRowsPackedSize(4 * c, c)) + align(4 * nat.gemmRowsPackedSize(c, 4 * c));
        return cfg.layers() * per + align(4 * nat.gemmRowsPackedSize(cfg.vocab(), c));
    }

    /** The weight layout in use. */
    public Weights weights() { return weights; }

    /** The model's configuration. */
    @Override
    public GptConfig config() { return cfg; }

    /**
     * Native bytes the decoder holds itself: 0 in place; the packed matrices when packed from a model; everything it
     * reads when built from stored tensors ({@link #packed(GptConfig, TensorSource)}).
     */
    public long ownBytes() { return ownBytes; }

    /** Frees what the decoder holds ({@link Weights#PACKED}); the decoder must not be used after. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (own != null) own.close();
    }

    private static MemorySegment seg(dev.latent.autograd.Var v) {
        if (v == null) return null;
        if (v.value().device() != dev.latent.tensor.Device.CPU)
            throw new IllegalArgumentException("KV-cache decoding runs on the CPU; the model's weights are on " + v.value().device());
        return v.value().contiguous().segment();
    }

    /**
     * The model this decoder reads. A decoder built from stored tensors ({@link #packed(GptConfig, TensorSource)}) has
     * none: IllegalStateException.
     */
    public Gpt model() {
        if (m == null) throw new IllegalStateException("this decoder was built packed from stored tensors: it holds no Gpt (see KvDecoder.packed)");
        return m;
    }

    /** Settings of one generation. {@code topK = 0} and {@code topP = 1} disable those filters (a negative topK is refused); temperature 0 is greedy. */
    public record Settings(int tokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            if (tokens < 0) throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
            dev.latent.train.Limits.sampling(temperature, topK, topP);   // the same limits as the CLI and the service
        }
    }

    /** Checks a prompt's ids against the vocabulary (at least one id). */
    @Override
    public void checkPrompt(int[] prompt) {
        if (prompt.length == 0) throw new IllegalArgumentException("prompt must hold at least one token");
        for (int id : prompt)
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("prompt token " + id + " outside [0, " + vocab + ")");
    }

    /** Bytes of one sequence's KV cache (K and V of every layer, the whole context). */
    @Override
    public long cacheBytes() { return 2L * layers * ctx * c * 4; }

    /**
     * One sequence's KV cache: per layer K and V, each head-major (heads, context, head size), in one native block of
     * its own confined scope, and the tokens at its positions. Head-major, a (sequence, head) pair's keys are one
     * contiguous run that decode attention reads front to back (the (context, C) layout made each head's read a strided
     * stream of head-size pieces, which the hardware prefetchers follow poorly: 5x slower than from cache at 16
     * sequences). Low-level: {@link #forward} appends to it; {@link Sequence} adds sampling.
     */
    public final class Cache implements AutoCloseable {
        private final Scope scope;
        private final MemorySegment kv;
        private final MemorySegment[][] k = new MemorySegment[layers][heads], v = new MemorySegment[layers][heads];
        final int[] window = new int[ctx];
        int length;

        public Cache() {
            scope = Scope.confined();
            try {
                kv = scope.allocateHugePages(cacheBytes());   // read whole every step: on 2 MiB pages (see the constructor)
                long per = (long) ctx * c * 4, head = (long) ctx * hs * 4;
                for (int l = 0; l < layers; l++)
                    for (int hh = 0; hh < heads; hh++) {
                        k[l][hh] = kv.asSlice(2L * l * per + hh * head, head);
                        v[l][hh] = kv.asSlice((2L * l + 1) * per + hh * head, head);
                    }
            } catch (RuntimeException | Error e) {
                scope.close();
                throw e;
            }
        }

        /** Positions filled. */
        public int length() { return length; }

        /** Forgets every position (the memory is kept). */
        public void reset() { length = 0; }

        @Override
        public void close() { scope.close(); }
    }

    /**
     * Runs {@code tokens.get(i)} at the next positions of {@code caches.get(i)} (all rows of all caches as one batch),
     * appending their K and V. Returns the logits of the last row of each cache, (caches, vocab) row-major, or, with
     * {@code allRows}, of every row in order (sum of token counts, vocab). A cache must have room for its tokens.
     */
    public float[] forward(List<Cache> caches, List<int[]> tokens, boolean allRows) {
        int n = caches.size();
        if (tokens.size() != n) throw new IllegalArgumentException(n + " caches but " + tokens.size() + " token lists");
        int rows = 0;
        for (int i = 0; i < n; i++) {
            int[] t = tokens.get(i);
            Cache q = caches.get(i);
            if (t.length == 0) throw new IllegalArgumentException("cache " + i + ": no tokens to run");
            if (q.length + t.length > ctx)
                throw new IllegalArgumentException("cache " + i + ": " + q.length + " positions + " + t.length + " tokens > context " + ctx);
            for (int id : t) if (id < 0 || id >= vocab) throw new IllegalArgumentException("token " + id + " outside [0, " + vocab + ")");
            rows += t.length;
        }
        if (rows == 0) return new float[0];
        if (closed) throw new IllegalStateException("the decoder is closed");
        LatentNative nat = LatentNative.get();
        try (Scope sc = Scope.confined()) {
            long rc = (long) rows * c;
            MemorySegment x = sc.allocateUninitialized(rc * 4), h = sc.allocateUninitialized(rc * 4), y = sc.allocateUninitialized(rc * 4);
            MemorySegment qkv = sc.allocateUninitialized(3 * rc * 4), f = sc.allocateUninitialized(4 * rc * 4), qs = sc.allocateUninitialized(rc * 4);
            MemorySegment f2 = tanhGelu ? sc.allocateUninitialized(4 * rc * 4) : null;
            MemorySegment mean = sc.allocateUninitialized(4L * rows), rstd = sc.allocateUninitialized(4L * rows);
            Cache[] rowCache = new Cache[rows];
            int[] pos = new int[rows];
            long cb = 4L * c;
            int r = 0;
            for (int i = 0; i < n; i++) {
                Cache q = caches.get(i);
                int base = r;
                for (int id : tokens.get(i)) {
                    int p = q.length + (r - base);
                    rowCache[r] = q;
                    pos[r] = p;
                    MemorySegment.copy(wte, id * cb, x, r * cb, cb);
                    MemorySegment.copy(wpe, p * cb, y, r * cb, cb);
                    r++;
                }
            }
            // x = wte[id], y = wpe[pos]: every residual add below (this one included) is fused into the LayerNorm that
            // reads its sum (lt_layernorm_residual_fwd: the bits of lt_axpby's add then lt_layernorm_fwd), so at each
            // LayerNorm the stream is x + y, and x becomes that sum.
            // attention runs over (row, head) pairs as rows of one head each: queries gathered (rows, C), caches head-major
            int pairs = rows * heads;
            MemorySegment[] kr = new MemorySegment[pairs], vr = new MemorySegment[pairs];
            int[] len = new int[pairs];
            for (int j = 0; j < pairs; j++) len[j] = pos[j / heads] + 1;
            long hb = 4L * hs;
            for (int l = 0; l < layers; l++) {
                Layer w = ls[l];
                addNorm(nat, rows, x, y, w.ln1w, w.ln1b, h, mean, rstd);                  // x += y; h = ln_1(x)
                linear(h, rows, c, 3 * c, w.qkvW, w.qkvP, w.qkvB, qkv);                   // (R, 3C): q | k | v
                for (int j = 0; j < rows; j++) {
                    long dst = pos[j] * hb, src = j * 3 * cb;
                    MemorySegment.copy(qkv, src, qs, j * cb, cb);
                    for (int hh = 0; hh < heads; hh++) {
                        MemorySegment kc = rowCache[j].k[l][hh], vc = rowCache[j].v[l][hh];
                        MemorySegment.copy(qkv, src + cb + hh * hb, kc, dst, hb);
                        MemorySegment.copy(qkv, src + 2 * cb + hh * hb, vc, dst, hb);
                        kr[j * heads + hh] = kc;
                        vr[j * heads + hh] = vc;
                    }
                }
                nat.attentionDecodeFwd(pairs, 1, hs, scale, qs, hs, kr, vr, hs, len, h, hs);   // h = attention output, (rows, C)
                linear(h, rows, c, c, w.projW, w.projP, w.projB, y);
                addNorm(nat, rows, x, y, w.ln2w, w.ln2b, h, mean, rstd);                  // x += y; h = ln_2(x)
                linear(h, rows, c, 4 * c, w.fcW, w.fcP, w.fcB, f);
                MemorySegment act = gelu(nat, f, 4 * rc, f2);
                linear(act, rows, 4 * c, c, w.fc2W, w.fc2P, w.fc2B, y);                    // the next LayerNorm adds y
            }
            for (int i = 0; i < n; i++) {
                Cache q = caches.get(i);
                int[] t = tokens.get(i);
                System.arraycopy(t, 0, q.window, q.length, t.length);
                q.length += t.length;
            }
            // Logits only for the rows asked for: the last of each cache (a prompt's other rows only fill the cache), so
            // the last residual add runs on those rows only, fused into ln_f.
            int out = allRows ? rows : n;
            MemorySegment xs = x, ys = y;
            if (!allRows && out != rows) {
                xs = sc.allocateUninitialized((long) out * cb);
                ys = sc.allocateUninitialized((long) out * cb);
                for (int i = 0, last = -1; i < n; i++) {
                    last += tokens.get(i).length;
                    MemorySegment.copy(x, last * cb, xs, i * cb, cb);
                    MemorySegment.copy(y, last * cb, ys, i * cb, cb);
                }
            }
            addNorm(nat, out, xs, ys, lnFw, lnFb, h, mean, rstd);                           // h = ln_f(x + y)
            MemorySegment lg = sc.allocateUninitialized((long) out * vocab * 4);
            linear(h, out, c, vocab, headW, headP, headB, lg);
            return lg.toArray(JAVA_FLOAT);
        }
    }

    /**
     * The residual add and the LayerNorm that reads it: x (rows, C) += a, then h = LayerNorm(x) with w, b. Fused
     * ({@code lt_layernorm_residual_fwd}, one pass over the rows) unless {@link #unfused}; either way the same bits.
     */
    private void addNorm(LatentNative nat, int rows, MemorySegment x, MemorySegment a, MemorySegment w, MemorySegment b,
                         MemorySegment h, MemorySegment mean, MemorySegment rstd) {
        if (unfused) {
            nat.axpby((long) rows * c, 1f, a, 1f, x);
            nat.layernormFwd(rows, c, LN_EPS, x, w, b, h, mean, rstd);
        } else {
            nat.layernormResidualFwd(rows, c, LN_EPS, x, a, w, b, x, h, mean, rstd);
        }
    }

    /** y (rows, out) = x (rows, in) W^T + b, W (out, in) as the model stores it, or its packed copy wp when not null. */
    private static void linear(MemorySegment x, int rows, int in, int out, MemorySegment w, MemorySegment wp, MemorySegment b, MemorySegment y) {
        if (wp != null) {
            LatentNative.get().gemmRowsPacked(rows, out, in, x, in, wp, b == null ? MemorySegment.NULL : b, y, out);
            return;
        }
        Gemm.sgemmRows(rows, out, in, 1f, x, in, w, in, 0f, y, out);
        if (b != null) LatentNative.get().addRows(rows, out, 1, y, b, y);
    }

    private static final float GELU_TANH_K = (float) Math.sqrt(2 / Math.PI);

    /** The MLP's activation over n elements of f: exact GELU in place, or GPT-2's tanh form into t. */
    private MemorySegment gelu(LatentNative nat, MemorySegment f, long n, MemorySegment t) {
        if (!tanhGelu) {
            nat.geluFwd(n, f, f);
            return f;
        }
        // 0.5 x (1 + tanh(k (x + 0.044715 x^3))), as Gpt.geluTanh composes it
        nat.mul(n, f, f, t);                          // x^2
        nat.mul(n, t, f, t);                          // x^3
        nat.axpby(n, 1f, f, 0.044715f, t);            // x + 0.044715 x^3
        nat.axpby(n, 0f, f, GELU_TANH_K, t);          // * k
        nat.actFwd(LatentNative.ACT_TANH, n, 0f, t, t);
        nat.mul(n, f, t, t);                          // x tanh
        nat.axpby(n, 0.5f, f, 0.5f, t);               // 0.5 x + 0.5 x tanh
        return t;
    }

    /**
     * A sequence in progress: its {@link Cache}, and (from {@link DecodeSequence}) the tokens still to feed and what it
     * generated so far. Confined to the thread that opened it.
     */
    public final class Sequence extends DecodeSequence {
        private final Cache cache;

        public Sequence(int[] prompt, Settings settings) {
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
    public Sequence open(int[] prompt, Settings settings) { return new Sequence(prompt, settings); }

    /** Generates {@code s.tokens()} tokens after {@code prompt} on the calling thread. */
    public int[] generate(int[] prompt, Settings s) {
        return generate(prompt, s, t -> {});
    }

    /** As {@link #generate(int[], Settings)}, handing each token to {@code onToken} as soon as it is drawn (streaming). */
    public int[] generate(int[] prompt, Settings s, IntConsumer onToken) {
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
     * Rows per forward pass, past which a step runs its sequences in several passes (a sequence's chunk is never split):
     * bounds the step's scratch (~ (10 C + vocab) floats a row) when many sequences feed prompts or rebuild their caches
     * at once. The bits do not change: rows are computed independently.
     */
    static final int MAX_ROWS = 128;

    /** Advances every sequence (none of them done) by one drawn token, their pending rows as one batch (or a few). */
    @Override
    public void step(List<Sequence> seqs) {
        int b = seqs.size();
        if (b == 0) return;
        int[][] pend = new int[b][];
        for (int r = 0; r < b; r++) {
            Sequence q = seqs.get(r);
            if (q.done()) throw new IllegalArgumentException("sequence " + r + " is already done");
            pend[r] = q.pending(ctx);
        }
        java.util.ArrayList<Cache> caches = new java.util.ArrayList<>(b);
        java.util.ArrayList<int[]> toks = new java.util.ArrayList<>(b);
        int first = 0, rows = 0;
        for (int r = 0; r <= b; r++) {
            if (r == b || (rows > 0 && rows + pend[r].length > MAX_ROWS)) {
                float[] lg = forward(caches, toks, false);
                for (int i = first; i < r; i++) seqs.get(i).draw(lg, i - first, vocab);
                caches.clear();
                toks.clear();
                first = r;
                rows = 0;
                if (r == b) break;
            }
            caches.add(seqs.get(r).cache);
            toks.add(pend[r]);
            rows += pend[r].length;
        }
    }
}
