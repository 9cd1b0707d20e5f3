package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.io.Png;

import java.io.IOException;
import java.util.zip.CRC32;

/**
 * Hostile PNG files (the images of a {@code --data} folder, decoded by the core's pure-Java {@link Png#read}): each
 * decodes to an image of the size it claims or is refused with an IOException that says why; nothing else escapes,
 * and the heap taken stays proportional to the data that really inflates (a header claiming 16000 x 16000 pixels with
 * no data must fail without allocating its claim). Input: the file after its 8-byte signature; the harness rewrites
 * every chunk's CRC so the fuzzer gets past the checksum into the chunks and the image data, unless the input starts
 * with 'R' (then the bytes are used raw, CRCs and all).
 */
class PngFuzzTest {
    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"IHDR", "IDAT", "IEND", "PLTE", "\u0000\u0000\u0000\r", "\u0008\u0000\u0000\u0000\u0000", "\u0078\u009c"})
    void read(byte[] in) {
        boolean raw = in.length > 0 && in[0] == 'R';
        byte[] file = new byte[8 + in.length - (raw ? 1 : 0)];
        System.arraycopy(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, 0, file, 0, 8);
        System.arraycopy(in, raw ? 1 : 0, file, 8, file.length - 8);
        if (!raw) {
            for (int p = 8; p + 12 <= file.length; ) {
                long len = java.nio.ByteBuffer.wrap(file, p, 4).getInt() & 0xffffffffL;
                if (p + 12 + len > file.length) break;
                CRC32 c = new CRC32();
                c.update(file, p + 4, (int) (4 + len));
                java.nio.ByteBuffer.wrap(file, (int) (p + 8 + len), 4).putInt((int) c.getValue());
                p += (int) (12 + len);
            }
        }
        Runtime rt = Runtime.getRuntime();
        long before = rt.totalMemory() - rt.freeMemory();
        try {
            Png.Image img = Png.read(file, "fuzz.png");
            if ((long) img.width() * img.height() * img.channels() != img.pixels().length)
                throw new AssertionError(img.width() + "x" + img.height() + "x" + img.channels() + " but " + img.pixels().length + " bytes");
        } catch (IOException e) {
            Fuzz.requireMessage(e);
        }
        long after = rt.totalMemory() - rt.freeMemory();
        // deflate inflates at most ~1032x; a 1-bit palette pixel becomes 3 bytes (24x); plus slack for the JVM
        if (after - before > 1032L * 24 * in.length + (64L << 20))
            throw new AssertionError("PNG read took " + (after - before) + " heap bytes for " + in.length);
    }
}
