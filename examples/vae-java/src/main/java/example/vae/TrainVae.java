package example.vae;

import dev.latent.io.Png;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.serve.Generator;
import dev.latent.serve.ImageGenerators;
import dev.latent.tensor.Scope;
import dev.latent.train.TrainingListener;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The guide's program (docs/guide-vae-java.md): train a convolutional VAE on Fashion-MNIST from Java, watch it
 * through a listener, then serve samples from the checkpoint it wrote.
 * Usage: TrainVae OUT_DIR [TRAIN_LIMIT (0: all 60,000 images)]
 */
public final class TrainVae {
    public static void main(String[] args) throws Exception {
        Path out = Path.of(args.length > 0 ? args[0] : "runs/vae-java");
        int limit = args.length > 1 ? Integer.parseInt(args[1]) : 0;

        // 1. The configuration: every field is saved in the checkpoint. "fashion-mnist" is Debian's
        //    dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist); a folder of IDX files works too.
        VaeTrainer.Config cfg = new VaeTrainer.Config(
                "fashion-mnist", out,
                16,                             // latent dimensions
                1.0,                            // beta (1: the plain ELBO)
                1,                              // epochs
                128, 1e-3f,                     // batch, Adam learning rate
                VaeTrainer.Likelihood.BERNOULLI, 0.1,   // p(x|z), sigma (Gaussian only)
                0, 0.0,                         // KL warm-up steps, free bits
                7,                              // seed: same seed, same data -> same bits
                limit,                          // train on the first `limit` images (0: all)
                1234, 10, 100,                  // evaluation seed, IWAE samples, IWAE test images
                50, true);                      // log every 50 steps; quiet (the listener below prints)

        // 2. Train, with a listener for progress (the library itself prints nothing).
        TrainingListener progress = new TrainingListener() {
            @Override public void onStep(Step s) { System.out.printf("step %d/%d  %s%n", s.step(), s.totalSteps(), s.summary()); }
            @Override public void onEvaluation(Evaluation e) { System.out.println(e.summary()); }
            @Override public void onCheckpoint(Path file, long step) { System.out.println("checkpoint " + file + " at step " + step); }
        };
        List<VaeTrainer.EpochResult> epochs;
        try (Scope scope = Scope.shared()) {
            epochs = new VaeTrainer(cfg, scope).listener(progress).run();
        }
        VaeTrainer.EpochResult last = epochs.get(epochs.size() - 1);
        System.out.printf("test neg-ELBO %.2f nats (reconstruction %.2f + KL %.2f), %d active units%n",
                last.test().negElbo(), last.test().rec(), last.test().kl(), last.test().activeUnits());

        // 3. Serve: a thread-safe generator over the checkpoint (weights only), 16 images for seed 42, as a PNG grid.
        try (Generator<ImageGenerators.ImageRequest, ImageGenerators.Images> gen = ImageGenerators.vae(out, 2, 16)) {
            ImageGenerators.Images im = gen.generate(new ImageGenerators.ImageRequest(16, 42));
            Png.Image grid = Png.Image.grey(4 * 28, 4 * 28);
            for (int k = 0; k < 16; k++)
                for (int y = 0; y < 28; y++)
                    for (int x = 0; x < 28; x++)
                        grid.set((k % 4) * 28 + x, (k / 4) * 28 + y, 0, im.pixels()[k * 784 + y * 28 + x]);
            Path png = out.resolve("served-samples.png");
            try (OutputStream o = Files.newOutputStream(png)) {
                Png.write(o, grid, Map.of("Software", "Latent example"));
            }
            System.out.println("wrote " + png);
        }
        if (!(last.test().negElbo() < 543.4)) throw new IllegalStateException("the VAE did not learn: test neg-ELBO " + last.test().negElbo());
    }
}
