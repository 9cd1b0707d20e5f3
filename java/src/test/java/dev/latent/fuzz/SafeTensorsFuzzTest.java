package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.io.SafeTensors;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.tensor.Scope;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Hostile safetensors files and GPT checkpoints: every input loads or fails with an IOException or
 * IllegalArgumentException carrying a message; native memory taken stays within what the file's size
 * justifies. Seeds (a tiny valid checkpoint and the regressions found) live in the resources folder
 * SafeTensorsFuzzTestInputs/checkpoint.
 */
class SafeTensorsFuzzTest {
    private static Path file;

    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"\"dtype\":\"F32\"", "\"shape\":[", "\"data_offsets\":[", "\"__metadata__\"", "latent-gpt-1", "\"config\"",
            "\"tokenizer\"", "\"vocab\":", "\"layers\":", "\"tied\":true", "9223372036854775807", "4294967296"})
    void checkpoint(byte[] data) throws IOException {
        if (file == null) file = Files.createTempFile("latent-fuzz", ".safetensors");
        Files.write(file, data);
        long base = Scope.liveBytes();
        try (Scope s = Scope.confined()) {
            try {
                SafeTensors.read(file, s);
            } catch (IOException | IllegalArgumentException e) {
                Fuzz.requireMessage(e);
            }
            Fuzz.requireBounded(Scope.liveBytes() - base, data.length, "safetensors read");
        }
        try (Scope s = Scope.confined()) {
            try {
                GptCheckpoint.load(file, s);
            } catch (IOException | IllegalArgumentException e) {
                Fuzz.requireMessage(e);
            }
            // The model is allocated besides the file's tensors: twice the file, plus the pool's rounding.
            Fuzz.requireBounded(Scope.liveBytes() - base, 2L * data.length, "checkpoint load");
        }
    }
}
