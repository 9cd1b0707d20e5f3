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
            Path h = withHeader(dir, "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
            String hm = assertThrows(IOException.class, () -> SafeTensors.read(h, s)).getMessage();
            assertTrue(hm.contains("F64") && hm.contains("'w'") && hm.contains(h.toString()), hm);
            // F16 / BF16 take 2 bytes a value: 4 bytes for 4 values is a forged range, named with file and tensor
            for (String dt : new String[] {"F16", "BF16"}) {
                Path q = withHeader(dir, "{\"x\":{\"dtype\":\"" + dt + "\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
                String qm = assertThrows(IOException.class, () -> SafeTensors.read(q, s)).getMessage();
                assertTrue(qm.contains("'x'") && qm.contains("data_offsets") && qm.contains(q.toString()), qm);
                // and an F32-sized range (4 bytes a value) for a half-precision tensor is refused the same way
                Path r = withHeader(dir, "{\"y\":{\"dtype\":\"" + dt + "\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
                assertTrue(assertThrows(IOException.class, () -> SafeTensors.read(r, s)).getMessage().contains("'y'"));
            }
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

    /** A file written byte by byte here (not by SafeTensors.write): F32, F16 and BF16 tensors, unaligned data. */
    @Test
    void readsF16AndBf16ConvertedToF32FromTheMapping(@TempDir Path dir) throws IOException {
        // F16 bit patterns and their exact values: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), -0, +inf, 0.333 (rounded)
        short[] f16 = {0x3C00, (short) 0xC000, 0x3800, 0x7BFF, 0x0001, (short) 0x8000, 0x7C00, 0x3555};
        float[] f16v = {1f, -2f, 0.5f, 65504f, 0x1p-24f, -0f, Float.POSITIVE_INFINITY, 0.33325195f};
        // BF16: the top half of an F32: 1, -3.5, 1e-40-ish subnormal, pi truncated, NaN, -inf
        short[] bf = {0x3F80, (short) 0xC060, 0x0001, 0x4049, 0x7FC0, (short) 0xFF80};
        float[] bfv = {1f, -3.5f, Float.intBitsToFloat(0x00010000), Float.intBitsToFloat(0x40490000), Float.NaN, Float.NEGATIVE_INFINITY};
        float[] f32 = {1.5f, -7.25f, 3e-39f};
        // data: 3 F32 (12 bytes), then F16 (16 bytes), then BF16 (12 bytes); a 1-byte gap before the F16 data
        // puts it at an odd offset, which a mapped read must handle (real files align, hostile ones need not).
        String header = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[13,29]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[29,41]}}";
        ByteBuffer data = ByteBuffer.allocate(41).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : f32) data.putFloat(v);
        data.put((byte) 0);
        for (short v : f16) data.putShort(v);
        for (short v : bf) data.putShort(v);
        Path f = withHeader(dir, header, 41);
        byte[] all = Files.readAllBytes(f);
        System.arraycopy(data.array(), 0, all, all.length - 41, 41);
        Files.write(f, all);
        try (Scope s = Scope.shared()) {
            var l = SafeTensors.read(f, s);
            assertEquals(java.util.List.of("a", "h", "b"), java.util.List.copyOf(l.tensors().keySet()));
            assertEquals("v", l.metadata().get("k"));
            assertArrayEquals(f32, l.tensors().get("a").toArray());
            assertArrayEquals(new long[] {2, 4}, l.tensors().get("h").shape());
            assertArrayEquals(f16v, l.tensors().get("h").toArray());
            assertArrayEquals(new long[] {3, 2}, l.tensors().get("b").shape());
            assertArrayEquals(bfv, l.tensors().get("b").toArray());
            try (SafeTensors.Mapped m = SafeTensors.map(f)) {
                assertEquals("F16", m.dtype("h"));
                assertEquals("BF16", m.dtype("b"));
                assertArrayEquals(new long[] {3, 2}, m.shape("b"));
                assertArrayEquals(bfv, m.tensor("b", s).toArray());
                assertTrue(assertThrows(IOException.class, () -> m.shape("nope")).getMessage().contains("'nope'"));
            }
        }
    }

    /** F16 values agree with an independent decoding of every one of the 65536 bit patterns. */
    @Test
    void everyF16PatternDecodesLikeTheFormula(@TempDir Path dir) throws IOException {
        int n = 1 << 16;
        ByteBuffer data = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) data.putShort((short) i);
        Path f = withHeader(dir, "{\"all\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}", 2 * n);
        byte[] all = Files.readAllBytes(f);
        System.arraycopy(data.array(), 0, all, all.length - 2 * n, 2 * n);
        Files.write(f, all);
        try (Scope s = Scope.shared()) {
            float[] got = SafeTensors.read(f, s).tensors().get("all").toArray();
            for (int i = 0; i < n; i++) {
                int sign = i >> 15, e = (i >> 10) & 31, m = i & 1023;
                double v = e == 0 ? m * Math.pow(2, -24) : e == 31 ? (m == 0 ? Double.POSITIVE_INFINITY : Double.NaN)
                        : (1 + m / 1024.0) * Math.pow(2, e - 15);
                float want = (float) (sign == 1 ? -v : v);
                if (Float.isNaN(want)) assertTrue(Float.isNaN(got[i]), "pattern " + i);
                else assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(got[i]), "pattern " + Integer.toHexString(i));
            }
        }
    }
}
