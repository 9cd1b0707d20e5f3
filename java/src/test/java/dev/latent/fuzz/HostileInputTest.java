package dev.latent.fuzz;

import dev.latent.io.JsonReader;
import dev.latent.io.SafeTensors;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Scope;
import dev.latent.text.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The hostile inputs the readers were fixed for (found by reading and fuzzing), kept as plain tests. */
class HostileInputTest {
    static byte[] safetensors(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        return b.array();
    }

    static String read(Path dir, byte[] file) throws IOException {
        Path f = dir.resolve("x.safetensors");
        Files.write(f, file);
        try (Scope s = Scope.confined()) {
            IOException e = assertThrows(IOException.class, () -> GptCheckpoint.load(f, s));
            return e.getMessage();
        }
    }

    @Test
    void headersClaimingHugeSizesAreRefusedBeforeAllocating(@TempDir Path dir) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).putLong(0);
        assertTrue(read(dir, b.array()).contains("header length 1099511627776 is impossible"));
        // A zero-element tensor whose other dimensions overflow any stride.
        String big = "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904,0],\"data_offsets\":[0,0]}}";
        assertTrue(read(dir, safetensors(big, 0)).contains("too large"));
        String lies = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4398046511104]}}";
        assertTrue(read(dir, safetensors(lies, 16)).contains("do not hold"));
    }

    @Test
    void aCheckpointConfigTheTensorsCannotFillIsRefusedBeforeTheModelIsAllocated(@TempDir Path dir) throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "latent-gpt-1");
        meta.put("config", "{\"vocab\":2147483647,\"layers\":2147483647,\"heads\":1,\"dim\":2147483647,\"context\":2147483647,\"tied\":false}");
        meta.put("tokenizer", "{\"type\":\"char\",\"code_points\":[97]}");
        SafeTensors.write(dir.resolve("a.safetensors"), Map.of(), meta);
        try (Scope s = Scope.confined()) {
            String m = assertThrows(IOException.class, () -> GptCheckpoint.load(dir.resolve("a.safetensors"), s)).getMessage();
            assertTrue(m.contains("needs too many parameters"), m);
            meta.remove("config");
            SafeTensors.write(dir.resolve("b.safetensors"), Map.of(), meta);
            m = assertThrows(IOException.class, () -> GptCheckpoint.load(dir.resolve("b.safetensors"), s)).getMessage();
            assertTrue(m.contains("lacks config"), m);   // was a NullPointerException
        }
    }

    @Test
    void theParameterCountOfAConfigMatchesTheModel() {
        for (GptConfig c : new GptConfig[] {new GptConfig(11, 2, 2, 8, 5, false), new GptConfig(7, 1, 1, 4, 3, true)})
            try (Scope s = Scope.confined()) {
                assertEquals(new Gpt(s, c, 1).parameterCount(), c.parameterCount());
            }
    }

    @Test
    void bpeMergesThatDoubleATokenAreRefused() {
        StringBuilder m = new StringBuilder("{\"type\":\"bpe\",\"merges\":[[97,97]");
        for (int r = 1; r < 40; r++) m.append(",[").append(255 + r).append(',').append(255 + r).append(']');   // 2^40 bytes
        String e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson(m + "]}")).getMessage();
        assertTrue(e.contains("limit 1024"), e);
        assertThrows(IllegalArgumentException.class, () -> Tokenizer.fromJson("{\"type\":\"bpe\",\"merges\":[[97]]}"));
    }

    @Test
    void unicodeEscapesTakeExactlyFourHexDigits() {
        assertEquals("\u0123", JsonReader.parse("\"\\u0123\""));
        assertThrows(IllegalArgumentException.class, () -> JsonReader.parse("\"\\u+123\""));
        assertThrows(IllegalArgumentException.class, () -> JsonReader.parse("\"\\u-123\""));
    }
}
