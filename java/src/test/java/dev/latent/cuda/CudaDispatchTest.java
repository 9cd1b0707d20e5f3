package dev.latent.cuda;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.ops.AttentionKernels;
import dev.latent.ops.Conv;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.cuda.CudaTesting.*;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The op layer's device dispatch: every entry point of Kernels, Conv and Gemm that has a CUDA kernel gives on CUDA
 * tensors what it gives on CPU tensors (the CPU library at its default ISA, as users run it); a mix of devices and an
 * op without a CUDA kernel fail with exceptions that say so. This checks wiring (operand order, shapes, offsets of
 * views), not kernel accuracy (CudaKernelsTest): the tolerance, 1e-5 relative + 1e-5 absolute per element, is far
 * above fp32 rounding on these small sums and far below the O(1) error a wrong operand or offset gives.
 */
class CudaDispatchTest {
    static Cuda cu;

    @BeforeAll
    static void setUp() { cu = device(); }

    private static Tensor cpu(Scope s, long seed, long... shape) {
        int n = 1;
        for (long d : shape) n *= (int) d;
        return Tensor.of(s, fill(n, seed), shape);
    }

    private static Tensor gpu(Scope s, Tensor t) { return t.to(s, Device.CUDA); }

    private static void match(String what, Tensor onCpu, Tensor onCuda) {
        assertEquals(Device.CUDA, onCuda.device(), what);
        assertArrayEquals(onCpu.shape(), onCuda.shape(), what);
        float[] want = onCpu.toArray();
        close(what, onCuda.toArray(), want, i -> 1e-5 * Math.abs(want[i]) + 1e-5);
    }

    @Test
    void elementwiseAndRows() {
        try (Scope s = Scope.confined()) {
            Tensor x = cpu(s, 1, 6, 10), z = cpu(s, 2, 6, 10), y = cpu(s, 3, 6, 10), rows = cpu(s, 4, 3, 10);
            Tensor gx = gpu(s, x), gz = gpu(s, z), gy = gpu(s, y), grows = gpu(s, rows);
            Kernels.axpby(1.5f, x, -0.5f, y);
            Kernels.axpby(1.5f, gx, -0.5f, gy);
            match("axpby", y, gy);
            Tensor m = Tensor.empty(s, 6, 10), gm = Tensor.empty(s, Device.CUDA, 6, 10);
            Kernels.mul(x, z, m);
            Kernels.mul(gx, gz, gm);
            match("mul", m, gm);
            Kernels.addRows(x, rows, m);
            Kernels.addRows(gx, grows, gm);
            match("addRows", m, gm);
            Tensor sum = cpu(s, 5, 3, 10), gsum = gpu(s, sum);
            Kernels.sumRows(x, sum);
            Kernels.sumRows(gx, gsum);
            match("sumRows", sum, gsum);
            for (int kind = 0; kind < 4; kind++) {
                Tensor a = Tensor.empty(s, 6, 10), ga = Tensor.empty(s, Device.CUDA, 6, 10);
                Kernels.activation(kind, 0.1f, x, a);
                Kernels.activation(kind, 0.1f, gx, ga);
                match("activation " + kind, a, ga);
                Kernels.activationBackward(kind, 0.1f, kind >= 2 ? a : x, y, m);
                Kernels.activationBackward(kind, 0.1f, kind >= 2 ? ga : gx, gy, gm);
                match("activationBackward " + kind, m, gm);
            }
            Kernels.gelu(x, m);
            Kernels.gelu(gx, gm);
            match("gelu", m, gm);
            Kernels.geluBackward(x, y, m);
            Kernels.geluBackward(gx, gy, gm);
            match("geluBackward", m, gm);
            /* a view at an offset: the kernel must get storage + offset * 4 */
            Tensor tail = x.slice(0, 2, 6), gtail = gx.slice(0, 2, 6), t2 = Tensor.empty(s, 4, 10), gt2 = Tensor.empty(s, Device.CUDA, 4, 10);
            Kernels.axpby(2f, tail, 0f, t2);
            Kernels.axpby(2f, gtail, 0f, gt2);
            match("axpby of a slice", t2, gt2);
            Tensor c = Kernels.contiguous(s, gx);
            match("contiguous copy", x, c);
            /* strided copies: a transpose, a column slice, GPT's (B, T, 3, NH, HS) -> (3, B, NH, T, HS) head split */
            match("copy of a transpose", Kernels.contiguous(s, x.transpose(0, 1)), Kernels.contiguous(s, gx.transpose(0, 1)));
            match("copy of a column slice", Kernels.contiguous(s, x.slice(1, 3, 7)), Kernels.contiguous(s, gx.slice(1, 3, 7)));
            Tensor qkv = cpu(s, 6, 2, 5, 3, 2, 4), gqkv = gpu(s, qkv);
            Tensor heads = qkv.transpose(0, 2).transpose(1, 2).transpose(2, 3), gheads = gqkv.transpose(0, 2).transpose(1, 2).transpose(2, 3);
            match("copy of a rank-5 permute", Kernels.contiguous(s, heads), Kernels.contiguous(s, gheads));
            Tensor into = Tensor.zeros(s, 10, 6), ginto = Tensor.zeros(s, Device.CUDA, 10, 6);
            Kernels.copy(x.transpose(0, 1), into.slice(0, 0, 10));
            Kernels.copy(gx.transpose(0, 1), ginto.slice(0, 0, 10));
            match("copy into a view", into, ginto);
            double ss = Kernels.sumOfSquares(x), gss = Kernels.sumOfSquares(gx);
            assertEquals(ss, gss, 1e-12 * ss, "sumOfSquares");
        }
    }

