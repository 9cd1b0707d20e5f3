package dev.latent.ops;

import dev.latent.tensor.Tensor;

import java.util.Arrays;

/**
 * Tensor-level dilated causal 1-D convolution (kernels/conv1d; WaveNet's layer): activations (N, C, T), weights
 * (Cout, Cin, K). y[n, o, t] = bias[o] + sum_{i, j} w[o, i, j] x[n, i, t - (K-1-j) d]: the input is padded on the
 * left with (K-1) d zeros, so an output never depends on a later input. Each call checks devices, contiguity and
 * shapes against a {@link Geometry} once, then makes one call on the tensors' {@link Backend} (the CPU library or
 * conv1d.cu's kernels: see {@link Kernels} for the device rules); outputs are passed in.
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
        Backend be = Backend.on("conv1d", x, w, bias, y);
        shape("conv1d", "x", x, g.inShape()); shape("conv1d", "w", w, g.weightShape());
        shape("conv1d", "bias", bias, g.cout()); shape("conv1d", "y", y, g.outShape());
        be.conv1d(g, x, w, bias, y);
    }

    /** dx = conv^T(dy, w): dx[n, i, t] = sum_{o, j} w[o, i, j] dy[n, o, t + (K-1-j) d]. */
    public static void backwardData(Geometry g, Tensor dy, Tensor w, Tensor dx) {
        Backend be = Backend.on("conv1dBackwardData", dy, w, dx);
        shape("conv1dBackwardData", "dy", dy, g.outShape()); shape("conv1dBackwardData", "w", w, g.weightShape());
        shape("conv1dBackwardData", "dx", dx, g.inShape());
        be.conv1dBackwardData(g, dy, w, dx);
    }

    /** dw (and db when not null) from x and dy; accumulate adds instead of overwriting. */
    public static void backwardWeight(Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        Backend be = Backend.on("conv1dBackwardWeight", x, dy, dw, db);
        shape("conv1dBackwardWeight", "x", x, g.inShape()); shape("conv1dBackwardWeight", "dy", dy, g.outShape());
        shape("conv1dBackwardWeight", "dw", dw, g.weightShape()); shape("conv1dBackwardWeight", "db", db, g.cout());
        be.conv1dBackwardWeight(g, x, dy, dw, db, accumulate);
    }
}
