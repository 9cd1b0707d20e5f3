package dev.latent.cli;

import dev.latent.io.SafeTensors;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.HfGpt2Fixture;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** {@code latent import gpt2} then {@code sample gpt} on the result; {@code latent export --weights-only}. */
class ImportExportCommandTest {
    static String run(String... args) {
        PrintStream out = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            CommandLine cl = new CommandLine(new Main());
            cl.setExecutionExceptionHandler((ex, cmd, parsed) -> { throw ex; });
            assertEquals(0, cl.execute(args), String.join(" ", args));
        } finally {
            System.setOut(out);
        }
        return captured.toString(StandardCharsets.UTF_8);
    }

    @Test
    void importedGpt2SamplesThroughTheCli(@TempDir Path dir) throws IOException {
        new HfGpt2Fixture(21).write(dir.resolve("hf"), HfGpt2Fixture.Options.hubLike());
        run("import", "gpt2", dir.resolve("hf").toString(), "--out", dir.resolve("ckpt").toString());
        try (Scope s = Scope.shared()) {
            var l = GptCheckpoint.load(dir.resolve("ckpt"), s);
            assertEquals(GptConfig.Activation.GELU_TANH, l.model().cfg.activation());
            assertEquals("huggingface-gpt2", l.args().get("format"));
        }
        String text = run("sample", "gpt", "--checkpoint", dir.resolve("ckpt").toString(), "--prompt", " the", "--tokens", "8", "--temperature", "0");
        assertTrue(text.startsWith(" the"), text);
        assertEquals(text, run("sample", "gpt", "--checkpoint", dir.resolve("ckpt").toString(), "--prompt", " the", "--tokens", "8", "--temperature", "0"));
    }

    @Test
    void exportWeightsOnlyDropsTheMomentsAndStillSamples(@TempDir Path dir) throws IOException {
        CharTokenizer tok = CharTokenizer.train("abcdefgh \n");
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, new GptConfig(tok.vocabSize(), 1, 2, 16, 16, false), 3);
            AdamW opt = new AdamW(s, m.namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            GptCheckpoint.save(dir.resolve("train"), m, opt, tok, Map.of("steps", 1));
        }
        CommandLine cl = new CommandLine(new Main());
        assertNotEquals(0, cl.execute("export", dir.resolve("train").toString(), "--out", dir.resolve("slim").toString()), "--weights-only is required");
        assertFalse(Files.exists(dir.resolve("slim")));
        run("export", "--weights-only", dir.resolve("train").toString(), "--out", dir.resolve("slim").toString());
        Path a = dir.resolve("train").resolve(GptCheckpoint.FILE), b = dir.resolve("slim").resolve(GptCheckpoint.FILE);
        assertTrue(Files.size(b) * 2.5 < Files.size(a), Files.size(b) + " vs " + Files.size(a));
        try (Scope s = Scope.shared()) {
            var full = SafeTensors.read(a, s);
            var slim = SafeTensors.read(b, s);
            assertTrue(slim.tensors().keySet().stream().noneMatch(k -> k.startsWith("opt.")));
            assertEquals(full.metadata(), slim.metadata());
            for (String k : slim.tensors().keySet()) assertArrayEquals(full.tensors().get(k).toArray(), slim.tensors().get(k).toArray(), k);
            var l = GptCheckpoint.load(b, s);
            assertTrue(l.optState().isEmpty());
            AdamW opt = new AdamW(s, l.model().namedParameters(), 0.9f, 0.95f, 1e-8f, 0.1f);
            var e = assertThrows(IOException.class, () -> GptCheckpoint.restore(opt, l));
            assertTrue(e.getMessage().contains("lacks optimizer state"), e.getMessage());
        }
        assertEquals(run("sample", "gpt", "--checkpoint", dir.resolve("train").toString(), "--tokens", "10", "--temperature", "0"),
                run("sample", "gpt", "--checkpoint", dir.resolve("slim").toString(), "--tokens", "10", "--temperature", "0"));
    }
}
