package dev.latent.autograd;

import dev.latent.tensor.Precision;
import dev.latent.nativ.LatentNative;
import dev.latent.ops.AttentionKernels;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.ops.GemmInputs;
import dev.latent.ops.KeptOperands;
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
 * <p>
 * Which kernel runs for a device is not decided here: the ops layer validates and picks the tensors' backend once
 * (dev.latent.ops.Kernels, Backend). The device tests that remain in this class (and in ProbF, ConvF) are semantic,
 * not a kernel choice: (a) a loss or KL that the CPU returns as a host double, rounded once, stays on CUDA as a
 * one-element tensor (no host synchronisation; one more float rounding: crossEntropy, bceWithLogits, reparam,
 * coupling's logdet); (b) the CPU's exact Java loops (sums in double: rowSum, channelSum) become exact-fp32 kernel
 * compositions on CUDA (GEMMs with ones, addRows of zeros: expand, colBroadcast, addScalar), whose bits are the CPU's
 * only where the comment beside them says so; (c) ops with no CUDA kernel copy small tensors to the host and back
 * (pointwise, diag, GELU's second derivative); (d) reading a scalar (a host read versus a device copy). Merging any of
 * them would change the CPU's golden bits or add a synchronisation per step on CUDA.
 */
public final class F {
    private F() {}

    static Graph g() { return Graph.current(); }

    static Var rec(Tensor out, String op, Var[] in, Var.Backward rule) { return g().record(out, op, in, rule); }

    static Var[] of(Var... v) { return v; }

    /** Whether a backward rule should compute this input's gradient (requires it and not frozen in this graph). */
    static boolean wants(Var v) { return v != null && v.requiresGrad && !g().frozen.contains(v); }

    static void sameShape(String op, Var a, Var b) {
        if (!Arrays.equals(a.value.shape(), b.value.shape()))
            throw new IllegalArgumentException(op + ": shapes differ: " + a.value + " vs " + b.value);
    }

    static void firstOrderOnly(String op) {
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
        Float k = a.value.numel() == 1 ? g().known(a.value) : null;
        if (k != null) g().noteKnown(out, s * k);   // axpby with b = 0 is the same one float product
        return rec(out, "scale", of(a), gr -> of(scale(gr, s)));
    }

    public static Var mul(Var a, Var b) {
        sameShape("mul", a, b);
        Tensor out = g().empty(a.value.device(), a.value.shape());
        Kernels.mul(dense(a), dense(b), out);
        return rec(out, "mul", of(a, b), gr -> of(mul(gr, b), mul(gr, a)));
    }

    static Tensor dense(Var a) { return a.value.isContiguous() ? a.value : Kernels.contiguous(g().scope, a.value); }

    // ---- views and layout ----

    /** 2-D transpose: a view (no copy); GEMM takes it as a transpose flag. */
    public static Var transpose(Var a) {
        if (a.value.rank() != 2) throw new IllegalArgumentException("transpose: 2-D only, got " + a.value);
        return rec(a.value.transpose(0, 1), "transpose", of(a), gr -> of(transpose(gr)));
    }

    /** A view when contiguous, else a copy. */
    public static Var reshape(Var a, long... shape) {
        long[] from = a.value.shape();   /* a's bf16 copy, if any, still describes the same elements (h-bf16act) */
        return withBf16(rec(dense(a).reshape(shape), "reshape", of(a), gr -> of(reshape(gr, from))), a.bf16);
    }

    /** Reshape {@code a} to {@code view}, permute its axes by {@code perm}, and copy to a contiguous tensor. */
    public static Var permute(Var a, long[] view, int... perm) { return permute(a, false, view, perm); }

    /** {@link #permute(Var, long[], int...)}; gemmInput: the result is a GEMM's A operand, as {@link #layerNorm(Var, Var, Var, float, boolean)}. */
    public static Var permute(Var a, boolean gemmInput, long[] view, int... perm) {
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
        Tensor out = g().empty(p.device(), p.shape());
        KeptOperands y16 = gemmInput ? GemmInputs.forOutput(g().scope, out, g().precision()) : null;
        if (!GemmInputs.copy(y16, p, out)) Kernels.copy(p, out);
        long[] outShape = out.shape(), from = a.value.shape();
        return withBf16(rec(out, "permute", of(a), gr -> of(reshape(permute(gr, outShape, inv), from))), y16);
    }

    // ---- matmul and broadcasting ----

    /** (M, K) @ (K, N); either operand may be a transposed view. */
    public static Var matmul(Var a, Var b) {
        if (a.value.rank() != 2 || b.value.rank() != 2) throw new IllegalArgumentException("matmul: 2-D operands, got " + a.value + " @ " + b.value);
        Tensor out = g().empty(a.value.device(), a.value.size(0), b.value.size(1));
        Precision prec = gemmPrecision(a.value, "matmul");
        /* h-linconv: where a backward will follow, a CUDA bf16 forward keeps its converted A (for dB) and B (for dA). */
        KeptOperands keep = keepGemmOperands(a.value, prec, b.requiresGrad || a.requiresGrad), aIn = gemmInput(a);
        Gemm.matmul(a.value, b.value, out, prec, keep, b.requiresGrad, a.requiresGrad, aIn);
        if (!g().recording) release(aIn);
        return rec(out, "matmul", of(a, b), gr -> {
            if (g().recording) {   /* double backward: differentiable products */
                release(keep, aIn);
                return of(a.requiresGrad ? matmul(gr, transpose(b)) : null, b.requiresGrad ? matmul(transpose(a), gr) : null);
            }
            Tensor da = a.requiresGrad ? g().empty(a.value.device(), a.value.shape()) : null;
            Tensor db = b.requiresGrad ? g().empty(b.value.device(), b.value.shape()) : null;
            /* the same two products as above, with gr converted once at bf16 on CUDA and the kept operands read */
            Gemm.matmulBackward(a.value, b.value, gr.value, da, db, null, gemmPrecision(gr.value, "matmul"), keep, aIn);
            release(keep, aIn);   /* a second backward over this graph converts again */
            return of(da == null ? null : Var.constant(da), db == null ? null : Var.constant(db));
        });
    }

    /**
     * A holder for a GEMM forward's bf16 operands (h-linconv): only where they can be kept and used (a CUDA tensor at
     * BF16, the graph recording, some input wanting a gradient), else null.
     */
    private static KeptOperands keepGemmOperands(Tensor t, Precision prec, boolean backwardFollows) {
        return backwardFollows && g().recording && prec == Precision.BF16 && t.device() == Device.CUDA ? new KeptOperands(g().scope) : null;
    }

    /**
     * The bf16 copy of x's value its producer wrote for this GEMM (h-bf16act, GemmInputs), or null. In a graph that does
     * not record no backward will read it: it is released once the forward's GEMM has queued its read (see {@link #release}).
     */
    private static KeptOperands gemmInput(Var x) { return GemmInputs.holdsCopyOf(x.bf16, x.value) ? x.bf16 : null; }

    /** Releases each holder that is not null (stream ordered: work already queued still reads it). */
    private static void release(KeptOperands... held) { for (KeptOperands k : held) if (k != null) k.release(); }

    /**
     * The current graph's matmul precision for an op on t: TF32 on a CPU tensor is refused (CUDA-only), BF16 on a CPU
     * tensor needs AVX512_BF16 (IllegalStateException with the reason otherwise); on CUDA every precision runs.
     */
    static Precision gemmPrecision(Tensor t, String op) {
        Precision p = g().precision();
        if (p == Precision.TF32 && t.device() != Device.CUDA)
            throw new IllegalArgumentException(op + ": tf32 precision is CUDA-only (TF32 tensor-core math); " + t.device()
                    + " tensors run fp32 or bf16");
        if (p == Precision.BF16 && t.device() == Device.CPU) Gemm.requireBf16();
        return p;
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

    static Var constantZeros(Device device, long[] shape) { return Var.constant(g().zeros(device, shape)); }

    /**
     * x W^T + b for x (N, in), W (out, in), b (out): PyTorch's nn.Linear. Its own op (not matmul of a
     * transpose) so that dW = dy^T x comes out contiguous in W's layout, as the optimizer wants it.
     */
    public static Var linear(Var x, Var w, Var b) {
        if (x.value.rank() != 2 || w.value.rank() != 2) throw new IllegalArgumentException("linear: x (N, in) and W (out, in), got " + x.value + ", " + w.value);
        long outF = w.value.size(0);
        if (b != null && b.value.numel() != outF) throw new IllegalArgumentException("linear: bias " + b.value + " for " + outF + " outputs");
        Tensor out = g().empty(x.value.device(), x.value.size(0), outF);
        Precision prec = gemmPrecision(x.value, "linear");
        /* CUDA with cuBLASLt: the bias rides the GEMM's BIAS epilogue (one pass over out). GELU is not fused (GELU_BIAS):
         * cuBLASLt's GELU is the tanh approximation while F.gelu is the exact erf one, and autograd keeps this op's
         * output, the pre-activation, for GELU's backward anyway, so GELU_AUX_BIAS would save no memory. */
        /* h-linconv: where the forward converts x and W to bf16 (CUDA at BF16 without cuBLASLt's fused bias), it keeps the
         * copies its backward reads (x for dW, W for dx); the backward converts dy once for both products. */
        boolean wantX = x.requiresGrad, wantW = wants(w);
        /* h-bf16act: x's producer (a LayerNorm, GELU) may have written x's bf16 copy: the GEMM reads it, the backward too. */
        KeptOperands keep = keepGemmOperands(x.value, prec, wantX || wantW), xIn = gemmInput(x);
        if (b == null || !Gemm.matmulBiasFused(x.value, w.value.transpose(0, 1), dense(b).reshape(outF), out, prec)) {
            Gemm.matmul(x.value, w.value.transpose(0, 1), out, prec, keep, wantW, wantX, xIn);
            if (b != null) Kernels.addRows(out, dense(b).reshape(1, outF), out);   // bias in place: no second activation
        }
        if (!g().recording) release(xIn);
        return rec(out, "linear", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx, dw;
            if (g().recording) {   /* double backward: differentiable products */
                release(keep, xIn);
                dx = x.requiresGrad ? matmul(gr, w) : null;
                dw = wants(w) ? matmul(transpose(gr), x) : null;
            } else {   /* dx = dy W, dW = dy^T x (W's layout): the products above, dy converted once at bf16 on CUDA */
                Tensor tx = x.requiresGrad ? g().empty(x.value.device(), x.value.shape()) : null;
                Tensor tw = wants(w) ? g().empty(w.value.device(), w.value.shape()) : null;
                Gemm.matmulBackward(x.value, w.value.transpose(0, 1), gr.value, tx, null, tw, gemmPrecision(gr.value, "matmul"), keep, xIn);
                release(keep, xIn);   /* a second backward over this graph converts again */
                dx = tx == null ? null : Var.constant(tx);
                dw = tw == null ? null : Var.constant(tw);
            }
            if (b == null) return of(dx, dw);
            return of(dx, dw, wants(b) ? reshape(sumRows(gr, 1, outF), outF) : null);
        });
    }

    // ---- fused kernels ----

    /** Exact (erf) GELU. */
    public static Var gelu(Var x) { return gelu(x, false); }

    /** {@link #gelu(Var)}; gemmInput: the result is a GEMM's A operand (GPT's MLP), see {@link #layerNorm(Var, Var, Var, float, boolean)}. */
    public static Var gelu(Var x, boolean gemmInput) {
        Tensor out = g().empty(x.value.device(), x.value.shape());
        KeptOperands y16 = gemmInput ? GemmInputs.forOutput(g().scope, out, g().precision()) : null;
        Kernels.gelu(dense(x), out, y16);
        return withBf16(rec(out, "gelu", of(x), gr -> of(geluBackward(x, gr))), y16);
    }

    /** v with its bf16 copy y16 attached (h-bf16act; null: none). */
    private static Var withBf16(Var v, KeptOperands y16) {
        v.bf16 = y16;
        return v;
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

    static Tensor onesLike(Tensor t) {
        Tensor o = g().zeros(t.shape());
        o.segment().fill((byte) 0);
        MemorySegment s = o.segment();
        for (long i = 0; i < t.numel(); i++) s.setAtIndex(JAVA_FLOAT, i, 1f);
        return o;
    }

    /** LayerNorm over the last dimension (PyTorch semantics: biased variance, eps inside the sqrt). */
    public static Var layerNorm(Var x, Var w, Var b, float eps) { return layerNorm(x, w, b, eps, false); }

    /**
     * {@link #layerNorm(Var, Var, Var, float)}; gemmInput true: the result is the A operand of the F.linear / F.matmul
     * that follows (GPT's), so at BF16 on CUDA the kernel writes its bf16 copy too, which that GEMM reads instead of
     * converting (h-bf16act, dev.latent.ops.GemmInputs; the same bits). Elsewhere gemmInput changes nothing.
     */
    public static Var layerNorm(Var x, Var w, Var b, float eps, boolean gemmInput) {
        Tensor xv = dense(x);
        long c = xv.size(-1), n = xv.numel() / c;
        Device dev = xv.device();
        Tensor y = g().empty(dev, xv.shape()), mean = g().empty(dev, n), rstd = g().empty(dev, n);
        KeptOperands y16 = gemmInput ? GemmInputs.forOutput(g().scope, y, g().precision()) : null;
        Kernels.layerNorm(xv, w.value, b.value, eps, y, mean, rstd, y16);
        return withBf16(rec(y, "layerNorm", of(x, w, b), gr -> {
            if (g().recording) return layerNormBackwardDifferentiable(x, w, gr, eps, n, c);
            Tensor dx = g().empty(dev, xv.shape()), dw = g().zeros(dev, c), db = g().zeros(dev, c);
            Kernels.layerNormBackward(xv, w.value, mean, rstd, dense(gr), dx, dw, db);
            return of(Var.constant(dx), Var.constant(dw), Var.constant(db));
        }), y16);
    }

    /**
     * The residual add fused with LayerNorm (a pre-LN transformer's {@code s = x + a; y = layerNorm(s)}): returns
     * {s, y} from one pass over the rows, with the bits of {@code add(x, a)} then {@code layerNorm} (forward and
     * backward): the backward's dx = ds + LayerNorm's dx is one float add of the two finished gradients, as the graph's
     * accumulation would do, and is the gradient of both x and a.
     */
    public static Var[] layerNormResidual(Var x, Var a, Var w, Var b, float eps) { return layerNormResidual(x, a, w, b, eps, false); }

    /** {@link #layerNormResidual(Var, Var, Var, Var, float)}; gemmInput: y is a GEMM's A operand, as {@link #layerNorm(Var, Var, Var, float, boolean)}. */
    public static Var[] layerNormResidual(Var x, Var a, Var w, Var b, float eps, boolean gemmInput) {
        sameShape("layerNormResidual", x, a);
        Tensor xv = dense(x), av = dense(a);
        long c = xv.size(-1), n = xv.numel() / c;
        Device dev = xv.device();
        Tensor s = g().empty(dev, xv.shape()), y = g().empty(dev, xv.shape()), mean = g().empty(dev, n), rstd = g().empty(dev, n);
        KeptOperands y16 = gemmInput ? GemmInputs.forOutput(g().scope, y, g().precision()) : null;
        Kernels.layerNormResidual(xv, av, w.value, b.value, eps, s, y, mean, rstd, y16);
        Var[] sy = g().recordMulti(new Tensor[] {s, y}, "layerNormResidual", of(x, a, w, b), gys -> {
            Var gs = gys[0], gy = gys[1];
            if (g().recording) {   // double backward: LayerNorm's differentiable backward on s = x + a, recomputed
                if (gy == null) return of(gs, gs, null, null);
                Var[] l = layerNormBackwardDifferentiable(add(x, a), w, gy, eps, n, c);
                Var d = gs == null ? l[0] : add(gs, l[0]);
                return of(d, d, l[1], l[2]);
            }
            if (gy == null) return of(gs, gs, null, null);   // only the residual stream reached a loss
            Tensor dx = g().empty(dev, xv.shape()), dw = g().zeros(dev, c), db = g().zeros(dev, c);
            if (gs == null) Kernels.layerNormBackward(s, w.value, mean, rstd, dense(gy), dx, dw, db);
            else Kernels.layerNormResidualBackward(s, w.value, mean, rstd, dense(gy), dense(gs), dx, dw, db);
            Var d = Var.constant(dx);
            return of(d, d, Var.constant(dw), Var.constant(db));
        });
        withBf16(sy[1], y16);
        return sy;
    }

    /**
     * LayerNorm's backward written with differentiable ops (for double backward, e.g. a WGAN-GP critic with
     * LayerNorm): recomputes x-hat and 1/sigma from x so their dependence on x is on the tape.
     */
    static Var[] layerNormBackwardDifferentiable(Var x, Var w, Var gr, float eps, long n, long c) {
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
        Precision prec = gemmPrecision(p, "attention"); /* BF16: bf16 operands of its matmuls, fp32 softmax */
        /* h-sdpaconv: where a backward will follow (recording, qkv requires grad), the forward may keep its bf16 operands
         * (CUDA, BF16, cuDNN's SDPA) in the graph's scope for it; released once the backward has used them. */
        KeptOperands keep = g().recording && qkv.requiresGrad ? new KeptOperands(g().scope) : null;
        AttentionKernels.attention(q, k, v, causal, scale, o, lse, prec, keep);
        return rec(o, "attention", of(qkv), gr -> {
            firstOrderOnly("attention");
            Tensor d = g().empty(p.device(), p.shape());
            Tensor dq = d.slice(0, 0, 1).reshape(q.shape()), dk = d.slice(0, 1, 2).reshape(q.shape()), dv = d.slice(0, 2, 3).reshape(q.shape());
            AttentionKernels.attentionBackward(q, k, v, o, lse, dense(gr), causal, scale, dq, dk, dv, prec, keep);
            if (keep != null) keep.release();   /* a second backward over this graph converts again */
            return of(Var.constant(d));
        });
    }

    /** Rows of {@code table} (V, C) picked by int32 {@code ids} (n): (n, C). */
    public static Var embedding(MemorySegment ids, long n, Var table) {
        Tensor t = dense(table);
        long vocab = t.size(0), c = t.size(1);
        Tensor out = g().empty(t.device(), n, c);
        Kernels.embedding(ids, t, out);   /* checks the ids on the host first, then the device's backend copies the rows */
        return rec(out, "embedding", of(table), gr -> {
            firstOrderOnly("embedding");
            Tensor d = g().zeros(t.device(), vocab, c);
            Kernels.embeddingBackward(ids, dense(gr), d);
            return of(Var.constant(d));
        });
    }

    /**
     * Mean cross-entropy of logits (N, V) against int32 targets (N; negative = ignored): a scalar. One kernel pass per row
     * writes the row's loss and, when a gradient is wanted, d loss / d logits (softmax - one-hot, times 1 / counted) into
     * a buffer of its own: no probabilities are stored and the backward only hands that buffer on.
     */
    public static Var crossEntropy(Var logits, MemorySegment targets) { return crossEntropy(logits, targets, false); }

    /**
     * {@link #crossEntropy} as llm.c's fused classifier: the kernel writes d loss / d logits over the logits themselves
     * (the softmax-cross-entropy kernels read each logit before overwriting it), so a training step holds one
     * logits-sized buffer instead of two (GPT-2's vocabulary at 32 x 1024 tokens: 6.6 GB less). The loss and the gradient
     * have crossEntropy's bits. <b>The logits' values are gone after the call</b> whenever a gradient is computed: only
     * for logits an op produced and nothing reads afterwards (not the caller, not another op, and not the producing op's
     * backward: a matmul's or a Linear's reads its inputs, not its output); {@link dev.latent.models.gpt.Gpt#loss},
     * Classifier.loss, GatedPixelCnn.loss and WaveNet.loss use it. Logits that are a leaf (a parameter or an input) are refused, since overwriting them would corrupt the values
     * a caller holds; without a gradient to compute (inference, or logits needing none) they are left intact.
     */
    public static Var crossEntropyInPlace(Var logits, MemorySegment targets) { return crossEntropy(logits, targets, true); }

    private static Var crossEntropy(Var logits, MemorySegment targets, boolean inPlace) {
        boolean grad = logits.requiresGrad && g().recording;
        if (inPlace && grad && logits.node == null)
            throw new IllegalArgumentException("crossEntropyInPlace: the logits " + logits.value + " are a leaf (a parameter or an input), whose values "
                    + "the gradient would overwrite; use crossEntropy, or pass logits an op produced");
        Tensor lv = dense(logits);
        long v = lv.size(-1), n = lv.numel() / v;
        long counted = 0;
        for (long i = 0; i < n; i++) if (targets.getAtIndex(JAVA_INT, i) >= 0) counted++;
        float inv = counted == 0 ? 0f : 1f / counted;
        Device dev = lv.device();
        Tensor losses = g().empty(dev, n);
        // in place: over the logits when dense, else over dense()'s copy (then the logits themselves stay intact)
        Tensor dlogits = !grad ? null : inPlace ? lv : g().empty(dev, lv.shape());
        Kernels.softmaxCrossEntropy(lv, targets, losses, dlogits, inv);
        double sum = 0;
        Tensor out;
        if (dev == Device.CPU) {
            MemorySegment ls = losses.segment();
            for (long i = 0; i < n; i++) sum += ls.getAtIndex(JAVA_FLOAT, i);
            out = g().zeros(1);
            out.segment().set(JAVA_FLOAT, 0, (float) (sum * inv));
        } else {   /* the per-row losses summed on the device (double, fixed chunks), then times 1 / counted: no copy back */
            Tensor total = g().empty(dev, 1);
            Kernels.sum(losses, total);
            out = g().empty(dev, 1);
            Kernels.axpby(inv, total, 0f, out);   // (float) ((float) sum * inv): within one float rounding of the CPU's
        }
        return rec(out, inPlace ? "crossEntropyInPlace" : "crossEntropy", of(logits), gr -> {
            firstOrderOnly(inPlace ? "crossEntropyInPlace" : "crossEntropy");
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
    /** A one-element tensor's value: known to the graph (no copy), read on the CPU, or copied back from the device (a sync). */
    static float scalar(Tensor t) {
        Float k = g().known(t);
        if (k != null) return k;
        return t.device() == Device.CPU ? t.segment().get(JAVA_FLOAT, 0) : t.toArray()[0];
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

    static Var saturating(Var x, int kind, String name) {
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
        Tensor out;
        if (lv.device() == Device.CPU) {
            double sum = Kernels.bceWithLogits(lv, null, t, d, 1f / n);
            out = Tensor.of(g().scope, lv.device(), new float[] {(float) (sum / n)}, 1);
        } else {   /* the loss stays on the device: (float) sum, then times 1 / n (one more float rounding than the CPU) */
            Tensor sum = g().empty(lv.device(), 1);
            Kernels.bceWithLogitsOnDevice(lv, null, t, d, 1f / n, sum);
            out = g().empty(lv.device(), 1);
            Kernels.axpby(1f / n, sum, 0f, out);
        }
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
    static Tensor ones(Device dev, long r, long c) {
        if (r * c > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("ones: " + r + " x " + c + " too large");
        /* read-only GEMM operands: a resident device tensor per length (a step captured into a CUDA graph may not upload) */
        Tensor k = dev == Device.CUDA ? Kernels.residentOnes(r * c) : null;
        if (k != null) return k.reshape(r, c);
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
            /* c from a resident device constant (uploaded once per value: a step captured into a CUDA graph may not upload) */
            Tensor k = Kernels.residentScalar(c);
            Kernels.addRows(xv.reshape(n, 1), k != null ? k : Tensor.of(g().scope, xv.device(), new float[] {c}, 1, 1), y.reshape(n, 1));
            return rec(y, "addScalar", of(x), gr -> of(gr));
        }
        return pointwise(x, "addScalar", v -> v + c, v -> 1);
    }

    public static Var sqrt(Var x) { return pointwise(x, "sqrt", Math::sqrt, v -> 0.5 / Math.sqrt(v)); }

    /** 1 / sqrt(x). */
    public static Var rsqrt(Var x) {
        return pointwise(x, "rsqrt", v -> 1 / Math.sqrt(v), v -> -0.5 / (v * Math.sqrt(v)));
    }

    public static Var square(Var x) { return pointwise(x, "square", v -> v * v, v -> 2 * v); }

    public static Var exp(Var x) { return pointwise(x, "exp", Math::exp, Math::exp); }

    public static Var log(Var x) { return pointwise(x, "log", Math::log, v -> 1 / v); }

    /** y = f(x) elementwise in double with a first-order rule dx = dy f'(x). */
    static Var pointwise(Var x, String name, DoubleUnaryOperator f, DoubleUnaryOperator df) {
        Tensor xv = dense(x);
        long n = xv.numel();
        if (xv.device() != Device.CPU) {
            /* kernels/pointwise: the same double formula on the device, rounded once (no host copy, no synchronisation) */
            Device dev = xv.device();
            Tensor y = g().empty(dev, xv.shape());
            Kernels.pointwise(name, xv, y);
            return rec(y, name, of(x), gr -> {
                firstOrderOnly(name);
                Tensor d = g().empty(dev, xv.shape());
                Kernels.pointwiseBackward(name, xv, dense(gr), d);
                return of(Var.constant(d));
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

    // ---- convolutions, channel reductions, BatchNorm2d: implemented in ConvF ----

    /** See {@link ConvF#conv2d}. */
    public static Var conv2d(Var x, Var w, Var b, int stride, int pad) { return ConvF.conv2d(x, w, b, stride, pad); }

    /** See {@link ConvF#conv2d(Var, Var, Var, int, int, int, int)}. */
    public static Var conv2d(Var x, Var w, Var b, int strideH, int strideW, int padH, int padW) {
        return ConvF.conv2d(x, w, b, strideH, strideW, padH, padW);
    }

    /** See {@link ConvF#convTranspose2d}. */
    public static Var convTranspose2d(Var x, Var w, Var b, int stride, int pad, int outputPadding) {
        return ConvF.convTranspose2d(x, w, b, stride, pad, outputPadding);
    }

    /** See {@link ConvF#channelSum}. */
    public static Var channelSum(Var x) { return ConvF.channelSum(x); }

    /** See {@link ConvF#channelBroadcast}. */
    public static Var channelBroadcast(Var v, long[] shape) { return ConvF.channelBroadcast(v, shape); }

    /** See {@link ConvF#batchNorm2d}. */
    public static Var batchNorm2d(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar, boolean training,
                                  float momentum, float eps) {
        return ConvF.batchNorm2d(x, gamma, beta, runningMean, runningVar, training, momentum, eps);
    }

    /** See {@link Conv1dF#conv1dCausal} (issue 21: WaveNet's dilated causal convolution). */
    public static Var conv1dCausal(Var x, Var w, Var b, long dilation) { return Conv1dF.conv1dCausal(x, w, b, dilation); }

    // ---- VAE and flows: implemented in ProbF ----

    /** z and the KL term of one reparameterization: both Vars of the same fused kernel. */
    public record Reparam(Var z, Var kl) {}

    /** y' and the per-image log-determinant of one affine coupling: two Vars of one fused kernel. */
    public record Coupling(Var out, Var logdet) {}

    /** See {@link ProbF#reparam}. */
    public static Reparam reparam(Var mu, Var logvar, long seed, long stream) {
        return ProbF.reparam(mu, logvar, seed, stream);
    }

    /** See {@link ProbF#reparam(Var, Var, Tensor)}: the Philox key read from device memory (CUDA graphs). */
    public static Reparam reparam(Var mu, Var logvar, Tensor key) {
        return ProbF.reparam(mu, logvar, key);
    }

    /** See {@link ProbF#bceWithLogitsSum}. */
    public static Var bceWithLogitsSum(Var logits, Tensor targets, float scale) {
        return ProbF.bceWithLogitsSum(logits, targets, scale);
    }

    /** See {@link ProbF#gaussianNllSum}. */
    public static Var gaussianNllSum(Var pred, Tensor target, double sigma, float scale) {
        return ProbF.gaussianNllSum(pred, target, sigma, scale);
    }

    /** See {@link ProbF#klFreeBits}. */
    public static Var klFreeBits(Var mu, Var logvar, double lambda) { return ProbF.klFreeBits(mu, logvar, lambda); }

    /** See {@link ProbF#coupling}. */
    public static Coupling coupling(Var y, Var h, Var scale, Tensor mask) { return ProbF.coupling(y, h, scale, mask); }

    /** See {@link ProbF#couplingInverse}. */
    public static Tensor couplingInverse(Tensor yp, Tensor h, float scale, Tensor mask) {
        return ProbF.couplingInverse(yp, h, scale, mask);
    }

    /** See {@link ProbF#diag}. */
    public static Var diag(Var v) { return ProbF.diag(v); }
}
