package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * KV-cache decoding of several sequences at once: {@link #step} runs one position of every sequence given
 * through the blocks as the rows of one batch (B, C), so the projections and the MLP are one GEMM each for
 * all of them, while each sequence attends over its own cache. A row's arithmetic never depends on the
 * other rows (GEMM, LayerNorm and GELU compute each output row with the same code whatever M is: see the
 * headers of gemm_avx2.c and layernorm), so a sequence decodes to the same bits alone or in any batch.
 * Prompts are fed one position per step, like generated tokens. When the context fills, a sequence's cache
 * is rebuilt from the newest half of its window (learned absolute positions forbid sliding in place).
 * A {@link Sequence} owns its KV cache in its own confined {@link Scope}, freed by {@link Sequence#close()};
 * the model is only read, so one decoder may serve any number of threads, each stepping its own sequences.
 */
public final class GptDecoder {
    private final Gpt m;
    private final int layers, heads, hs, c, ctx, vocab;

    public GptDecoder(Gpt model) {
        m = model;
        GptConfig cfg = model.cfg;
        layers = cfg.layers(); heads = cfg.heads(); hs = cfg.headSize(); c = cfg.dim(); ctx = cfg.context(); vocab = cfg.vocab();
    }

    /** Settings of one generation. {@code topK = 0} and {@code topP = 1} disable those filters (a negative topK is refused); temperature 0 is greedy. */
    public record Settings(int tokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            if (tokens < 0) throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
            dev.latent.train.Limits.sampling(temperature, topK, topP);   // the same limits as the CLI and the service
        }
    }

    /** Checks a prompt's ids against the vocabulary (at least one id). */
    public void checkPrompt(int[] prompt) {
        if (prompt.length == 0) throw new IllegalArgumentException("prompt must hold at least one token");
        for (int id : prompt)
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("prompt token " + id + " outside [0, " + vocab + ")");
    }

    /**
     * A sequence in progress: its KV cache and token window (native, in a confined scope of the thread that
     * opened it: only that thread may step it), the tokens still to feed, and what it generated so far.
     */
    public final class Sequence implements AutoCloseable {
        private final Settings s;
        private final Scope scope;
        private final MemorySegment[] kc = new MemorySegment[layers], vc = new MemorySegment[layers];   // (ctx, C) per layer
        private final MemorySegment u;
        private final int[] window = new int[ctx];
        private int[] feed;          // tokens to run through the model before the next draw
        private int fed, pos;
        private final int[] out;
        private int produced;

        public Sequence(int[] prompt, Settings settings) {
            checkPrompt(prompt);
            s = settings;
            scope = Scope.confined();         // only once the prompt is known good: nothing to leak on a refusal
            try {
                for (int l = 0; l < layers; l++) {
                    kc[l] = scope.allocateUninitialized((long) ctx * c * 4);
                    vc[l] = scope.allocateUninitialized((long) ctx * c * 4);
                }
                u = scope.allocateUninitialized(4);
            } catch (RuntimeException | Error e) {
                scope.close();
                throw e;
            }
            feed = Arrays.copyOfRange(prompt, Math.max(0, prompt.length - ctx), prompt.length);
            out = new int[settings.tokens()];
        }

        /** Every requested token is drawn. */
        public boolean done() { return produced == out.length; }

        /** The tokens generated so far (all of them once {@link #done()}). */
        public int[] generated() { return Arrays.copyOf(out, produced); }

        public Settings settings() { return s; }

        /** The next token to run, at {@link #pos}; rebuilds the cache first when the context is full. */
        private int next() {
            if (pos == ctx) {   // full: refeed the newest half, then what was pending, from position 0
                int keep = ctx / 2;
                int[] rest = Arrays.copyOfRange(feed, fed, feed.length);
                feed = new int[keep + rest.length];
                System.arraycopy(window, ctx - keep, feed, 0, keep);
                System.arraycopy(rest, 0, feed, keep, rest.length);
                fed = 0;
                pos = 0;
            }
            return feed[fed++];
        }

        /** After a step: when nothing is left to feed, draws the next token from these logits. */
        private void accept(float[] logits, int row) {
            if (fed < feed.length) return;
            float[] l = Arrays.copyOfRange(logits, row * vocab, (row + 1) * vocab);
            LatentNative.get().randUniform(u, 1, s.seed(), produced);
            int t = pick(l, s.temperature(), s.topK(), s.topP(), u.get(JAVA_FLOAT, 0));
            out[produced++] = t;
            if (!done()) { feed = new int[] {t}; fed = 0; }
        }

        /** Frees the KV cache. */
        @Override
        public void close() { scope.close(); }
    }

    /** Generates {@code s.tokens()} tokens after {@code prompt} on the calling thread. */
    public int[] generate(int[] prompt, Settings s) {
        try (Sequence q = new Sequence(prompt, s)) {
            List<Sequence> one = List.of(q);
            while (!q.done()) step(one);
            return q.generated();
        }
    }

    /** As {@link #generate(int[], Settings)}, handing each token to {@code onToken} as soon as it is drawn (streaming). */
    public void generate(int[] prompt, Settings s, java.util.function.IntConsumer onToken) {
        try (Sequence q = new Sequence(prompt, s)) {
            List<Sequence> one = List.of(q);
            while (!q.done()) {
                int before = q.produced;
                step(one);
                for (int i = before; i < q.produced; i++) onToken.accept(q.out[i]);
            }
        }
    }

    /** Advances every sequence (none of them done) by one position, as one batch. */
    public void step(List<Sequence> seqs) {
        int b = seqs.size();
        if (b == 0) return;
        try (Graph g = Graph.inference()) {
            Scope sc = g.scope();
            MemorySegment ids = sc.allocateUninitialized(4L * b), pids = sc.allocateUninitialized(4L * b);
            int[] at = new int[b];
            for (int r = 0; r < b; r++) {
                Sequence q = seqs.get(r);
                if (q.done()) throw new IllegalArgumentException("sequence " + r + " is already done");
                int t = q.next();
                at[r] = q.pos;
                q.window[q.pos] = t;
                ids.setAtIndex(JAVA_INT, r, t);
                pids.setAtIndex(JAVA_INT, r, q.pos);
            }
            Var x = F.add(m.wte.forward(ids, b), m.wpe.forward(pids, b));                      // (B, C)
            float scale = (float) (1.0 / Math.sqrt(hs));
            for (int l = 0; l < layers; l++) {
                Gpt.Block blk = m.blocks.get(l);
                float[] qkv = blk.attn.attn.forward(blk.ln1.forward(x)).value().toArray();     // (B, 3C)
                Tensor y = g.empty(b, c);
                MemorySegment ys = y.segment();
                for (int r = 0; r < b; r++) {
                    Sequence q = seqs.get(r);
                    MemorySegment k = q.kc[l], v = q.vc[l];
                    int p = at[r], o3 = r * 3 * c;
                    MemorySegment.copy(qkv, o3 + c, k, JAVA_FLOAT, (long) p * c * 4, c);
                    MemorySegment.copy(qkv, o3 + 2 * c, v, JAVA_FLOAT, (long) p * c * 4, c);
                    attend(qkv, o3, k, v, p, scale, ys, (long) r * c);
                }
                x = F.add(x, blk.attn.proj.forward(Var.constant(y)));
                x = F.add(x, blk.mlp.forward(blk.ln2.forward(x)));
            }
            x = m.lnF.forward(x);
            Var logits = m.head == null ? F.matmul(x, F.transpose(m.wte.weight)) : m.head.forward(x);   // (B, V)
            float[] lg = logits.value().toArray();
            for (int r = 0; r < b; r++) {
                Sequence q = seqs.get(r);
                q.pos++;
                q.accept(lg, r);
            }
        }
    }

    /** One query row (at qkv[qo..]) against cache rows 0..p of k, v, per head; writes y at element yo. */
    private void attend(float[] qkv, int qo, MemorySegment k, MemorySegment v, int p, float scale, MemorySegment y, long yo) {
        double[] sc = new double[p + 1];
        for (int h = 0; h < heads; h++) {
            int o = h * hs;
            double mx = Double.NEGATIVE_INFINITY;
            for (int j = 0; j <= p; j++) {
                float d = 0;
                long kb = (long) j * c + o;
                for (int e = 0; e < hs; e++) d += qkv[qo + o + e] * k.getAtIndex(JAVA_FLOAT, kb + e);
                sc[j] = d * scale;
                mx = Math.max(mx, sc[j]);
            }
            double sum = 0;
            for (int j = 0; j <= p; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
            for (int e = 0; e < hs; e++) {
                double acc = 0;
                for (int j = 0; j <= p; j++) acc += sc[j] * v.getAtIndex(JAVA_FLOAT, (long) j * c + o + e);
                y.setAtIndex(JAVA_FLOAT, yo + o + e, (float) (acc / sum));
            }
        }
    }

    /**
     * Token ids by descending logit, ties by ascending id (Float.compare's order: -0 < 0, NaN first). Sorted
     * as primitive keys (order-preserving float bits, inverted, above the id): the order of a boxed
     * comparator sort without its boxing, which cost as much as a decode step per drawn token.
     */
    static int[] order(float[] logits) {
        int v = logits.length;
        long[] keys = new long[v];
        for (int i = 0; i < v; i++) {
            int b = Float.floatToIntBits(logits[i]);
            b ^= (b >> 31) & 0x7fffffff;          // monotone in Float.compare order, as a signed int
            keys[i] = ((long) ~b << 32) | i;      // ~b: descending; low half: the id, ascending on ties
        }
        Arrays.sort(keys);
        int[] order = new int[v];
        for (int i = 0; i < v; i++) order[i] = (int) keys[i];
        return order;
    }

    /** Draws from softmax(logits / T) restricted to the top-k and the top-p nucleus, with uniform u. */
    public static int pick(float[] logits, double temperature, int topK, double topP, float u) {
        int v = logits.length;
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
            return best;
        }
        int[] order = order(logits);
        int keep = topK > 0 ? Math.min(topK, v) : v;
        double[] p = new double[keep];
        double max = logits[order[0]], sum = 0;
        for (int i = 0; i < keep; i++) { p[i] = Math.exp((logits[order[i]] - max) / temperature); sum += p[i]; }
        double cum = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            cum += p[i] / sum;
            if (cum >= topP) { nucleus = i + 1; break; }
        }
        double total = 0;
        for (int i = 0; i < nucleus; i++) total += p[i];
        double r = u * total, acc = 0;
        for (int i = 0; i < nucleus; i++) {
            acc += p[i];
            if (r < acc) return order[i];
        }
        return order[nucleus - 1];
    }
}
