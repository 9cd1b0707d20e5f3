package dev.latent.cuda;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.io.SafeTensors;
import dev.latent.models.flow.ToyFlow;
import dev.latent.models.gan.ToyGan;
import dev.latent.nn.Init;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.train.ResumeBitIdentityTestAccess;
import dev.latent.train.StepScalars;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;
import dev.latent.train.TrainingPrecision;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.latent.cuda.CudaTesting.close;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The 2-D toys on Device.CUDA (issue 18: one API across families): the toy GAN (GAN and WGAN-GP, its penalty's double
 * backward through the MLP critic) and the toy flow (affine couplings with [1, 0] / [0, 1] masks), each trained a few
 * steps on the device and on the CPU (at ISA ref) from the same initial weights and the same host-drawn batches.
 *
 * <p>Bounds, CPU against device, after the steps (the kernels differ only in summation order, so each op carries a few
 * 2^-24 relative; a handful of Adam steps compound them): every step's losses within 1e-5 relative (+ 1e-6 absolute,
 * for a loss near zero), every parameter within 1e-6 + 1e-5 |p| plus, where Adam's normalised step meets a gradient
 * that is zero up to rounding, 2 lr per step (its first steps move by ~ +-lr whatever the gradient's size); the sample
 * points and the flow's log-densities within 1e-4 (1 + |x|). Two device runs give the same bits. At tf32 and bf16 the
 * device's losses stay within CudaPrecisionTest's 8u of fp32 on the device, and flow-toy's checkpoint records the
 * precision; a run stopped and resumed on the device ends with the uninterrupted run's checkpoint bit for bit.
 */
class CudaToyTest extends AtRefIsaOnDevice {
    static final double LOSS_REL = 1e-5, PARAM_ABS = 1e-6, PARAM_REL = 1e-5, POINT = 1e-4;

    record Run(double[][] losses, Map<String, float[]> params, float[] samples, String device) {}

    static ToyGan.Config gan(boolean wgan, int steps) {
        return new ToyGan.Config("ring8", wgan, steps, 16, 8, 1e-3f, true, 2, 0.1f, 3);
    }

    static Run ganRun(ToyGan.Config c, Device dev, Precision p) {
        long before = Scope.liveDeviceBytes();
        Run r;
        try (ToyGan t = new ToyGan(c, dev).precision(p)) {
            assertEquals(dev, t.device);
            double[][] l = new double[c.steps()][];
            for (int i = 0; i < c.steps(); i++) {
                StepScalars.Values v = t.stepDeferred(i + 1);
                l[i] = new double[] {v.get(0), v.get(1)};
            }
            Map<String, float[]> ps = new LinkedHashMap<>();
            t.g.namedParameters().forEach((k, v) -> { assertEquals(dev, v.value().device(), k); ps.put("g." + k, v.value().toArray()); });
            t.d.namedParameters().forEach((k, v) -> ps.put("d." + k, v.value().toArray()));
            r = new Run(l, ps, t.sample(64, 1234), dev.toString());
        }
        assertEquals(before, Scope.liveDeviceBytes(), "ToyGan.close frees its device memory");
        return r;
    }

    static ToyFlow.Config flow(int steps) { return new ToyFlow.Config("moons", 2, 8, steps, 32, 3e-3f, 3); }

    static Run flowRun(ToyFlow.Config c, Device dev, Precision p) {
        long before = Scope.liveDeviceBytes();
        Run r;
        try (Scope s = Scope.shared()) {
            ToyFlow f = new ToyFlow(c, s, dev).precision(p);
            double[][] l = new double[c.steps()][];
            for (int i = 0; i < c.steps(); i++) l[i] = new double[] {f.stepDeferred(i + 1).get(0)};
            Map<String, float[]> ps = new LinkedHashMap<>();
            float[] pts, lp;
            try (Graph g = Graph.inference()) {
                var z = Init.normal(g.scope(), 99, 0, 1.0, 48, 2);
                var x = f.inverse(z);
                assertEquals(dev, x.device());
                pts = x.toArray();
                var lpT = f.logProb(Var.constant(dev == Device.CPU ? z : z.to(g.scope(), dev))).value();
                assertEquals(dev, lpT.device());
                lp = lpT.toArray();
            }
            double nll = f.evalNll(100);
            float[] all = Arrays.copyOf(pts, pts.length + lp.length + 1);
            System.arraycopy(lp, 0, all, pts.length, lp.length);
            all[all.length - 1] = (float) nll;
            for (var e : f.namedParameters().entrySet()) {
                assertEquals(dev, e.getValue().value().device(), e.getKey());
                ps.put(e.getKey(), e.getValue().value().toArray());
            }
            r = new Run(l, ps, all, dev.toString());
        }
        assertEquals(before, Scope.liveDeviceBytes(), "the flow's scope frees its device memory");
        return r;
    }

    /** cpu and device within the bounds above; lr: the learning rate (Adam's step size). */
    static void tracks(String what, Run cpu, Run cuda, double lr, int steps) {
        for (int i = 0; i < cpu.losses.length; i++)
            for (int j = 0; j < cpu.losses[i].length; j++) {
                double a = cpu.losses[i][j], b = cuda.losses[i][j];
                assertTrue(Double.isFinite(a), what + " CPU loss " + a);
                assertEquals(a, b, 1e-6 + LOSS_REL * Math.abs(a), what + ": loss " + j + " at step " + (i + 1) + " (CPU " + a + ", CUDA " + b + ")");
            }
        int flipped = 0, total = 0;
        for (var e : cpu.params.entrySet()) {
            float[] want = e.getValue(), got = cuda.params.get(e.getKey());
            assertNotNull(got, e.getKey());
            for (int i = 0; i < want.length; i++) {
                total++;
                if (Math.abs(got[i] - want[i]) > PARAM_ABS + PARAM_REL * Math.abs(want[i])) flipped++;
            }
            close(what + " " + e.getKey() + " after " + steps + " steps", got, want,
                    i -> PARAM_ABS + PARAM_REL * Math.abs(want[i]) + 2 * lr * steps);
        }
        System.out.printf("%s: %d of %d parameters beyond 1e-6 + 1e-5 |p| (Adam's sign steps on near-zero gradients)%n", what, flipped, total);
        assertTrue(flipped * 20 <= total, what + ": " + flipped + " of " + total + " parameters beyond 1e-6 + 1e-5 |p|: more than the rare near-zero gradient");
        close(what + " samples / log-densities", cuda.samples, cpu.samples, i -> POINT * (1 + Math.abs(cpu.samples[i])));
    }

    static void sameBits(String what, Run a, Run b) {
        assertTrue(Arrays.deepEquals(a.losses, b.losses), what + ": two device runs, different losses");
        for (var e : a.params.entrySet()) assertArrayEquals(e.getValue(), b.params.get(e.getKey()), 0f, what + ": two device runs, " + e.getKey());
        assertArrayEquals(a.samples, b.samples, 0f, what + ": two device runs, different samples");
    }

    @Test
    void toyGanOnTheDeviceTracksTheCpu() {
        for (boolean wgan : new boolean[] {false, true}) {
            String what = "toy-gan " + (wgan ? "wgan-gp" : "gan");
            ToyGan.Config c = gan(wgan, 4);
            Run cpu = ganRun(c, Device.CPU, Precision.FP32), cuda = ganRun(c, Device.CUDA, Precision.FP32);
            System.out.printf("%s: CPU losses %s, CUDA %s%n", what, Arrays.deepToString(cpu.losses), Arrays.deepToString(cuda.losses));
            tracks(what, cpu, cuda, c.lr(), c.steps() * (wgan ? c.nCritic() : 1));
            sameBits(what, cuda, ganRun(c, Device.CUDA, Precision.FP32));
            try (ToyGan t = new ToyGan(c, Device.CUDA)) {   // train() and coverage() as the CLI runs them
                double[] last = t.train();
                assertArrayEquals(cuda.losses[c.steps() - 1], last, 0.0, what + ": train() returns the last step's losses");
                ToyGan.Coverage cov = t.coverage(64, 1234);
                assertEquals(ToyGan.coverage(t.dist, cuda.samples).toMap(), cov.toMap(), what + ": coverage of the device's samples");
            }
        }
    }

    @Test
    void toyFlowOnTheDeviceTracksTheCpu() {
        ToyFlow.Config c = flow(5);
        Run cpu = flowRun(c, Device.CPU, Precision.FP32), cuda = flowRun(c, Device.CUDA, Precision.FP32);
        System.out.printf("flow-toy: CPU NLL %s, CUDA %s%n", Arrays.deepToString(cpu.losses), Arrays.deepToString(cuda.losses));
        tracks("flow-toy", cpu, cuda, c.lr(), c.steps());
        sameBits("flow-toy", cuda, flowRun(c, Device.CUDA, Precision.FP32));
    }

    /**
     * tf32 and bf16 on the device: each step's losses within 8u relative of fp32's on the device (CudaPrecisionTest's
     * bound; a loss of the toy GAN near zero within 8u of its scale, 1), the weights differ from fp32's (something was
     * rounded), two runs give the same bits.
     */
    @Test
    void toysTrainAtEveryPrecisionOnTheDevice() {
        List<String> ran = new ArrayList<>();
        for (boolean wgan : new boolean[] {false, true}) {
            ToyGan.Config c = gan(wgan, 3);
            Run fp32 = ganRun(c, Device.CUDA, Precision.FP32);
            for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
                String what = "toy-gan " + (wgan ? "wgan-gp" : "gan") + " at " + p.id();
                Run r = ganRun(c, Device.CUDA, p);
                reduced(what, fp32, r, p);
                sameBits(what, r, ganRun(c, Device.CUDA, p));
                ran.add(what);
            }
        }
        ToyFlow.Config f = flow(4);
        Run fp32 = flowRun(f, Device.CUDA, Precision.FP32);
        for (Precision p : new Precision[] {Precision.TF32, Precision.BF16}) {
            Run r = flowRun(f, Device.CUDA, p);
            reduced("flow-toy at " + p.id(), fp32, r, p);
            sameBits("flow-toy at " + p.id(), r, flowRun(f, Device.CUDA, p));
            ran.add("flow-toy at " + p.id());
        }
        assertEquals(6, ran.size(), ran.toString());
    }

    static void reduced(String what, Run fp32, Run r, Precision p) {
        System.out.printf("%s: losses %s (fp32 %s)%n", what, Arrays.deepToString(r.losses), Arrays.deepToString(fp32.losses));
        double tol = CudaPrecisionTest.lossTol(p);
        for (int i = 0; i < fp32.losses.length; i++)
            for (int j = 0; j < fp32.losses[i].length; j++)
                assertEquals(fp32.losses[i][j], r.losses[i][j], tol * Math.max(1, Math.abs(fp32.losses[i][j])), what + ": loss " + j + " at step " + (i + 1));
        boolean differs = false;
        for (var e : fp32.params.entrySet()) differs |= !Arrays.equals(e.getValue(), r.params.get(e.getKey()));
        assertTrue(differs, what + " must round something: the weights equal fp32's bit for bit");
    }

    /**
     * train flow-toy's loop (TrainLoop) on the device at bf16: the checkpoint records "bf16", a resume at fp32 is refused,
     * and n steps against k steps resumed to n end with the same checkpoint bit for bit (weights and AdamW moments
     * restored into the device's buffers).
     */
    @Test
    void toyFlowCheckpointsOnTheDevice(@TempDir Path dir) throws IOException {
        ToyFlow.Config c = flow(6);
        Path one = dir.resolve("one"), two = dir.resolve("two");
        try (Scope s = Scope.shared()) {
            assertEquals(6, new ToyFlow(c, s, Device.CUDA).precision(Precision.BF16).run(one, false, Long.MAX_VALUE, 2, 0, TrainingListener.NONE, true));
        }
        try (Scope s = Scope.shared()) {
            assertEquals(4, new ToyFlow(c, s, Device.CUDA).precision(Precision.BF16).run(two, false, 4, 2, 0, TrainingListener.NONE, true));
        }
        try (Scope s = Scope.shared()) {
            var e = assertThrows(IOException.class, () -> new ToyFlow(c, s, Device.CUDA).run(two, true, Long.MAX_VALUE, 2, 0, TrainingListener.NONE, true));
            assertTrue(e.getMessage().contains("bf16"), e.getMessage());
        }
        try (Scope s = Scope.shared()) {
            assertEquals(6, new ToyFlow(c, s, Device.CUDA).precision(Precision.BF16).run(two, true, Long.MAX_VALUE, 2, 0, TrainingListener.NONE, true));
        }
        Path ck = one.resolve(TrainLoop.CHECKPOINT);
        ResumeBitIdentityTestAccess.sameCheckpoint(ck, two.resolve(TrainLoop.CHECKPOINT));
        try (Scope s = Scope.confined()) {
            assertEquals("bf16", SafeTensors.read(ck, s).metadata().get(TrainingPrecision.KEY));
        }
    }
}
