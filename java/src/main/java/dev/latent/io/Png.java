package dev.latent.io;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageOutputStream;
import java.awt.image.RenderedImage;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * PNG files with text chunks: {@link #write} stores key/value pairs as international text (iTXt, UTF-8) beside the
 * image; {@link #readText} reads the tEXt and iTXt chunks of any PNG back without decoding the image. The reader is
 * for untrusted files: it checks the signature, every chunk length against the file and a cap, and names the file
 * and the offset of what it refuses.
 */
public final class Png {
    private Png() {}

    static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /** Text chunks larger than this are skipped by the reader (they are not ours). */
    static final int MAX_TEXT_CHUNK = 1 << 20;

    /** Writes {@code img} as PNG to {@code out} with {@code text} as iTXt chunks (keywords 1-79 Latin-1 characters). */
    public static void write(OutputStream out, RenderedImage img, Map<String, String> text) throws IOException {
        Iterator<ImageWriter> it = ImageIO.getImageWritersByFormatName("png");
        if (!it.hasNext()) throw new IOException("no PNG writer available");
        ImageWriter w = it.next();
        try (ImageOutputStream ios = ImageIO.createImageOutputStream(out)) {
            IIOMetadata md = w.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(img), w.getDefaultWriteParam());
            if (text != null && !text.isEmpty()) {
                IIOMetadataNode root = new IIOMetadataNode("javax_imageio_png_1.0"), itxt = new IIOMetadataNode("iTXt");
                for (var e : text.entrySet()) {
                    String k = e.getKey();
                    if (k == null || k.isEmpty() || k.length() > 79 || !k.chars().allMatch(c -> c >= 32 && c <= 255))
                        throw new IllegalArgumentException("PNG text keyword '" + k + "': 1-79 printable Latin-1 characters expected");
                    IIOMetadataNode n = new IIOMetadataNode("iTXtEntry");
                    n.setAttribute("keyword", k);
                    n.setAttribute("compressionFlag", "FALSE");
                    n.setAttribute("compressionMethod", "0");
                    n.setAttribute("languageTag", "");
                    n.setAttribute("translatedKeyword", "");
                    n.setAttribute("text", e.getValue() == null ? "" : e.getValue());
                    itxt.appendChild(n);
                }
                root.appendChild(itxt);
                md.mergeTree("javax_imageio_png_1.0", root);
            }
            w.setOutput(ios);
            w.write(new IIOImage(img, null, md));
        } finally {
            w.dispose();
        }
    }

    /** The tEXt and iTXt entries of a PNG file, in file order (a later duplicate keyword wins). */
    public static Map<String, String> readText(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return readText(in, file.toString(), Files.size(file));
        }
    }

    static Map<String, String> readText(InputStream raw, String name, long size) throws IOException {
        DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(raw));
        byte[] sig = new byte[8];
        try {
            in.readFully(sig);
        } catch (EOFException e) {
            throw new IOException(name + ": not a PNG file (shorter than its 8-byte signature)");
        }
        if (!java.util.Arrays.equals(sig, SIGNATURE)) throw new IOException(name + ": not a PNG file (bad signature)");
        Map<String, String> out = new LinkedHashMap<>();
        long pos = 8;
        while (true) {
            int len;
            byte[] type = new byte[4];
            try {
                len = in.readInt();
                in.readFully(type);
            } catch (EOFException e) {
                throw new IOException(name + ": truncated at byte " + pos + " (no IEND chunk)");
            }
            String t = new String(type, StandardCharsets.ISO_8859_1);
            if (len < 0 || pos + 12L + len > size)
                throw new IOException(name + ": chunk " + t + " at byte " + pos + " claims " + Integer.toUnsignedString(len)
                        + " bytes, past the end of the " + size + "-byte file");
            boolean text = (t.equals("tEXt") || t.equals("iTXt")) && len <= MAX_TEXT_CHUNK;
            if (text) {
                byte[] data = new byte[len];
                in.readFully(data);
                parseText(t, data, out, name, pos);
            } else {
                in.skipNBytes(len);
            }
            in.skipNBytes(4);   // CRC
            pos += 12L + len;
            if (t.equals("IEND")) return out;
        }
    }

    private static void parseText(String type, byte[] d, Map<String, String> out, String name, long pos) throws IOException {
        int z = indexOf(d, 0);
        if (z < 1 || z > 79) throw new IOException(name + ": " + type + " chunk at byte " + pos + " has no valid keyword");
        String key = new String(d, 0, z, StandardCharsets.ISO_8859_1);
        if (type.equals("tEXt")) {
            out.put(key, new String(d, z + 1, d.length - z - 1, StandardCharsets.ISO_8859_1));
            return;
        }
        // iTXt: keyword 0 compressionFlag compressionMethod languageTag 0 translatedKeyword 0 text
        int p = z + 3;
        if (p > d.length) throw new IOException(name + ": iTXt chunk at byte " + pos + " is truncated");
        boolean compressed = d[z + 1] != 0;
        int l1 = indexOf(d, p);
        int l2 = l1 < 0 ? -1 : indexOf(d, l1 + 1);
        if (l2 < 0) throw new IOException(name + ": iTXt chunk at byte " + pos + " is truncated");
        byte[] body = java.util.Arrays.copyOfRange(d, l2 + 1, d.length);
        if (compressed) {
            var inf = new java.util.zip.Inflater();
            inf.setInput(body);
            var bo = new java.io.ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            try {
                while (!inf.finished()) {
                    int n = inf.inflate(buf);
                    if (n == 0 && (inf.needsInput() || inf.needsDictionary())) break;
                    bo.write(buf, 0, n);
                    if (bo.size() > MAX_TEXT_CHUNK) throw new IOException(name + ": iTXt chunk at byte " + pos + " inflates past 1 MiB");
                }
            } catch (java.util.zip.DataFormatException e) {
                throw new IOException(name + ": iTXt chunk at byte " + pos + " is not valid zlib data");
            } finally {
                inf.end();
            }
            body = bo.toByteArray();
        }
        out.put(key, new String(body, StandardCharsets.UTF_8));
    }

    private static int indexOf(byte[] d, int from) {
        for (int i = from; i < d.length; i++) if (d[i] == 0) return i;
        return -1;
    }
}
