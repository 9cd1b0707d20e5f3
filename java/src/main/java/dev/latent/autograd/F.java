package dev.latent.autograd;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Conv;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.DoubleUnaryOperator;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Differentiable ops. Each forward makes one or two kernel calls into the current {@link Graph}'s scope
 * and records a backward rule beside it. Rules are written with these same ops where that is possible, so
 * gradients of gradients work (add, scale, mul, matmul, transpose, reshape, permute, addRows, sumRows,
 * gelu); rules of the fused kernels (layerNorm, attention, cross-entropy, embedding) call their native
 * backward and refuse a second differentiation with a clear message.
 * Devices: an op's outputs live on its inputs' device, and every op here runs on CUDA tensors: through a kernel, a
 * composition of kernels (sum, rowSum, broadcasts, addScalar), or, for small or rare tensors (the pointwise ops, diag,
 * free bits, BatchNorm's eval-mode backward, GELU's second derivative), explicit copies to the host and back that
 * compute the CPU's bits (docs/cuda.md).
 */
public final class F {
    private F() {}

    private static Graph g() { return Graph.current(); }

    private static Var rec(Tensor out, String op, Var[] in, Var.Backward rule) { return g().record(out, op, in, rule); }

    private static Var[] of(Var... v) { return v; }

    /** Whether a backward rule should compute this input's gradient (requires it and not frozen in this graph). */
    private static boolean wants(Var v) { return v != null && v.requiresGrad && !g().frozen.contains(v); }

    private static void sameShape(String op, Var a, Var b) {
        if (!Arrays.equals(a.value.shape(), b.value.shape()))
            throw new IllegalArgumentException(op + ": shapes differ: " + a.value + " vs " + b.value);
    }

    private static void firstOrderOnly(String op) {
        if (g().recording)
            throw new UnsupportedOperationException(op + " has no differentiable backward yet: double backward through it is not supported");
    }

    // ---- arithmetic ----

    public static Var add(Var a, Var b) {
        sameShape("add", a, b);
        Tensor out = Kernels.contiguous(g().scope, a.value);
        Kernels.axpby(1f, b.value.isContiguous() ? b.value : Kernels.contiguous(g().scope, b.value), 1f, out);
        return rec(out, "add", of(a, b), gr -> of(gr, gr));
    }

    public static Var scale(Var a, float s) {
        Tensor out = g().empty(a.value.device(), a.value.shape());
        Kernels.axpby(s, a.value.isContiguous() ? a.value : Kernels.contiguous(g().scope, a.value), 0f, out);
        return rec(out, "scale", of(a), gr -> of(scale(gr, s)));
    }

    public static Var mul(Var a, Var b) {
        sameShape("mul", a, b);
        Tensor out = g().empty(a.value.device(), a.value.shape());
        Kernels.mul(dense(a), dense(b), out);
        return rec(out, "mul", of(a, b), gr -> of(mul(gr, b), mul(gr, a)));
    }

    private static Tensor dense(Var a) { return a.value.isContiguous() ? a.value : Kernels.contiguous(g().scope, a.value); }

    // ---- views and layout ----

    /** 2-D transpose: a view (no copy); GEMM takes it as a transpose flag. */
    public static Var transpose(Var a) {
        if (a.value.rank() != 2) throw new IllegalArgumentException("transpose: 2-D only, got " + a.value);
        return rec(a.value.transpose(0, 1), "transpose", of(a), gr -> of(transpose(gr)));
    }

    /** A view when contiguous, else a copy. */
    public static Var reshape(Var a, long... shape) {
        long[] from = a.value.shape();
        return rec(dense(a).reshape(shape), "reshape", of(a), gr -> of(reshape(gr, from)));
    }

    /** Reshape {@code a} to {@code view}, permute its axes by {@code perm}, and copy to a contiguous tensor. */
    public static Var permute(Var a, long[] view, int... perm) {
        Tensor v = dense(a).reshape(view);
        Tensor p = v;
        int[] inv = new int[perm.length];
        // Build the permuted view by successive transposes: selection-sort the axes into place.
        int[] cur = new int[perm.length];
        for (int i = 0; i < cur.length; i++) cur[i] = i;
        for (int i = 0; i < perm.length; i++) {
            int j = i;
            while (cur[j] != perm[i]) j++;
            if (j != i) {
                p = p.transpose(i, j);
                int t = cur[i]; cur[i] = cur[j]; cur[j] = t;
            }
            inv[perm[i]] = i;
        }
        Tensor out = Kernels.contiguous(g().scope, p);
        long[] outShape = out.shape(), from = a.value.shape();
        return rec(out, "permute", of(a), gr -> of(reshape(permute(gr, outShape, inv), from)));
    }

    // ---- matmul and broadcasting ----

    /** (M, K) @ (K, N); either operand may be a transposed view. */
    public static Var matmul(Var a, Var b) {
        if (a.value.rank() != 2 || b.value.rank() != 2) throw new IllegalArgumentException("matmul: 2-D operands, got " + a.value + " @ " + b.value);
        Tensor out = g().empty(a.value.device(), a.value.size(0), b.value.size(1));
        Gemm.matmul(a.value, b.value, out, 1f, 0f);
        return rec(out, "matmul", of(a, b), gr -> of(
                a.requiresGrad ? matmul(gr, transpose(b)) : null,
                b.requiresGrad ? matmul(transpose(a), gr) : null));
    }

    /** y[i, :] = x[i, :] + rows[i % P, :]: bias (P = 1) and position (P = T) adds. */
    public static Var addRows(Var x, Var rows) {
        Tensor out = g().empty(x.value.device(), x.value.shape());
        Kernels.addRows(dense(x), dense(rows), out);
        long[] rs = rows.value.shape();
        return rec(out, "addRows", of(x, rows), gr -> of(gr, rows.requiresGrad ? sumRows(gr, rs) : null));
    }

    /** out[i % P, :] = sum over i of x[i, :], with out of {@code shape} (P, C). */
    public static Var sumRows(Var x, long... shape) {
        Tensor out = g().zeros(x.value.device(), shape);
        Kernels.sumRows(dense(x), out);
        long[] xs = x.value.shape();
        return rec(out, "sumRows", of(x), gr -> of(addRows(constantZeros(x.value.device(), xs), gr)));
    }

    private static Var constantZeros(Device device, long[] shape) { return Var.constant(g().zeros(device, shape)); }

