package dev.latent.autograd;

import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Differentiable ops. Each forward makes one or two kernel calls into the current {@link Graph}'s scope
 * and records a backward rule beside it. Rules are written with these same ops where that is possible, so
 * gradients of gradients work (add, scale, mul, matmul, transpose, reshape, permute, addRows, sumRows,
 * gelu); rules of the fused kernels (layerNorm, attention, cross-entropy, embedding) call their native
 * backward and refuse a second differentiation with a clear message.
 */
public final class F {
    private F() {}

    private static Graph g() { return Graph.current(); }

    private static Var rec(Tensor out, String op, Var[] in, Var.Backward rule) { return g().record(out, op, in, rule); }

    private static Var[] of(Var... v) { return v; }

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
        Tensor out = g().empty(a.value.shape());
        Kernels.axpby(s, a.value.isContiguous() ? a.value : Kernels.contiguous(g().scope, a.value), 0f, out);
        return rec(out, "scale", of(a), gr -> of(scale(gr, s)));
    }

    public static Var mul(Var a, Var b) {
        sameShape("mul", a, b);
        Tensor out = g().empty(a.value.shape());
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
        Tensor out = g().empty(a.value.size(0), b.value.size(1));
        Gemm.matmul(a.value, b.value, out, 1f, 0f);
        return rec(out, "matmul", of(a, b), gr -> of(
                a.requiresGrad ? matmul(gr, transpose(b)) : null,
                b.requiresGrad ? matmul(transpose(a), gr) : null));
    }

    /** y[i, :] = x[i, :] + rows[i % P, :]: bias (P = 1) and position (P = T) adds. */
    public static Var addRows(Var x, Var rows) {
        Tensor out = g().empty(x.value.shape());
        Kernels.addRows(dense(x), dense(rows), out);
        long[] rs = rows.value.shape();
        return rec(out, "addRows", of(x, rows), gr -> of(gr, rows.requiresGrad ? sumRows(gr, rs) : null));
    }

    /** out[i % P, :] = sum over i of x[i, :], with out of {@code shape} (P, C). */
    public static Var sumRows(Var x, long... shape) {
        Tensor out = g().zeros(shape);
        Kernels.sumRows(dense(x), out);
        long[] xs = x.value.shape();
        return rec(out, "sumRows", of(x), gr -> of(addRows(constantZeros(xs), gr)));
    }

    private static Var constantZeros(long[] shape) { return Var.constant(g().zeros(shape)); }

    /**
     * x W^T + b for x (N, in), W (out, in), b (out): PyTorch's nn.Linear. Its own op (not matmul of a
     * transpose) so that dW = dy^T x comes out contiguous in W's layout, as the optimizer wants it.
     */
    public static Var linear(Var x, Var w, Var b) {
        if (x.value.rank() != 2 || w.value.rank() != 2) throw new IllegalArgumentException("linear: x (N, in) and W (out, in), got " + x.value + ", " + w.value);
        long outF = w.value.size(0);
        if (b != null && b.value.numel() != outF) throw new IllegalArgumentException("linear: bias " + b.value + " for " + outF + " outputs");
        Tensor out = g().empty(x.value.size(0), outF);
        Gemm.matmul(x.value, w.value.transpose(0, 1), out, 1f, 0f);
        if (b != null) Kernels.addRows(out, dense(b).reshape(1, outF), out);   // bias in place: no second activation
        return rec(out, "linear", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx = x.requiresGrad ? matmul(gr, w) : null, dw = w.requiresGrad ? matmul(transpose(gr), x) : null;
            if (b == null) return of(dx, dw);
            return of(dx, dw, b.requiresGrad ? reshape(sumRows(gr, 1, outF), outF) : null);
        });
    }

    // ---- fused kernels ----

    /** Exact (erf) GELU. */
    public static Var gelu(Var x) {
        Tensor out = g().empty(x.value.shape());
        Kernels.gelu(dense(x), out);
        return rec(out, "gelu", of(x), gr -> of(geluBackward(x, gr)));
    }

    /** dx = dy * gelu'(x), differentiable in both (gelu'' = phi(x) (2 - x^2)). */
    static Var geluBackward(Var x, Var dy) {
        Tensor out = g().empty(x.value.shape());
        Kernels.geluBackward(dense(x), dense(dy), out);
        return rec(out, "geluBackward", of(x, dy), gr -> {
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
        Tensor y = g().empty(xv.shape()), mean = g().empty(n), rstd = g().empty(n);
        Kernels.layerNorm(xv, w.value, b.value, eps, y, mean, rstd);
        return rec(y, "layerNorm", of(x, w, b), gr -> {
            firstOrderOnly("layerNorm");
            Tensor dx = g().empty(xv.shape()), dw = g().zeros(c), db = g().zeros(c);
            Kernels.layerNormBackward(xv, w.value, mean, rstd, dense(gr), dx, dw, db);
            return of(Var.constant(dx), Var.constant(dw), Var.constant(db));
        });
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
        Tensor o = g().empty(q.shape()), lse = g().empty(p.size(1), p.size(2), p.size(3));
        Kernels.attention(q, k, v, causal, scale, o, lse);
        return rec(o, "attention", of(qkv), gr -> {
            firstOrderOnly("attention");
            Tensor d = g().empty(p.shape());
            Tensor dq = d.slice(0, 0, 1).reshape(q.shape()), dk = d.slice(0, 1, 2).reshape(q.shape()), dv = d.slice(0, 2, 3).reshape(q.shape());
            Kernels.attentionBackward(q, k, v, o, lse, dense(gr), causal, scale, dq, dk, dv);
            return of(Var.constant(d));
        });
    }

    /** Rows of {@code table} (V, C) picked by int32 {@code ids} (n): (n, C). */
    public static Var embedding(MemorySegment ids, long n, Var table) {
        Tensor t = dense(table);
        long vocab = t.size(0), c = t.size(1);
        Tensor out = g().empty(n, c);
        MemorySegment src = t.segment(), dst = out.segment();
        for (long i = 0; i < n; i++) {
            int id = ids.getAtIndex(JAVA_INT, i);
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("embedding: id " + id + " at position " + i + " outside [0, " + vocab + ")");
            MemorySegment.copy(src, id * c * 4, dst, i * c * 4, c * 4);
        }
        return rec(out, "embedding", of(table), gr -> {
            firstOrderOnly("embedding");
            Tensor d = g().zeros(vocab, c);
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
        Tensor losses = g().empty(n);
        Tensor dlogits = logits.requiresGrad && g().recording ? g().empty(lv.shape()) : null;
        Kernels.softmaxCrossEntropy(lv, targets, losses, dlogits, inv);
        double sum = 0;
        MemorySegment ls = losses.segment();
        for (long i = 0; i < n; i++) sum += ls.getAtIndex(JAVA_FLOAT, i);
        Tensor out = g().zeros(1);
        out.segment().set(JAVA_FLOAT, 0, (float) (sum * inv));
        return rec(out, "crossEntropy", of(logits), gr -> {
            firstOrderOnly("crossEntropy");
            float s = gr.value.segment().get(JAVA_FLOAT, 0);
            if (s == 1f) return of(Var.constant(dlogits));
            Tensor d = g().empty(lv.shape());
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
            Tensor d = g().zeros(xv.shape());
            Kernels.copy(dense(gr), d.slice(0, 0, n));
            return of(Var.constant(d));
        });
    }

    /** The scalar value of a one-element Var. */
    public static float item(Var v) {
        if (v.value.numel() != 1) throw new IllegalArgumentException("item: not a scalar: " + v.value);
        return v.value.segment().get(JAVA_FLOAT, 0);
    }
}
