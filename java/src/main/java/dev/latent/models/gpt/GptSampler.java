package dev.latent.models.gpt;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Autoregressive sampling with a KV cache: each new token runs one position through the blocks, appending
 * its keys and values to the cache and attending over what is there, so N tokens cost N single-position
 * passes (O(N) forwards, not O(N^2)). When the context fills, the cache is rebuilt from the last half of
 * it (absolute learned positions forbid sliding in place). Token draws use Philox (seed, stream = index):
 * the same seed and prompt give the same text. Not thread-safe: one sampler per request.
 */
public final class GptSampler {
    private final Gpt m;
    private final int layers, heads, hs, c, ctx;
    private final float[][] kc, vc;      // per layer: (ctx, C), head h at columns [h*HS, (h+1)*HS)
    private final int[] window;          // the tokens currently in the cache
    private int pos;

    public GptSampler(Gpt model) {
        m = model;
        GptConfig cfg = model.cfg;
        layers = cfg.layers(); heads = cfg.heads(); hs = cfg.headSize(); c = cfg.dim(); ctx = cfg.context();
        kc = new float[layers][ctx * c];
        vc = new float[layers][ctx * c];
        window = new int[ctx];
    }

    /** Settings of one generation. topK <= 0 and topP >= 1 disable those filters; temperature 0 is greedy. */
    public record Settings(int tokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            if (tokens < 0) throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
            if (!(temperature >= 0) || Double.isInfinite(temperature)) throw new IllegalArgumentException("temperature must be finite and >= 0, got " + temperature);
            if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
    }

    /** Continues {@code prompt} (token ids, at least one) by {@code s.tokens()} tokens; returns the new ones. */
    public int[] generate(int[] prompt, Settings s) {
        if (prompt.length == 0) throw new IllegalArgumentException("prompt must hold at least one token");
        for (int id : prompt)
            if (id < 0 || id >= m.cfg.vocab()) throw new IllegalArgumentException("prompt token " + id + " outside [0, " + m.cfg.vocab() + ")");
        pos = 0;
        float[] logits = null;
        int start = Math.max(0, prompt.length - ctx);
        for (int i = start; i < prompt.length; i++) logits = push(prompt[i]);
        int[] out = new int[s.tokens()];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment u = a.allocate(JAVA_FLOAT, 1);
            for (int i = 0; i < out.length; i++) {
                LatentNative.get().randUniform(u, 1, s.seed(), i);
                out[i] = pick(logits, s, u.get(JAVA_FLOAT, 0));
                if (i + 1 < out.length) logits = push(out[i]);
            }
        }
        return out;
    }

    /** Draws from softmax(logits / T) restricted to the top-k and the top-p nucleus, with uniform u. */
    static int pick(float[] logits, Settings s, float u) {
        int v = logits.length;
        if (s.temperature() == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
            return best;
        }
        Integer[] order = new Integer[v];
        for (int i = 0; i < v; i++) order[i] = i;
        Arrays.sort(order, (x, y) -> Float.compare(logits[y], logits[x]) != 0 ? Float.compare(logits[y], logits[x]) : Integer.compare(x, y));
        int keep = s.topK() > 0 ? Math.min(s.topK(), v) : v;
        double[] p = new double[keep];
        double max = logits[order[0]], sum = 0;
        for (int i = 0; i < keep; i++) { p[i] = Math.exp((logits[order[i]] - max) / s.temperature()); sum += p[i]; }
        double cum = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            cum += p[i] / sum;
            if (cum >= s.topP()) { nucleus = i + 1; break; }
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

    /** Appends one token at the next position; returns the logits for the position after it. */
    private float[] push(int token) {
        if (pos == ctx) {   // full: keep the newest half, recompute its cache at positions 0..
            int keep = ctx / 2;
            int[] last = Arrays.copyOfRange(window, ctx - keep, ctx);
            pos = 0;
            for (int t : last) step(t);
        }
        return step(token);
    }

    private float[] step(int token) {
        window[pos] = token;
        try (Graph g = Graph.inference(); Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(JAVA_INT, 1);
            id.set(JAVA_INT, 0, token);
            Var x = F.addRows(m.wte.forward(id, 1), Var.constant(m.wpe.weight.value().slice(0, pos, pos + 1)));
            for (int l = 0; l < layers; l++) {
                Gpt.Block b = m.blocks.get(l);
                float[] qkv = b.attn.attn.forward(b.ln1.forward(x)).value().toArray();   // (1, 3C)
                System.arraycopy(qkv, c, kc[l], pos * c, c);
                System.arraycopy(qkv, 2 * c, vc[l], pos * c, c);
                Tensor y = g.zeros(1, c);
                MemorySegment ys = y.segment();
                float scale = (float) (1.0 / Math.sqrt(hs));
                double[] sc = new double[pos + 1];
                for (int h = 0; h < heads; h++) {
                    int o = h * hs;
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= pos; j++) {
                        float d = 0;
                        for (int e = 0; e < hs; e++) d += qkv[o + e] * kc[l][j * c + o + e];
                        sc[j] = d * scale;
                        mx = Math.max(mx, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= pos; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
                    for (int e = 0; e < hs; e++) {
                        double acc = 0;
                        for (int j = 0; j <= pos; j++) acc += sc[j] * vc[l][j * c + o + e];
                        ys.setAtIndex(JAVA_FLOAT, o + e, (float) (acc / sum));
                    }
                }
                x = F.add(x, b.attn.proj.forward(Var.constant(y)));
                x = F.add(x, b.mlp.forward(b.ln2.forward(x)));
            }
            x = m.lnF.forward(x);
            Var logits = m.head == null ? F.matmul(x, F.transpose(m.wte.weight)) : m.head.forward(x);
            pos++;
            return logits.value().toArray();
        }
    }
}
