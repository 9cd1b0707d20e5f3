package dev.latent.train;

import dev.latent.io.SafeTensors;
import dev.latent.data.ImageData;
import dev.latent.models.classifier.Classifier;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.gan.GanTrainer;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.models.pixelcnn.GatedPixelCnn;
import dev.latent.models.pixelcnn.PixelCnnTrainer;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Device;
import dev.latent.text.CharTokenizer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * For every family: N steps in one run and k steps, then a fresh process-like trainer resuming the run folder to N,
 * end with the same checkpoint, bit for bit: weights, buffers, every optimizer's moments and step, and the step count.
 * k is chosen mid-epoch (mid-pass over the data) so the resume must find its place inside a shuffle.
 */
class ResumeBitIdentityTest {
    @TempDir static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws IOException {
        data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 160, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 40, 2);
    }

    /** Every tensor and the step metadata of two checkpoints are equal, bit for bit. */
    static void sameCheckpoint(Path a, Path b) throws IOException {
        try (Scope s = Scope.shared()) {
            SafeTensors.Loaded x = SafeTensors.read(a, s), y = SafeTensors.read(b, s);
            assertEquals(x.tensors().keySet(), y.tensors().keySet(), "tensor names");
            assertTrue(x.tensors().keySet().stream().anyMatch(k -> k.contains(".m.")), "the checkpoint carries optimizer moments");
            for (var e : x.tensors().entrySet()) {
                float[] p = e.getValue().toArray(), q = y.tensors().get(e.getKey()).toArray();
                assertEquals(p.length, q.length, e.getKey());
                for (int i = 0; i < p.length; i++)
                    if (Float.floatToRawIntBits(p[i]) != Float.floatToRawIntBits(q[i]))
                        throw new AssertionError(e.getKey() + "[" + i + "]: uninterrupted " + p[i] + ", resumed " + q[i]);
            }
            for (var e : x.metadata().entrySet())
                if (e.getKey().equals("step") || e.getKey().endsWith(".step")) assertEquals(e.getValue(), y.metadata().get(e.getKey()), e.getKey());
        }
    }

    static VaeTrainer.Config vae(Path out) {
        return new VaeTrainer.Config(data.toString(), out, 4, 1.0, 1, 32, 2e-3f, VaeTrainer.Likelihood.BERNOULLI, 0.1, 3,
                0, 1, 0, 1234, 0, 0, 2, true);
    }

    @Test
    void vae() throws IOException {
        Path one = dir.resolve("vae-one"), two = dir.resolve("vae-two");
        long n = 12, k = 7;   /* 5 steps per pass over 160 images: k inside the second pass */
        try (Scope s = Scope.shared()) { new VaeTrainer(vae(one), s).run(n, false, Long.MAX_VALUE); }
        try (Scope s = Scope.shared()) { new VaeTrainer(vae(two), s).run(n, false, k); }
        try (Scope s = Scope.shared()) { new VaeTrainer(vae(two), s).run(n, true, Long.MAX_VALUE); }
        sameCheckpoint(one.resolve(TrainLoop.CHECKPOINT), two.resolve(TrainLoop.CHECKPOINT));
        assertEquals(Files.readAllLines(one.resolve(Metrics.FILE)).stream().filter(l -> l.contains("neg_elbo\"")).count(),
                Files.readAllLines(two.resolve(Metrics.FILE)).stream().filter(l -> l.contains("neg_elbo\"")).count(),
                "metrics.jsonl: the resumed run's step records replace the ones past the checkpoint");
    }

    static FlowTrainer.Config flow(String arch, Path out) {
        return new FlowTrainer.Config(data.toString(), out, arch, 2, 1, 2, 8, 1, 32, 1e-3f, 0, 1, 0, 16, true);
    }

    @Test
    void realnvpAndGlow() throws IOException {
        for (String arch : new String[] {"realnvp", "glow"}) {
            Path one = dir.resolve(arch + "-one"), two = dir.resolve(arch + "-two");
            long n = 7, k = 3;
            try (Scope s = Scope.shared()) { new FlowTrainer(flow(arch, one), s, 28, 28).run(n, false, Long.MAX_VALUE); }
            try (Scope s = Scope.shared()) { new FlowTrainer(flow(arch, two), s, 28, 28).run(n, false, k); }
            try (Scope s = Scope.shared()) {
                var r = new FlowTrainer(flow(arch, two), s, 28, 28).run(n, true, Long.MAX_VALUE);
                assertEquals(n, r.steps());
            }
            sameCheckpoint(one.resolve(TrainLoop.CHECKPOINT), two.resolve(TrainLoop.CHECKPOINT));
        }
    }

    @Test
    void flowToy() throws IOException {
        var cfg = new dev.latent.models.flow.ToyFlow.Config("moons", 2, 8, 9, 64, 3e-3f, 3);
        Path one = dir.resolve("flow-toy-one"), two = dir.resolve("flow-toy-two");
        try (Scope s = Scope.shared()) { assertEquals(9, new dev.latent.models.flow.ToyFlow(cfg, s).run(one, false, Long.MAX_VALUE, 2, 0, TrainingListener.NONE, true)); }
        try (Scope s = Scope.shared()) { assertEquals(4, new dev.latent.models.flow.ToyFlow(cfg, s).run(two, false, 4, 2, 0, TrainingListener.NONE, true)); }
        try (Scope s = Scope.shared()) { assertEquals(9, new dev.latent.models.flow.ToyFlow(cfg, s).run(two, true, Long.MAX_VALUE, 2, 0, TrainingListener.NONE, true)); }
        sameCheckpoint(one.resolve(TrainLoop.CHECKPOINT), two.resolve(TrainLoop.CHECKPOINT));
        assertEquals(Files.readAllLines(one.resolve(Metrics.FILE)), Files.readAllLines(two.resolve(Metrics.FILE)), "metrics.jsonl: steps 2, 4, 6, 8, 9 once each");
    }

    static GanTrainer.Config gan(GanTrainer.Config base, Path out, int iters) {
        return new GanTrainer.Config(base.loss(), data.toString(), out, iters, 16, 16, 8, 8, base.lr(), base.beta1(), base.beta2(),
                2, base.lambda(), base.loss() == GanTrainer.Loss.GAN ? Dcgan.Norm.BATCH : Dcgan.Norm.NONE, 3, 2, 0, 0, 1234, true);
    }

    @Test
    void dcganAndWganGp() throws IOException {
        /* 160 images, batch 16: 10 batches per epoch; WGAN-GP takes 2 per iteration, so k = 7 resumes inside epoch 2 */
        for (GanTrainer.Config base : new GanTrainer.Config[] {GanTrainer.Config.dcgan("", dir), GanTrainer.Config.wganGp("", dir)}) {
            String name = base.loss().name();
            Path one = dir.resolve(name + "-one"), two = dir.resolve(name + "-two");
            int n = 13, k = 7;
            new GanTrainer(gan(base, one, n)).run();
            new GanTrainer(gan(base, two, n)).run(n, false, k);
            GanTrainer.Result r = new GanTrainer(gan(base, two, n)).run(n, true, Long.MAX_VALUE);
            assertEquals(n, r.iters());
            sameCheckpoint(one.resolve(TrainLoop.CHECKPOINT), two.resolve(TrainLoop.CHECKPOINT));
        }
    }

    static PixelCnnTrainer.Config pixelcnn(Path out) {
        return new PixelCnnTrainer.Config(data.toString(), out, new GatedPixelCnn.Arch(4, 2, 3, 3, 8), 1, 32, 3e-3f, 1, 0, 8, 2, 1234, 2, true);
    }

    /** metrics.jsonl's per-step records (not the evaluations, which carry timings). */
    static List<String> stepRecords(Path run) throws IOException {
        return Files.readAllLines(run.resolve(Metrics.FILE)).stream().filter(l -> !l.contains("test_bits_per_dim")).toList();
    }

    /** The "step" of metrics.jsonl's evaluation records. */
    static List<Long> epochSteps(Path run) throws IOException {
        return Files.readAllLines(run.resolve(Metrics.FILE)).stream().filter(l -> l.contains("test_bits_per_dim"))
                .map(l -> (Long) dev.latent.io.JsonReader.parseObject(l).get("step")).toList();
    }

    @Test
    void pixelcnn() throws IOException {
        Path one = dir.resolve("pixelcnn-one"), two = dir.resolve("pixelcnn-two");
        long n = 8, k = 4;   /* 5 steps per pass over 160 images: n - k steps resumed from inside the first pass, across an epoch */
        try (Scope s = Scope.shared()) { new PixelCnnTrainer(pixelcnn(one), s).run(n, false, Long.MAX_VALUE); }
        try (Scope s = Scope.shared()) {
            var r = new PixelCnnTrainer(pixelcnn(two), s).run(n, false, k);
            assertTrue(r.isEmpty(), "stopped inside the first pass: no epoch finished");
        }
        try (Scope s = Scope.shared()) {
            PixelCnnTrainer t = new PixelCnnTrainer(pixelcnn(two), s);
            t.run(n, true, Long.MAX_VALUE);
            assertEquals(n, t.step());
        }
        sameCheckpoint(one.resolve(PixelCnnTrainer.CHECKPOINT), two.resolve(PixelCnnTrainer.CHECKPOINT));
        assertEquals(stepRecords(one), stepRecords(two), "metrics.jsonl: the resumed run's step records replace the ones past the checkpoint");
        assertEquals(List.of(5L, 8L), epochSteps(two), "an evaluation at the end of the pass (step 5) and at the last step (8)");
    }

    @Test
    void classifier() throws IOException {
        ImageData train = ImageData.load(data.toString(), "train"), test = ImageData.load(data.toString(), "test");
        Path one = dir.resolve("clf-one"), two = dir.resolve("clf-two");
        long n = 13, k = 6;   /* 10 batches of 16 per epoch */
        try (Scope s = Scope.shared()) { new Classifier(s, 10, 4).train(train, test, one, n, false, Long.MAX_VALUE, 1, 16, 1e-3f, 4, true, TrainingListener.NONE); }
        try (Scope s = Scope.shared()) { new Classifier(s, 10, 4).train(train, test, two, n, false, k, 1, 16, 1e-3f, 4, true, TrainingListener.NONE); }
        try (Scope s = Scope.shared()) { new Classifier(s, 10, 4).train(train, test, two, n, true, Long.MAX_VALUE, 1, 16, 1e-3f, 4, true, TrainingListener.NONE); }
        sameCheckpoint(one.resolve(Classifier.CHECKPOINT), two.resolve(Classifier.CHECKPOINT));
    }

    /**
     * GPT (clipping that bites, weight decay, warm-up then cosine): one run of n steps against k steps and a resume, on
     * {@code device}; checkpoints every 4 steps, the stop between two of them.
     */
    static void gptResumes(Path root, Device device) throws IOException {
        String text = "It was the best of times, it was the worst of times, it was the age of wisdom.\n".repeat(30);
        CharTokenizer tok = CharTokenizer.train(text);
        TextData data = new TextData(tok.encode(text));
        GptConfig cfg = new GptConfig(tok.vocabSize(), 1, 2, 16, 16, true);
        GptTrainer.Options o = new GptTrainer.Options(4, 11, 3e-3, 3e-4, 3, 0.1, 0.3, 5, 1, 1234, 2, 4, 7);
        Path one = root.resolve("gpt-one-" + device), two = root.resolve("gpt-two-" + device);
        try (Scope s = Scope.shared()) { GptTrainer.train(new Gpt(s, cfg, 7), tok, data, o, one, false, s, o.steps(), device, TrainingListener.NONE); }
        try (Scope s = Scope.shared()) { GptTrainer.train(new Gpt(s, cfg, 7), tok, data, o, two, false, s, 6, device, TrainingListener.NONE); }
        try (Scope s = Scope.shared()) { GptTrainer.train(new Gpt(s, cfg, 99), tok, data, o, two, true, s, o.steps(), device, TrainingListener.NONE); }
        sameCheckpoint(one.resolve(TrainLoop.CHECKPOINT), two.resolve(TrainLoop.CHECKPOINT));
    }

    @Test
    void gpt() throws IOException { gptResumes(dir, Device.CPU); }
}
