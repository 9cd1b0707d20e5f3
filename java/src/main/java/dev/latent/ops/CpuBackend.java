package dev.latent.ops;

import dev.latent.nativ.LatentBinding.AdamwDesc;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * {@link Backend} on the CPU: one downcall into the native library per op ({@link LatentNative}, host segments; a null
 * optional tensor is passed as NULL). A few ops are plain Java loops (embedding's row copies, sum).
 */
final class CpuBackend extends CpuOps {
    static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    private static final ThreadLocal<MemorySegment> ADAM = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.ADAMW_DESC));
    private static final ThreadLocal<MemorySegment> F64 = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(8, 8));

    private static LatentNative nat() { return LatentNative.get(); }

    private static MemorySegment seg(Tensor t) { return t == null ? MemorySegment.NULL : t.segment(); }

    @Override public Device device() { return Device.CPU; }

    @Override public void copy(Tensor src, Tensor dst) {
        MemorySegment d = Kernels.copyDesc(src, dst);
        nat().copyStrided(d, src.storage().asSlice(src.offset() * 4), dst.storage().asSlice(dst.offset() * 4));
    }

    @Override public void zero(Tensor x) { x.segment().fill((byte) 0); }

    @Override public void sum(long n, Tensor x, Tensor out) {
        MemorySegment s = x.segment();
        double acc = 0;
        for (long i = 0; i < n; i++) acc += s.getAtIndex(JAVA_FLOAT, i);
        out.segment().set(JAVA_FLOAT, 0, (float) acc);
    }

    @Override public double bceWithLogits(long n, Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale) {
        MemorySegment out = F64.get();
        nat().bceLogits(n, logits.segment(), seg(targets), t, out, seg(dlogits), dscale);
        return out.get(JAVA_DOUBLE, 0);
    }

    @Override public void embedding(long n, long c, MemorySegment ids, int[] id, Tensor table, Tensor out) {
        MemorySegment src = table.segment(), dst = out.segment();
        for (int i = 0; i < n; i++) MemorySegment.copy(src, id[i] * c * 4, dst, i * c * 4, c * 4);
    }

    @Override public void embeddingBackward(long n, long c, long vocab, MemorySegment ids, int[] id, Tensor dout, Tensor dtable) {
        nat().embeddingBwd(n, c, vocab, ids, dout.segment(), dtable.segment());
    }

    @Override public void adamw(long n, Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                                float weightDecay, float gradScale, long step) {
        MemorySegment d = ADAM.get();
        AdamwDesc.setLr(d, lr);
        AdamwDesc.setBeta1(d, beta1);
        AdamwDesc.setBeta2(d, beta2);
        AdamwDesc.setEps(d, eps);
        AdamwDesc.setWeightDecay(d, weightDecay);
        AdamwDesc.setGradScale(d, gradScale);
        AdamwDesc.setStep(d, step);
        nat().adamw(d, n, p.segment(), g.segment(), m.segment(), v.segment());
    }

    @Override public double sumOfSquares(long n, Tensor x) { return nat().sumsq(n, x.segment(), F64.get()); }

    @Override public double sumOfSquaresSegments(Tensor x, long[] offset, long[] len) {
        if (offset.length == 0) return 0;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment o = a.allocateFrom(JAVA_LONG, offset), l = a.allocateFrom(JAVA_LONG, len);
            return nat().sumsqSegments(offset.length, o, l, x.segment(), F64.get());
        }
    }

    @Override public double reparam(long n, Tensor mu, Tensor logvar, long seed, long stream, Tensor z) {
        MemorySegment kl = F64.get();
        nat().reparamFwd(n, mu.segment(), logvar.segment(), seed, stream, z.segment(), kl);
        return kl.get(JAVA_DOUBLE, 0);
    }

    @Override public void couplingForward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor out, double[] logdet) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ld = logdet == null ? MemorySegment.NULL : a.allocate(JAVA_DOUBLE, n);
            nat().couplingFwd(n, hw, mask.segment(), y.segment(), h.segment(), scale, out.segment(), ld);
            if (logdet != null) MemorySegment.copy(ld, JAVA_DOUBLE, 0, logdet, 0, logdet.length);
        }
    }

    @Override public double couplingBackward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor dout,
                                             double[] dlogdet, Tensor dy, Tensor dh) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment dl = dlogdet == null ? MemorySegment.NULL : a.allocateFrom(JAVA_DOUBLE, dlogdet);
            MemorySegment ds = a.allocate(JAVA_DOUBLE);
            nat().couplingBwd(n, hw, mask.segment(), y.segment(), h.segment(), scale, dout.segment(), dl, dy.segment(), dh.segment(), ds);
            return ds.get(JAVA_DOUBLE, 0);
        }
    }

    @Override public void conv2d(Conv.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        nat().conv2dFwd(g.desc(), x.segment(), w.segment(), seg(bias), y.segment());
    }

    @Override public void conv2dBackwardData(Conv.Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx) {
        nat().conv2dBwdData(g.desc(), dy.segment(), w.segment(), seg(bias), dx.segment());
    }

    @Override public void conv2dBackwardWeight(Conv.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        nat().conv2dBwdWeight(g.desc(), x.segment(), dy.segment(), dw.segment(), seg(db), accumulate);
    }

    @Override public void conv1d(Conv1d.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        nat().conv1dFwd(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), x.segment(), w.segment(), seg(bias), y.segment());
    }

    @Override public void conv1dBackwardData(Conv1d.Geometry g, Tensor dy, Tensor w, Tensor dx) {
        nat().conv1dBwdData(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), dy.segment(), w.segment(), dx.segment());
    }

    @Override public void conv1dBackwardWeight(Conv1d.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        nat().conv1dBwdWeight(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), x.segment(), dy.segment(), dw.segment(), seg(db), accumulate);
    }

    @Override public void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                               long batch, long sa, long sb, long sc, Tensor a, Tensor b, Tensor c, boolean bf16) {
        Gemm.call(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a.storage(), a.offset(), b.storage(), b.offset(),
                c.storage(), c.offset(), bf16);
    }

    /* F's pointwise formulas (F.sqrt ... F.log), in double, rounded once: the bits of F's own CPU loops */
    private static double pointwiseF(String op, double v) {
        return switch (op) {
            case "sqrt" -> Math.sqrt(v);
            case "rsqrt" -> 1 / Math.sqrt(v);
            case "square" -> v * v;
            case "exp" -> Math.exp(v);
            case "log" -> Math.log(v);
            default -> throw new IllegalArgumentException("pointwise: unknown op " + op + " (sqrt, rsqrt, square, exp, log)");
        };
    }

    private static double pointwiseDf(String op, double v) {
        return switch (op) {
            case "sqrt" -> 0.5 / Math.sqrt(v);
            case "rsqrt" -> -0.5 / (v * Math.sqrt(v));
            case "square" -> 2 * v;
            case "exp" -> Math.exp(v);
            case "log" -> 1 / v;
            default -> throw new IllegalArgumentException("pointwise: unknown op " + op + " (sqrt, rsqrt, square, exp, log)");
        };
    }

    @Override public void pointwise(String op, long n, Tensor x, Tensor y) {
        MemorySegment s = x.segment(), o = y.segment();
        for (long i = 0; i < n; i++) o.setAtIndex(JAVA_FLOAT, i, (float) pointwiseF(op, s.getAtIndex(JAVA_FLOAT, i)));
    }

    @Override public void pointwiseBackward(String op, long n, Tensor x, Tensor dy, Tensor dx) {
        MemorySegment s = x.segment(), g = dy.segment(), d = dx.segment();
        for (long i = 0; i < n; i++)
            d.setAtIndex(JAVA_FLOAT, i, (float) (g.getAtIndex(JAVA_FLOAT, i) * pointwiseDf(op, s.getAtIndex(JAVA_FLOAT, i))));
    }

    @Override public void diag(long c, Tensor v, Tensor m) {
        m.segment().fill((byte) 0);
        for (long i = 0; i < c; i++) m.segment().setAtIndex(JAVA_FLOAT, i * c + i, v.segment().getAtIndex(JAVA_FLOAT, i));
    }

    @Override public void diagBackward(long c, Tensor g, Tensor d) {
        for (long i = 0; i < c; i++) d.segment().setAtIndex(JAVA_FLOAT, i, g.segment().getAtIndex(JAVA_FLOAT, i * c + i));
    }
}
