package dev.latent.cli;

import dev.latent.train.TrainingListener;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CLI's progress lines keep the format they had when the trainers printed them; the run's curves become loss.png. */
class ConsoleListenerTest {
    @Test
    void drawsTheCurvesAsLossPng(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        double[] x = {0, 1, 2, 3, 4}, y = {3, 2.5, 2.2, 2.0, 1.9};
        ConsoleListener.INSTANCE.onCurves(new TrainingListener.Curves(dir, "GPT training loss (nats/token)", "step", "loss",
                List.of(new TrainingListener.Series("train (batch)", x, y), new TrainingListener.Series("val (eval)", new double[] {0, 4}, new double[] {3.1, 2.1}))));
        Path png = dir.resolve("loss.png");
        var img = javax.imageio.ImageIO.read(png.toFile());
        assertNotNull(img, "loss.png decodes");
        assertEquals(800, img.getWidth());
        assertEquals(500, img.getHeight());
        int[] counts = new int[Plot.PALETTE.length];
        for (int yy = 0; yy < img.getHeight(); yy++)
            for (int xx = 0; xx < img.getWidth(); xx++)
                for (int k = 0; k < counts.length; k++) if ((img.getRGB(xx, yy) & 0xffffff) == (Plot.PALETTE[k].getRGB() & 0xffffff)) counts[k]++;
        assertTrue(counts[0] > 50 && counts[1] > 50, "both curves drawn in their colours: " + java.util.Arrays.toString(counts));
        // a chart says only that Latent wrote it (no run provenance is in force here)
        assertNotNull(dev.latent.io.Provenance.read(png).orElseThrow().get("generated"));
        assertTrue(Files.size(png) > 1000);
    }

    @Test
    void printsTheProgressLinesOfTheCli() {
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            ConsoleListener l = ConsoleListener.INSTANCE;
            l.onStep(new TrainingListener.Step(50, 200, 12.4, 37.6, "loss 2.1234  15000 tok/s", Map.of()));
            l.onStep(new TrainingListener.Step(1, 200, 0.2, Double.NaN, "bpd 3.5000", Map.of()));
            l.onEvaluation(new TrainingListener.Evaluation(100, "step 100: eval train 1.9000  val 2.0100", Map.of()));
            l.onResumed(Path.of("runs/gpt/checkpoint.safetensors"), 100);
            l.onCheckpoint(Path.of("runs/gpt/checkpoint.safetensors"), 200);   // silent, as before
            l.onSample(Path.of("runs/vae/samples-epoch-001.png"), 200);        // silent, as before
        } finally {
            System.setErr(err);
        }
        assertEquals("""
                step 50/200  loss 2.1234  15000 tok/s  elapsed 12s  eta 38s
                step 1/200  bpd 3.5000  elapsed 0s  eta ?
                step 100: eval train 1.9000  val 2.0100
                resumed from runs/gpt/checkpoint.safetensors at step 100
                """.replace("\n", System.lineSeparator()), captured.toString(StandardCharsets.UTF_8));
    }
}
