package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static dev.latent.cuda.CudaTesting.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 21: F.conv1dCausal on CUDA tensors (conv1d.cu through {@link CudaKernels}) against the CPU library at ISA ref:
 * the output and every gradient of sum(r * tanh(conv(x, w) + b)), with and without bias, on conv1d_cuda_test.cc's kind
 * of shapes (odd channels, K 1..5, dilations with taps before t = 0). Tolerance {@link CudaTesting#gradTol}: the GPU's
 * sums run in another order. Also: a second run gives the same bits, and nothing stays allocated on the device.
 */
class CudaConv1dTest extends AtRefIsaOnDevice {
    static Map<String, float[]> run(Device dev, int[] c, boolean bias) {
        long before = Scope.liveDeviceBytes();
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Graph g = Graph.open()) {
            Var x = Var.param(Tensor.of(g.scope(), dev, fill(c[0] * c[1] * c[2], 1), c[0], c[1], c[2]));
            Var w = Var.param(Tensor.of(g.scope(), dev, fill(c[3] * c[1] * c[4], 2), c[3], c[1], c[4]));
            Var b = bias ? Var.param(Tensor.of(g.scope(), dev, fill(c[3], 3), c[3])) : null;
            Var r = Var.constant(Tensor.of(g.scope(), dev, fill(c[0] * c[3] * c[2], 4), c[0], c[3], c[2]));
            Var y = F.conv1dCausal(x, w, b, c[5]);
            assertEquals(dev, y.value().device());
            out.put("y", y.value().toArray());
            g.backward(F.sum(F.mul(F.tanh(y), r)));
            out.put("x", x.grad().value().toArray());
            out.put("w", w.grad().value().toArray());
            if (bias) out.put("b", b.grad().value().toArray());
        }
        assertEquals(before, Scope.liveDeviceBytes(), "device memory after the graph closed");
        return out;
    }

    @Test
    void conv1dCausalMatchesTheCpu() {
        int[][] cases = {{1, 1, 1, 1, 1, 1}, {2, 3, 7, 5, 2, 1}, {1, 4, 33, 3, 3, 8}, {3, 5, 70, 6, 5, 4}, {2, 7, 257, 9, 2, 16}};
        for (int[] c : cases)
            for (boolean bias : new boolean[] {false, true}) {
                String what = "conv1d " + java.util.Arrays.toString(c) + " bias " + bias;
                Map<String, float[]> cpu = run(Device.CPU, c, bias), gpu = run(Device.CUDA, c, bias);
                compareGrads(what, cpu, gpu);
                Map<String, float[]> again = run(Device.CUDA, c, bias);
                for (String k : gpu.keySet()) same(what + " rerun " + k, again.get(k), gpu.get(k));
            }
    }
}