    @Test
    void layerNormSoftmaxAttention() {
        try (Scope s = Scope.confined(); Arena a = Arena.ofConfined()) {
            int n = 12, c = 20;
            Tensor x = cpu(s, 11, n, c), w = cpu(s, 12, c), b = cpu(s, 13, c), dy = cpu(s, 14, n, c);
            Tensor y = Tensor.empty(s, n, c), mean = Tensor.empty(s, n), rstd = Tensor.empty(s, n);
            Tensor gx = gpu(s, x), gw = gpu(s, w), gb = gpu(s, b), gdy = gpu(s, dy);
            Tensor gyv = Tensor.empty(s, Device.CUDA, n, c), gmean = Tensor.empty(s, Device.CUDA, n), grstd = Tensor.empty(s, Device.CUDA, n);
            Kernels.layerNorm(x, w, b, 1e-5f, y, mean, rstd);
            Kernels.layerNorm(gx, gw, gb, 1e-5f, gyv, gmean, grstd);
            match("layerNorm y", y, gyv);
            match("layerNorm mean", mean, gmean);
            match("layerNorm rstd", rstd, grstd);
            Tensor dx = Tensor.empty(s, n, c), dw = cpu(s, 15, c), db = cpu(s, 16, c);
            Tensor gdx = Tensor.empty(s, Device.CUDA, n, c), gdw = gpu(s, dw), gdb = gpu(s, db);
            Kernels.layerNormBackward(x, w, mean, rstd, dy, dx, dw, db);
            Kernels.layerNormBackward(gx, gw, gmean, grstd, gdy, gdx, gdw, gdb);
            match("layerNormBackward dx", dx, gdx);
            match("layerNormBackward dw", dw, gdw);
            match("layerNormBackward db", db, gdb);

            int[] targets = {3, 0, -1, 19, 7, 7, 1, 2, 5, 11, 13, 17};
            MemorySegment t = a.allocateFrom(JAVA_INT, targets);
            Tensor losses = Tensor.empty(s, n), dl = Tensor.empty(s, n, c);
            Tensor gl = Tensor.empty(s, Device.CUDA, n), gdl = Tensor.empty(s, Device.CUDA, n, c);
            Kernels.softmaxCrossEntropy(x, t, losses, dl, 0.25f);
            Kernels.softmaxCrossEntropy(gx, t, gl, gdl, 0.25f);
            match("softmaxCrossEntropy losses", losses, gl);
            match("softmaxCrossEntropy dlogits", dl, gdl);
            Kernels.softmaxCrossEntropy(gx, t, gl, null, 1f);   /* no gradient: NULL dlogits */
            match("softmaxCrossEntropy losses only", losses, gl);

            long[] sh = {2, 2, 9, 16};
            Tensor q = cpu(s, 21, sh), k = cpu(s, 22, sh), v = cpu(s, 23, sh), dout = cpu(s, 24, sh);
            Tensor o = Tensor.empty(s, sh), lse = Tensor.empty(s, 2, 2, 9), dq = Tensor.empty(s, sh), dk = Tensor.empty(s, sh), dv = Tensor.empty(s, sh);
            Tensor gq = gpu(s, q), gk = gpu(s, k), gv = gpu(s, v), gdout = gpu(s, dout);
            Tensor go = Tensor.empty(s, Device.CUDA, sh), glse = Tensor.empty(s, Device.CUDA, 2, 2, 9);
            Tensor gdq = Tensor.empty(s, Device.CUDA, sh), gdk = Tensor.empty(s, Device.CUDA, sh), gdv = Tensor.empty(s, Device.CUDA, sh);
            AttentionKernels.attention(q, k, v, true, 0.25f, o, lse);
            AttentionKernels.attention(gq, gk, gv, true, 0.25f, go, glse);
            match("attention o", o, go);
            match("attention lse", lse, glse);
            AttentionKernels.attentionBackward(q, k, v, o, lse, dout, true, 0.25f, dq, dk, dv);
            AttentionKernels.attentionBackward(gq, gk, gv, go, glse, gdout, true, 0.25f, gdq, gdk, gdv);
            match("attention dq", dq, gdq);
            match("attention dk", dk, gdk);
            match("attention dv", dv, gdv);
        }
    }

