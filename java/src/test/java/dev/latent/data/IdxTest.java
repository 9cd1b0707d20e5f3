package dev.latent.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.*;

class IdxTest {
    @Test
    void roundTripPlainAndGzip(@TempDir Path dir) throws IOException {
        byte[] px = new byte[3 * 4 * 5];
        for (int i = 0; i < px.length; i++) px[i] = (byte) (i * 7);
        Path f = dir.resolve("x-idx3-ubyte");
        Idx.writeU8(f, px, 3, 4, 5);
        Idx a = Idx.read(f);
        assertArrayEquals(new int[] {3, 4, 5}, a.dims());
        assertArrayEquals(px, a.u8());
        Path gz = dir.resolve("x-idx3-ubyte.gz");
        try (var out = new GZIPOutputStream(Files.newOutputStream(gz))) { out.write(Files.readAllBytes(f)); }
        assertArrayEquals(px, Idx.read(gz).u8());
        ImageData d = ImageData.fromIdx(f, null);
        assertEquals(3, d.n);
        assertEquals(4, d.h);
        assertEquals(5, d.w);
    }

    static byte[] header(int type, int... dims) {
        ByteBuffer b = ByteBuffer.allocate(4 + 4 * dims.length);
        b.put((byte) 0).put((byte) 0).put((byte) type).put((byte) dims.length);
        for (int d : dims) b.putInt(d);
        return b.array();
    }

    @Test
    void hostileHeadersAreRefusedBeforeAllocating() {
        // 2^40 elements claimed: refused from the header alone
        var e = assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(header(8, 1 << 20, 1 << 20)), "big"));
        assertTrue(e.getMessage().contains("2^31"), e.getMessage());
        // 2^30 claimed but 10 bytes present: "truncated", without allocating a GiB first
        long before = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
        byte[] h = header(8, 1 << 15, 1 << 15);
        byte[] in = java.util.Arrays.copyOf(h, h.length + 10);
        e = assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(in), "short"));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        long after = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
        assertTrue(after - before < 64L << 20, "allocated " + (after - before) + " bytes for a 22-byte input");
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {1, 2, 8, 1}), "magic"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(header(0x0B, 3)), "type"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(header(8, 0)), "zero"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(header(8, -1)), "negative"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0}), "short header"));
    }

    @Test
    void pngFolderLoads(@TempDir Path dir) throws IOException {
        for (int k = 0; k < 3; k++) {
            var img = new java.awt.image.BufferedImage(6, 4, java.awt.image.BufferedImage.TYPE_BYTE_GRAY);
            img.getRaster().setSample(1, 2, 0, 100 + k);
            javax.imageio.ImageIO.write(img, "png", dir.resolve("s" + k + ".png").toFile());
        }
        ImageData d = ImageData.load(dir.toString(), "test");
        assertEquals(3, d.n);
        assertEquals(4, d.h);
        assertEquals(6, d.w);
        assertEquals(102, d.pixels[2 * 24 + 2 * 6 + 1] & 0xff);
    }

    @Test
    void missingDatasetSaysHowToGetIt() {
        var e = assertThrows(IOException.class, () -> ImageData.load("/nonexistent/dir", "train"));
        assertTrue(e.getMessage().contains("not found"), e.getMessage());
    }

    @Test
    void permutationIsAPermutationAndDeterministic() {
        int[] p = ImageData.permutation(1000, 7, 3), q = ImageData.permutation(1000, 7, 3);
        assertArrayEquals(p, q);
        boolean[] seen = new boolean[1000];
        for (int v : p) { assertFalse(seen[v]); seen[v] = true; }
        assertFalse(java.util.Arrays.equals(p, ImageData.permutation(1000, 7, 4)));
    }
}