    /**
     * x W^T + b for x (N, in), W (out, in), b (out): PyTorch's nn.Linear. Its own op (not matmul of a
     * transpose) so that dW = dy^T x comes out contiguous in W's layout, as the optimizer wants it.
     */
    public static Var linear(Var x, Var w, Var b) {
        if (x.value.rank() != 2 || w.value.rank() != 2) throw new IllegalArgumentException("linear: x (N, in) and W (out, in), got " + x.value + ", " + w.value);
        long outF = w.value.size(0);
        if (b != null && b.value.numel() != outF) throw new IllegalArgumentException("linear: bias " + b.value + " for " + outF + " outputs");
        Tensor out = g().empty(x.value.device(), x.value.size(0), outF);
        Gemm.matmul(x.value, w.value.transpose(0, 1), out, 1f, 0f);
        if (b != null) Kernels.addRows(out, dense(b).reshape(1, outF), out);   // bias in place: no second activation
        return rec(out, "linear", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx = x.requiresGrad ? matmul(gr, w) : null, dw = wants(w) ? matmul(transpose(gr), x) : null;
            if (b == null) return of(dx, dw);
            return of(dx, dw, wants(b) ? reshape(sumRows(gr, 1, outF), outF) : null);
        });
    }

    // ---- fused kernels ----

    /** Exact (erf) GELU. */
    public static Var gelu(Var x) {
        Tensor out = g().empty(x.value.device(), x.value.shape());
        Kernels.gelu(dense(x), out);
        return rec(out, "gelu", of(x), gr -> of(geluBackward(x, gr)));
    }

    /** dx = dy * gelu'(x), differentiable in both (gelu'' = phi(x) (2 - x^2)). */
    static Var geluBackward(Var x, Var dy) {
        Tensor out = g().empty(x.value.device(), x.value.shape());
        Kernels.geluBackward(dense(x), dense(dy), out);
        return rec(out, "geluBackward", of(x, dy), gr -> {
            Device dev = x.value.device();
            if (dev != Device.CPU) {   /* gelu'' from an explicit copy of x (the CPU's formula), gelu' by the kernel */
                float[] xs = dense(x).toArray(), s2 = new float[xs.length], one = new float[xs.length];
                for (int i = 0; i < xs.length; i++) {
                    double v = xs[i], phi = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
                    s2[i] = (float) (phi * (2 - v * v));
                    one[i] = 1f;
                }
                Tensor d1 = g().empty(dev, x.value.shape());
                Kernels.geluBackward(dense(x), Tensor.of(g().scope, dev, one, x.value.shape()), d1);
                return of(mul(mul(gr, dy), Var.constant(Tensor.of(g().scope, dev, s2, x.value.shape()))), mul(gr, Var.constant(d1)));
            }
            Tensor d2 = g().zeros(x.value.shape()), d1 = g().zeros(x.value.shape());
            MemorySegment xs = dense(x).segment(), s2 = d2.segment(), s1 = d1.segment();
            for (long i = 0; i < x.value.numel(); i++) {
                double v = xs.getAtIndex(JAVA_FLOAT, i), phi = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
                s2.setAtIndex(JAVA_FLOAT, i, (float) (phi * (2 - v * v)));
            }
            Kernels.geluBackward(dense(x), onesLike(x.value), d1);   // gelu'(x)
            Var dx = mul(mul(gr, dy), Var.constant(d2));
            Var ddy = mul(gr, Var.constant(d1));
            return of(dx, ddy);
        });
    }

    private static Tensor onesLike(Tensor t) {
        Tensor o = g().zeros(t.shape());
        o.segment().fill((byte) 0);
        MemorySegment s = o.segment();
        for (long i = 0; i < t.numel(); i++) s.setAtIndex(JAVA_FLOAT, i, 1f);
        return o;
    }

    /** LayerNorm over the last dimension (PyTorch semantics: biased variance, eps inside the sqrt). */
    public static Var layerNorm(Var x, Var w, Var b, float eps) {
        Tensor xv = dense(x);
        long c = xv.size(-1), n = xv.numel() / c;
        Device dev = xv.device();
        Tensor y = g().empty(dev, xv.shape()), mean = g().empty(dev, n), rstd = g().empty(dev, n);
        Kernels.layerNorm(xv, w.value, b.value, eps, y, mean, rstd);
        return rec(y, "layerNorm", of(x, w, b), gr -> {
            if (g().recording) return layerNormBackwardDifferentiable(x, w, gr, eps, n, c);
            Tensor dx = g().empty(dev, xv.shape()), dw = g().zeros(dev, c), db = g().zeros(dev, c);
            Kernels.layerNormBackward(xv, w.value, mean, rstd, dense(gr), dx, dw, db);
            return of(Var.constant(dx), Var.constant(dw), Var.constant(db));
        });
    }

    /**
     * LayerNorm's backward written with differentiable ops (for double backward, e.g. a WGAN-GP critic with
     * LayerNorm): recomputes x-hat and 1/sigma from x so their dependence on x is on the tape.
     */
    private static Var[] layerNormBackwardDifferentiable(Var x, Var w, Var gr, float eps, long n, long c) {
        long[] xs = x.value.shape();
        Var x2 = reshape(x, n, c);
        Var mu = colBroadcast(scale(rowSum(x2), 1f / c), c);
        Var xc = sub(x2, mu);
        Var rs = colBroadcast(rsqrt(addScalar(scale(rowSum(mul(xc, xc)), 1f / c), eps)), c);
        Var xhat = mul(xc, rs);
        Var dy = reshape(gr, n, c);
        Var dxhat = mul(dy, addRows(constantZeros(x.value.device(), new long[] {n, c}), reshape(w, 1, c)));
        Var m1 = colBroadcast(scale(rowSum(dxhat), 1f / c), c);
        Var m2 = colBroadcast(scale(rowSum(mul(dxhat, xhat)), 1f / c), c);
        Var dx = reshape(mul(rs, sub(sub(dxhat, m1), mul(xhat, m2))), xs);
        Var dw = w.requiresGrad ? reshape(sumRows(mul(dy, xhat), 1, c), c) : null;
        return of(dx, dw, reshape(sumRows(dy, 1, c), c));
    }

    /**
     * Causal (or full) attention on a packed (3, B, NH, T, HS) q/k/v tensor, returning (B, NH, T, HS). The
     * backward writes dq, dk, dv into one packed gradient, so the head split's backward is a single copy.
     */
    public static Var attention(Var qkv, boolean causal) {
        Tensor p = dense(qkv);
        if (p.rank() != 5 || p.size(0) != 3) throw new IllegalArgumentException("attention: expected (3, B, NH, T, HS), got " + p);
        Tensor q = p.slice(0, 0, 1).reshape(p.size(1), p.size(2), p.size(3), p.size(4));
        Tensor k = p.slice(0, 1, 2).reshape(q.shape()), v = p.slice(0, 2, 3).reshape(q.shape());
        float scale = (float) (1.0 / Math.sqrt(p.size(4)));
        Tensor o = g().empty(p.device(), q.shape()), lse = g().empty(p.device(), p.size(1), p.size(2), p.size(3));
        Kernels.attention(q, k, v, causal, scale, o, lse);
        return rec(o, "attention", of(qkv), gr -> {
            firstOrderOnly("attention");
            Tensor d = g().empty(p.device(), p.shape());
            Tensor dq = d.slice(0, 0, 1).reshape(q.shape()), dk = d.slice(0, 1, 2).reshape(q.shape()), dv = d.slice(0, 2, 3).reshape(q.shape());
            Kernels.attentionBackward(q, k, v, o, lse, dense(gr), causal, scale, dq, dk, dv);
            return of(Var.constant(d));
        });
    }

    /** Rows of {@code table} (V, C) picked by int32 {@code ids} (n): (n, C). */
    public static Var embedding(MemorySegment ids, long n, Var table) {
        Tensor t = dense(table);
        long vocab = t.size(0), c = t.size(1);
        Tensor out = g().empty(t.device(), n, c);
        if (t.device() == Device.CUDA) {
            Kernels.embedding(ids, t, out);   /* checks the ids on the host first */
        } else {
            MemorySegment src = t.segment(), dst = out.segment();
            for (long i = 0; i < n; i++) {
                int id = ids.getAtIndex(JAVA_INT, i);
                if (id < 0 || id >= vocab) throw new IllegalArgumentException("embedding: id " + id + " at position " + i + " outside [0, " + vocab + ")");
                MemorySegment.copy(src, id * c * 4, dst, i * c * 4, c * 4);
            }
        }
        return rec(out, "embedding", of(table), gr -> {
            firstOrderOnly("embedding");
            Tensor d = g().zeros(t.device(), vocab, c);
            Kernels.embeddingBackward(ids, dense(gr), d);
            return of(Var.constant(d));
        });
    }

    /** Mean cross-entropy of logits (N, V) against int32 targets (N; negative = ignored): a scalar. */
    public static Var crossEntropy(Var logits, MemorySegment targets) {
        Tensor lv = dense(logits);
        long v = lv.size(-1), n = lv.numel() / v;
        long counted = 0;
        for (long i = 0; i < n; i++) if (targets.getAtIndex(JAVA_INT, i) >= 0) counted++;
        float inv = counted == 0 ? 0f : 1f / counted;
        Device dev = lv.device();
        Tensor losses = g().empty(dev, n);
        Tensor dlogits = logits.requiresGrad && g().recording ? g().empty(dev, lv.shape()) : null;
        Kernels.softmaxCrossEntropy(lv, targets, losses, dlogits, inv);
        double sum = 0;
        Tensor out;
        if (dev == Device.CPU) {
            MemorySegment ls = losses.segment();
            for (long i = 0; i < n; i++) sum += ls.getAtIndex(JAVA_FLOAT, i);
            out = g().zeros(1);
            out.segment().set(JAVA_FLOAT, 0, (float) (sum * inv));
        } else {   /* the per-row losses come back (n floats), summed in double in the same order as on the CPU */
            for (float l : losses.toArray()) sum += l;
            out = Tensor.of(g().scope, dev, new float[] {(float) (sum * inv)}, 1);
        }
        return rec(out, "crossEntropy", of(logits), gr -> {
            firstOrderOnly("crossEntropy");
            float s = scalar(gr.value);
            if (s == 1f) return of(Var.constant(dlogits));
            Tensor d = g().empty(dev, lv.shape());
            Kernels.axpby(s, dlogits, 0f, d);
            return of(Var.constant(d));
        });
    }

    /** The first {@code n} rows of a 2-D {@code x}: a view; the backward pads the gradient with zero rows. */
    public static Var narrowRows(Var x, long n) {
        Tensor xv = x.value;
        if (xv.rank() != 2 || n < 0 || n > xv.size(0)) throw new IllegalArgumentException("narrowRows: " + n + " rows of " + xv);
        return rec(xv.slice(0, 0, n), "narrowRows", of(x), gr -> {
            firstOrderOnly("narrowRows");
            Tensor d = g().zeros(xv.device(), xv.shape());
            Kernels.copy(dense(gr), d.slice(0, 0, n));
            return of(Var.constant(d));
        });
    }

    /**
     * Channels [from, from + len) of {@code x} (N, C, ...): a strided view; the backward writes the gradient into
     * those channels of a zero tensor (differentiable: it is linear in the gradient). Glow's multi-scale split.
     */
    public static Var narrowChannels(Var x, long from, long len) {
        Tensor xv = x.value;
        if (xv.rank() < 2 || from < 0 || len < 0 || from + len > xv.size(1))
            throw new IllegalArgumentException("narrowChannels: [" + from + ", " + (from + len) + ") of " + xv);
        return rec(xv.slice(1, from, from + len), "narrowChannels", of(x), gr -> of(padChannels(gr, xv.shape(), from)));
    }

    /** {@code v} placed at channels [from, from + C_v) of a zero tensor of {@code shape}: the adjoint of narrowChannels. */
    static Var padChannels(Var v, long[] shape, long from) {
        Tensor d = g().zeros(v.value.device(), shape);
        long len = v.value.size(1);
        Kernels.copy(v.value, d.slice(1, from, from + len));
        return rec(d, "padChannels", of(v), gr -> of(narrowChannels(gr, from, len)));
    }

    /** The scalar value of a one-element Var. */
    public static float item(Var v) {
        if (v.value.numel() != 1) throw new IllegalArgumentException("item: not a scalar: " + v.value);
        return scalar(v.value);
    }

    /** The one element of t (from a CUDA tensor: a 4-byte copy). */
    static float scalar(Tensor t) { return t.device() == Device.CPU ? t.segment().get(JAVA_FLOAT, 0) : t.toArray()[0]; }

    // ---- convolutions (kernels/conv2d). Forward, backward-data and backward-weight are each other's adjoints,
    // so every rule below is written with these three differentiable ops and double backward works. ----

    private static Conv.Geometry convGeometry(String op, Tensor x, Tensor w, int stride, int pad) {
        if (x.rank() != 4 || w.rank() != 4)
            throw new IllegalArgumentException(op + ": x (N, C, H, W) and w (K, C, R, S) needed, got " + x + ", " + w);
        if (w.size(1) != x.size(1))
            throw new IllegalArgumentException(op + ": w " + w + " expects " + w.size(1) + " input channels, x " + x + " has " + x.size(1));
        return new Conv.Geometry(x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), stride, stride, pad, pad);
    }

    /** 2-D convolution (cross-correlation) of x (N, C, H, W) with w (K, C, R, S), optional bias (K): PyTorch's conv2d. */
    public static Var conv2d(Var x, Var w, Var b, int stride, int pad) {
        Conv.Geometry geo = convGeometry("conv2d", x.value, w.value, stride, pad);
        if (b != null && b.value.numel() != geo.k()) throw new IllegalArgumentException("conv2d: bias " + b.value + " for " + geo.k() + " channels");
        Tensor y = g().empty(x.value.device(), geo.outShape());
        Conv.forward(geo, dense(x), dense(w), b == null ? null : dense(b), y);
        return rec(y, "conv2d", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx = x.requiresGrad ? convBackwardData(geo, gr, w) : null;
            if (!g().recording && wants(w) && wants(b)) {   // first order: dw and db in one pass
                Tensor dw = g().empty(x.value.device(), geo.weightShape()), db = g().empty(x.value.device(), geo.k());
                Conv.backwardWeight(geo, dense(x), dense(gr), dw, db, false);
                return of(dx, Var.constant(dw), Var.constant(db));
            }
            Var dw = wants(w) ? convBackwardWeight(geo, x, gr) : null;
            if (b == null) return of(dx, dw);
            return of(dx, dw, wants(b) ? channelSum(gr) : null);
        });
    }

    /** conv2d without bias for a given geometry (the adjoint rules' building block). */
    static Var conv2d(Conv.Geometry geo, Var x, Var w) {
        Tensor y = g().empty(x.value.device(), geo.outShape());
        Conv.forward(geo, dense(x), dense(w), null, y);
        return rec(y, "conv2d", of(x, w), gr -> of(
                x.requiresGrad ? convBackwardData(geo, gr, w) : null,
                wants(w) ? convBackwardWeight(geo, x, gr) : null));
    }

    /** dx = conv^T(dy, w): the input gradient of a convolution, and the forward of a transposed one. */
    static Var convBackwardData(Conv.Geometry geo, Var dy, Var w) {
        Tensor dx = g().empty(dy.value.device(), geo.inShape());
        Conv.backwardData(geo, dense(dy), dense(w), null, dx);
        return rec(dx, "conv2dBackwardData", of(dy, w), gr -> of(
                dy.requiresGrad ? conv2d(geo, gr, w) : null,
                wants(w) ? convBackwardWeight(geo, gr, dy) : null));
    }

    /** dw = sum over the batch of dy (x) patches of x: the weight gradient of a convolution. */
    static Var convBackwardWeight(Conv.Geometry geo, Var x, Var dy) {
        Tensor dw = g().empty(x.value.device(), geo.weightShape());
        Conv.backwardWeight(geo, dense(x), dense(dy), dw, null, false);
        return rec(dw, "conv2dBackwardWeight", of(x, dy), gr -> of(
                x.requiresGrad ? convBackwardData(geo, dy, gr) : null,
                dy.requiresGrad ? conv2d(geo, x, gr) : null));
    }

    /**
     * Transposed convolution of x (N, Cin, H, W) with w (Cin, Cout, R, S) (PyTorch's ConvTranspose2d layout), bias
     * (Cout) optional: output (N, Cout, (H-1) stride - 2 pad + R + outputPadding, likewise W).
     */
    public static Var convTranspose2d(Var x, Var w, Var b, int stride, int pad, int outputPadding) {
        Tensor xv = x.value, wv = w.value;
        if (xv.rank() != 4 || wv.rank() != 4 || wv.size(0) != xv.size(1))
            throw new IllegalArgumentException("convTranspose2d: x (N, Cin, H, W) and w (Cin, Cout, R, S) needed, got " + xv + ", " + wv);
        if (outputPadding < 0 || outputPadding >= Math.max(stride, 1))
            throw new IllegalArgumentException("convTranspose2d: outputPadding " + outputPadding + " must be in [0, stride)");
        long oh = (xv.size(2) - 1) * stride - 2L * pad + wv.size(2) + outputPadding;
        long ow = (xv.size(3) - 1) * stride - 2L * pad + wv.size(3) + outputPadding;
        if (oh < 1 || ow < 1) throw new IllegalArgumentException("convTranspose2d: output would be " + oh + "x" + ow + " for " + xv);
        Conv.Geometry geo = new Conv.Geometry(xv.size(0), wv.size(1), oh, ow, wv.size(0), wv.size(2), wv.size(3), stride, stride, pad, pad);
        if (geo.oh() != xv.size(2) || geo.ow() != xv.size(3)) throw new IllegalStateException("convTranspose2d: geometry " + geo);
        if (b == null) return convBackwardData(geo, x, w);
        if (b.value.numel() != geo.c()) throw new IllegalArgumentException("convTranspose2d: bias " + b.value + " for " + geo.c() + " channels");
        Tensor y = g().empty(xv.device(), geo.inShape());
        Conv.backwardData(geo, dense(x), dense(w), dense(b), y);
        return rec(y, "convTranspose2d", of(x, w, b), gr -> of(
                x.requiresGrad ? conv2d(geo, gr, w) : null,
                wants(w) ? convBackwardWeight(geo, gr, x) : null,
                wants(b) ? channelSum(gr) : null));
    }

    /** out[c] = sum over n and positions of x (N, C, ...): the bias gradient of a convolution. */
    public static Var channelSum(Var x) {
        Tensor xv = dense(x);
        long n = xv.size(0), c = xv.size(1), hw = xv.numel() / (n * c);
        if (xv.device() != Device.CPU) {
            Tensor out = g().empty(xv.device(), c);
            Conv.channelSumCuda(xv, out);
            long[] shape = xv.shape();
            return rec(out, "channelSum", of(x), gr -> of(channelBroadcast(gr, shape)));
        }
        Tensor out = g().empty(c);
        MemorySegment xs = xv.segment(), os = out.segment();
        for (long ch = 0; ch < c; ch++) {
            double acc = 0;
            for (long i = 0; i < n; i++) {
                long base = (i * c + ch) * hw;
                for (long j = 0; j < hw; j++) acc += xs.getAtIndex(JAVA_FLOAT, base + j);
            }
            os.setAtIndex(JAVA_FLOAT, ch, (float) acc);
        }
        long[] shape = xv.shape();
        return rec(out, "channelSum", of(x), gr -> of(channelBroadcast(gr, shape)));
    }

    /** out (shape (N, C, ...)) [n, c, ...] = v[c]: channelSum's adjoint. */
    public static Var channelBroadcast(Var v, long[] shape) {
        if (v.value.device() != Device.CPU) {
            /* rows (n c, 1) = v[i % c] by addRows of zeros, then (n c, 1) @ ones (1, hw): one product with 1 per element, exact */
            Device dev = v.value.device();
            long total = 1;
            for (long d : shape) total *= d;
            long n = shape[0], c = shape[1], hw = total / (n * c);
            if (v.value.numel() != c) throw new IllegalArgumentException("channelBroadcast: " + v.value + " for " + c + " channels");
            Tensor rows = g().empty(dev, n * c, 1);
            Kernels.addRows(g().zeros(dev, n * c, 1), dense(v).reshape(c, 1), rows);
            Tensor out = g().empty(dev, shape);
            Gemm.matmul(rows, ones(dev, 1, hw), out.reshape(n * c, hw), 1f, 0f);
            return rec(out, "channelBroadcast", of(v), gr -> of(channelSum(gr)));
        }
        Tensor out = g().empty(shape);
        long n = shape[0], c = shape[1], hw = out.numel() / (n * c);
        MemorySegment vs = dense(v).segment(), os = out.segment();
        for (long i = 0; i < n; i++)
            for (long ch = 0; ch < c; ch++) {
                float val = vs.getAtIndex(JAVA_FLOAT, ch);
                long base = (i * c + ch) * hw;
                for (long j = 0; j < hw; j++) os.setAtIndex(JAVA_FLOAT, base + j, val);
            }
        return rec(out, "channelBroadcast", of(v), gr -> of(channelSum(gr)));
    }

    // ---- BatchNorm2d ----

    /**
     * BatchNorm over (N, C, H, W) (or (N, C)). Training: batch statistics, and runningMean / runningVar (may be null)
     * updated in place with {@code momentum} (PyTorch's convention); evaluation: the running statistics.
     * First-order backward only (the GAN critics that need double backward have no BatchNorm).
     */
    public static Var batchNorm2d(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar, boolean training,
                                  float momentum, float eps) {
        Tensor xv = dense(x);
        if (xv.rank() < 2) throw new IllegalArgumentException("batchNorm2d: (N, C, ...) input needed, got " + xv);
        long c = xv.size(1);
        Tensor y = g().empty(xv.device(), xv.shape());   /* training forward and backward run on CUDA too */
        Tensor gv = gamma == null ? null : dense(gamma), bv = beta == null ? null : dense(beta);
        if (training) {
            Tensor mean = g().empty(xv.device(), c), rstd = g().empty(xv.device(), c);
            Kernels.batchNormTrain(xv, gv, bv, eps, momentum, y, mean, rstd, runningMean, runningVar);
            Var[] ins = of(x, gamma, beta);
            return rec(y, "batchNorm2d", ins, gr -> {
                firstOrderOnly("batchNorm2d");
                Tensor dx = g().empty(xv.device(), xv.shape());
                Tensor dg = wants(gamma) ? g().zeros(xv.device(), c) : null;
                Tensor db = wants(beta) ? g().zeros(xv.device(), c) : null;
                Kernels.batchNormBackward(xv, gv, mean, rstd, dense(gr), dx, dg, db);
                return of(Var.constant(dx), dg == null ? null : Var.constant(dg), db == null ? null : Var.constant(db));
            });
        }
        if (runningMean == null || runningVar == null) throw new IllegalArgumentException("batchNorm2d: evaluation needs running statistics");
        Kernels.batchNormInfer(xv, gv, bv, eps, runningMean, runningVar, y);
        return rec(y, "batchNorm2dEval", of(x, gamma, beta), gr -> {
            firstOrderOnly("batchNorm2d (eval)");
            long n = xv.size(0), hw = xv.numel() / (n * c);
            if (xv.device() != Device.CPU) {   /* explicit copies and the CPU's loop: the same bits (a rare path: eval-mode training) */
                Device dev = xv.device();
                float[] xs = xv.toArray(), ds = dense(gr).toArray(), rm = runningMean.toArray(), rv = runningVar.toArray();
                float[] gs = gv == null ? null : gv.toArray(), out = new float[xs.length], sgs = new float[(int) c], sbs = new float[(int) c];
                for (int ch = 0; ch < c; ch++) {
                    double rs = 1.0 / Math.sqrt(rv[ch] + (double) eps), m = rm[ch];
                    double gam = gs == null ? 1 : gs[ch], sg = 0, sb = 0;
                    for (long i = 0; i < n; i++)
                        for (long j = 0, base = (i * c + ch) * hw; j < hw; j++) {
                            double d = ds[(int) (base + j)];
                            out[(int) (base + j)] = (float) (d * gam * rs);
                            sg += d * (xs[(int) (base + j)] - m) * rs;
                            sb += d;
                        }
                    sgs[ch] = (float) sg;
                    sbs[ch] = (float) sb;
                }
                Var dg = gamma != null && gamma.requiresGrad ? Var.constant(Tensor.of(g().scope, dev, sgs, c)) : null;
                Var db = beta != null && beta.requiresGrad ? Var.constant(Tensor.of(g().scope, dev, sbs, c)) : null;
                return of(Var.constant(Tensor.of(g().scope, dev, out, xv.shape())), dg, db);
            }
            Tensor dx = g().empty(xv.shape());
            Tensor dg = gamma != null && gamma.requiresGrad ? g().zeros(c) : null, db = beta != null && beta.requiresGrad ? g().zeros(c) : null;
            MemorySegment xs = xv.segment(), ds = dense(gr).segment(), out = dx.segment(), rm = runningMean.segment(), rv = runningVar.segment();
            for (long ch = 0; ch < c; ch++) {
                double rs = 1.0 / Math.sqrt(rv.getAtIndex(JAVA_FLOAT, ch) + (double) eps), m = rm.getAtIndex(JAVA_FLOAT, ch);
                double gam = gv == null ? 1 : gv.segment().getAtIndex(JAVA_FLOAT, ch), sg = 0, sb = 0;
                for (long i = 0; i < n; i++)
                    for (long j = 0, base = (i * c + ch) * hw; j < hw; j++) {
                        double d = ds.getAtIndex(JAVA_FLOAT, base + j);
                        out.setAtIndex(JAVA_FLOAT, base + j, (float) (d * gam * rs));
                        sg += d * (xs.getAtIndex(JAVA_FLOAT, base + j) - m) * rs;
                        sb += d;
                    }
                if (dg != null) dg.segment().setAtIndex(JAVA_FLOAT, ch, (float) sg);
                if (db != null) db.segment().setAtIndex(JAVA_FLOAT, ch, (float) sb);
            }
            return of(Var.constant(dx), dg == null ? null : Var.constant(dg), db == null ? null : Var.constant(db));
        });
    }

    // ---- pointwise activations (kernels/activation) ----

    public static Var relu(Var x) { return leakyRelu(x, 0f); }

    /** max(x, 0) + alpha min(x, 0); alpha = 0 is ReLU. Its backward is differentiable (double backward works). */
    public static Var leakyRelu(Var x, float alpha) {
        int kind = alpha == 0f ? LatentNative.ACT_RELU : LatentNative.ACT_LEAKY_RELU;
        Tensor y = g().empty(x.value.device(), x.value.shape());
        Kernels.activation(kind, alpha, dense(x), y);
        return rec(y, alpha == 0f ? "relu" : "leakyRelu", of(x), gr -> of(leakyReluBackward(x, gr, alpha)));
    }

    /** dy * (x > 0 ? 1 : alpha): linear in dy, piecewise constant in x (zero second derivative). */
    static Var leakyReluBackward(Var x, Var dy, float alpha) {
        int kind = alpha == 0f ? LatentNative.ACT_RELU : LatentNative.ACT_LEAKY_RELU;
        Tensor dx = g().empty(x.value.device(), x.value.shape());
        Kernels.activationBackward(kind, alpha, dense(x), dense(dy), dx);
        return rec(dx, "leakyReluBackward", of(x, dy), gr -> of(null, leakyReluBackward(x, gr, alpha)));
    }

    public static Var tanh(Var x) { return saturating(x, LatentNative.ACT_TANH, "tanh"); }

    public static Var sigmoid(Var x) { return saturating(x, LatentNative.ACT_SIGMOID, "sigmoid"); }

    private static Var saturating(Var x, int kind, String name) {
        Tensor y = g().empty(x.value.device(), x.value.shape());
        Kernels.activation(kind, 0f, dense(x), y);
        return rec(y, name, of(x), gr -> {
            firstOrderOnly(name);
            Tensor dx = g().empty(y.device(), y.shape());
            Kernels.activationBackward(kind, 0f, y, dense(gr), dx);
            return of(Var.constant(dx));
        });
    }

    /** Mean binary cross-entropy of logits against a constant target t (0 or 1 for GAN labels): a scalar. */
    public static Var bceWithLogits(Var logits, float t) {
        Tensor lv = dense(logits);
        long n = lv.numel();
        Tensor d = logits.requiresGrad && g().recording ? g().empty(lv.device(), lv.shape()) : null;
        double sum = Kernels.bceWithLogits(lv, null, t, d, 1f / n);
        Tensor out = Tensor.of(g().scope, lv.device(), new float[] {(float) (sum / n)}, 1);
        return rec(out, "bceWithLogits", of(logits), gr -> {
            firstOrderOnly("bceWithLogits");
            float s = scalar(gr.value);
            if (s == 1f) return of(Var.constant(d));
            Tensor dd = g().empty(lv.device(), lv.shape());
            Kernels.axpby(s, d, 0f, dd);
            return of(Var.constant(dd));
        });
    }

    // ---- reductions and small pointwise ops (Java loops: used on small tensors, e.g. the gradient penalty) ----

    /** The mean of all elements: a scalar. Differentiable to any order. */
    public static Var mean(Var x) {
        long n = x.value.numel();
        return scale(sum(x), 1f / n);
    }

    /** The sum of all elements (in double): a scalar. Differentiable to any order. */
    public static Var sum(Var x) {
        Tensor xv = dense(x);
        Tensor out = g().empty(xv.device(), 1);
        Kernels.sum(xv, out);   /* on CUDA: sumsq.cu's double chunks, the scalar stays on the device */
        long[] shape = xv.shape();
        return rec(out, "sum", of(x), gr -> of(expand(gr, shape)));
    }

    /** A scalar broadcast to {@code shape}; its adjoint is {@link #sum}. */
    public static Var expand(Var scalar, long... shape) {
        if (scalar.value.numel() != 1) throw new IllegalArgumentException("expand: scalar needed, got " + scalar.value);
        if (scalar.value.device() != Device.CPU) {   /* 0 + s in every row: addRows, exact */
            Tensor out = g().empty(scalar.value.device(), shape);
            long n = out.numel();
            Tensor flat = out.reshape(n, 1);
            Kernels.addRows(g().zeros(scalar.value.device(), n, 1), dense(scalar).reshape(1, 1), flat);
            return rec(out, "expand", of(scalar), gr -> of(sum(gr)));
        }
        Tensor out = g().empty(shape);
        float v = scalar.value.segment().get(JAVA_FLOAT, 0);
        out.segment().fill((byte) 0);
        if (v != 0f) for (long i = 0, n = out.numel(); i < n; i++) out.segment().setAtIndex(JAVA_FLOAT, i, v);
        return rec(out, "expand", of(scalar), gr -> of(sum(gr)));
    }

    /** Row sums of x viewed as (N, D), N = size(0): (N, 1). Differentiable to any order. */
    public static Var rowSum(Var x) {
        Tensor xv = dense(x);
        long n = xv.size(0), d = xv.numel() / n;
        if (xv.device() != Device.CPU) {   /* (N, D) @ ones (D, 1): exact-fp32 GEMM, a float sum where the CPU sums in double */
            Tensor out = g().empty(xv.device(), n, 1);
            Gemm.matmul(xv.reshape(n, d), ones(xv.device(), d, 1), out, 1f, 0f);
            long[] shape = xv.shape();
            return rec(out, "rowSum", of(x), gr -> of(reshape(colBroadcast(gr, d), shape)));
        }
        Tensor out = g().empty(n, 1);
        MemorySegment s = xv.segment(), o = out.segment();
        for (long i = 0; i < n; i++) {
            double acc = 0;
            for (long j = 0; j < d; j++) acc += s.getAtIndex(JAVA_FLOAT, i * d + j);
            o.setAtIndex(JAVA_FLOAT, i, (float) acc);
        }
        long[] shape = xv.shape();
        return rec(out, "rowSum", of(x), gr -> of(reshape(colBroadcast(gr, d), shape)));
    }

    /** v (N, 1) repeated to (N, D): rowSum's adjoint. */
    public static Var colBroadcast(Var v, long d) {
        Tensor vv = dense(v);
        long n = vv.numel();
        if (vv.device() != Device.CPU) {   /* (N, 1) @ ones (1, D): one product with 1 per element, exact */
            Tensor out = g().empty(vv.device(), n, d);
            Gemm.matmul(vv.reshape(n, 1), ones(vv.device(), 1, d), out, 1f, 0f);
            return rec(out, "colBroadcast", of(v), gr -> of(rowSum(gr)));
        }
        Tensor out = g().empty(n, d);
        MemorySegment s = vv.segment(), o = out.segment();
        for (long i = 0; i < n; i++) {
            float val = s.getAtIndex(JAVA_FLOAT, i);
            for (long j = 0; j < d; j++) o.setAtIndex(JAVA_FLOAT, i * d + j, val);
        }
        return rec(out, "colBroadcast", of(v), gr -> of(rowSum(gr)));
    }

    /** A (r, c) tensor of ones on {@code dev} in the current graph (the GEMM operand of the device broadcasts and row sums). */
    private static Tensor ones(Device dev, long r, long c) {
        if (r * c > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("ones: " + r + " x " + c + " too large");
        float[] o = new float[(int) (r * c)];
        Arrays.fill(o, 1f);
        return Tensor.of(g().scope, dev, o, r, c);
    }

    /** a - b. */
    public static Var sub(Var a, Var b) { return add(a, scale(b, -1f)); }

    /** x + c elementwise. */
    public static Var addScalar(Var x, float c) {
        if (x.value.device() != Device.CPU) {   /* x + c as addRows of a one-element row: one float rounding, as the CPU's */
            Tensor xv = dense(x);
            long n = xv.numel();
            Tensor y = g().empty(xv.device(), xv.shape());
            Kernels.addRows(xv.reshape(n, 1), Tensor.of(g().scope, xv.device(), new float[] {c}, 1, 1), y.reshape(n, 1));
            return rec(y, "addScalar", of(x), gr -> of(gr));
        }
        return pointwise(x, "addScalar", v -> v + c, v -> 1);
    }

    public static Var sqrt(Var x) { return pointwise(x, "sqrt", Math::sqrt, v -> 0.5 / Math.sqrt(v)); }

    /** 1 / sqrt(x). */
    public static Var rsqrt(Var x) { return pointwise(x, "rsqrt", v -> 1 / Math.sqrt(v), v -> -0.5 / (v * Math.sqrt(v))); }

    public static Var square(Var x) { return pointwise(x, "square", v -> v * v, v -> 2 * v); }

    public static Var exp(Var x) { return pointwise(x, "exp", Math::exp, Math::exp); }

    public static Var log(Var x) { return pointwise(x, "log", Math::log, v -> 1 / v); }

    /** y = f(x) elementwise in double with a first-order rule dx = dy f'(x). */
    private static Var pointwise(Var x, String name, DoubleUnaryOperator f, DoubleUnaryOperator df) {
        Tensor xv = dense(x);
        long n = xv.numel();
        if (xv.device() != Device.CPU) {
            /* No kernel: an explicit copy to the host, the CPU's double formula, and a copy back (both directions of the
             * backward alike). Meant for small tensors (Glow's per-channel log-scales); same bits as the CPU. */
            Device dev = xv.device();
            float[] xs = xv.toArray(), ys = new float[xs.length];
            for (int i = 0; i < xs.length; i++) ys[i] = (float) f.applyAsDouble(xs[i]);
            return rec(Tensor.of(g().scope, dev, ys, xv.shape()), name, of(x), gr -> {
                firstOrderOnly(name);
                float[] gs = dense(gr).toArray(), ds = new float[xs.length];
                for (int i = 0; i < xs.length; i++) ds[i] = (float) (gs[i] * df.applyAsDouble(xs[i]));
                return of(Var.constant(Tensor.of(g().scope, dev, ds, xv.shape())));
            });
        }
        Tensor y = g().empty(xv.shape());
        MemorySegment s = xv.segment(), o = y.segment();
        for (long i = 0; i < n; i++) o.setAtIndex(JAVA_FLOAT, i, (float) f.applyAsDouble(s.getAtIndex(JAVA_FLOAT, i)));
        return rec(y, name, of(x), gr -> {
            firstOrderOnly(name);
            Tensor d = g().empty(xv.shape());
            MemorySegment gs = dense(gr).segment(), ds = d.segment();
            for (long i = 0; i < n; i++)
                ds.setAtIndex(JAVA_FLOAT, i, (float) (gs.getAtIndex(JAVA_FLOAT, i) * df.applyAsDouble(s.getAtIndex(JAVA_FLOAT, i))));
            return of(Var.constant(d));
        });
    }

    /** A constant copy of x's value: gradients stop here (PyTorch's detach). */
    public static Var detach(Var x) { return Var.constant(x.value); }

    // ---- VAE (kernels/reparam) ----

    /** z and the KL term of one reparameterization: both Vars of the same fused kernel. */
    public record Reparam(Var z, Var kl) {}

    /**
     * z = mu + exp(0.5 logvar) eps with eps ~ N(0, I) drawn inside the kernel from Philox (seed, stream), and
     * kl = KL(N(mu, exp(logvar)) || N(0, I)) summed over all elements (a scalar). The backward is one fused pass:
     * when both z and kl feed the loss, kl's rule (which runs first: kl is made right after z) reads z's finished
     * gradient and the kl weight, and computes dmu and dlogvar in one call, recomputing eps (never stored).
     * First-order only. logvar is clamped to [-30, 30] as the kernel documents.
     */
    public static Reparam reparam(Var mu, Var logvar, long seed, long stream) {
        sameShape("reparam", mu, logvar);
        Tensor m = dense(mu), lv = dense(logvar);
        Device dev = m.device();
        Tensor z = g().empty(dev, m.shape());
        double kl = Kernels.reparam(m, lv, seed, stream, z);   /* on CUDA the KL comes back (a synchronisation) */
        Tensor klT = Tensor.of(g().scope, dev, new float[] {(float) kl}, 1);
        boolean[] fused = {false};
        Var[] zHolder = new Var[1];
        Var zv = rec(z, "reparam.z", of(mu, logvar), gr -> {
            if (fused[0]) return of(null, null);
            firstOrderOnly("reparam");
            Tensor dm = g().empty(dev, m.shape()), dl = g().empty(dev, m.shape());
            Kernels.reparamBackward(m, lv, seed, stream, dense(gr), 0f, dm, dl);
            return of(Var.constant(dm), Var.constant(dl));
        });
        zHolder[0] = zv;
        Var klv = rec(klT, "reparam.kl", of(mu, logvar), gr -> {
            firstOrderOnly("reparam");
            float w = scalar(gr.value);
            Var zg = zHolder[0].grad;
            Tensor dz = zg != null ? dense(zg) : g().zeros(dev, m.shape());
            Tensor dm = g().empty(dev, m.shape()), dl = g().empty(dev, m.shape());
            Kernels.reparamBackward(m, lv, seed, stream, dz, w, dm, dl);
            fused[0] = true;
            return of(Var.constant(dm), Var.constant(dl));
        });
        return new Reparam(zv, klv);
    }

    /** Sum over all elements of BCE-with-logits against target probabilities (the Bernoulli -log p(x|z)), times scale. */
    public static Var bceWithLogitsSum(Var logits, Tensor targets, float scale) {
        Tensor lv = dense(logits);
        Tensor tv = targets.isContiguous() ? targets : targets.contiguous();
        if (tv.numel() != lv.numel()) throw new IllegalArgumentException("bceWithLogitsSum: targets " + tv + " for logits " + lv);
        Tensor d = logits.requiresGrad && g().recording ? g().empty(lv.device(), lv.shape()) : null;
        double sum = Kernels.bceWithLogits(lv, tv, 0f, d, scale);
        Tensor out = Tensor.of(g().scope, lv.device(), new float[] {(float) (sum * scale)}, 1);
        return rec(out, "bceWithLogitsSum", of(logits), gr -> {
            firstOrderOnly("bceWithLogitsSum");
            float s = scalar(gr.value);
            if (s == 1f) return of(Var.constant(d));
            Tensor dd = g().empty(lv.device(), lv.shape());
            Kernels.axpby(s, d, 0f, dd);
            return of(Var.constant(dd));
        });
    }

    /** Sum of (pred - target)^2 / (2 sigma^2) + log(sigma sqrt(2 pi)) per element, times scale: the Gaussian -log p(x|z). */
    public static Var gaussianNllSum(Var pred, Tensor target, double sigma, float scale) {
        Tensor pv = dense(pred), tv = target.isContiguous() ? target : target.contiguous();
        if (tv.numel() != pv.numel()) throw new IllegalArgumentException("gaussianNllSum: target " + tv + " for " + pv);
        long n = pv.numel();
        double c = Math.log(sigma * Math.sqrt(2 * Math.PI)), inv = 1 / (sigma * sigma);
        Device dev = pv.device();
        if (dev != Device.CPU) {
            /* e = pred - target on the device (float), sum of e^2 in double by ltk_sumsq (fixed chunks; the result comes
             * back: a synchronisation); the gradient is s e / sigma^2, one axpby. The CPU forms e in double: the two
             * differ by the float rounding of e (~1e-7 relative). */
            if (tv.device() != dev) throw new IllegalArgumentException("gaussianNllSum: pred on " + dev + ", target on " + tv.device());
            Tensor e = Kernels.contiguous(g().scope, pv);
            Kernels.axpby(-1f, tv, 1f, e);
            double acc = 0.5 * inv * Kernels.sumOfSquares(e) + n * c;
            Tensor out = Tensor.of(g().scope, dev, new float[] {(float) (acc * scale)}, 1);
            return rec(out, "gaussianNllSum", of(pred), gr -> {
                firstOrderOnly("gaussianNllSum");
                float s = (float) (scalar(gr.value) * scale * inv);
                Tensor d = g().empty(dev, pv.shape());
                Kernels.axpby(s, e, 0f, d);
                return of(Var.constant(d));
            });
        }
        MemorySegment ps = pv.segment(), ts = tv.segment();
        double acc = 0;
        for (long i = 0; i < n; i++) {
            double e = ps.getAtIndex(JAVA_FLOAT, i) - ts.getAtIndex(JAVA_FLOAT, i);
            acc += 0.5 * e * e * inv + c;
        }
        Tensor out = g().zeros(1);
        out.segment().set(JAVA_FLOAT, 0, (float) (acc * scale));
        return rec(out, "gaussianNllSum", of(pred), gr -> {
            firstOrderOnly("gaussianNllSum");
            double s = gr.value.segment().get(JAVA_FLOAT, 0) * scale * inv;
            Tensor d = g().empty(pv.shape());
            MemorySegment ds = d.segment();
            for (long i = 0; i < n; i++) ds.setAtIndex(JAVA_FLOAT, i, (float) (s * (ps.getAtIndex(JAVA_FLOAT, i) - ts.getAtIndex(JAVA_FLOAT, i))));
            return of(Var.constant(d));
        });
    }

    /**
     * Free-bits KL (Kingma et al. 2016): sum over latent dims of max(lambda, mean over the batch of KL_d), for
     * mu, logvar (B, D). Dims below lambda get no gradient, so the encoder is not pushed to collapse them.
     */
    public static Var klFreeBits(Var mu, Var logvar, double lambda) {
        sameShape("klFreeBits", mu, logvar);
        Tensor m = dense(mu), lv = dense(logvar);
        Device dev = m.device();
        if (lv.device() != dev) throw new IllegalArgumentException("klFreeBits: mu on " + dev + ", logvar on " + lv.device());
        int b = (int) m.size(0), d = (int) (m.numel() / b);
        /* (B, D) is small (the latent codes): on CUDA both are copied to the host (explicitly) and the gradients back,
         * so both devices compute the same bits in the same order. */
        float[] ms = m.toArray(), ls = lv.toArray();
        double[] kd = new double[d];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < d; j++) {
                double mm = ms[i * d + j], l = Math.max(-30, Math.min(30, ls[i * d + j]));
                kd[j] += 0.5 * (mm * mm + Math.exp(l) - 1 - l) / b;
            }
        double tot = 0;
        for (double v : kd) tot += Math.max(lambda, v);
        Tensor out = Tensor.of(g().scope, dev, new float[] {(float) tot}, 1);
        return rec(out, "klFreeBits", of(mu, logvar), gr -> {
            firstOrderOnly("klFreeBits");
            double s = scalar(gr.value) / b;   /* float / int, as before: the same bits on both devices */
            float[] dms = new float[b * d], dls = new float[b * d];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < d; j++) {
                    int k = i * d + j;
                    boolean on = kd[j] > lambda;
                    float l = ls[k];
                    boolean clamped = l < -30 || l > 30;
                    dms[k] = on ? (float) (s * ms[k]) : 0f;
                    dls[k] = on && !clamped ? (float) (s * 0.5 * (Math.exp(l) - 1)) : 0f;
                }
            return of(Var.constant(Tensor.of(g().scope, dev, dms, m.shape())), Var.constant(Tensor.of(g().scope, dev, dls, m.shape())));
        });
    }

    // ---- normalizing flows (kernels/coupling) ----

    /** y' and the per-image log-determinant of one affine coupling: two Vars of one fused kernel. */
    public record Coupling(Var out, Var logdet) {}

    /**
     * RealNVP's affine coupling (latent.h, lt_coupling_fwd) of y (N, ...) with mask (HW of 0/1), the net's output h
     * (N, 2, ...) and a learned scalar scale (1). The backward is one fused call, as {@link #reparam}'s: logdet's
     * rule (recorded right after out) runs once every consumer of out has delivered its gradient and computes dy,
     * dh and dscale together. First-order only.
     */
    public static Coupling coupling(Var y, Var h, Var scale, Tensor mask) {
        Tensor yv = dense(y), hv = dense(h), mv = onDevice(mask, yv.device());
        Device dev = yv.device();
        long n = yv.size(0), hw = yv.numel() / n;
        if (mv.numel() != hw || hv.numel() != 2 * n * hw || scale.value.numel() != 1)
            throw new IllegalArgumentException("coupling: y " + yv + ", h " + hv + " (need 2 channels per pixel), mask " + mv + ", scale " + scale.value);
        float sc = scalar(scale.value);   /* on CUDA a 4-byte copy: the kernels take the scale by value */
        Tensor out = g().empty(dev, yv.shape());
        Tensor ldT;
        if (dev != Device.CPU) {   /* logdet stays on the device (the same (float) of the same double sums) */
            ldT = g().empty(dev, n);
            Kernels.couplingForwardOnDevice(mv, yv, hv, sc, out, ldT);
        } else {
            double[] ld = new double[(int) n];
            Kernels.couplingForward(mv, yv, hv, sc, out, ld);
            float[] ldf = new float[(int) n];
            for (int i = 0; i < n; i++) ldf[i] = (float) ld[i];
            ldT = Tensor.of(g().scope, dev, ldf, n);
        }
        boolean[] fused = {false};
        Var[] outHolder = new Var[1];
        java.util.function.BiFunction<Var, Var, Var[]> backward = (dOut, dLd) -> {
            firstOrderOnly("coupling");
            Tensor dy = g().empty(dev, yv.shape()), dh = g().empty(dev, hv.shape());
            if (dev != Device.CPU) {   /* dlogdet and d(scale) stay on the device */
                Tensor go = dOut != null ? dense(dOut) : g().zeros(dev, yv.shape()), dsc = g().empty(dev, 1);
                Kernels.couplingBackwardOnDevice(mv, yv, hv, sc, go, dLd == null ? null : dense(dLd), dy, dh, dsc);
                return of(Var.constant(dy), Var.constant(dh), Var.constant(dsc));
            }
            double[] dl = null;
            if (dLd != null) {
                float[] f = dense(dLd).toArray();
                dl = new double[f.length];
                for (int i = 0; i < f.length; i++) dl[i] = f[i];
            }
            Tensor go = dOut != null ? dense(dOut) : g().zeros(dev, yv.shape());
            double ds = Kernels.couplingBackward(mv, yv, hv, sc, go, dl, dy, dh);
            Tensor dsc = Tensor.of(g().scope, dev, new float[] {(float) ds}, 1);
            return of(Var.constant(dy), Var.constant(dh), Var.constant(dsc));
        };
        Var ov = rec(out, "coupling.out", of(y, h, scale), gr -> fused[0] ? of(null, null, null) : backward.apply(gr, null));
        outHolder[0] = ov;
        Var lv = rec(ldT, "coupling.logdet", of(y, h, scale), gr -> {
            fused[0] = true;
            return backward.apply(outHolder[0].grad, gr);
        });
        return new Coupling(ov, lv);
    }

    /** Inverse of {@link #coupling} given the net's output h computed from the masked part (no gradient). */
    public static Tensor couplingInverse(Tensor yp, Tensor h, float scale, Tensor mask) {
        Device dev = yp.device();
        Tensor y = g().empty(dev, yp.shape());
        Kernels.couplingInverse(onDevice(mask, dev), yp.contiguous(), h.contiguous(), scale, y);
        return y;
    }

    /** A constant (a coupling mask) on {@code dev}, contiguous: copied when it lives elsewhere. */
    private static Tensor onDevice(Tensor t, Device dev) {
        Tensor c = t.device() == dev ? t : t.to(g().scope, dev);
        return c.isContiguous() ? c : c.contiguous();
    }

    /** The (C, C) matrix with v (C) on its diagonal; its adjoint takes the diagonal back. */
    public static Var diag(Var v) {
        Tensor vv = dense(v);
        long c = vv.numel();
        if (vv.device() != Device.CPU) {   /* (C) and (C, C) are small: explicit copies, the CPU's bits */
            Device dev = vv.device();
            float[] vs = vv.toArray(), m = new float[(int) (c * c)];
            for (int i = 0; i < c; i++) m[(int) (i * c + i)] = vs[i];
            return rec(Tensor.of(g().scope, dev, m, c, c), "diag", of(v), gr -> {
                firstOrderOnly("diag");
                float[] gs = dense(gr).toArray(), d = new float[(int) c];
                for (int i = 0; i < c; i++) d[i] = gs[(int) (i * c + i)];
                return of(Var.constant(Tensor.of(g().scope, dev, d, c)));
            });
        }
        Tensor out = g().zeros(c, c);
        for (long i = 0; i < c; i++) out.segment().setAtIndex(JAVA_FLOAT, i * c + i, vv.segment().getAtIndex(JAVA_FLOAT, i));
        return rec(out, "diag", of(v), gr -> {
            Tensor d = g().empty(c);
            Tensor gv = dense(gr);
            for (long i = 0; i < c; i++) d.segment().setAtIndex(JAVA_FLOAT, i, gv.segment().getAtIndex(JAVA_FLOAT, i * c + i));
            firstOrderOnly("diag");
            return of(Var.constant(d));
        });
    }
}