    @Test
    void embedding() {
        try (Scope s = Scope.confined(); Arena a = Arena.ofConfined()) {
            int[] ids = {3, 3, 0, 9, 5, 3, 9, 1};
            MemorySegment hid = a.allocateFrom(JAVA_INT, ids);
            Tensor table = cpu(s, 81, 10, 12), gtable = gpu(s, table);
            Tensor out = Tensor.empty(s, 8, 12), gout = Tensor.empty(s, Device.CUDA, 8, 12);
            Kernels.embedding(hid, table, out);
            Kernels.embedding(hid, gtable, gout);
            match("embedding", out, gout);
            Tensor dout = cpu(s, 82, 8, 12), gdout = gpu(s, dout), dt = cpu(s, 83, 10, 12), gdt = gpu(s, dt);
            Kernels.embeddingBackward(hid, dout, dt);
            Kernels.embeddingBackward(hid, gdout, gdt);
            same("embeddingBackward (the CPU's order of additions)", gdt.toArray(), dt.toArray());
            MemorySegment bad = a.allocateFrom(JAVA_INT, 0, -1);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Kernels.embedding(bad, gtable, Tensor.empty(s, Device.CUDA, 2, 12)));
            assertTrue(e.getMessage().contains("id -1 at position 1"), e.getMessage());
        }
    }

    @Test
    void convAdamwReparam() {
        try (Scope s = Scope.confined()) {
            Conv.Geometry g = new Conv.Geometry(2, 3, 7, 6, 4, 3, 3, 2, 1, 1, 1);
            Tensor x = cpu(s, 31, g.inShape()), w = cpu(s, 32, g.weightShape()), bias = cpu(s, 33, g.k()), dy = cpu(s, 34, g.outShape());
            Tensor gx = gpu(s, x), gw = gpu(s, w), gbias = gpu(s, bias), gdy = gpu(s, dy);
            Tensor y = Tensor.empty(s, g.outShape()), gy = Tensor.empty(s, Device.CUDA, g.outShape());
            Conv.forward(g, x, w, bias, y);
            Conv.forward(g, gx, gw, gbias, gy);
            match("conv2d", y, gy);
            Tensor dx = Tensor.empty(s, g.inShape()), gdx = Tensor.empty(s, Device.CUDA, g.inShape());
            Conv.backwardData(g, dy, w, null, dx);
            Conv.backwardData(g, gdy, gw, null, gdx);
            match("conv2d backwardData", dx, gdx);
            Tensor dw = cpu(s, 35, g.weightShape()), db = cpu(s, 36, g.k()), gdw = gpu(s, dw), gdb = gpu(s, db);
            Conv.backwardWeight(g, x, dy, dw, db, true);
            Conv.backwardWeight(g, gx, gdy, gdw, gdb, true);
            match("conv2d backwardWeight dw", dw, gdw);
            match("conv2d backwardWeight db", db, gdb);

            Tensor p = cpu(s, 41, 50), gr = cpu(s, 42, 50), m = Tensor.zeros(s, 50), v = Tensor.zeros(s, 50);
            Tensor gp = gpu(s, p), ggr = gpu(s, gr), gm = gpu(s, m), gv = gpu(s, v);
            for (int step = 1; step <= 2; step++) {
                Kernels.adamw(p, gr, m, v, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 1f, step);
                Kernels.adamw(gp, ggr, gm, gv, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 1f, step);
            }
            match("adamw p", p, gp);
            match("adamw m", m, gm);
            match("adamw v", v, gv);

            Tensor mu = cpu(s, 51, 5000), lv = cpu(s, 52, 5000), dz = cpu(s, 53, 5000);
            Tensor z = Tensor.empty(s, 5000), gz = Tensor.empty(s, Device.CUDA, 5000), gmu = gpu(s, mu), glv = gpu(s, lv), gdz = gpu(s, dz);
            double kl = Kernels.reparam(mu, lv, 9, 3, z), gkl = Kernels.reparam(gmu, glv, 9, 3, gz);
            match("reparam z", z, gz);
            assertEquals(kl, gkl, 1e-9 * Math.abs(kl), "reparam kl");
            Tensor dmu = Tensor.empty(s, 5000), dlv = Tensor.empty(s, 5000), gdmu = Tensor.empty(s, Device.CUDA, 5000), gdlv = Tensor.empty(s, Device.CUDA, 5000);
            Kernels.reparamBackward(mu, lv, 9, 3, dz, 0.5f, dmu, dlv);
            Kernels.reparamBackward(gmu, glv, 9, 3, gdz, 0.5f, gdmu, gdlv);
            match("reparam dmu", dmu, gdmu);
            match("reparam dlogvar", dlv, gdlv);
        }
    }

    @Test
    void gemmOnViews() {
        try (Scope s = Scope.confined()) {
            Tensor a = cpu(s, 61, 37, 19), b = cpu(s, 62, 19, 23), bt = cpu(s, 63, 23, 19);
            Tensor ga = gpu(s, a), gb = gpu(s, b), gbt = gpu(s, bt);
            match("matmul", Gemm.matmul(s, a, b), Gemm.matmul(s, ga, gb));
            match("matmul by a transposed view", Gemm.matmul(s, a, bt.transpose(0, 1)), Gemm.matmul(s, ga, gbt.transpose(0, 1)));
            match("matmul of a transposed view", Gemm.matmul(s, a.transpose(0, 1), a), Gemm.matmul(s, ga.transpose(0, 1), ga));
            match("matmul of a row slice", Gemm.matmul(s, a.slice(0, 5, 30), b), Gemm.matmul(s, ga.slice(0, 5, 30), gb));
            Tensor a3 = cpu(s, 64, 3, 8, 19), ga3 = gpu(s, a3);
            match("batched matmul, broadcast B", Gemm.matmul(s, a3, b), Gemm.matmul(s, ga3, gb));
            Tensor c = cpu(s, 65, 37, 23), gc = gpu(s, c);
            Gemm.matmul(a, b, c, 0.5f, 2f);
            Gemm.matmul(ga, gb, gc, 0.5f, 2f);
            match("alpha A B + beta C", c, gc);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(ga, gb, Tensor.empty(s, Device.CUDA, 36, 23), 1f, 0f));
            assertTrue(e.getMessage().contains("do not match"), e.getMessage());
        }
    }

    @Test
    void mixedDevicesFailClearly() {
        try (Scope s = Scope.confined(); Arena a = Arena.ofConfined()) {
            Tensor h = Tensor.zeros(s, 4, 8), d = Tensor.zeros(s, Device.CUDA, 4, 8);
            for (Executable mixed : java.util.List.<Executable>of(() -> Kernels.axpby(1f, h, 0f, d), () -> Kernels.mul(d, h, d),
                    () -> Kernels.gelu(h, d), () -> Gemm.matmul(s, h, d.transpose(0, 1)), () -> Kernels.copy(h, d),
                    () -> Kernels.bceWithLogits(h, null, 0f, d, 1f))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, mixed);
                assertTrue(e.getMessage().contains("CPU") && e.getMessage().contains("CUDA"), e.getMessage());
            }
            MemorySegment bad = a.allocateFrom(JAVA_INT, 1, 2, 10, 3);
            IllegalArgumentException badId = assertThrows(IllegalArgumentException.class,
                    () -> Kernels.embeddingBackward(bad, d, Tensor.zeros(s, Device.CUDA, 10, 8)));
            assertTrue(badId.getMessage().contains("id 10 at position 2"), badId.getMessage());
            Tensor hx = Tensor.zeros(s, 2, 2, 2, 2), dc = Tensor.zeros(s, Device.CUDA, 2);
            IllegalArgumentException bn = assertThrows(IllegalArgumentException.class,
                    () -> Kernels.batchNormInfer(hx, null, null, 1e-5f, dc, dc, Tensor.zeros(s, 2, 2, 2, 2)));
            assertTrue(bn.getMessage().contains("CPU") && bn.getMessage().contains("CUDA"), bn.getMessage());
        }
    }
    @Test
    void batchNormAndBce() {
        try (Scope s = Scope.confined()) {
            for (boolean affine : new boolean[] {true, false}) {
                String k = affine ? " (affine)" : " (no gamma / beta)";
                Tensor x = cpu(s, 70, 4, 3, 5, 7), g = affine ? cpu(s, 71, 3) : null, b = affine ? cpu(s, 72, 3) : null;
                Tensor rm = cpu(s, 73, 3), rv = Tensor.of(s, new float[] {0.5f, 1f, 2f}, 3), dy = cpu(s, 74, 4, 3, 5, 7);
                Tensor gx = gpu(s, x), gg = affine ? gpu(s, g) : null, gb = affine ? gpu(s, b) : null, grm = gpu(s, rm), grv = gpu(s, rv), gdy = gpu(s, dy);
                Tensor y = Tensor.empty(s, 4, 3, 5, 7), m = Tensor.empty(s, 3), r = Tensor.empty(s, 3);
                Tensor gy = Tensor.empty(s, Device.CUDA, 4, 3, 5, 7), gm = Tensor.empty(s, Device.CUDA, 3), gr = Tensor.empty(s, Device.CUDA, 3);
                Kernels.batchNormTrain(x, g, b, 1e-5f, 0.1f, y, m, r, rm, rv);
                Kernels.batchNormTrain(gx, gg, gb, 1e-5f, 0.1f, gy, gm, gr, grm, grv);
                match("batchNormTrain y" + k, y, gy);
                match("batchNormTrain mean" + k, m, gm);
                match("batchNormTrain rstd" + k, r, gr);
                match("batchNormTrain runningMean" + k, rm, grm);
                match("batchNormTrain runningVar" + k, rv, grv);
                Kernels.batchNormInfer(x, g, b, 1e-5f, rm, rv, y);
                Kernels.batchNormInfer(gx, gg, gb, 1e-5f, grm, grv, gy);
                match("batchNormInfer" + k, y, gy);
                Tensor dx = Tensor.empty(s, 4, 3, 5, 7), gdx = Tensor.empty(s, Device.CUDA, 4, 3, 5, 7);
                Tensor dg = affine ? cpu(s, 75, 3) : null, db = affine ? cpu(s, 76, 3) : null;
                Tensor gdg = affine ? gpu(s, dg) : null, gdb = affine ? gpu(s, db) : null;
                Kernels.batchNormBackward(x, g, m, r, dy, dx, dg, db);
                Kernels.batchNormBackward(gx, gg, gm, gr, gdy, gdx, gdg, gdb);
                match("batchNormBackward dx" + k, dx, gdx);
                if (affine) {
                    match("batchNormBackward dgamma" + k, dg, gdg);
                    match("batchNormBackward dbeta" + k, db, gdb);
                }
            }
            /* BCE: targets and a constant target, dlogits separate and in place; the loss within 1e-12 relative (double sums) */
            Tensor lg = cpu(s, 80, 6, 700), t = cpu(s, 81, 6, 700);
            Tensor tt = Tensor.of(s, java.util.Arrays.copyOf(t.toArray(), 4200), 6, 700);
            for (int i = 0; i < 4200; i++) tt.set(0.5f * (tt.get(i / 700, i % 700) + 1), i / 700, i % 700);
            Tensor glg = gpu(s, lg), gtt = gpu(s, tt);
            for (int mode = 0; mode < 2; mode++) {
                Tensor d = Tensor.empty(s, 6, 700), gd = Tensor.empty(s, Device.CUDA, 6, 700);
                double want = Kernels.bceWithLogits(lg, mode == 1 ? null : tt, 0.25f, d, 1f / 4200);
                double got = Kernels.bceWithLogits(glg, mode == 1 ? null : gtt, 0.25f, gd, 1f / 4200);
                assertEquals(want, got, 1e-12 * Math.abs(want), "bceWithLogits loss, mode " + mode);
                match("bceWithLogits dlogits, mode " + mode, d, gd);
            }
            Tensor d = Tensor.empty(s, 6, 700), lc = gpu(s, lg);   /* a fresh device copy, overwritten */
            Kernels.bceWithLogits(lg, tt, 0f, d, 2f);
            Kernels.bceWithLogits(lc, gtt, 0f, lc, 2f);
            match("bceWithLogits dlogits in place", d, lc);
        }
    }
    @Test
    void coupling() {
        try (Scope s = Scope.confined()) {
            float[] mk = new float[35];
            for (int j = 0; j < 35; j++) mk[j] = j % 3 == 0 ? 1 : 0;
            Tensor mask = Tensor.of(s, mk, 5, 7), y = cpu(s, 90, 3, 1, 5, 7), h = cpu(s, 91, 3, 2, 5, 7), dout = cpu(s, 92, 3, 1, 5, 7);
            Tensor gmask = gpu(s, mask), gy = gpu(s, y), gh = gpu(s, h), gdout = gpu(s, dout);
            Tensor out = Tensor.empty(s, 3, 1, 5, 7), gout = Tensor.empty(s, Device.CUDA, 3, 1, 5, 7);
            double[] ld = new double[3], gld = new double[3];
            Kernels.couplingForward(mask, y, h, 0.7f, out, ld);
            Kernels.couplingForward(gmask, gy, gh, 0.7f, gout, gld);
            match("couplingForward", out, gout);
            for (int i = 0; i < 3; i++) assertEquals(ld[i], gld[i], 1e-5 * Math.abs(ld[i]) + 1e-5, "couplingForward logdet " + i);   /* the CPU runs at AVX2 here */
            Tensor inv = Tensor.empty(s, 3, 1, 5, 7), ginv = Tensor.empty(s, Device.CUDA, 3, 1, 5, 7);
            Kernels.couplingInverse(mask, out, h, 0.7f, inv);
            Kernels.couplingInverse(gmask, gout, gh, 0.7f, ginv);
            match("couplingInverse", inv, ginv);
            match("couplingInverse recovers y", y, ginv);
            Tensor dy = Tensor.empty(s, 3, 1, 5, 7), gdy = Tensor.empty(s, Device.CUDA, 3, 1, 5, 7);
            Tensor dh = Tensor.empty(s, 3, 2, 5, 7), gdh = Tensor.empty(s, Device.CUDA, 3, 2, 5, 7);
            for (double[] dld : new double[][] {{0.5, -1, 2}, null}) {
                double ds = Kernels.couplingBackward(mask, y, h, 0.7f, dout, dld, dy, dh);
                double gds = Kernels.couplingBackward(gmask, gy, gh, 0.7f, gdout, dld, gdy, gdh);
                assertEquals(ds, gds, 1e-5 * Math.abs(ds) + 1e-5, "couplingBackward dscale");
                match("couplingBackward dy", dy, gdy);
                match("couplingBackward dh", dh, gdh);
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Kernels.couplingInverse(mask, gout, gh, 0.7f, ginv));
            assertTrue(e.getMessage().contains("CPU") && e.getMessage().contains("CUDA"), e.getMessage());
        }
    }
    /** F.batchNorm2d (training) feeding F.bceWithLogitsSum and F.bceWithLogits: loss and gradients on CUDA against the CPU. */
    @Test
    void autogradBatchNormAndBce() {
        record R(float loss, float[] dx, float[] dg, float[] db, float[] rm, float[] rv) {}
        java.util.function.Function<Device, R> run = dev -> {
            try (Scope s = Scope.confined(); Graph g = Graph.open()) {
                Var x = Var.input(gpuOr(s, dev, cpu(s, 100, 4, 3, 5, 5)));
                Var gamma = Var.param(gpuOr(s, dev, cpu(s, 101, 3)));
                Var beta = Var.param(gpuOr(s, dev, cpu(s, 102, 3)));
                Tensor rm = gpuOr(s, dev, Tensor.zeros(s, 3)), rv = gpuOr(s, dev, Tensor.of(s, new float[] {1, 1, 1}, 3));
                Tensor t = cpu(s, 103, 4, 3, 5, 5);
                float[] tp = t.toArray();
                for (int i = 0; i < tp.length; i++) tp[i] = 0.5f * (tp[i] + 1);
                Tensor targets = gpuOr(s, dev, Tensor.of(s, tp, 4, 3, 5, 5));
                Var y = F.batchNorm2d(x, gamma, beta, rm, rv, true, 0.1f, 1e-5f);
                Var l = F.add(F.bceWithLogitsSum(y, targets, 0.5f),
                        F.bceWithLogits(y, 1f));
                assertEquals(dev, l.value().device());
                float loss = F.item(l);
                g.backward(l);
                return new R(loss, x.grad().value().toArray(), gamma.grad().value().toArray(), beta.grad().value().toArray(),
                        rm.toArray(), rv.toArray());
            }
        };
        R c = run.apply(Device.CPU), d = run.apply(Device.CUDA);
        assertEquals(c.loss(), d.loss(), 1e-5 * Math.abs(c.loss()), "loss");
        for (String[] k : new String[][] {{"dx"}, {"dgamma"}, {"dbeta"}, {"runningMean"}, {"runningVar"}}) {
            float[] want = switch (k[0]) { case "dx" -> c.dx(); case "dgamma" -> c.dg(); case "dbeta" -> c.db(); case "runningMean" -> c.rm(); default -> c.rv(); };
            float[] got = switch (k[0]) { case "dx" -> d.dx(); case "dgamma" -> d.dg(); case "dbeta" -> d.db(); case "runningMean" -> d.rm(); default -> d.rv(); };
            close("autograd " + k[0], got, want, i -> 1e-5 * Math.abs(want[i]) + 1e-5);
        }
    }

    private static Tensor gpuOr(Scope s, Device dev, Tensor t) { return dev == Device.CUDA ? t.to(s, Device.CUDA) : t; }
    /** F.coupling through autograd (out and logdet both feeding the loss, the fused backward) and F.couplingInverse. */
    @Test
    void autogradCoupling() {
        record R(float loss, float[] out, float[] ld, float[] dy, float[] dh, float[] dscale, float[] inv) {}
        float[] mk = new float[25];
        for (int j = 0; j < 25; j++) mk[j] = (j & 1);
        java.util.function.Function<Device, R> run = dev -> {
            try (Scope s = Scope.confined(); Graph g = Graph.open()) {
                Tensor mask = Tensor.of(s, mk, 5, 5);   /* a CPU constant: F moves it to the inputs' device */
                Var y = Var.input(gpuOr(s, dev, cpu(s, 110, 3, 1, 5, 5)));
                Var h = Var.param(gpuOr(s, dev, cpu(s, 111, 3, 2, 5, 5)));
                Var scale = Var.param(gpuOr(s, dev, Tensor.of(s, new float[] {0.7f}, 1)));
                F.Coupling c = F.coupling(y, h, scale, mask);
                Var l = F.add(F.bceWithLogits(c.out(), 1f), F.bceWithLogits(c.logdet(), 0f));
                float loss = F.item(l);
                g.backward(l);
                Tensor inv = F.couplingInverse(c.out().value(), h.value(), 0.7f, mask);
                return new R(loss, c.out().value().toArray(), c.logdet().value().toArray(), y.grad().value().toArray(),
                        h.grad().value().toArray(), scale.grad().value().toArray(), inv.toArray());
            }
        };
        R c = run.apply(Device.CPU), d = run.apply(Device.CUDA);
        assertEquals(c.loss(), d.loss(), 1e-5 * Math.abs(c.loss()), "loss");
        float[][] want = {c.out(), c.ld(), c.dy(), c.dh(), c.dscale(), c.inv()}, got = {d.out(), d.ld(), d.dy(), d.dh(), d.dscale(), d.inv()};
        String[] names = {"out", "logdet", "dy", "dh", "dscale", "inverse"};
        for (int k = 0; k < names.length; k++) {
            float[] w = want[k];
            close("autograd coupling " + names[k], got[k], w, i -> 1e-5 * Math.abs(w[i]) + 1e-5);
        }
    }
}
