package dev.latent.models.gan;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.Idx;
import dev.latent.data.ImageData;
import dev.latent.eval.Fid;
import dev.latent.models.classifier.Classifier;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * CI-sized runs of the GAN family on a small synthetic IDX dataset (10 classes of bars and boxes, written to a
 * temp folder, so the test needs no download): losses stay finite, samples change with training, the files appear,
 * a checkpoint reloads to the same samples; the mode-coverage and FID metrics can both pass and fail.
 */
class GanTrainingTest {
    @TempDir static Path dir;
    static Path data;

    static void writeSynthetic(Path folder, String stem, int n, long seed) throws IOException {
        dev.latent.SyntheticImages.write(folder, stem, n, seed);
    }

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        writeSynthetic(data, "train", 640, 1);
        writeSynthetic(data, "t10k", 400, 2);
    }

    static GanTrainer.Config small(GanTrainer.Config base, Path out, int iters) {
        return new GanTrainer.Config(base.loss(), data.toString(), out, iters, 16, 16, 8, 8, base.lr(), base.beta1(), base.beta2(),
                2, base.lambda(), base.criticNorm(), 3, 2, 0, 20, 1234, true);
    }

    static float[] generate(GanTrainer t) {
        try (Graph g = Graph.inference(); Scope s = Scope.confined()) {
            return t.g.forward(Var.constant(GanTrainer.latent(s, 9, 9, 4, 16))).value().toArray();
        }
    }

    @Test
    void dcganTrainsWritesFilesAndReloads() throws IOException {
        Path out = dir.resolve("dcgan");
        GanTrainer t = new GanTrainer(small(GanTrainer.Config.dcgan("", out), out, 8));
        float[] before = generate(t);
        GanTrainer.Result r = t.run();
        assertTrue(r.finite(), "losses must stay finite");
        assertTrue(Double.isFinite(r.lossD()) && Double.isFinite(r.lossG()));
        assertFalse(java.util.Arrays.equals(before, generate(t)), "samples must change with training");
        for (String f : new String[] {"metrics.jsonl", "samples.png", "samples-epoch-001.png", "checkpoint.safetensors", "samples-idx3-ubyte"})
            assertTrue(Files.isRegularFile(out.resolve(f)), f);
        assertEquals(4, Files.readAllLines(out.resolve("metrics.jsonl")).size());
        Idx samples = Idx.read(out.resolve("samples-idx3-ubyte"));
        assertArrayEquals(new int[] {20, 28, 28}, samples.dims());
        try (Scope s = Scope.shared()) {
            GanTrainer back = GanTrainer.load(out, s, 1234);
            assertArrayEquals(generate(t), generate(back), "a reloaded checkpoint must give the same samples");
            Path again = dir.resolve("again-idx3-ubyte");
            back.writeSamples(again, 20);
            assertArrayEquals(samples.u8(), Idx.read(again).u8());
        }
    }

    @Test
    void sameSeedSameBits() throws IOException {
        GanTrainer a = new GanTrainer(small(GanTrainer.Config.dcgan("", dir.resolve("a")), dir.resolve("a"), 3));
        GanTrainer b = new GanTrainer(small(GanTrainer.Config.dcgan("", dir.resolve("b")), dir.resolve("b"), 3));
        a.run();
        b.run();
        assertArrayEquals(generate(a), generate(b));
    }

    @Test
    void wganGpTrainsWithBothCriticNorms() throws IOException {
        for (Dcgan.Norm norm : new Dcgan.Norm[] {Dcgan.Norm.NONE, Dcgan.Norm.LAYER}) {
            Path out = dir.resolve("wgan-" + norm);
            GanTrainer.Config b = GanTrainer.Config.wganGp("", out);
            GanTrainer.Config c = new GanTrainer.Config(b.loss(), data.toString(), out, 3, 8, 16, 8, 8, b.lr(), b.beta1(), b.beta2(),
                    2, 10f, norm, 1, 1, 0, 0, 1234, true);
            GanTrainer t = new GanTrainer(c);
            float[] before = generate(t);
            GanTrainer.Result r = t.run();
            assertTrue(r.finite(), "WGAN-GP losses finite with critic norm " + norm);
            assertFalse(java.util.Arrays.equals(before, generate(t)));
        }
        var e = assertThrows(IllegalArgumentException.class, () -> new GanTrainer(new GanTrainer.Config(GanTrainer.Loss.WGAN_GP, "", dir, 1, 8,
                16, 8, 8, 1e-4f, 0.5f, 0.9f, 1, 10f, Dcgan.Norm.BATCH, 1, 1, 0, 0, 1, true)));
        assertTrue(e.getMessage().contains("BatchNorm"));
    }

    @Test
    void toyGanTrainsAndCoverageCanPassAndFail() {
        ToyGan.Dist ring = ToyGan.Dist.of("ring8");
        float[] real;
        try (Scope s = Scope.confined()) { real = ring.sample(s, 1, 0, 2500).toArray(); }
        ToyGan.Coverage all = ToyGan.coverage(ring, real);
        assertEquals(8, all.modes());
        assertTrue(all.hqPct() > 99, "real samples are high quality: " + all.hqPct());
        float[] collapsed = real.clone();
        for (int i = 0; i < collapsed.length; i += 2) { collapsed[i] = 2f; collapsed[i + 1] = 0f; }
        ToyGan.Coverage one = ToyGan.coverage(ring, collapsed);
        assertEquals(1, one.modes());
        float[] far = real.clone();
        for (int i = 0; i < far.length; i++) far[i] *= 3;
        assertEquals(0, ToyGan.coverage(ring, far).modes());

        for (boolean wgan : new boolean[] {false, true}) {
            ToyGan g = new ToyGan(new ToyGan.Config("grid25", wgan, 15, 64, 32, 1e-3f, true, 2, 0.1f, 1));
            double[] last = g.train();
            assertTrue(Double.isFinite(last[0]) && Double.isFinite(last[1]), "toy " + (wgan ? "wgan-gp" : "gan") + " losses finite");
        }
    }

    @Test
    void classifierLearnsAndFidSeparatesRealFromNoise() throws IOException {
        ImageData train = ImageData.load(data.toString(), "train"), test = ImageData.load(data.toString(), "test");
        try (Scope s = Scope.shared()) {
            Classifier c = new Classifier(s, 10, 1);
            Classifier.TrainResult r = c.train(train, test, dir.resolve("clf"), 2, 32, 2e-3f, 1, true);
            assertTrue(r.testAccuracy() > 0.5, "synthetic classes are easy; got " + r.testAccuracy());
            Classifier back = Classifier.load(dir.resolve("clf"), s);
            assertEquals(r.testAccuracy(), back.accuracy(test), 1e-12);
            double[][] ftrain = c.featuresAndProbs(train)[0], ftest = c.featuresAndProbs(test)[0];
            byte[] noise = new byte[400 * 784];
            new Random(5).nextBytes(noise);
            double[][] fnoise = c.featuresAndProbs(new ImageData(400, 28, 28, noise, null, "noise"))[0];
            double real = Fid.distance(Fid.stats(ftrain), Fid.stats(ftest)), fake = Fid.distance(Fid.stats(fnoise), Fid.stats(ftest));
            assertTrue(real * 5 < fake, "FID real-vs-real " + real + " must be far below noise-vs-real " + fake);
        }
    }
}
