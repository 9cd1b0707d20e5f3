package dev.latent.models.vae;

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
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The conditional VAE (train vae --conditional) on the labelled synthetic set: its steps lower the loss, the same seed
 * gives the same bits, the checkpoint records the classes and reloads, samples of class K are judged class K by a
 * classifier trained here far more often than chance (and not judged as another class), the cVAE's own
 * p(x | y) picks the right class of test images, and bad requests are refused with a clear message.
 */
class ConditionalVaeTest {
    @TempDir static Path dir;
    static Path data;
    static Scope scope;
    static VaeTrainer cvae;
    static List<VaeTrainer.EpochResult> results;
    static double before;
    static ClassJudge judge;

    static VaeTrainer.Config cfg(Path out, int epochs, long seed) {
        return new VaeTrainer.Config(data.toString(), out, 4, 1.0, epochs, 32, 4e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 0,
                0, seed, 0, 1234, 8, 20, 4, true).withClasses(10);
    }

    @BeforeAll
    static void train() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 320, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 40, 2);
        scope = Scope.shared();
        cvae = new VaeTrainer(cfg(dir.resolve("cvae"), 8, 1), scope);
        before = cvae.evaluate(ImageData.load(data.toString(), "test"), false).negElbo();
        results = cvae.run();
        judge = new ClassJudge(data);
    }

    @AfterAll
    static void close() { if (scope != null) scope.close(); }

    @Test
    void conditionalTrainingLowersTheLossAndWritesTheAnalogyGrid() {
        double after = results.get(results.size() - 1).test().negElbo();
        assertTrue(after < before - 50, "the cVAE's test neg-ELBO must fall: " + before + " -> " + after);
        double first = results.get(0).trainNegElbo(), last = results.get(results.size() - 1).trainNegElbo();
        assertTrue(last < first, "train neg-ELBO must fall from the first epoch to the last: " + first + " -> " + last);
        for (String f : new String[] {"analogy.png", "samples-epoch-008.png", "interpolations.png", "checkpoint.safetensors"})
            assertTrue(Files.isRegularFile(dir.resolve("cvae").resolve(f)), f);
    }

    @Test
    void sameSeedSameBitsAndTheLabelMatters() throws IOException {
        try (Scope s = Scope.shared()) {
            VaeTrainer a = new VaeTrainer(cfg(dir.resolve("a"), 1, 3), s), b = new VaeTrainer(cfg(dir.resolve("b"), 1, 3), s);
            ImageData train = ImageData.load(data.toString(), "train");
            int[] perm = ImageData.permutation(train.n, 3, 9);
            for (int i = 0; i < 3; i++) assertEquals(a.trainStep(train, perm, 32 * i, 32), b.trainStep(train, perm, 32 * i, 32));
            for (var e : a.model.namedParameters().entrySet())
                assertArrayEquals(e.getValue().value().toArray(), b.model.namedParameters().get(e.getKey()).value().toArray(), e.getKey());
            // the label is an input: the same images under shifted labels give a different step
            int[] shifted = new int[train.n];
            for (int i = 0; i < train.n; i++) shifted[i] = (train.labels[i] + 1) % 10;
            ImageData other = new ImageData(train.n, 28, 28, train.pixels, shifted, "shifted");
            VaeTrainer c = new VaeTrainer(cfg(dir.resolve("c"), 1, 3), s), d = new VaeTrainer(cfg(dir.resolve("d"), 1, 3), s);
            assertNotEquals(c.trainStep(train, perm, 0, 32), d.trainStep(other, perm, 0, 32));
        }
    }

    @Test
    void samplesOfClassKAreJudgedClassK() throws IOException {
        judge.assertSamplesJudgedAsAsked(dir, 20, (file, n, k) -> cvae.writeSamples(file, n, 42, k));
    }

    @Test
    void itsOwnConditionalLikelihoodPicksTheClass() throws IOException {
        ImageData test = ImageData.load(data.toString(), "test").head(30);
        double[][] ll = cvae.classLogLikelihoods(test, 2);
        int right = 0;
        for (int i = 0; i < test.n; i++) {
            int arg = 0;
            for (int c = 1; c < 10; c++) if (ll[i][c] > ll[i][arg]) arg = c;
            if (arg == test.labels[i]) right++;
        }
        System.out.println("argmax_y log p(x | y) right on " + right + "/" + test.n);
        assertTrue(right > 0.6 * test.n, "argmax_y log p(x | y) must find the label of most test images: " + right + "/" + test.n);
    }

    @Test
    void checkpointRecordsTheClassesAndReloads() throws IOException {
        Path out = dir.resolve("cvae");
        try (Scope s = Scope.shared()) {
            VaeTrainer back = VaeTrainer.load(out, s);
            assertEquals(10, back.cfg.classes());
            assertTrue(back.cfg.conditional());
            var meta = dev.latent.io.SafeTensors.read(out.resolve(VaeTrainer.CHECKPOINT), s).metadata();
            Map<String, Object> c = dev.latent.io.JsonReader.parseObject(meta.get("config"));
            assertEquals(Boolean.TRUE, c.get("conditional"));
            assertEquals(10L, c.get("classes"));
            cvae.writeSamples(dir.resolve("x-idx3-ubyte"), 30, 5, 4);
            back.writeSamples(dir.resolve("y-idx3-ubyte"), 30, 5, 4);
            assertArrayEquals(Files.readAllBytes(dir.resolve("x-idx3-ubyte")), Files.readAllBytes(dir.resolve("y-idx3-ubyte")));
        }
    }

    @Test
    void badClassRequestsAreRefusedClearly() throws IOException {
        var e = assertThrows(IllegalArgumentException.class, () -> cvae.writeSamples(dir.resolve("z.png"), 4, 1, 10));
        assertTrue(e.getMessage().contains("--class 10 is outside [0, 10)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cvae.writeSamples(dir.resolve("z.png"), 4, 1, -2));
        // an unconditional model (an older checkpoint's form: no "conditional" or "classes" in its config) refuses a class
        Path out = dir.resolve("plain");
        try (Scope s = Scope.shared()) {
            VaeTrainer plain = new VaeTrainer(cfg(out, 1, 1).withClasses(0), s);
            plain.save(Files.createDirectories(out).resolve(VaeTrainer.CHECKPOINT));
            VaeTrainer back = VaeTrainer.load(out, s);
            assertFalse(back.cfg.conditional());
            back.writeSamples(out.resolve("ok.png"), 4, 1);   // still samples
            e = assertThrows(IllegalArgumentException.class, () -> back.writeSamples(out.resolve("no.png"), 4, 1, 3));
            assertTrue(e.getMessage().contains("unconditional"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> back.writeAnalogy(out.resolve("no.png"), 4, 1));
            assertTrue(e.getMessage().contains("conditional"), e.getMessage());
            // a conditional model needs a label: the label-less entry points say so instead of decoding garbage
            e = assertThrows(IllegalArgumentException.class, () -> {
                try (var g = dev.latent.autograd.Graph.inference()) {
                    cvae.model.decode(Var.constant(g.empty(1, 4)));
                }
            });
            assertTrue(e.getMessage().contains("needs a class"), e.getMessage());
        }
    }
}
