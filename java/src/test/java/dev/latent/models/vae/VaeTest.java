package dev.latent.models.vae;

import dev.latent.TestUtil;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/** The conv VAE on a small synthetic IDX set: the loss falls, files appear, a checkpoint reloads bit-identically. */
class VaeTest {
    @TempDir static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 512, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 200, 2);
    }

    static VaeTrainer.Config cfg(Path out, int latent, int epochs, double freeBits, int warmup) {
        return new VaeTrainer.Config(data.toString(), out, latent, 1.0, epochs, 32, 2e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, warmup,
                freeBits, 1, 0, 1234, 8, 20, 4, true);
    }

    @Test
    void lossFallsAndCheckpointReloadsIdentically() throws IOException {
        Path out = dir.resolve("vae");
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(cfg(out, 2, 3, 0, 0), s);
            ImageData test = ImageData.load(data.toString(), "test");
            double before = t.evaluate(test, false).negElbo();
            List<VaeTrainer.EpochResult> r = t.run();
            double after = r.get(r.size() - 1).test().negElbo();
            assertTrue(after < before - 50, "test neg-ELBO must fall: " + before + " -> " + after);
            assertNotNull(r.get(r.size() - 1).test().iwae());
            assertTrue(r.get(r.size() - 1).test().iwae() <= after + 1e-3, "the IWAE bound is at least as tight as the ELBO");
            for (String f : new String[] {"metrics.jsonl", "reconstructions-epoch-003.png", "samples-epoch-003.png", "interpolations.png",
                    "manifold.png", "checkpoint.safetensors"})
                assertTrue(Files.isRegularFile(out.resolve(f)), f);
            // every PNG carries its provenance: training-time images name the run and seed, sampled ones the checkpoint's SHA-256
            var trained = dev.latent.io.Provenance.read(out.resolve("samples-epoch-003.png")).orElseThrow();
            assertEquals("vae", trained.get("model"));
            assertEquals(1.0, ((Number) trained.get("seed")).doubleValue());
            assertEquals(out.toString(), ((java.util.Map<?, ?>) trained.get("settings")).get("run"));
            VaeTrainer back = VaeTrainer.load(out, s);
            var prov = dev.latent.io.Provenance.ofCheckpoint("vae", out, VaeTrainer.CHECKPOINT, 5L, java.util.Map.of("n", 4));
            try (var p = prov.use()) {
                back.writeSamples(out.resolve("sampled.png"), 4, 5);
            }
            var sampled = dev.latent.io.Provenance.read(out.resolve("sampled.png")).orElseThrow();
            assertEquals(dev.latent.io.Provenance.sha256(out.resolve(VaeTrainer.CHECKPOINT)), sampled.get("checkpoint_sha256"));
            assertEquals(5.0, ((Number) sampled.get("seed")).doubleValue());
            assertArrayEquals(reconstruct(t, test), reconstruct(back, test), "reloaded model must reconstruct identically");
            assertEquals(t.evaluate(test, false).negElbo(), back.evaluate(test, false).negElbo(), 0.0);
        }
    }

    static float[] reconstruct(VaeTrainer t, ImageData test) {
        try (Graph g = Graph.inference()) {
            Tensor x = VaeTrainer.images(g.scope(), test, null, 0, 16);
            return t.model.decode(t.model.encode(Var.constant(x))[0]).value().toArray();
        }
    }

    @Test
    void betaWarmupAndFreeBitsTrain() throws IOException {
        try (Scope s = Scope.shared()) {
            VaeTrainer t = new VaeTrainer(cfg(dir.resolve("fb"), 4, 1, 0.5, 10), s);
            assertEquals(0.1, t.betaAt(1), 1e-12);
            assertEquals(1.0, t.betaAt(50), 1e-12);
            var r = t.run();
            assertTrue(Double.isFinite(r.get(0).trainNegElbo()));
        }
    }

    @Test
    void fusedReparamGradientsMatchFiniteDifferences() {
        // L = sum(r * z) + w * KL with z, KL from one fused kernel; check dL/dmu and dL/dlogvar.
        try (Scope s = Scope.shared()) {
            Tensor mu = Tensor.of(s, TestUtil.randn(1, 12), 3, 4), lv = Tensor.of(s, TestUtil.randn(2, 12), 3, 4), r = Tensor.of(s, TestUtil.randn(3, 12), 3, 4);
            for (float w : new float[] {0f, 0.7f}) {
                Var mv = Var.param(mu), lvv = Var.param(lv), rv = Var.constant(r);
                Supplier<Var> f = () -> {
                    F.Reparam p = F.reparam(mv, lvv, 5, 9);
                    return w == 0f ? F.sum(F.mul(p.z(), rv)) : F.add(F.sum(F.mul(p.z(), rv)), F.scale(p.kl(), w));
                };
                try (Graph g = Graph.open()) {
                    g.backward(f.get());
                    TestUtil.assertClose("dmu w=" + w, mv.grad().value().toArray(),
                            dev.latent.autograd.GradCheckTestAccess.numeric(mu, f), 2e-3, 2e-2);
                    TestUtil.assertClose("dlogvar w=" + w, lvv.grad().value().toArray(),
                            dev.latent.autograd.GradCheckTestAccess.numeric(lv, f), 2e-3, 2e-2);
                }
            }
        }
    }
}
