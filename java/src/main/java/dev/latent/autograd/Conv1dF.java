package dev.latent.autograd;

import dev.latent.ops.Conv1d;
import dev.latent.tensor.Tensor;

import static dev.latent.autograd.F.*;

/**
 * The dilated causal 1-D convolution (WaveNet's layer, kernels/conv1d) as a differentiable op. Forward,
 * backward-data and backward-weight are each other's adjoints, so every rule is written with these three
 * differentiable ops and double backward works (as for {@link ConvF#conv2d}). Part of {@link F}
 * ({@link F#conv1dCausal}); runs on the CPU library or, for CUDA tensors, on conv1d.cu.
 */
public final class Conv1dF {
    private Conv1dF() {}

    static Conv1d.Geometry geometry(String op, Tensor x, Tensor w, long dilation) {
        if (x.rank() != 3 || w.rank() != 3)
            throw new IllegalArgumentException(op + ": x (N, Cin, T) and w (Cout, Cin, K) needed, got " + x + ", " + w);
        if (w.size(1) != x.size(1))
            throw new IllegalArgumentException(op + ": w " + w + " expects " + w.size(1) + " input channels, x " + x + " has " + x.size(1));
        return new Conv1d.Geometry(x.size(0), x.size(1), x.size(2), w.size(0), w.size(2), dilation);
    }

    /**
     * Causal dilated convolution of x (N, Cin, T) with w (Cout, Cin, K), optional bias (Cout): output (N, Cout, T),
     * y[n, o, t] = b[o] + sum_{i, j} w[o, i, j] x[n, i, t - (K-1-j) dilation]. Equal to PyTorch's
     * {@code conv1d(x, w, b, padding=(K-1)*dilation, dilation=dilation)[..., :T]}.
     */
    public static Var conv1dCausal(Var x, Var w, Var b, long dilation) {
        Conv1d.Geometry geo = geometry("conv1dCausal", x.value, w.value, dilation);
        if (b != null && b.value.numel() != geo.cout())
            throw new IllegalArgumentException("conv1dCausal: bias " + b.value + " for " + geo.cout() + " channels");
        Tensor y = g().empty(x.value.device(), geo.outShape());
        Conv1d.forward(geo, dense(x), dense(w), b == null ? null : dense(b), y);
        return rec(y, "conv1dCausal", b == null ? of(x, w) : of(x, w, b), gr -> {
            Var dx = x.requiresGrad ? backwardData(geo, gr, w) : null;
            if (!g().recording && wants(w) && wants(b)) {   // first order: dw and db in one pass
                Tensor dw = g().empty(x.value.device(), geo.weightShape()), db = g().empty(x.value.device(), geo.cout());
                Conv1d.backwardWeight(geo, dense(x), dense(gr), dw, db, false);
                return of(dx, Var.constant(dw), Var.constant(db));
            }
            Var dw = wants(w) ? backwardWeight(geo, x, gr) : null;
            if (b == null) return of(dx, dw);
            return of(dx, dw, wants(b) ? ConvF.channelSum(gr) : null);
        });
    }

    /** The convolution without bias for a given geometry (the adjoint rules' building block). */
    static Var forward(Conv1d.Geometry geo, Var x, Var w) {
        Tensor y = g().empty(x.value.device(), geo.outShape());
        Conv1d.forward(geo, dense(x), dense(w), null, y);
        return rec(y, "conv1dCausal", of(x, w), gr -> of(
                x.requiresGrad ? backwardData(geo, gr, w) : null,
                wants(w) ? backwardWeight(geo, x, gr) : null));
    }

    /** dx = conv^T(dy, w): the input gradient (anti-causal: dx at t sees dy at t and later). */
    static Var backwardData(Conv1d.Geometry geo, Var dy, Var w) {
        Tensor dx = g().empty(dy.value.device(), geo.inShape());
        Conv1d.backwardData(geo, dense(dy), dense(w), dx);
        return rec(dx, "conv1dBackwardData", of(dy, w), gr -> of(
                dy.requiresGrad ? forward(geo, gr, w) : null,
                wants(w) ? backwardWeight(geo, gr, dy) : null));
    }

    /** dw = sum over the batch and time of dy (x) shifted x: the weight gradient. */
    static Var backwardWeight(Conv1d.Geometry geo, Var x, Var dy) {
        Tensor dw = g().empty(x.value.device(), geo.weightShape());
        Conv1d.backwardWeight(geo, dense(x), dense(dy), dw, null, false);
        return rec(dw, "conv1dBackwardWeight", of(x, dy), gr -> of(
                x.requiresGrad ? backwardData(geo, dy, gr) : null,
                dy.requiresGrad ? forward(geo, x, gr) : null));
    }
}
