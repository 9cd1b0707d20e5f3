package dev.latent.models.pixelcnn;

import dev.latent.nn.MaskedConv2d;

import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Pixel-by-pixel sampling of a {@link GatedPixelCnn}, on the CPU, from a copy of its weights.
 *
 * <p>Two samplers that give the same images bit for bit for the same seed:
 * <ul>
 *   <li>{@link Mode#NAIVE}: before each pixel, the whole network runs on the whole image (the pixels not sampled
 *       yet are 0), H W full forward passes per image.</li>
 *   <li>{@link Mode#CACHED}: each layer's output at each position is computed once and kept. When row i starts, the
 *       vertical stack runs on row i only (its inputs, the rows above, are final and cached); for pixel (i, j) the
 *       horizontal stack and the head run at position (i, j) only (their inputs left of j are cached and final).
 *       That is one forward pass's work per image in all, instead of H W passes.</li>
 * </ul>
 * Both evaluate every output position with the same code in the same order of operations, and every position's
 * value depends only on the pixels before it in raster order (the masks), so the logits each sampler sees at
 * (i, j) are the same floats, and so are the draws. The arithmetic is plain Java floats (not the native kernels,
 * whose blocking and Winograd paths depend on the tensor sizes, so a one-row convolution would not give a full
 * image's bits); its logits agree with {@link GatedPixelCnn#logits} to float rounding (tested).
 *
 * <p>Image {@code id}'s draws come from a {@link SplittableRandom} keyed by (seed, id), one uniform per pixel in
 * raster order: an image does not depend on which other images are sampled with it. Images run in parallel.
 * Instances are immutable after construction and may be shared between threads.
 */
public final class PixelCnnSampler {
    /** The two samplers: the whole image recomputed per pixel, or only what changes (see the class comment). */
    public enum Mode { NAIVE, CACHED }

    private final int c, layers, hd;
    private final BlockW[] blocks;
    private final float[] w1, b1, w2, b2;

    /** One block's weights, laid out [out][tap][in] for the masked convs and [out][in] for the 1x1 ones. */
    private static final class BlockW {
        int cin, nv, nh;
        int[] vdy, vdx, hdx;
        float[] vw, vb, hw, hb, v2w, v2b, ow, ob;
        boolean residual;
    }

    /** Copies {@code model}'s weights (from any device) to the CPU. */
    public PixelCnnSampler(GatedPixelCnn model) {
        c = model.arch.channels();
        layers = model.arch.layers();
        hd = model.arch.head();
        blocks = new BlockW[layers];
        for (int l = 0; l < layers; l++) {
            GatedPixelCnn.Block b = model.blocks.get(l);
            BlockW w = new BlockW();
            w.cin = l == 0 ? 1 : c;
            w.residual = b.residual;
            int[][] vt = taps(b.vconv);
            w.vdy = vt[0]; w.vdx = vt[1]; w.nv = vt[0].length;
            w.vw = relayout(b.vconv, vt, 2 * c, w.cin);
            w.vb = GatedPixelCnn.floats(b.vconv.bias);
            int[][] ht = taps(b.hconv);
            w.hdx = ht[1]; w.nh = ht[1].length;
            w.hw = relayout(b.hconv, ht, 2 * c, w.cin);
            w.hb = GatedPixelCnn.floats(b.hconv.bias);
            w.v2w = GatedPixelCnn.floats(b.v2h.weight);
            w.v2b = GatedPixelCnn.floats(b.v2h.bias);
            w.ow = GatedPixelCnn.floats(b.hout.weight);
            w.ob = GatedPixelCnn.floats(b.hout.bias);
            blocks[l] = w;
        }
        w1 = GatedPixelCnn.floats(model.head1.weight);
        b1 = GatedPixelCnn.floats(model.head1.bias);
        w2 = GatedPixelCnn.floats(model.head2.weight);
        b2 = GatedPixelCnn.floats(model.head2.bias);
    }

    /** The taps a mask keeps (same for every channel pair with one group), as offsets (dy, dx) from the centre. */
    private static int[][] taps(MaskedConv2d m) {
        if (m.groups != 1) throw new IllegalArgumentException("PixelCnnSampler: grey images (one channel group) only");
        float[] mask = m.mask().toArray();
        int k = m.kernel, r = m.shape == MaskedConv2d.Shape.HORIZONTAL ? 1 : k, cr = r / 2, cc = k / 2, n = 0;
        int[] dy = new int[r * k], dx = new int[r * k];
        for (int y = 0; y < r; y++)
            for (int x = 0; x < k; x++)
                if (mask[y * k + x] != 0f) { dy[n] = y - cr; dx[n] = x - cc; n++; }
        return new int[][] {java.util.Arrays.copyOf(dy, n), java.util.Arrays.copyOf(dx, n)};
    }

    private static float[] relayout(MaskedConv2d m, int[][] t, int out, int in) {
        float[] w = m.weight.value().toArray();
        int k = m.kernel, r = m.shape == MaskedConv2d.Shape.HORIZONTAL ? 1 : k, cr = r / 2, cc = k / 2, n = t[0].length;
        float[] o = new float[out * n * in];
        for (int oc = 0; oc < out; oc++)
            for (int ti = 0; ti < n; ti++)
                for (int ic = 0; ic < in; ic++)
                    o[(oc * n + ti) * in + ic] = w[((oc * in + ic) * r + t[0][ti] + cr) * k + t[1][ti] + cc];
        return o;
    }

    /** One image's activations (position-major: [i W + j][channel]). */
    private final class State {
        final int h, w;
        final float[] img;
        final float[][] vout, v2h, hout;
        final float[] tmp, tmp2, g, logits;

        State(int h, int w) {
            this.h = h; this.w = w;
            img = new float[h * w];
            vout = new float[layers][h * w * c];
            v2h = new float[layers][h * w * 2 * c];
            hout = new float[layers][h * w * c];
            tmp = new float[2 * c]; tmp2 = new float[2 * c]; g = new float[Math.max(c, hd)]; logits = new float[GatedPixelCnn.LEVELS];
        }

        float[] vin(int l) { return l == 0 ? img : vout[l - 1]; }
        float[] hin(int l) { return l == 0 ? img : hout[l - 1]; }

        /** Vertical stack of block l at (i, j): vout and the 1x1 link v2h. */
        void vertical(int l, int i, int j) {
            BlockW b = blocks[l];
            float[] in = vin(l), vp = tmp;
            int cin = b.cin;
            for (int o = 0; o < 2 * c; o++) {
                float acc = b.vb[o];
                for (int t = 0; t < b.nv; t++) {
                    int y = i + b.vdy[t], x = j + b.vdx[t];
                    if (y < 0 || y >= h || x < 0 || x >= w) continue;
                    int wo = (o * b.nv + t) * cin, xo = (y * w + x) * cin;
                    for (int ci = 0; ci < cin; ci++) acc += b.vw[wo + ci] * in[xo + ci];
                }
                vp[o] = acc;
            }
            int pos = i * w + j;
            gate(vp, vout[l], pos * c);
            float[] link = v2h[l];
            for (int o = 0; o < 2 * c; o++) {
                float acc = b.v2b[o];
                for (int ci = 0; ci < 2 * c; ci++) acc += b.v2w[o * 2 * c + ci] * vp[ci];
                link[pos * 2 * c + o] = acc;
            }
        }

        /** Horizontal stack of block l at (i, j). */
        void horizontal(int l, int i, int j) {
            BlockW b = blocks[l];
            float[] in = hin(l), hp = tmp2;
            int cin = b.cin, pos = i * w + j;
            for (int o = 0; o < 2 * c; o++) {
                float acc = b.hb[o];
                for (int t = 0; t < b.nh; t++) {
                    int x = j + b.hdx[t];
                    if (x < 0 || x >= w) continue;
                    int wo = (o * b.nh + t) * cin, xo = (i * w + x) * cin;
                    for (int ci = 0; ci < cin; ci++) acc += b.hw[wo + ci] * in[xo + ci];
                }
                hp[o] = acc + v2h[l][pos * 2 * c + o];
            }
            gate(hp, g, 0);
            float[] out = hout[l];
            for (int o = 0; o < c; o++) {
                float acc = b.ob[o];
                for (int ci = 0; ci < c; ci++) acc += b.ow[o * c + ci] * g[ci];
                out[pos * c + o] = b.residual ? acc + in[pos * c + o] : acc;
            }
        }

        /** The head's 256 logits at (i, j), into {@link #logits}. */
        void head(int i, int j) {
            float[] hl = hout[layers - 1];
            int off = (i * w + j) * c;
            for (int o = 0; o < hd; o++) {
                float acc = b1[o];
                for (int ci = 0; ci < c; ci++) acc += w1[o * c + ci] * Math.max(hl[off + ci], 0f);
                g[o] = Math.max(acc, 0f);
            }
            for (int o = 0; o < GatedPixelCnn.LEVELS; o++) {
                float acc = b2[o];
                for (int ci = 0; ci < hd; ci++) acc += w2[o * hd + ci] * g[ci];
                logits[o] = acc;
            }
        }

        /** The whole network at every position (the naive sampler's pass; the head's logits are left at (i, j)). */
        void full(int si, int sj) {
            for (int l = 0; l < layers; l++) {
                for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) vertical(l, i, j);
                for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) horizontal(l, i, j);
            }
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    if (i != si || j != sj) head(i, j);
            head(si, sj);
        }
    }

    private void gate(float[] pre, float[] out, int off) {
        for (int k = 0; k < c; k++) {
            float a = (float) Math.tanh(pre[k]), s = (float) (1.0 / (1.0 + Math.exp(-pre[c + k])));
            out[off + k] = a * s;
        }
    }

    /** A draw from softmax(logits) with the uniform {@code u} in [0, 1): inverse CDF in double. */
    static int draw(float[] logits, double u) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) max = Math.max(max, v);
        double sum = 0;
        for (float v : logits) sum += Math.exp(v - max);
        double target = u * sum, acc = 0;
        for (int k = 0; k < logits.length; k++) {
            acc += Math.exp(logits[k] - max);
            if (acc > target) return k;
        }
        return logits.length - 1;
    }

    static SplittableRandom rng(long seed, long id) { return new SplittableRandom(seed * 0x9E3779B97F4A7C15L + id); }

    /** {@code n} images of h x w (8-bit grey, row-major, image after image), images 0 .. n-1 of {@code seed}. */
    public byte[] sample(int n, int h, int w, long seed, Mode mode) { return sample(n, h, w, seed, mode, h * w); }

    /**
     * As {@link #sample(int, int, int, long, Mode)} but stopping after the first {@code pixels} pixels of each
     * image in raster order (the rest stay 0): the naive sampler's cost per pixel is constant, so timing a few
     * pixels of it measures it without hours of waiting.
     */
    public byte[] sample(int n, int h, int w, long seed, Mode mode, int pixels) {
        if (n < 0 || h < 1 || w < 1 || (long) n * h * w > Integer.MAX_VALUE)
            throw new IllegalArgumentException("PixelCnnSampler: bad size " + n + " x " + h + " x " + w);
        if (pixels < 0 || pixels > h * w) throw new IllegalArgumentException("PixelCnnSampler: pixels " + pixels + " outside [0, " + h * w + "]");
        if (mode == null) throw new IllegalArgumentException("PixelCnnSampler: mode is null");
        byte[] out = new byte[n * h * w];
        IntStream.range(0, n).parallel().forEach(id -> {
            State s = new State(h, w);
            SplittableRandom r = rng(seed, id);
            for (int p = 0; p < pixels; p++) {
                int i = p / w, j = p % w;
                if (mode == Mode.NAIVE) s.full(i, j);
                else {
                    if (j == 0) for (int l = 0; l < layers; l++) for (int x = 0; x < w; x++) s.vertical(l, i, x);
                    for (int l = 0; l < layers; l++) s.horizontal(l, i, j);
                    s.head(i, j);
                }
                int v = draw(s.logits, r.nextDouble());
                s.img[p] = v / 255f;
                out[id * h * w + p] = (byte) v;
            }
        });
        return out;
    }

    /** The logits (h w, 256) of one image (8-bit grey, row-major) by this class's arithmetic: for tests. */
    public float[] logits(byte[] image, int h, int w) {
        if (image.length != h * w) throw new IllegalArgumentException("PixelCnnSampler: " + image.length + " pixels for " + h + " x " + w);
        State s = new State(h, w);
        for (int p = 0; p < h * w; p++) s.img[p] = (image[p] & 0xff) / 255f;
        float[] out = new float[h * w * GatedPixelCnn.LEVELS];
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) s.vertical(l, i, j);
            for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) s.horizontal(l, i, j);
        }
        for (int p = 0; p < h * w; p++) {
            s.head(p / w, p % w);
            System.arraycopy(s.logits, 0, out, p * GatedPixelCnn.LEVELS, GatedPixelCnn.LEVELS);
        }
        return out;
    }

}
