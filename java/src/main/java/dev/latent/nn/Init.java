package dev.latent.nn;

import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/** Parameter initialisation from Philox uniforms (seed, stream) through Box-Muller: same bits on any machine. */
public final class Init {
    private Init() {}

    /** N(0, std^2) of {@code shape}. */
    public static Tensor normal(Scope scope, long seed, long stream, double std, long... shape) {
        Tensor t = Tensor.rand(scope, seed, stream, shape);
        MemorySegment s = t.segment();
        long n = t.numel();
        for (long i = 0; i + 1 < n; i += 2) {
            double u1 = s.getAtIndex(JAVA_FLOAT, i), u2 = s.getAtIndex(JAVA_FLOAT, i + 1);
            double r = Math.sqrt(-2 * Math.log(u1)), th = 2 * Math.PI * u2;
            s.setAtIndex(JAVA_FLOAT, i, (float) (std * r * Math.cos(th)));
            s.setAtIndex(JAVA_FLOAT, i + 1, (float) (std * r * Math.sin(th)));
        }
        if (n % 2 == 1) {
            double u1 = s.getAtIndex(JAVA_FLOAT, n - 1);
            s.setAtIndex(JAVA_FLOAT, n - 1, (float) (std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(1.0)));
        }
        return t;
    }

    public static Tensor constant(Scope scope, float value, long... shape) {
        Tensor t = Tensor.zeros(scope, shape);
        if (value != 0f) t.segment().elements(JAVA_FLOAT).forEach(e -> e.set(JAVA_FLOAT, 0, value));
        return t;
    }

    /** U(-bound, bound) of {@code shape}. */
    public static Tensor uniform(Scope scope, long seed, long stream, double bound, long... shape) {
        Tensor t = Tensor.rand(scope, seed, stream, shape);
        MemorySegment s = t.segment();
        for (long i = 0, n = t.numel(); i < n; i++) s.setAtIndex(JAVA_FLOAT, i, (float) ((2.0 * s.getAtIndex(JAVA_FLOAT, i) - 1.0) * bound));
        return t;
    }

    /** PyTorch's default for Linear and Conv weights and biases (kaiming_uniform with a = sqrt 5): U(+-1/sqrt(fan_in)). */
    public static Tensor torchDefault(Scope scope, long seed, long stream, long fanIn, long... shape) {
        return uniform(scope, seed, stream, 1.0 / Math.sqrt(fanIn), shape);
    }

    /**
     * Copies a loaded tensor (a checkpoint's, on the CPU) into a parameter or buffer on any device: a host copy on the
     * CPU, else one upload into a temporary and a device-to-device copy (numel must match; shapes are the caller's check).
     */
    public static void assign(Tensor src, Tensor dst) {
        if (src.numel() != dst.numel()) throw new IllegalArgumentException("assign: " + src + " into " + dst + ": element counts differ");
        if (dst.device() == dev.latent.tensor.Device.CPU) {
            MemorySegment.copy(src.segment(), 0, dst.segment(), 0, src.numel() * 4);
            return;
        }
        try (Scope tmp = Scope.confined()) {
            dev.latent.ops.Kernels.copy(src.to(tmp, dst.device()).reshape(dst.shape()), dst);
        }
    }
}
