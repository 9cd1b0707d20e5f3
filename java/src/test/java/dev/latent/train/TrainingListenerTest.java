package dev.latent.train;

import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The trainers report through TrainingListener (steps, evaluations, resume, checkpoints) and print nothing themselves. */
class TrainingListenerTest {
    static final String TEXT = "Call me Ishmael. Some years ago, never mind how long precisely, having little money.\n".repeat(40);

    static GptTrainer.Options opts(int steps) {
        // batch 4, log every 5 steps, evaluate every 10, checkpoint every 10
        return new GptTrainer.Options(4, steps, 3e-3, 3e-4, 5, 0.1, 1.0, 10, 2, 1234, 5, 10, 7);
    }

    static final class Recorder implements TrainingListener {
        final List<Step> steps = new ArrayList<>();
        final List<Evaluation> evals = new ArrayList<>();
        final List<String> files = new ArrayList<>();
        final List<Curves> curves = new ArrayList<>();

        @Override public void onStep(Step s) { steps.add(s); }
        @Override public void onEvaluation(Evaluation e) { evals.add(e); }
        @Override public void onResumed(Path checkpoint, long step) { files.add("resumed " + checkpoint.getFileName() + " " + step); }
        @Override public void onCheckpoint(Path file, long step) {
            assertTrue(Files.isRegularFile(file), file + " reported before it exists");
            files.add("checkpoint " + file.getFileName() + " " + step);
        }
        @Override public void onSample(Path file, long step) { files.add("sample " + file.getFileName() + " " + step); }
        @Override public void onCurves(Curves c) { curves.add(c); }
    }

    @Test
    void gptTrainerReportsStepsEvaluationsResumeAndCheckpoints(@TempDir Path dir) throws Exception {
        CharTokenizer tok = CharTokenizer.train(TEXT);
        TextData data = new TextData(tok.encode(TEXT));
        GptConfig cfg = new GptConfig(tok.vocabSize(), 1, 2, 16, 16, false);
        Recorder first = new Recorder(), second = new Recorder();
        try (Scope s = Scope.shared()) {
            GptTrainer.train(new Gpt(s, cfg, 7), tok, data, opts(20), dir, false, s, 10, Device.CPU, first);
        }
        assertEquals(List.of(5L, 10L), first.steps.stream().map(TrainingListener.Step::step).toList());
        TrainingListener.Step st = first.steps.get(1);
        assertEquals(20, st.totalSteps());
        assertTrue(st.summary().startsWith("loss "), st.summary());
        assertTrue(st.metrics().get("loss") instanceof Number && st.metrics().containsKey("tokens_per_s"), st.metrics().toString());
        assertTrue(st.elapsedSeconds() >= 0 && Double.isFinite(st.etaSeconds()), st.toString());
        assertEquals(1, first.evals.size());   // step 0 (the one at 10 is the stop point: no evaluation there)
        assertTrue(first.evals.get(0).summary().startsWith("step 0: eval train "), first.evals.get(0).summary());
        assertTrue(first.evals.get(0).metrics().containsKey("val_loss"));
        // the interval checkpoint at 10 is also the stop point's: written (and reported) once
        assertEquals(List.of("checkpoint " + GptCheckpoint.FILE + " 10"), first.files);

        try (Scope s = Scope.shared()) {
            GptCheckpoint.Loaded half = GptCheckpoint.load(dir, s);
            GptTrainer.train(half.model(), tok, data, opts(20), dir, true, s, 20, Device.CPU, second);
        }
        assertEquals("resumed " + GptCheckpoint.FILE + " 10", second.files.get(0));
        assertEquals(List.of(15L, 20L), second.steps.stream().map(TrainingListener.Step::step).toList());
        assertEquals(List.of(10L, 20L), second.evals.stream().map(TrainingListener.Evaluation::step).toList());
        assertEquals("checkpoint " + GptCheckpoint.FILE + " 20", second.files.get(second.files.size() - 1));
        // the curves of each run (this process's steps) come once, at the end, for the CLI to draw as loss.png
        assertEquals(1, first.curves.size());
        assertEquals(1, second.curves.size());
        TrainingListener.Curves c = second.curves.get(0);
        assertEquals(dir, c.folder());
        assertEquals(List.of("train (batch)", "train (eval)", "val (eval)"), c.series().stream().map(TrainingListener.Series::name).toList());
        assertArrayEquals(new double[] {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, c.series().get(0).x());
        assertTrue(java.util.Arrays.stream(c.series().get(0).y()).allMatch(v -> v > 0 && Double.isFinite(v)));
        assertArrayEquals(new double[] {10, 20}, c.series().get(2).x());
    }

    @Test
    void libraryTrainingPrintsNothing(@TempDir Path dir) throws Exception {
        LatentNative.get();   // its one load-time INFO record goes out (System.Logger) before the streams are swapped
        CharTokenizer tok = CharTokenizer.train(TEXT);
        TextData data = new TextData(tok.encode(TEXT));
        GptConfig cfg = new GptConfig(tok.vocabSize(), 1, 2, 16, 16, false);
        PrintStream err = System.err, out = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream cap = new PrintStream(captured, true, StandardCharsets.UTF_8);
        System.setErr(cap);
        System.setOut(cap);
        try (Scope s = Scope.shared()) {
            GptTrainer.train(new Gpt(s, cfg, 7), tok, data, opts(10), dir, false, s);   // default listener: LOG at DEBUG
        } finally {
            System.setErr(err);
            System.setOut(out);
        }
        assertEquals("", captured.toString(StandardCharsets.UTF_8));
        assertFalse(Files.exists(dir.resolve("loss.png")), "the library draws no chart (the CLI does, from onCurves)");
    }
}
