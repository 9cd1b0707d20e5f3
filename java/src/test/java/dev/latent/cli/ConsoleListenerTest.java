package dev.latent.cli;

import dev.latent.train.TrainingListener;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The CLI's progress lines keep the format they had when the trainers printed them. */
class ConsoleListenerTest {
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
