package dev.latent.cli;

import dev.latent.io.JsonReader;
import dev.latent.train.TrainingListener;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The train commands' steady-state rate ({@link StepClock}): the window, the arithmetic, and a real command's JSON. */
class StepClockTest {
    static TrainingListener.Step step(long s) {
        return new TrainingListener.Step(s, 100, 0, Double.NaN, "", Map.of());
    }

    @Test
    void theWindowStartsAtTheSecondLoggedStep() throws InterruptedException {
        List<Long> seen = new ArrayList<>();
        StepClock c = new StepClock(new TrainingListener() {
            @Override public void onStep(Step s) { seen.add(s.step()); }
        });
        assertTrue(c.steady(8, "images").isEmpty(), "nothing logged: no rate");
        c.onStep(step(1));
        Thread.sleep(30);   // the first interval (warm-up) is left out: its length must not show in the rate
        c.onStep(step(11));
        assertTrue(c.steady(8, "images").isEmpty(), "two logged steps: no interval past the first, no rate");
        Thread.sleep(20);
        c.onStep(step(21));
        Thread.sleep(20);
        c.onStep(step(31));
        assertEquals(List.of(1L, 11L, 21L, 31L), seen, "every step reaches the wrapped listener");
        Map<String, Object> m = c.steady(8, "images");
        assertEquals(20L, m.get("steady_steps"), "steps 12 .. 31");
        double secs = (Double) m.get("steady_seconds");
        assertTrue(secs >= 0.04 && secs < 0.03 + 0.04 + 5, "the window spans the last two sleeps only: " + secs);
        assertEquals(20 / secs, (Double) m.get("steady_steps_per_s"), 1e-9);
        assertEquals(20 * 8 / secs, (Double) m.get("steady_images_per_s"), 1e-9);
        assertFalse(m.containsKey("steady_tokens_per_s"));
    }

    @Test
    void eventsPassThrough() {
        List<String> seen = new ArrayList<>();
        StepClock c = new StepClock(new TrainingListener() {
            @Override public void onEvaluation(Evaluation e) { seen.add("eval " + e.step()); }
            @Override public void onResumed(Path p, long s) { seen.add("resumed " + s); }
            @Override public void onCheckpoint(Path p, long s) { seen.add("checkpoint " + s); }
            @Override public void onSample(Path p, long s) { seen.add("sample " + s); }
            @Override public void onCurves(Curves cv) { seen.add("curves"); }
        });
        c.onEvaluation(new TrainingListener.Evaluation(3, "x", Map.of()));
        c.onResumed(Path.of("a"), 4);
        c.onCheckpoint(Path.of("b"), 5);
        c.onSample(Path.of("c"), 6);
        c.onCurves(new TrainingListener.Curves(Path.of("d"), "t", "x", "y", List.of()));
        assertEquals(List.of("eval 3", "resumed 4", "checkpoint 5", "sample 6", "curves"), seen);
    }

    @Test
    void trainDcganReportsItsSteadyRate(@TempDir Path dir) throws Exception {
        Path data = Files.createDirectories(dir.resolve("synthetic"));
        dev.latent.SyntheticImages.write(data, "train", 48, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 16, 2);
        String[] a = {"train", "dcgan", "--data", data.toString(), "--out", dir.resolve("run").toString(), "--steps", "8", "--log-interval", "2",
                "--batch", "8", "--nz", "4", "--ngf", "4", "--ndf", "4"};
        CliCapture c = CliCapture.picocli(a);
        assertEquals(0, c.rc(), c.err());
        String[] lines = c.out().strip().split("\n");
        Map<String, Object> m = JsonReader.parseObject(lines[lines.length - 1]);
        assertEquals(4L, ((Number) m.get("steady_steps")).longValue(), "logged at 2, 4, 6, 8: the window is steps 5 .. 8: " + m);
        double secs = ((Number) m.get("steady_seconds")).doubleValue();
        assertEquals(4 * 8 / secs, ((Number) m.get("steady_images_per_s")).doubleValue(), 1e-4 * (4 * 8 / secs), "the JSON prints 6 digits: " + m);
    }
}
