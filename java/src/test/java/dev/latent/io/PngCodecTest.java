package dev.latent.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The pure-Java PNG codec (the core needs no java.desktop): what {@link Png#write} encodes decodes with javax.imageio
 * (the JDK's independent decoder, test scope only) pixel for pixel, and {@link Png#read} decodes what ImageIO writes
 * (grey, RGB, RGBA, palette, 1- and 16-bit) as ImageIO does; malformed files are refused with the file named.
 */
class PngCodecTest {
    @TempDir Path dir;

    static Png.Image pattern(int w, int h, int ch, int kind, long seed) {
        Png.Image img = new Png.Image(w, h, ch, new byte[w * h * ch]);
        Random r = new Random(seed);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < ch; c++)
                    img.set(x, y, c, switch (kind) {
                        case 0 -> r.nextInt(256);                       // noise: every filter, little compression
                        case 1 -> (x * 7 + y * 3 + c * 50) & 0xff;      // gradients: sub / up / Paeth win
                        default -> 200;                                 // constant
                    });
        return img;
    }

    static byte[] encode(Png.Image img, Map<String, String> text) throws IOException {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        Png.write(o, img, text);
        return o.toByteArray();
    }

    @Test
    void encoderOutputDecodesWithImageIoPixelForPixel() throws IOException {
        int[][] sizes = {{1, 1}, {3, 2}, {17, 9}, {64, 48}, {300, 7}, {513, 301}};   // the last spans several IDAT chunks
        int cases = 0;
        for (int[] s : sizes)
            for (int ch : new int[] {1, 3})
                for (int kind = 0; kind < 3; kind++) {
                    Png.Image img = pattern(s[0], s[1], ch, kind, 31L * s[0] + s[1] + kind);
                    byte[] png = encode(img, Map.of("Latent-Provenance", "{\"generated\":\"test\"}"));
                    BufferedImage back = ImageIO.read(new ByteArrayInputStream(png));
                    String what = s[0] + "x" + s[1] + "x" + ch + " pattern " + kind;
                    assertNotNull(back, what);
                    assertEquals(s[0], back.getWidth(), what);
                    assertEquals(s[1], back.getHeight(), what);
                    assertEquals(ch, back.getRaster().getNumBands(), what);
                    for (int y = 0; y < s[1]; y++)
                        for (int x = 0; x < s[0]; x++)
                            for (int c = 0; c < ch; c++)
                                if (back.getRaster().getSample(x, y, c) != img.get(x, y, c))
                                    fail(what + ": pixel (" + x + ", " + y + ") channel " + c + ": ImageIO reads "
                                            + back.getRaster().getSample(x, y, c) + ", written " + img.get(x, y, c));
                    // and our own decoder gives the same bytes back
                    Png.Image ours = Png.read(png, what);
                    assertEquals(ch, ours.channels(), what);
                    assertArrayEquals(img.pixels(), ours.pixels(), what);
                    cases++;
                }
        assertEquals(36, cases);
        // the big noise image really is split into several IDAT chunks
        byte[] big = encode(pattern(513, 301, 3, 0, 1), Map.of());
        int idats = 0;
        for (int p = 8; p < big.length; ) {
            int len = java.nio.ByteBuffer.wrap(big, p, 4).getInt();
            if (new String(big, p + 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1).equals("IDAT")) idats++;
            p += 12 + len;
        }
        assertTrue(idats > 1, "IDAT chunks: " + idats);
        // the compression is real: a constant 513x301 RGB image is a few hundred bytes, not 463 KB
        assertTrue(encode(pattern(513, 301, 3, 2, 0), Map.of()).length < 4000);
    }

    @Test
    void textChunksAreWhatImageIoSeesToo() throws Exception {
        byte[] png = encode(pattern(4, 4, 1, 1, 0), Map.of("Latent-Provenance", "{\"note\":\"für Ωmega\"}", "Software", "Latent"));
        var reader = ImageIO.getImageReadersByFormatName("png").next();
        reader.setInput(ImageIO.createImageInputStream(new ByteArrayInputStream(png)));
        var root = (org.w3c.dom.Element) reader.getImageMetadata(0).getAsTree("javax_imageio_png_1.0");
        var entries = root.getElementsByTagName("iTXtEntry");
        Map<String, String> seen = new java.util.HashMap<>();
        for (int i = 0; i < entries.getLength(); i++) {
            var e = (org.w3c.dom.Element) entries.item(i);
            seen.put(e.getAttribute("keyword"), e.getAttribute("text"));
        }
        assertEquals(Map.of("Latent-Provenance", "{\"note\":\"für Ωmega\"}", "Software", "Latent"), seen);
        assertThrows(IllegalArgumentException.class, () -> encode(pattern(2, 2, 1, 0, 0), Map.of("", "x")));
        assertThrows(IllegalArgumentException.class, () -> encode(pattern(2, 2, 2, 0, 0), Map.of()));
    }

    @Test
    void decoderReadsWhatImageIoWrites() throws IOException {
        Random r = new Random(5);
        int[] types = {BufferedImage.TYPE_BYTE_GRAY, BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_INT_RGB, BufferedImage.TYPE_INT_ARGB,
                BufferedImage.TYPE_BYTE_BINARY, BufferedImage.TYPE_BYTE_INDEXED, BufferedImage.TYPE_USHORT_GRAY};
        for (int type : types) {
            BufferedImage img = new BufferedImage(13, 7, type);
            for (int y = 0; y < 7; y++)
                for (int x = 0; x < 13; x++) {
                    if (type == BufferedImage.TYPE_USHORT_GRAY || type == BufferedImage.TYPE_BYTE_GRAY)
                        img.getRaster().setSample(x, y, 0, r.nextInt(type == BufferedImage.TYPE_USHORT_GRAY ? 65536 : 256));
                    else img.setRGB(x, y, r.nextInt());
                }
            Path f = dir.resolve("t" + type + ".png");
            assertTrue(ImageIO.write(img, "png", f.toFile()));
            BufferedImage io = ImageIO.read(f.toFile());
            Png.Image ours = Png.read(f);
            assertEquals(13, ours.width());
            assertEquals(7, ours.height());
            for (int y = 0; y < 7; y++)
                for (int x = 0; x < 13; x++) {
                    String at = "type " + type + " pixel (" + x + ", " + y + ")";
                    if (type == BufferedImage.TYPE_USHORT_GRAY) {
                        assertEquals(1, ours.channels(), at);
                        assertEquals(io.getRaster().getSample(x, y, 0) >> 8, ours.get(x, y, 0), at);   // the high byte
                    } else if (type == BufferedImage.TYPE_BYTE_GRAY) {
                        assertEquals(1, ours.channels(), at);
                        assertEquals(io.getRaster().getSample(x, y, 0), ours.get(x, y, 0), at);
                    } else {
                        int argb = io.getRGB(x, y);
                        int[] want = {(argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff, argb >>> 24};
                        if (ours.channels() == 1) {   // ImageIO writes a black-and-white image as 1-bit grey
                            assertEquals(want[0], ours.get(x, y, 0), at);
                            assertTrue(want[0] == want[1] && want[1] == want[2], at);
                        } else {
                            for (int c = 0; c < ours.channels(); c++) assertEquals(want[c], ours.get(x, y, c), at + " channel " + c);
                        }
                        if (type == BufferedImage.TYPE_INT_ARGB) assertEquals(4, ours.channels(), at);
                    }
                }
        }
    }

    /** A chunk with its length and CRC, for forged files. */
    static byte[] chunk(String type, byte[] data) {
        var b = java.nio.ByteBuffer.allocate(12 + data.length);
        b.putInt(data.length).put(type.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1)).put(data);
        CRC32 c = new CRC32();
        c.update(b.array(), 4, 4 + data.length);
        b.putInt((int) c.getValue());
        return b.array();
    }

    static byte[] ihdr(int w, int h, int depth, int type, int interlace) {
        return chunk("IHDR", java.nio.ByteBuffer.allocate(13).putInt(w).putInt(h).put((byte) depth).put((byte) type)
                .put((byte) 0).put((byte) 0).put((byte) interlace).array());
    }

    static byte[] cat(byte[]... parts) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        for (byte[] p : parts) o.writeBytes(p);
        return o.toByteArray();
    }

    static String refused(byte[] file) {
        IOException e = assertThrows(IOException.class, () -> Png.read(file, "forged.png"));
        assertTrue(e.getMessage().startsWith("forged.png: "), e.getMessage());
        return e.getMessage();
    }

    static void refuses(byte[] file, String fragment) {
        String m = refused(file);
        assertTrue(m.contains(fragment), "expected '" + fragment + "' in: " + m);
    }

    @Test
    void malformedFilesAreRefusedWithAReason() throws IOException {
        byte[] good = encode(pattern(8, 8, 1, 1, 0), Map.of());
        assertArrayEquals(pattern(8, 8, 1, 1, 0).pixels(), Png.read(good, "good.png").pixels());
        assertTrue(refused(java.util.Arrays.copyOf(good, good.length - 20)).contains("truncated")
                || refused(java.util.Arrays.copyOf(good, good.length - 20)).contains("past the end"));
        byte[] badCrc = good.clone();
        badCrc[40] ^= 1;   // inside IDAT
        refuses(badCrc, "bad CRC");
        refuses(new byte[] {1, 2, 3}, "not a PNG");
        byte[] sig = java.util.Arrays.copyOf(Png.SIGNATURE, 8), end = chunk("IEND", new byte[0]);
        var z = new java.util.zip.Deflater();
        z.setInput(new byte[4 * 3]);
        z.finish();
        byte[] zbuf = new byte[64];
        byte[] idat = chunk("IDAT", java.util.Arrays.copyOf(zbuf, z.deflate(zbuf)));
        refuses(cat(sig, ihdr(3, 4, 8, 0, 1), idat, end), "interlaced");
        refuses(cat(sig, ihdr(100000, 100000, 8, 6, 0), idat, end), "larger than");
        refuses(cat(sig, ihdr(0, 4, 8, 0, 0), idat, end), "invalid");
        refuses(cat(sig, ihdr(3, 4, 3, 0, 0), idat, end), "bit depth 3");
        refuses(cat(sig, ihdr(3, 4, 8, 3, 0), idat, end), "PLTE");
        refuses(cat(sig, ihdr(4, 4, 8, 0, 0), idat, end), "truncated");   // 12 bytes for 20
        refuses(cat(sig, ihdr(2, 2, 8, 0, 0), idat, end), "inflates past");  // 12 bytes for 6
        refuses(cat(sig, ihdr(3, 4, 8, 0, 0), end), "no image data");
        refuses(cat(sig, idat, end), "not IHDR");
        byte[] badFilter = new byte[16];   // 4 rows of filter byte + 3 pixels
        badFilter[0] = 9;
        z = new java.util.zip.Deflater();
        z.setInput(badFilter);
        z.finish();
        refuses(cat(sig, ihdr(3, 4, 8, 0, 0), chunk("IDAT", java.util.Arrays.copyOf(zbuf, z.deflate(zbuf))), end), "filter type 9");
    }
}
