package dev.latent.models.wavenet;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.nn.Init;
import dev.latent.nn.Module;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * A byte-level WaveNet (van den Oord et al. 2016): stacks of dilated causal convolutions ({@link F#conv1dCausal},
 * kernels/conv1d) with gated activations, residual and skip connections, and a 256-way softmax over the next byte.
 *
 * <pre>
 *   one-hot bytes (N, 256, T) -> causal conv K taps -> h (N, C, T)
 *   layer l (dilation d_l):  z = tanh(conv_f(h)) * sigmoid(conv_g(h))      (causal, K taps, dilation d_l)
 *                            h = h + res_l(z),  skip += skip_l(z)            (1x1 convs)
 *   logits = out2(relu(out1(relu(skip))))  (N, 256, T)                       (1x1 convs)
 * </pre>
 * Every convolution is causal, so logits at time t depend on bytes at times &lt;= t only and predict byte t + 1; the
 * model sees {@link #receptiveField()} bytes back. Parameters are named (checkpoint keys, {@link #namedParameters()}),
 * initialised as PyTorch's Conv1d (U(+-1/sqrt(fan in))) from (seed, stream); all run on the CPU library or, after
 * {@link #to(Scope, Device)}, on CUDA.
 * <p>Training: {@link #loss} gives the mean cross-entropy of a batch of byte windows; {@link WaveNetTrainer} is a
 * complete loop (AdamW, held-out evaluation). Sampling: {@link #sample} draws bytes one at a time, each from the
 * logits of the last {@link #receptiveField()} bytes (a full recomputation per byte, no incremental cache).
 */
public final class WaveNet implements Module {
    /** Bytes: the input one-hot width and the softmax size. */
    public static final int VOCAB = 256;

    /**
     * Shape of the network: residual channels, skip channels, the dilation of each gated layer (e.g. 1, 2, 4, ..., 2^9
     * repeated), the taps of every causal convolution.
     */
    public record Config(int channels, int skipChannels, int[] dilations, int kernel) {
        public Config {
            if (channels < 1 || skipChannels < 1) throw new IllegalArgumentException("WaveNet: channels and skipChannels must be >= 1");
            if (kernel < 1) throw new IllegalArgumentException("WaveNet: kernel must be >= 1, got " + kernel);
            if (dilations == null || dilations.length == 0) throw new IllegalArgumentException("WaveNet: at least one layer (dilation) needed");
            for (int d : dilations) if (d < 1) throw new IllegalArgumentException("WaveNet: dilations must be >= 1, got " + Arrays.toString(dilations));
            dilations = dilations.clone();
        }

        /** {@code stacks} repetitions of dilations 1, 2, 4, ..., 2^(perStack - 1). */
        public static Config doubling(int channels, int skipChannels, int stacks, int perStack, int kernel) {
            if (stacks < 1 || perStack < 1 || perStack > 30) throw new IllegalArgumentException("WaveNet: stacks >= 1 and 1 <= perStack <= 30 needed");
            int[] d = new int[stacks * perStack];
            for (int i = 0; i < d.length; i++) d[i] = 1 << (i % perStack);
            return new Config(channels, skipChannels, d, kernel);
        }

        @Override public int[] dilations() { return dilations.clone(); }

        @Override public String toString() {
            return "WaveNet.Config[channels=" + channels + ", skip=" + skipChannels + ", dilations=" + Arrays.toString(dilations) + ", kernel=" + kernel + "]";
        }
    }

    /** One gated residual layer's parameters. */
    private record Layer(int dilation, Var filterW, Var filterB, Var gateW, Var gateB, Var resW, Var resB, Var skipW, Var skipB) {}

    public final Config config;
    private final Var inW, inB, out1W, out1B, out2W, out2B;
    private final List<Layer> layers = new ArrayList<>();

    /** A freshly initialised network; parameters live in {@code scope}. */
    public WaveNet(Scope scope, Config config, long seed) {
        this.config = config;
        int c = config.channels(), s = config.skipChannels(), k = config.kernel();
        long[] stream = {0};
        inW = conv(scope, seed, stream, c, VOCAB, k);
        inB = bias(scope, seed, stream, c, (long) VOCAB * k);
        for (int d : config.dilations) {
            Var fw = conv(scope, seed, stream, c, c, k), fb = bias(scope, seed, stream, c, (long) c * k);
            Var gw = conv(scope, seed, stream, c, c, k), gb = bias(scope, seed, stream, c, (long) c * k);
            Var rw = conv(scope, seed, stream, c, c, 1), rb = bias(scope, seed, stream, c, c);
            Var sw = conv(scope, seed, stream, s, c, 1), sb = bias(scope, seed, stream, s, c);
            layers.add(new Layer(d, fw, fb, gw, gb, rw, rb, sw, sb));
        }
        out1W = conv(scope, seed, stream, s, s, 1);
        out1B = bias(scope, seed, stream, s, s);
        out2W = conv(scope, seed, stream, VOCAB, s, 1);
        out2B = bias(scope, seed, stream, VOCAB, s);
    }

    private static Var conv(Scope scope, long seed, long[] stream, long out, long in, long k) {
        return Var.param(Init.torchDefault(scope, seed, stream[0]++, in * k, out, in, k));
    }

    private static Var bias(Scope scope, long seed, long[] stream, long out, long fanIn) {
        return Var.param(Init.torchDefault(scope, seed, stream[0]++, fanIn, out));
    }

    /** How many bytes back an output sees: 1 + (K - 1) (1 + sum of the dilations). */
    public long receptiveField() {
        long sum = 1;
        for (int d : config.dilations) sum += d;
        return 1 + (long) (config.kernel() - 1) * sum;
    }

    /** Parameters named "in.weight", "layers.3.filter.weight", ..., "out2.bias". */
    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "in.weight", inW);
        out.put(prefix + "in.bias", inB);
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            String p = prefix + "layers." + i + ".";
            out.put(p + "filter.weight", l.filterW); out.put(p + "filter.bias", l.filterB);
            out.put(p + "gate.weight", l.gateW); out.put(p + "gate.bias", l.gateB);
            out.put(p + "res.weight", l.resW); out.put(p + "res.bias", l.resB);
            out.put(p + "skip.weight", l.skipW); out.put(p + "skip.bias", l.skipB);
        }
        out.put(prefix + "out1.weight", out1W);
        out.put(prefix + "out1.bias", out1B);
        out.put(prefix + "out2.weight", out2W);
        out.put(prefix + "out2.bias", out2B);
    }

    private Device device() { return inW.value().device(); }

    /** One-hot (N, 256, T) of bytes[off + n stride + t], t < T, in the current graph's scope on the model's device. */
    private Var oneHot(byte[] bytes, int[] offsets, int t) {
        int n = offsets.length;
        float[] v = new float[n * VOCAB * t];
        for (int b = 0; b < n; b++)
            for (int i = 0; i < t; i++) v[(b * VOCAB + (bytes[offsets[b] + i] & 0xff)) * t + i] = 1f;
        return Var.constant(Tensor.of(Graph.current().scope(), device(), v, n, VOCAB, t));
    }

    /**
     * Logits (N, 256, T) for the windows bytes[offsets[b] .. offsets[b] + t) (one batch item per offset): entry (b, v, i)
     * scores byte v as bytes[offsets[b] + i + 1]. Records on the current {@link Graph}.
     */
    public Var logits(byte[] bytes, int[] offsets, int t) {
        if (offsets.length == 0 || t < 1) throw new IllegalArgumentException("WaveNet.logits: at least one window of >= 1 byte needed");
        for (int off : offsets)
            if (off < 0 || (long) off + t > bytes.length)
                throw new IllegalArgumentException("WaveNet.logits: window [" + off + ", " + ((long) off + t) + ") outside the " + bytes.length + " bytes");
        return forward(oneHot(bytes, offsets, t));
    }

    /** The network on a one-hot (or any) input x (N, 256, T): logits (N, 256, T). */
    public Var forward(Var x) {
        Var h = F.conv1dCausal(x, inW, inB, 1);
        Var skip = null;
        for (Layer l : layers) {
            Var f = F.tanh(F.conv1dCausal(h, l.filterW, l.filterB, l.dilation));
            Var g = F.sigmoid(F.conv1dCausal(h, l.gateW, l.gateB, l.dilation));
            Var z = F.mul(f, g);
            h = F.add(h, F.conv1dCausal(z, l.resW, l.resB, 1));
            Var s = F.conv1dCausal(z, l.skipW, l.skipB, 1);
            skip = skip == null ? s : F.add(skip, s);
        }
        Var o = F.conv1dCausal(F.relu(skip), out1W, out1B, 1);
        return F.conv1dCausal(F.relu(o), out2W, out2B, 1);
    }

    /**
     * Mean cross-entropy (nats per byte) of predicting bytes[off + i + 1] from bytes[off .. off + i] for i &lt; t, over
     * every window: a scalar Var on the current graph (windows need t + 1 bytes). The (N T, 256) rows the loss reads are
     * the permute's fresh copy of the last convolution's output, read by nothing else (the permute's backward and the
     * convolution's read neither), so the gradient is written over them ({@link F#crossEntropyInPlace}): one
     * logits-sized buffer less per step, crossEntropy's bits (InPlaceLossTest).
     */
    public Var loss(byte[] bytes, int[] offsets, int t) {
        for (int off : offsets)
            if (off < 0 || (long) off + t + 1 > bytes.length)
                throw new IllegalArgumentException("WaveNet.loss: window [" + off + ", " + ((long) off + t + 1) + ") outside the " + bytes.length + " bytes");
        int n = offsets.length;
        Var logits = logits(bytes, offsets, t);
        Var rows = F.reshape(F.permute(logits, new long[] {n, VOCAB, t}, 0, 2, 1), (long) n * t, VOCAB);
        MemorySegment targets = Arena.ofAuto().allocate(JAVA_INT, (long) n * t);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < t; i++) targets.setAtIndex(JAVA_INT, (long) b * t + i, bytes[offsets[b] + i + 1] & 0xff);
        return F.crossEntropyInPlace(rows, targets);
    }

    /**
     * Continues {@code prompt} (at least one byte) by {@code count} bytes, each drawn from softmax(logits / temperature)
     * of the last {@link #receptiveField()} bytes (temperature 0: the most likely byte); {@code seed} fixes the draws.
     * Returns the new bytes only.
     */
    public byte[] sample(byte[] prompt, int count, double temperature, long seed) {
        if (prompt.length == 0) throw new IllegalArgumentException("WaveNet.sample: the prompt needs at least one byte");
        if (count < 0 || !(temperature >= 0) || Double.isInfinite(temperature))
            throw new IllegalArgumentException("WaveNet.sample: count >= 0 and a finite temperature >= 0 needed");
        int rf = (int) Math.min(receptiveField(), Integer.MAX_VALUE - 8);
        byte[] buf = Arrays.copyOf(prompt, prompt.length + count);
        SplittableRandom rng = new SplittableRandom(seed);
        for (int i = 0; i < count; i++) {
            int end = prompt.length + i, start = Math.max(0, end - rf);
            float[] last = new float[VOCAB];
            try (Graph g = Graph.inference()) {
                float[] lg = logits(buf, new int[] {start}, end - start).value().toArray();   // (1, 256, T)
                int t = end - start;
                for (int v = 0; v < VOCAB; v++) last[v] = lg[v * t + t - 1];
            }
            buf[end] = (byte) draw(last, temperature, rng);
        }
        return Arrays.copyOfRange(buf, prompt.length, buf.length);
    }

    static int draw(float[] logits, double temperature, SplittableRandom rng) {
        int best = 0;
        for (int v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
        if (temperature == 0) return best;
        double[] p = new double[logits.length];
        double sum = 0;
        for (int v = 0; v < p.length; v++) sum += p[v] = Math.exp((logits[v] - logits[best]) / temperature);
        double u = rng.nextDouble() * sum;
        for (int v = 0; v < p.length; v++) if ((u -= p[v]) < 0) return v;
        return best;
    }
}
