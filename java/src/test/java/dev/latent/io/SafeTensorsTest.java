package dev.latent.io;

import dev.latent.TestUtil;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
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

class SafeTensorsTest {
    @Test
    void roundTripWithMetadata(@TempDir Path dir) throws IOException {
        try (Scope s = Scope.shared()) {
            Map<String, Tensor> t = new LinkedHashMap<>();
            t.put("a", Tensor.of(s, TestUtil.randn(1, 6), 2, 3));
            t.put("b.c", Tensor.of(s, TestUtil.randn(2, 5), 5));
            t.put("empty", Tensor.zeros(s, 0, 4));
            Path f = dir.resolve("x.safetensors");
            SafeTensors.write(f, t, Map.of("step", "7", "note", "quote \" and \\ and é"));
            var l = SafeTensors.read(f, s);
            assertEquals(t.keySet(), l.tensors().keySet());
            for (String k : t.keySet()) assertArrayEquals(t.get(k).toArray(), l.tensors().get(k).toArray(), k);
            assertEquals("quote \" and \\ and é", l.metadata().get("note"));
            try (var ls = Files.list(dir)) { assertEquals(1, ls.count(), "no temp file left"); }
        }
    }

    static Path withHeader(Path dir, String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path f = Files.createTempFile(dir, "h", ".safetensors");
        Files.write(f, b.array());
        return f;
    }

    @Test
    void hostileFilesGiveClearErrorsWithoutHugeAllocations(@TempDir Path dir) throws IOException {
        try (Scope s = Scope.shared()) {
            // a header claiming 2^40 bytes
            ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).putLong(0);
            Path f = dir.resolve("big.safetensors");
            Files.write(f, b.array());
            var e = assertThrows(IOException.class, () -> SafeTensors.read(f, s));
            assertTrue(e.getMessage().contains("header length"), e.getMessage());
            // a tensor claiming more data than the file has
            Path g = withHeader(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1000000,1000000],\"data_offsets\":[0,16]}}", 16);
            var e2 = assertThrows(IOException.class, () -> SafeTensors.read(g, s));
            assertTrue(e2.getMessage().contains("data_offsets"), e2.getMessage());
            Path h = withHeader(dir, "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
            assertTrue(assertThrows(IOException.class, () -> SafeTensors.read(h, s)).getMessage().contains("F16"));
            Path j = withHeader(dir, "{\"w\":", 0);
            assertTrue(assertThrows(IOException.class, () -> SafeTensors.read(j, s)).getMessage().contains("bad header"));
            Path k = dir.resolve("short.safetensors");
            Files.write(k, new byte[] {1, 2});
            assertThrows(IOException.class, () -> SafeTensors.read(k, s));
        }
    }

    @Test
    void truncatedFileIsRefused(@TempDir Path dir) throws IOException {
        try (Scope s = Scope.shared()) {
            Path f = dir.resolve("t.safetensors");
            SafeTensors.write(f, Map.of("w", Tensor.of(s, TestUtil.randn(3, 100), 100)), Map.of());
            byte[] all = Files.readAllBytes(f);
            Files.write(f, java.util.Arrays.copyOf(all, all.length - 10));
            var e = assertThrows(IOException.class, () -> SafeTensors.read(f, s));
            assertTrue(e.getMessage().contains("data_offsets"), e.getMessage());
        }
    }
}
