package dev.latent.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** PNG text chunks written and read back (UTF-8 included), provenance scoping, and forged files refused with a reason. */
class PngProvenanceTest {
    @TempDir Path dir;

    static Png.Image image() {
        Png.Image img = Png.Image.grey(5, 3);
        for (int y = 0; y < 3; y++) for (int x = 0; x < 5; x++) img.set(x, y, 0, 40 * y + x);
        return img;
    }

    static BufferedImage awtImage() {
        BufferedImage img = new BufferedImage(5, 3, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < 3; y++) for (int x = 0; x < 5; x++) img.getRaster().setSample(x, y, 0, 40 * y + x);
        return img;
    }

    Path write(String name, Map<String, String> text) throws IOException {
        Path f = dir.resolve(name);
        try (OutputStream o = Files.newOutputStream(f)) { Png.write(o, image(), text); }
        return f;
    }

    @Test
    void textRoundTripsAndTheImageStaysValid() throws IOException {
        Map<String, String> t = new LinkedHashMap<>();
        t.put("Software", "Latent");
        t.put("Latent-Provenance", "{\"seed\":7,\"note\":\"für Ωmega ✓\"}");
        Path f = write("a.png", t);
        assertEquals(t, Png.readText(f));
        BufferedImage back = ImageIO.read(f.toFile());
        assertEquals(5, back.getWidth());
        assertEquals(81, back.getRaster().getSample(1, 2, 0));
        // a PNG written without text (ImageIO's own) has none
        Path plain = dir.resolve("plain.png");
        ImageIO.write(awtImage(), "png", plain.toFile());
        assertTrue(Png.readText(plain).isEmpty());
        assertTrue(Provenance.read(plain).isEmpty());
    }

    @Test
    void provenanceScopesNestAndRestore() throws IOException {
        assertTrue(Provenance.current().isEmpty());
        Provenance a = new Provenance("vae", "/runs/v/checkpoint.safetensors", "ab12", 3L, Map.of("n", 64));
        Provenance b = new Provenance("dcgan", null, null, 9L, Map.of());
        try (var s = a.use()) {
            assertEquals(a, Provenance.current().orElseThrow());
            try (var t = b.use()) {
                assertEquals(b, Provenance.current().orElseThrow());
            }
            assertEquals(a, Provenance.current().orElseThrow());
            Path f = write("p.png", Provenance.chunksForCurrent());
            Map<String, Object> p = Provenance.read(f).orElseThrow();
            assertEquals(true, p.get("generated"));
            assertEquals("vae", p.get("model"));
            assertEquals("ab12", p.get("checkpoint_sha256"));
            assertEquals(3.0, ((Number) p.get("seed")).doubleValue());
            assertEquals(64.0, ((Number) ((Map<?, ?>) p.get("settings")).get("n")).doubleValue());
        }
        assertTrue(Provenance.current().isEmpty());
        Map<String, Object> none = Provenance.read(write("q.png", Provenance.chunksForCurrent())).orElseThrow();
        assertEquals(true, none.get("generated"));
        assertNull(none.get("model"));
    }

    @Test
    void sha256OfAFile() throws IOException {
        Path f = dir.resolve("abc");
        Files.writeString(f, "abc");
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Provenance.sha256(f));
    }

    @Test
    void forgedFilesAreRefusedWithAReason() throws IOException {
        Path good = write("g.png", Map.of("k", "v"));
        byte[] b = Files.readAllBytes(good);
        Path notPng = dir.resolve("x.png");
        Files.writeString(notPng, "hello");
        assertTrue(assertThrows(IOException.class, () -> Png.readText(notPng)).getMessage().contains("not a PNG"));
        Path cut = dir.resolve("cut.png");
        Files.write(cut, Arrays.copyOf(b, b.length - 20));
        String m = assertThrows(IOException.class, () -> Png.readText(cut)).getMessage();
        assertTrue(m.contains("cut.png") && (m.contains("past the end") || m.contains("truncated")), m);
        Path huge = dir.resolve("huge.png");
        byte[] h = b.clone();
        h[8] = 0x7f;   // the IHDR chunk's length
        Files.write(huge, h);
        m = assertThrows(IOException.class, () -> Png.readText(huge)).getMessage();
        assertTrue(m.contains("IHDR") && m.contains("past the end"), m);
        Path badJson = write("j.png", Map.of(Provenance.KEY, "{not json"));
        m = assertThrows(IOException.class, () -> Provenance.read(badJson)).getMessage();
        assertTrue(m.contains("not a JSON object"), m);
        assertThrows(IllegalArgumentException.class, () -> write("k.png", Map.of("", "v")));
    }
}
