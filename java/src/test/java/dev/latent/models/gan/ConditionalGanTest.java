package dev.latent.models.gan;

import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.models.ClassJudge;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The class-conditional DCGAN (train dcgan --conditional: one-hot y concatenated to z, projection discriminator) on
 * the labelled synthetic set: it trains with finite losses, the same seed gives the same bits, samples of class K are
 * judged class K by a classifier trained here far more often than chance, the checkpoint records the classes and
 * reloads to the same samples, and an unconditional checkpoint refuses --class with a clear message.
 */
class ConditionalGanTest {
    @TempDir static Path dir;
    static Path data;
    static Scope scope;
    static GanTrainer cgan;
    static GanTrainer.Result result;
    static ClassJudge judge;

    static GanTrainer.Config cfg(Path out, int iters, long seed) {
        GanTrainer.Config b = GanTrainer.Config.dcgan("", out);
        return new GanTrainer.Config(b.loss(), data.toString(), out, iters, 16, 16, 16, 16, b.lr() * 2, b.beta1(), b.beta2(), 1, 0f,
                b.criticNorm(), seed, 25, 0, 0, 1234, true).withClasses(10);
    }

    @BeforeAll
    static void train() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 640, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 100, 2);
        scope = Scope.shared();
        cgan = new GanTrainer(cfg(dir.resolve("cgan"), 250, 1));
        result = cgan.run();
        judge = new ClassJudge(data);
    }

    @AfterAll
    static void close() { if (scope != null) scope.close(); }

    @Test
    void trainsWithFiniteLossesAndWritesAClassPerRowGrid() {
        assertTrue(result.finite(), "losses must stay finite: " + result);
        assertEquals(250, result.iters());
        assertTrue(Files.isRegularFile(dir.resolve("cgan").resolve("samples.png")));
    }

    @Test
    void sameSeedSameBits() throws IOException {
        GanTrainer a = new GanTrainer(cfg(dir.resolve("a"), 3, 5)), b = new GanTrainer(cfg(dir.resolve("b"), 3, 5));
        ImageData train = ImageData.load(data.toString(), "train");
        int[] perm = ImageData.permutation(train.n, 5, 1);
        for (int it = 1; it <= 3; it++) assertArrayEquals(a.ganStep(train, perm, 16 * it, it), b.ganStep(train, perm, 16 * it, it));
        for (var e : Dcgan.stateDict(a.g, a.d).entrySet())
            assertArrayEquals(e.getValue().toArray(), Dcgan.stateDict(b.g, b.d).get(e.getKey()).toArray(), e.getKey());
        assertTrue(Dcgan.stateDict(a.g, a.d).containsKey("G.cond.weight") && Dcgan.stateDict(a.g, a.d).containsKey("D.proj.weight"));
    }

    @Test
    void samplesOfClassKAreJudgedClassK() throws IOException {
        judge.assertSamplesJudgedAsAsked(dir, 30, cgan::writeSamples);
    }

    @Test
    void checkpointRecordsTheClassesAndReloads() throws IOException {
        Path out = dir.resolve("cgan");
        try (Scope s = Scope.shared()) {
            GanTrainer back = GanTrainer.load(out, s, 1234);
            assertEquals(10, back.config().classes());
            var meta = dev.latent.io.SafeTensors.read(out.resolve(GanTrainer.CHECKPOINT), s).metadata();
            Map<String, Object> c = dev.latent.io.JsonReader.parseObject(meta.get("config"));
            assertEquals(Boolean.TRUE, c.get("conditional"));
            assertEquals(10L, c.get("classes"));
            cgan.writeSamples(dir.resolve("x-idx3-ubyte"), 20, 6);
            back.writeSamples(dir.resolve("y-idx3-ubyte"), 20, 6);
            assertArrayEquals(Files.readAllBytes(dir.resolve("x-idx3-ubyte")), Files.readAllBytes(dir.resolve("y-idx3-ubyte")));
            // the service sampler loads the conditional generator and needs a class
            Dcgan.Generator g = GanSampler.load(out, s);
            assertEquals(10, g.classes);
            assertEquals(20 * 784, GanSampler.sample(g, 1, 20, 6).length);
            var e = assertThrows(IllegalArgumentException.class, () -> GanSampler.sample(g, 1, 4));
            assertTrue(e.getMessage().contains("needs a class"), e.getMessage());
        }
    }

    @Test
    void badClassRequestsAreRefusedClearly() throws IOException {
        var e = assertThrows(IllegalArgumentException.class, () -> cgan.writeSamples(dir.resolve("z-idx3-ubyte"), 4, 10));
        assertTrue(e.getMessage().contains("--class 10 is outside [0, 10)"), e.getMessage());
        Path out = dir.resolve("plain");
        GanTrainer plain = new GanTrainer(cfg(out, 2, 1).withClasses(0));
        plain.run();
        try (Scope s = Scope.shared()) {
            GanTrainer back = GanTrainer.load(out, s, 1);   // an unconditional checkpoint: its config has no classes, as before
            assertFalse(back.config().conditional());
            back.writeSamples(out.resolve("ok-idx3-ubyte"), 4);
            e = assertThrows(IllegalArgumentException.class, () -> back.writeSamples(out.resolve("no-idx3-ubyte"), 4, 3));
            assertTrue(e.getMessage().contains("unconditional"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> {
                try (var g = dev.latent.autograd.Graph.inference()) {
                    plain.g.forward(Var.constant(g.empty(1, 16, 1, 1)), s.allocate(4));
                }
            });
            assertTrue(e.getMessage().contains("unconditional"), e.getMessage());
        }
        e = assertThrows(IllegalArgumentException.class, () -> GanTrainer.Config.wganGp("", dir).withClasses(10));
        assertTrue(e.getMessage().contains("dcgan"), e.getMessage());
    }
}
