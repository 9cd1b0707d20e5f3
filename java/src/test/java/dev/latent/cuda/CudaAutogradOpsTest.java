package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;
import java.util.function.Function;

import static dev.latent.cuda.CudaTesting.close;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The autograd ops that the VAE, GAN and flow loops added device paths for, one at a time on CUDA tensors against the
 * CPU: the output, and the input's gradient of sum(op(x) * w) for a random w. Kernels and compositions that sum in
 * another order than the CPU (F.sum and the rest of the double chunks, rowSum / channelSum's float GEMM / tree sums,
 * Gaussian NLL's float e) within 1e-5 of the largest |value| + 1e-7; the explicit-copy paths (pointwise, diag, free
 * bits, BatchNorm eval backward, GELU's second derivative) and the exact compositions (broadcasts, addScalar) are
 * expected equal to the same bound, measured: mostly bit-equal. Also: nothing stays allocated on the device.
 */
class CudaAutogradOpsTest extends AtRefIsaOnDevice {
    record Out(float[] y, float[] dx) {}

    static float[] fill(long n, long seed, boolean positive) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) v[i] = positive ? (float) (0.2 + r.nextDouble()) : (float) (2 * r.nextDouble() - 1);
        return v;
    }

    static Out run(Device dev, Function<Var, Var> op, long[] shape, boolean positive) {
        long before = Scope.liveDeviceBytes();
        Out out;
        try (Graph g = Graph.open()) {
            long n = 1;
            for (long d : shape) n *= d;
            Var x = Var.param(Tensor.of(g.scope(), dev, fill(n, 1, positive), shape));
            Var y = op.apply(x);
            assertEquals(dev, y.value().device());
            Var w = Var.constant(Tensor.of(g.scope(), dev, fill(y.value().numel(), 2, false), y.shape()));
            g.backward(F.sum(F.mul(y, w)));
            out = new Out(y.value().toArray(), x.grad().value().toArray());
        }
        assertEquals(before, Scope.liveDeviceBytes(), "device memory after the graph closed");
        return out;
    }

    static void check(String name, Function<Var, Var> op, boolean positive, long... shape) {
        Out cpu = run(Device.CPU, op, shape, positive), gpu = run(Device.CUDA, op, shape, positive);
        close(name + " value", gpu.y, cpu.y, tol(cpu.y));
        close(name + " gradient", gpu.dx, cpu.dx, tol(cpu.dx));
    }

    static java.util.function.IntToDoubleFunction tol(float[] ref) {
        double max = 0;
        for (float v : ref) max = Math.max(max, Math.abs(v));
        double t = 1e-5 * max + 1e-7;
        return i -> t;
    }

    @Test
    void reductionsAndBroadcasts() {
        check("sum", F::sum, false, 3, 5000);   /* two sumsq.cu chunks */
        check("mean", F::mean, false, 7, 3);
        check("addScalar", x -> F.addScalar(x, 0.37f), false, 4, 6);
        check("rowSum", F::rowSum, false, 5, 3, 4);
        check("colBroadcast", x -> F.colBroadcast(x, 7), false, 6, 1);
        check("channelBroadcast", x -> F.channelBroadcast(x, new long[] {2, 5, 3, 3}), false, 5);
        check("channelSum", F::channelSum, false, 3, 4, 5, 5);
    }

    @Test
    void pointwiseAndDiagByCopies() {
        check("exp", F::exp, false, 2, 9);
        check("log", F::log, true, 2, 9);
        check("sqrt", F::sqrt, true, 2, 9);
        check("rsqrt", F::rsqrt, true, 2, 9);
        check("square", F::square, false, 2, 9);
        check("diag", F::diag, false, 6);
    }

    @Test
    void vaeLosses() {
        float[] t = fill(24, 5, true);
        check("gaussianNllSum", x -> F.gaussianNllSum(x, Tensor.of(Graph.current().scope(), x.value().device(), t, 4, 6), 0.3, 0.25f), false, 4, 6);
        /* free bits with logvar = x / 2: one gradient covers both inputs; lambda 0.1 leaves some dims below it */
        check("klFreeBits", x -> F.klFreeBits(x, F.scale(x, 0.5f), 0.1), false, 3, 4);
    }

    @Test
    void batchNormEvalBackward() {
        float[] rm = fill(3, 7, false), rv = fill(3, 8, true);
        check("batchNorm2d eval", x -> {
            Device dev = x.value().device();
            Scope sc = Graph.current().scope();
            Var gamma = Var.param(Tensor.of(sc, dev, fill(3, 9, true), 3)), beta = Var.param(Tensor.of(sc, dev, fill(3, 10, false), 3));
            return F.batchNorm2d(x, gamma, beta, Tensor.of(sc, dev, rm, 3), Tensor.of(sc, dev, rv, 3), false, 0.1f, 1e-5f);
        }, false, 2, 3, 4, 4);
    }

    @Test
    void geluSecondDerivative() {
        check("gelu'' (gradient of a gradient)", x -> {
            Var y = F.gelu(x);
            Var w1 = Var.constant(Tensor.of(Graph.current().scope(), x.value().device(), fill(x.value().numel(), 3, false), x.shape()));
            return Graph.current().gradient(F.sum(F.mul(y, w1)), x);
        }, false, 3, 7);
    }
}
