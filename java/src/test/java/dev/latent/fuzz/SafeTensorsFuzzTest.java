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
 * justifies. An input starting with 'J' is split at its first NUL into header JSON and data, and the file is
 * built with the right length prefix and padding, so mutations of the header (a config number, an offset)
 * reach the checks behind the length check instead of breaking the prefix. Seeds (tiny valid checkpoints,
 * whole and split) live in the resources folder SafeTensorsFuzzTestInputs/checkpoint.
 */
class SafeTensorsFuzzTest {
    private static Path file;

    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"\"dtype\":\"F32\"", "\"dtype\":\"F16\"", "\"dtype\":\"BF16\"", "\"activation\":\"gelu_tanh\"", "\"shape\":[", "\"data_offsets\":[", "\"__metadata__\"", "latent-gpt-1", "\"config\"",
            "\"tokenizer\"", "\"vocab\":", "\"layers\":", "\"tied\":true", "9223372036854775807", "4294967296"})
    void checkpoint(byte[] data) throws IOException {
        if (file == null) file = Files.createTempFile("latent-fuzz", ".safetensors");
        if (data.length > 0 && data[0] == 'J') data = assemble(data);
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

    /** 'J' header NUL data -> a safetensors file: little-endian length, header padded to 8 bytes, data. */
    private static byte[] assemble(byte[] in) {
        int cut = 1;
        while (cut < in.length && in[cut] != 0) cut++;
        int h = cut - 1, pad = (8 - h % 8) % 8, rest = Math.max(0, in.length - cut - 1);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h + pad + rest).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(h + pad).put(in, 1, h);
        for (int i = 0; i < pad; i++) b.put((byte) ' ');
        if (rest > 0) b.put(in, cut + 1, rest);
        return b.array();
    }
}
