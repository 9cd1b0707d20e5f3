package dev.latent.ops;

import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Tensor-level entry points of the native kernels other than GEMM: each checks devices, contiguity and
 * shapes, then makes one downcall. Outputs are passed in (callers own allocation and lifetimes);
 * integer inputs (token ids, targets) are int32 segments.
 */
public final class Kernels {
    private Kernels() {}

    private static final ThreadLocal<MemorySegment> ATT = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.ATTENTION_DESC));
    private static final ThreadLocal<MemorySegment> ADAM = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.ADAMW_DESC));
    private static final ThreadLocal<MemorySegment> COPY = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.COPY_DESC));
    private static final ThreadLocal<MemorySegment> F64 = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(8, 8));

    static LatentNative nat() { return LatentNative.get(); }

    static void dense(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t == null) continue;
            if (t.device() != Device.CPU) throw new IllegalArgumentException(op + ": CPU tensors only, got " + t.device());
            if (!t.isContiguous()) throw new IllegalArgumentException(op + ": needs contiguous tensors, got " + t
                    + " with strides " + Arrays.toString(t.strides()) + "; call contiguous() first");
        }
    }

    static void numel(String op, long n, Tensor... ts) {
        for (Tensor t : ts)
            if (t != null && t.numel() != n)
                throw new IllegalArgumentException(op + ": expected " + n + " elements, got " + t);
    }

    static void ints(String op, MemorySegment s, long n) {
        if (s == null || s.byteSize() < 4 * n)
            throw new IllegalArgumentException(op + ": int32 segment of " + n + " elements needed, got "
                    + (s == null ? "null" : s.byteSize() / 4 + " elements"));
        if (!s.scope().isAlive()) throw new IllegalStateException(op + ": int32 segment's scope is closed");
    }

    static MemorySegment seg(Tensor t) { return t == null ? MemorySegment.NULL : t.segment(); }

    // ---- layout ----

    /** dst[...] = src[...] for any strides (same shape); rank <= 6. */
    public static void copy(Tensor src, Tensor dst) {
        if (!Arrays.equals(src.shape(), dst.shape()))
            throw new IllegalArgumentException("copy: shapes differ: " + src + " -> " + dst);
        int r = src.rank();
        if (r > LatentNative.MAX_RANK) throw new IllegalArgumentException("copy: rank " + r + " > " + LatentNative.MAX_RANK);
        if (src.numel() == 0) return;
        MemorySegment d = COPY.get();
        d.fill((byte) 0);
        int rr = Math.max(r, 1);
        d.set(JAVA_INT, 0, rr);
        for (int i = 0; i < r; i++) {
            d.set(JAVA_LONG, 8 + 8L * i, src.size(i));
            d.set(JAVA_LONG, 56 + 8L * i, src.stride(i));
            d.set(JAVA_LONG, 104 + 8L * i, dst.stride(i));
        }
        if (r == 0) { d.set(JAVA_LONG, 8, 1); d.set(JAVA_LONG, 56, 1); d.set(JAVA_LONG, 104, 1); }
        nat().copyStrided(d, src.storage().asSlice(src.offset() * 4), dst.storage().asSlice(dst.offset() * 4));
    }

    /** A contiguous copy of {@code x} in {@code scope}. */
    public static Tensor contiguous(Scope scope, Tensor x) {
        Tensor out = Tensor.empty(scope, x.shape());
        copy(x, out);
        return out;
    }

    // ---- elementwise ----

    /** y = a*x + b*y (b == 0: y write-only). */
    public static void axpby(float a, Tensor x, float b, Tensor y) {
        dense("axpby", x, y);
        numel("axpby", y.numel(), x);
        nat().axpby(y.numel(), a, x.segment(), b, y.segment());
    }

    /** y = x * z elementwise. */
    public static void mul(Tensor x, Tensor z, Tensor y) {
        dense("mul", x, z, y);
        numel("mul", y.numel(), x, z);
        nat().mul(y.numel(), x.segment(), z.segment(), y.segment());
    }

    /** y[i, :] = x[i, :] + rows[i % P, :] with x, y viewed as (N, C) and rows (P, C). */
    public static void addRows(Tensor x, Tensor rows, Tensor y) {
        dense("addRows", x, rows, y);
        long c = rows.size(-1), p = rows.numel() / Math.max(c, 1);
        if (x.numel() % Math.max(c, 1) != 0 || x.size(-1) != c || (x.numel() / Math.max(c, 1)) % Math.max(p, 1) != 0)
            throw new IllegalArgumentException("addRows: x " + x + " does not tile rows " + rows);
        numel("addRows", x.numel(), y);
        nat().addRows(x.numel() / Math.max(c, 1), c, p, x.segment(), rows.segment(), y.segment());
    }

    /** out[i % P, :] += x[i, :] (the adjoint of addRows), deterministic. */
    public static void sumRows(Tensor x, Tensor out) {
        dense("sumRows", x, out);
        long c = out.size(-1), p = out.numel() / Math.max(c, 1);
        if (x.size(-1) != c || (x.numel() / Math.max(c, 1)) % Math.max(p, 1) != 0)
            throw new IllegalArgumentException("sumRows: x " + x + " does not tile out " + out);
        nat().sumRows(x.numel() / Math.max(c, 1), c, p, x.segment(), out.segment());
    }

    // ---- normalization and activations ----

    /** LayerNorm over the last dimension; mean and rstd (N) are saved for the backward. */
    public static void layerNorm(Tensor x, Tensor w, Tensor b, float eps, Tensor y, Tensor mean, Tensor rstd) {
        dense("layerNorm", x, w, b, y, mean, rstd);
        long c = x.size(-1), n = x.numel() / Math.max(c, 1);
        numel("layerNorm", c, w, b);
        numel("layerNorm", x.numel(), y);
        numel("layerNorm", n, mean, rstd);
        nat().layernormFwd(n, c, eps, x.segment(), w.segment(), b.segment(), y.segment(), mean.segment(), rstd.segment());
    }

    /** dx overwritten; dw, db accumulated. */
    public static void layerNormBackward(Tensor x, Tensor w, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        dense("layerNormBackward", x, w, mean, rstd, dy, dx, dw, db);
        long c = x.size(-1), n = x.numel() / Math.max(c, 1);
        numel("layerNormBackward", c, w, dw, db);
        numel("layerNormBackward", x.numel(), dy, dx);
        numel("layerNormBackward", n, mean, rstd);
        nat().layernormBwd(n, c, x.segment(), w.segment(), mean.segment(), rstd.segment(), dy.segment(), dx.segment(),
                dw.segment(), db.segment());
    }

    public static void gelu(Tensor x, Tensor y) {
        dense("gelu", x, y);
        numel("gelu", x.numel(), y);
        nat().geluFwd(x.numel(), x.segment(), y.segment());
    }

    public static void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        dense("geluBackward", x, dy, dx);
        numel("geluBackward", x.numel(), dy, dx);
        nat().geluBwd(x.numel(), x.segment(), dy.segment(), dx.segment());
    }

    // ---- attention ----

    private static MemorySegment attDesc(String op, Tensor q, boolean causal, float scale, Tensor... same) {
        if (q.rank() != 4) throw new IllegalArgumentException(op + ": q must be (B, NH, T, HS), got " + q);
        for (Tensor t : same)
            if (t != null && !Arrays.equals(t.shape(), q.shape()))
                throw new IllegalArgumentException(op + ": shapes must all be " + Arrays.toString(q.shape()) + ", got " + t);
        MemorySegment d = ATT.get();
        d.set(JAVA_LONG, 0, q.size(0));
        d.set(JAVA_LONG, 8, q.size(1));
        d.set(JAVA_LONG, 16, q.size(2));
        d.set(JAVA_LONG, 24, q.size(3));
        d.set(JAVA_INT, 32, causal ? 1 : 0);
        d.set(JAVA_FLOAT, 36, scale);
        return d;
    }

    /** q, k, v, o (B, NH, T, HS); lse (B, NH, T). */
    public static void attention(Tensor q, Tensor k, Tensor v, boolean causal, float scale, Tensor o, Tensor lse) {
        dense("attention", q, k, v, o, lse);
        MemorySegment d = attDesc("attention", q, causal, scale, k, v, o);
        numel("attention", q.numel() / q.size(3), lse);
        nat().attentionFwd(d, q.segment(), k.segment(), v.segment(), o.segment(), lse.segment());
    }

    public static void attentionBackward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, boolean causal,
                                         float scale, Tensor dq, Tensor dk, Tensor dv) {
        dense("attentionBackward", q, k, v, o, lse, dout, dq, dk, dv);
        MemorySegment d = attDesc("attentionBackward", q, causal, scale, k, v, o, dout, dq, dk, dv);
        numel("attentionBackward", q.numel() / q.size(3), lse);
        nat().attentionBwd(d, q.segment(), k.segment(), v.segment(), o.segment(), lse.segment(), dout.segment(),
                dq.segment(), dk.segment(), dv.segment());
    }

    // ---- loss ----

    /** Per-row cross-entropy of logits (N, V) against int32 targets (N); dlogits (nullable) = (softmax - onehot) * dscale. */
    public static void softmaxCrossEntropy(Tensor logits, MemorySegment targets, Tensor losses, Tensor dlogits, float dscale) {
        dense("softmaxCrossEntropy", logits, losses, dlogits);
        long v = logits.size(-1), n = logits.numel() / Math.max(v, 1);
        ints("softmaxCrossEntropy", targets, n);
        numel("softmaxCrossEntropy", n, losses);
        numel("softmaxCrossEntropy", logits.numel(), dlogits);
        nat().softmaxXent(n, v, logits.segment(), targets, losses.segment(), seg(dlogits), dscale);
    }

    // ---- optimizer ----

    public static void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                             float weightDecay, float gradScale, long step) {
        dense("adamw", p, g, m, v);
        numel("adamw", p.numel(), g, m, v);
        if (step < 1) throw new IllegalArgumentException("adamw: step must be >= 1, got " + step);
        MemorySegment d = ADAM.get();
        d.set(JAVA_FLOAT, 0, lr);
        d.set(JAVA_FLOAT, 4, beta1);
        d.set(JAVA_FLOAT, 8, beta2);
        d.set(JAVA_FLOAT, 12, eps);
        d.set(JAVA_FLOAT, 16, weightDecay);
        d.set(JAVA_FLOAT, 20, gradScale);
        d.set(JAVA_LONG, 24, step);
        nat().adamw(d, p.numel(), p.segment(), g.segment(), m.segment(), v.segment());
    }

    /** Sum of squares in double, fixed chunking (same bits for any thread count). */
    public static double sumOfSquares(Tensor x) {
        dense("sumOfSquares", x);
        return nat().sumsq(x.numel(), x.segment(), F64.get());
    }

    /** dtable[ids[i], :] += dout[i, :]. */
    public static void embeddingBackward(MemorySegment ids, Tensor dout, Tensor dtable) {
        dense("embeddingBackward", dout, dtable);
        long c = dtable.size(-1), n = dout.numel() / Math.max(c, 1);
        if (dout.size(-1) != c) throw new IllegalArgumentException("embeddingBackward: dout " + dout + " vs table " + dtable);
        ints("embeddingBackward", ids, n);
        nat().embeddingBwd(n, c, dtable.size(0), ids, dout.segment(), dtable.segment());
    }

    // ---- VAE sampler ----

    /** z = mu + exp(0.5 logvar) * eps, eps from Philox (seed, stream); returns KL(q || N(0, I)) summed in double. */
    public static double reparam(Tensor mu, Tensor logvar, long seed, long stream, Tensor z) {
        dense("reparam", mu, logvar, z);
        numel("reparam", mu.numel(), logvar, z);
        MemorySegment kl = F64.get();
        nat().reparamFwd(mu.numel(), mu.segment(), logvar.segment(), seed, stream, z.segment(), kl);
        return kl.get(java.lang.foreign.ValueLayout.JAVA_DOUBLE, 0);
    }

    /** Gradients of sum(dz * z) + klScale * KL with respect to mu and logvar (eps recomputed). */
    public static void reparamBackward(Tensor mu, Tensor logvar, long seed, long stream, Tensor dz, float klScale, Tensor dmu, Tensor dlogvar) {
        dense("reparamBackward", mu, logvar, dz, dmu, dlogvar);
        numel("reparamBackward", mu.numel(), logvar, dz, dmu, dlogvar);
        nat().reparamBwd(mu.numel(), mu.segment(), logvar.segment(), seed, stream, dz.segment(), klScale, dmu.segment(), dlogvar.segment());
    }

    // ---- BatchNorm2d, activations, BCE (kernels/batchnorm, kernels/activation) ----

    private static long[] nchw(String op, Tensor x) {
        if (x.rank() < 2) throw new IllegalArgumentException(op + ": expected (N, C, ...) input, got " + x);
        long n = x.size(0), c = x.size(1);
        return new long[] {n, c, x.numel() / Math.max(1, n * c)};
    }

    /** Training-mode BatchNorm over (N, C, H, W): batch statistics, running statistics updated when not null. */
    public static void batchNormTrain(Tensor x, Tensor gamma, Tensor beta, float eps, float momentum, Tensor y,
                                      Tensor mean, Tensor rstd, Tensor runningMean, Tensor runningVar) {
        dense("batchNorm2d", x, gamma, beta, y, mean, rstd, runningMean, runningVar);
        long[] d = nchw("batchNorm2d", x);
        numel("batchNorm2d", d[1], gamma, beta, mean, rstd, runningMean, runningVar);
        numel("batchNorm2d", x.numel(), y);
        nat().batchnorm2dFwdTrain(d[0], d[1], d[2], eps, momentum, x.segment(), seg(gamma), seg(beta), y.segment(),
                mean.segment(), rstd.segment(), seg(runningMean), seg(runningVar));
    }

    /** Inference-mode BatchNorm with given statistics. */
    public static void batchNormInfer(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor mean, Tensor var, Tensor y) {
        dense("batchNorm2d", x, gamma, beta, mean, var, y);
        long[] d = nchw("batchNorm2d", x);
        numel("batchNorm2d", d[1], gamma, beta, mean, var);
        numel("batchNorm2d", x.numel(), y);
        nat().batchnorm2dFwdInfer(d[0], d[1], d[2], eps, x.segment(), seg(gamma), seg(beta), mean.segment(), var.segment(), y.segment());
    }

    /** dx (overwritten), dgamma and dbeta (accumulated, may be null) of the training forward. */
    public static void batchNormBackward(Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dgamma, Tensor dbeta) {
        dense("batchNorm2dBackward", x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
        long[] d = nchw("batchNorm2dBackward", x);
        numel("batchNorm2dBackward", d[1], gamma, mean, rstd, dgamma, dbeta);
        numel("batchNorm2dBackward", x.numel(), dy, dx);
        nat().batchnorm2dBwd(d[0], d[1], d[2], x.segment(), seg(gamma), mean.segment(), rstd.segment(), dy.segment(),
                dx.segment(), seg(dgamma), seg(dbeta));
    }

    /** y = act(x) for LatentNative.ACT_* (alpha: LeakyReLU's slope). */
    public static void activation(int kind, float alpha, Tensor x, Tensor y) {
        dense("activation", x, y);
        numel("activation", x.numel(), y);
        nat().actFwd(kind, x.numel(), alpha, x.segment(), y.segment());
    }

    /** dx = dy * act'(.); {@code in} is x for ReLU / LeakyReLU and the forward output y for Tanh / Sigmoid. */
    public static void activationBackward(int kind, float alpha, Tensor in, Tensor dy, Tensor dx) {
        dense("activationBackward", in, dy, dx);
        numel("activationBackward", in.numel(), dy, dx);
        nat().actBwd(kind, in.numel(), alpha, in.segment(), dy.segment(), dx.segment());
    }

    /**
     * Sum over elements of BCE-with-logits against {@code targets} (or the constant {@code t} when targets is
     * null); writes dlogits = (sigmoid(x) - t) * dscale when dlogits is not null.
     */
    public static double bceWithLogits(Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale) {
        dense("bceWithLogits", logits, targets, dlogits);
        numel("bceWithLogits", logits.numel(), targets, dlogits);
        MemorySegment out = F64.get();
        nat().bceLogits(logits.numel(), logits.segment(), seg(targets), t, out, seg(dlogits), dscale);
        return out.get(java.lang.foreign.ValueLayout.JAVA_DOUBLE, 0);
    }
}
