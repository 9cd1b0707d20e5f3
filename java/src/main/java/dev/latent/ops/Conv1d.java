package dev.latent.ops;

import dev.latent.cuda.CudaKernels;
import dev.latent.tensor.Tensor;

import java.util.Arrays;

/**
 * Tensor-level dilated causal 1-D convolution (kernels/conv1d; WaveNet's layer): activations (N, C, T), weights
 * (Cout, Cin, K). y[n, o, t] = bias[o] + sum_{i, j} w[o, i, j] x[n, i, t - (K-1-j) d]: the input is padded on the
 * left with (K-1) d zeros, so an output never depends on a later input. Each call checks shapes against a
 * {@link Geometry} and makes one downcall, or, for tensors all on CUDA, launches conv1d.cu's kernels (see
 * {@link Kernels} for the device rules); outputs are passed in.
 */
public final class Conv1d {
    private Conv1d() {}

    /** The shape of one causal convolution: input (n, cin, t), cout filters of k taps spaced by dilation. */
    public record Geometry(long n, long cin, long t, long cout, long k, long dilation) {
        public Geometry {
            if (n < 1 || cin < 1 || t < 1 || cout < 1 || k < 1)
                throw new IllegalArgumentException("conv1d: sizes must be >= 1: " + this);
            if (dilation < 1) throw new IllegalArgumentException("conv1d: dilation must be >= 1, got " + dilation);
        }

        public long[] inShape() { return new long[] {n, cin, t}; }
        public long[] outShape() { return new long[] {n, cout, t}; }
        public long[] weightShape() { return new long[] {cout, cin, k}; }
        /** How far back one output sees: (k - 1) dilation + 1 samples. */
        public long receptiveField() { return (k - 1) * dilation + 1; }
        /** 2 N Cout T Cin K: the FLOPs of one pass (each of fwd, bwd-data, bwd-weight), padding taps included. */
        public double flops() { return 2.0 * n * cout * t * cin * k; }
    }

    private static void shape(String op, String what, Tensor t, long... expect) {
        if (t != null && !Arrays.equals(t.shape(), expect))
            throw new IllegalArgumentException(op + ": " + what + " must be " + Arrays.toString(expect) + ", got " + t);
    }

    /** y = causal conv(x, w) + bias (bias may be null). */
    public static void forward(Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        boolean gpu = Kernels.onCuda("conv1d", x, w, bias, y);
        if (!gpu) Kernels.dense("conv1d", x, w, bias, y);
        shape("conv1d", "x", x, g.inShape()); shape("conv1d", "w", w, g.weightShape());
        shape("conv1d", "bias", bias, g.cout()); shape("conv1d", "y", y, g.outShape());
        if (gpu) CudaKernels.conv1d(Kernels.cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), Kernels.buf(x), Kernels.buf(w), Kernels.buf(bias), Kernels.buf(y));
        else Kernels.nat().conv1dFwd(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), x.segment(), w.segment(), Kernels.seg(bias), y.segment());
    }

    /** dx = conv^T(dy, w): dx[n, i, t] = sum_{o, j} w[o, i, j] dy[n, o, t + (K-1-j) d]. */
    public static void backwardData(Geometry g, Tensor dy, Tensor w, Tensor dx) {
        boolean gpu = Kernels.onCuda("conv1dBackwardData", dy, w, dx);
        if (!gpu) Kernels.dense("conv1dBackwardData", dy, w, dx);
        shape("conv1dBackwardData", "dy", dy, g.outShape()); shape("conv1dBackwardData", "w", w, g.weightShape());
        shape("conv1dBackwardData", "dx", dx, g.inShape());
        if (gpu) CudaKernels.conv1dBackwardData(Kernels.cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), Kernels.buf(dy), Kernels.buf(w), Kernels.buf(dx));
        else Kernels.nat().conv1dBwdData(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), dy.segment(), w.segment(), dx.segment());
    }

    /** dw (and db when not null) from x and dy; accumulate adds instead of overwriting. */
    public static void backwardWeight(Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        boolean gpu = Kernels.onCuda("conv1dBackwardWeight", x, dy, dw, db);
        if (!gpu) Kernels.dense("conv1dBackwardWeight", x, dy, dw, db);
        shape("conv1dBackwardWeight", "x", x, g.inShape()); shape("conv1dBackwardWeight", "dy", dy, g.outShape());
        shape("conv1dBackwardWeight", "dw", dw, g.weightShape()); shape("conv1dBackwardWeight", "db", db, g.cout());
        if (gpu) CudaKernels.conv1dBackwardWeight(Kernels.cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), Kernels.buf(x), Kernels.buf(dy), Kernels.buf(dw), Kernels.buf(db), accumulate);
        else Kernels.nat().conv1dBwdWeight(g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), x.segment(), dy.segment(), dw.segment(), Kernels.seg(db), accumulate);
    }
}
