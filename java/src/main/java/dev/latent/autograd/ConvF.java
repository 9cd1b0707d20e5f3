package dev.latent.autograd;

import dev.latent.ops.Conv;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static dev.latent.autograd.F.*;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Convolutions (forward, backward-data and backward-weight as each other's adjoints, so double backward works),
 * transposed convolution, channel sums and broadcasts, and BatchNorm2d.
 * Part of {@link F}, which exposes every public op here under the same name; see F for the conventions (devices,
 * recording, double backward).
 * <p>
 * The device tests here are semantic, not a kernel choice (the ops layer's Backend picks kernels): see {@link F}'s
 * class comment, (a) to (d).
 */
public final class ConvF {
    private ConvF() {}

    // ---- convolutions (kernels/conv2d). Forward, backward-data and backward-weight are each other's adjoints,
    // so every rule below is written with these three differentiable ops and double backward works. ----

    private static Conv.Geometry convGeometry(String op, Tensor x, Tensor w, int strideH, int strideW, int padH, int padW) {
        if (x.rank() != 4 || w.rank() != 4)
            throw new IllegalArgumentException(op + ": x (N, C, H, W) and w (K, C, R, S) needed, got " + x + ", " + w);
        if (w.size(1) != x.size(1))
            throw new IllegalArgumentException(op + ": w " + w + " expects " + w.size(1) + " input channels, x " + x + " has " + x.size(1));
        return new Conv.Geometry(x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3), strideH, strideW, padH, padW);
    }

    /** The current graph's operand precision for a convolution on t (CPU BF16: lt_conv2d_*_bf16; CUDA: TF32 / BF16 too; as in F). */
    private static Precision convPrecision(Tensor t) { return gemmPrecision(t, "conv2d"); }

    /** 2-D convolution (cross-correlation) of x (N, C, H, W) with w (K, C, R, S), optional bias (K): PyTorch's conv2d. */
    public static Var conv2d(Var x, Var w, Var b, int stride, int pad) { return conv2d(x, w, b, stride, stride, pad, pad); }

    /**
     * conv2d with separate vertical and horizontal stride and zero padding (a 1 x k kernel padded only left and
     * right: PixelCNN's horizontal stack).
     */
    public static Var conv2d(Var x, Var w, Var b, int strideH, int strideW, int padH, int padW) {
        Conv.Geometry geo = convGeometry("conv2d", x.value, w.value, strideH, strideW, padH, padW);
        if (b != null && b.value.numel() != geo.k()) throw new IllegalArgumentException("conv2d: bias " + b.value + " for " + geo.k() + " channels");
        Tensor y = g().empty(x.value.device(), geo.outShape());
        Conv.forward(geo, dense(x), dense(w), b == null ? null : dense(b), y, convPrecision(x.value));
        return rec(y, "conv2d", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx = x.requiresGrad ? convBackwardData(geo, gr, w) : null;
            if (!g().recording && wants(w) && wants(b)) {   // first order: dw and db in one pass
                Tensor dw = g().empty(x.value.device(), geo.weightShape()), db = g().empty(x.value.device(), geo.k());
                Conv.backwardWeight(geo, dense(x), dense(gr), dw, db, false, convPrecision(x.value));
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
        Conv.forward(geo, dense(x), dense(w), null, y, convPrecision(x.value));
        return rec(y, "conv2d", of(x, w), gr -> of(
                x.requiresGrad ? convBackwardData(geo, gr, w) : null,
                wants(w) ? convBackwardWeight(geo, x, gr) : null));
    }

    /** dx = conv^T(dy, w): the input gradient of a convolution, and the forward of a transposed one. */
    static Var convBackwardData(Conv.Geometry geo, Var dy, Var w) {
        Tensor dx = g().empty(dy.value.device(), geo.inShape());
        Conv.backwardData(geo, dense(dy), dense(w), null, dx, convPrecision(dy.value));
        return rec(dx, "conv2dBackwardData", of(dy, w), gr -> of(
                dy.requiresGrad ? conv2d(geo, gr, w) : null,
                wants(w) ? convBackwardWeight(geo, gr, dy) : null));
    }

    /** dw = sum over the batch of dy (x) patches of x: the weight gradient of a convolution. */
    static Var convBackwardWeight(Conv.Geometry geo, Var x, Var dy) {
        Tensor dw = g().empty(x.value.device(), geo.weightShape());
        Conv.backwardWeight(geo, dense(x), dense(dy), dw, null, false, convPrecision(x.value));
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
        Conv.backwardData(geo, dense(x), dense(w), dense(b), y, convPrecision(x.value));
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
}
