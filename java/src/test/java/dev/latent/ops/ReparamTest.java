package dev.latent.ops;

import dev.latent.TestUtil;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The reparameterization sampler through its Java op: eps recovered from z is standard normal, identical
 * across ISA levels and thread counts, and the backward matches the closed forms with that eps.
 * (kernels/reparam/reparam_test.c checks eps against an independent Philox + Box-Muller in double.)
 */
class ReparamTest {
    @Test
    void samplerStatisticsDeterminismAndGradients() {
        LatentNative nat = LatentNative.get();
        int isa = nat.isa(), threads = nat.numThreads();
        int n = 1 << 20;
        try (Scope s = Scope.confined()) {
            Tensor mu = Tensor.zeros(s, n), lv = Tensor.zeros(s, n);
            float[][] eps = new float[3][];
            int k = 0;
            for (int[] cfg : new int[][] {{LatentNative.ISA_REF, 1}, {nat.isaSupported(), 1}, {nat.isaSupported(), 2}}) {
                nat.setIsa(cfg[0]);
                nat.setNumThreads(cfg[1]);
                Tensor z = Tensor.empty(s, n);
                Kernels.reparam(mu, lv, 7, 3, z);
                eps[k++] = z.toArray();
            }
            assertArrayEquals(eps[0], eps[1], "ref vs avx2 eps must be bit-identical");
            assertArrayEquals(eps[1], eps[2], "1 vs 2 threads eps must be bit-identical");
            double m = 0, v = 0;
            for (float e : eps[0]) m += e;
            m /= n;
            for (float e : eps[0]) v += (e - m) * (e - m);
            v /= n;
            // 4 sigma: sd(mean) = 1/sqrt(n), sd(var) = sqrt(2/n)
            assertEquals(0, m, 4 / Math.sqrt(n));
            assertEquals(1, v, 4 * Math.sqrt(2.0 / n));

            int small = 37;
            float[] mus = TestUtil.randn(1, small), lvs = TestUtil.randn(2, small), dzs = TestUtil.randn(3, small);
            Tensor tm = Tensor.of(s, mus, small), tl = Tensor.of(s, lvs, small), z = Tensor.empty(s, small);
            double kl = Kernels.reparam(tm, tl, 5, 9, z);
            double klWant = 0;
            for (int i = 0; i < small; i++) klWant += 0.5 * (mus[i] * mus[i] + Math.exp(lvs[i]) - 1 - lvs[i]);
            assertEquals(klWant, kl, 1e-5 * Math.abs(klWant));
            float[] zs = z.toArray();
            Tensor dmu = Tensor.empty(s, small), dlv = Tensor.empty(s, small);
            Kernels.reparamBackward(tm, tl, 5, 9, Tensor.of(s, dzs, small), 0.5f, dmu, dlv);
            double[] wm = new double[small], wl = new double[small];
            for (int i = 0; i < small; i++) {
                double sd = Math.exp(0.5 * lvs[i]), e = (zs[i] - mus[i]) / sd;
                wm[i] = dzs[i] + 0.5 * mus[i];
                wl[i] = dzs[i] * e * 0.5 * sd + 0.5 * 0.5 * (Math.exp(lvs[i]) - 1);
            }
            TestUtil.assertClose("dmu", dmu.toArray(), wm, 1e-6, 1e-5);
            TestUtil.assertClose("dlogvar", dlv.toArray(), wl, 1e-5, 1e-4);
        } finally {
            nat.setIsa(isa);
            nat.setNumThreads(threads);
        }
    }
}
