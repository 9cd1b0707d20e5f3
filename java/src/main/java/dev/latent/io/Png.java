package dev.latent.io;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * PNG files in pure Java (java.base only: {@link Deflater}, {@link Inflater}, {@link CRC32}; no java.desktop).
 * {@link #write} encodes an 8-bit grey or RGB {@link Image} with key/value pairs as international text chunks (iTXt,
 * UTF-8) beside the image; {@link #read} decodes the non-interlaced PNGs a data folder holds (grey, grey + alpha, RGB,
 * RGBA, palette; 1 to 16 bits per sample) to 8-bit samples; {@link #readText} reads the tEXt and iTXt chunks of any
 * PNG back without decoding the image. The readers are for untrusted files: they check the signature, every chunk
 * length against the file and a cap, the CRCs ({@link #read}) and the decoded size, and name the file and the offset
 * of what they refuse.
 */
public final class Png {
    private Png() {}

    static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /** Text chunks larger than this are skipped by the reader (they are not ours). */
    static final int MAX_TEXT_CHUNK = 1 << 20;
    /** {@link #read} refuses images whose 8-bit samples would take more than this (width x height x channels). */
    static final long MAX_DECODED_BYTES = 1L << 28;
    /** IDAT chunks are written at most this long. */
    private static final int IDAT_CHUNK = 1 << 16;

    /**
     * An image of 8-bit samples, row after row, the channels of a pixel interleaved: 1 grey, 2 grey + alpha, 3 RGB,
     * 4 RGBA. {@link #write} takes 1 or 3 channels.
     *
     * @param width    pixels per row, at least 1
     * @param height   rows, at least 1
     * @param channels samples per pixel, 1 to 4
     * @param pixels   {@code width * height * channels} bytes (unsigned samples)
     */
    public record Image(int width, int height, int channels, byte[] pixels) {
        /** Checks the sizes. */
        public Image {
            if (width < 1 || height < 1) throw new IllegalArgumentException("PNG image: " + width + "x" + height + ", at least 1x1 expected");
            if (channels < 1 || channels > 4) throw new IllegalArgumentException("PNG image: " + channels + " channels, 1 to 4 expected");
            if (pixels == null || (long) width * height * channels != pixels.length)
                throw new IllegalArgumentException("PNG image: " + width + "x" + height + "x" + channels + " needs "
                        + (long) width * height * channels + " bytes, got " + (pixels == null ? "none" : pixels.length));
        }

        /** A blank (black) grey image. */
        public static Image grey(int width, int height) {
            return new Image(width, height, 1, new byte[Math.multiplyExact(width, height)]);
        }

        /** Sample {@code c} of pixel (x, y), 0..255. */
        public int get(int x, int y, int c) {
            return pixels[(y * width + x) * channels + c] & 0xff;
        }

        /** Sets sample {@code c} of pixel (x, y) to {@code v} (0..255; higher bits are dropped). */
        public void set(int x, int y, int c, int v) {
            pixels[(y * width + x) * channels + c] = (byte) v;
        }
    }

    /**
     * Writes {@code img} (1 channel: 8-bit grey; 3: 8-bit RGB) as PNG to {@code out} with {@code text} as iTXt
     * chunks (keywords 1-79 printable Latin-1 characters; uncompressed UTF-8 text). Each row is filtered with the
     * filter (none, sub, up, average, Paeth) that minimises its sum of absolute differences, as libpng does.
     */
    public static void write(OutputStream out, Image img, Map<String, String> text) throws IOException {
        if (img.channels() != 1 && img.channels() != 3)
            throw new IllegalArgumentException("PNG write: " + img.channels() + " channels; 1 (grey) or 3 (RGB) expected");
        if (text != null)
            for (var e : text.entrySet()) {
                String k = e.getKey();
                if (k == null || k.isEmpty() || k.length() > 79 || !k.chars().allMatch(c -> c >= 32 && c <= 255))
                    throw new IllegalArgumentException("PNG text keyword '" + k + "': 1-79 printable Latin-1 characters expected");
            }
        out.write(SIGNATURE);
        ByteArrayOutputStream ihdr = new ByteArrayOutputStream(13);
        int32(ihdr, img.width());
        int32(ihdr, img.height());
        ihdr.write(8);                                   // bit depth
        ihdr.write(img.channels() == 1 ? 0 : 2);         // colour type: grey / RGB
        ihdr.write(0); ihdr.write(0); ihdr.write(0);     // deflate, adaptive filtering, no interlace
        chunk(out, "IHDR", ihdr.toByteArray(), 13);
        if (text != null)
            for (var e : text.entrySet()) {
                ByteArrayOutputStream t = new ByteArrayOutputStream();
                t.writeBytes(e.getKey().getBytes(StandardCharsets.ISO_8859_1));
                t.write(0);
                t.write(0);   // not compressed
                t.write(0);   // compression method
                t.write(0);   // empty language tag
                t.write(0);   // empty translated keyword
                t.writeBytes((e.getValue() == null ? "" : e.getValue()).getBytes(StandardCharsets.UTF_8));
                chunk(out, "iTXt", t.toByteArray(), t.size());
            }
        int bpp = img.channels(), stride = img.width() * bpp;
        byte[] prev = new byte[stride], cur = new byte[stride], best = new byte[stride + 1], trial = new byte[stride + 1];
        byte[] buf = new byte[IDAT_CHUNK];
        Deflater d = new Deflater(Deflater.DEFAULT_COMPRESSION);
        try {
            for (int y = 0; y < img.height(); y++) {
                System.arraycopy(img.pixels(), y * stride, cur, 0, stride);
                long bestCost = Long.MAX_VALUE;
                for (int f = 0; f <= 4; f++) {
                    long cost = filter(f, cur, prev, bpp, trial);
                    if (cost < bestCost) { bestCost = cost; byte[] s = best; best = trial; trial = s; }
                }
                d.setInput(best, 0, stride + 1);
                while (!d.needsInput()) buf = drain(out, d, buf);
                byte[] s = prev; prev = cur; cur = s;
            }
            d.finish();
            while (!d.finished()) buf = drain(out, d, buf);
        } finally {
            d.end();
        }
        chunk(out, "IEND", new byte[0], 0);
    }

    /** Deflates into {@code buf} and writes it as one IDAT chunk when something came out. */
    private static byte[] drain(OutputStream out, Deflater d, byte[] buf) throws IOException {
        int n = d.deflate(buf);
        if (n > 0) chunk(out, "IDAT", buf, n);
        return buf;
    }

    /** Filters one row with PNG filter {@code f} into {@code dst} (filter byte first); returns the heuristic cost. */
    private static long filter(int f, byte[] cur, byte[] prev, int bpp, byte[] dst) {
        dst[0] = (byte) f;
        long cost = 0;
        for (int i = 0; i < cur.length; i++) {
            int x = cur[i] & 0xff, a = i >= bpp ? cur[i - bpp] & 0xff : 0, b = prev[i] & 0xff, c = i >= bpp ? prev[i - bpp] & 0xff : 0;
            int v = switch (f) {
                case 0 -> x;
                case 1 -> x - a;
                case 2 -> x - b;
                case 3 -> x - ((a + b) >> 1);
                default -> x - paeth(a, b, c);
            };
            byte bv = (byte) v;
            dst[i + 1] = bv;
            cost += Math.abs((int) bv);   // signed, as libpng's heuristic
        }
        return cost;
    }

    private static int paeth(int a, int b, int c) {
        int p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void int32(ByteArrayOutputStream o, int v) {
        o.write(v >>> 24); o.write(v >>> 16); o.write(v >>> 8); o.write(v);
    }

    private static void chunk(OutputStream out, String type, byte[] data, int len) throws IOException {
        byte[] t = type.getBytes(StandardCharsets.ISO_8859_1);
        byte[] head = {(byte) (len >>> 24), (byte) (len >>> 16), (byte) (len >>> 8), (byte) len, t[0], t[1], t[2], t[3]};
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data, 0, len);
        long c = crc.getValue();
        out.write(head);
        out.write(data, 0, len);
        out.write(new byte[] {(byte) (c >>> 24), (byte) (c >>> 16), (byte) (c >>> 8), (byte) c});
    }

    /**
     * Decodes a PNG file to 8-bit samples: grey (1 channel), grey + alpha (2), RGB (3; also palette images, their
     * palette applied, transparency ignored), RGBA (4). Samples of 1, 2 or 4 bits are scaled to 0..255 (grey) or
     * looked up (palette); 16-bit samples keep their high byte. Interlaced (Adam7) files are refused, as is anything
     * malformed, with the file and the byte offset named.
     */
    public static Image read(Path file) throws IOException {
        long size = Files.size(file);
        if (size > Integer.MAX_VALUE - 8) throw new IOException(file + ": " + size + " bytes is too large for a PNG image");
        return read(Files.readAllBytes(file), file.toString());
    }

    /** As {@link #read(Path)}, from the bytes of a file called {@code name} in messages. */
    public static Image read(byte[] f, String name) throws IOException {
        if (f.length < 8 || !Arrays.equals(f, 0, 8, SIGNATURE, 0, 8)) throw new IOException(name + ": not a PNG file (bad signature)");
        int pos = 8, w = 0, h = 0, depth = 0, type = -1;
        byte[] palette = null;
        Inflater inf = null;
        byte[] raw = null;   // the inflated rows, grown as data arrives: a header's claim alone allocates nothing big
        int rawLen = 0, rawSize = 0;
        boolean idatDone = false, sawIdat = false;
        try {
            while (true) {
                if (pos + 12 > f.length) throw new IOException(name + ": truncated at byte " + pos + " (no IEND chunk)");
                int len = be32(f, pos);
                String t = new String(f, pos + 4, 4, StandardCharsets.ISO_8859_1);
                if (len < 0 || pos + 12L + len > f.length)
                    throw new IOException(name + ": chunk " + printable(t) + " at byte " + pos + " claims " + Integer.toUnsignedString(len)
                            + " bytes, past the end of the " + f.length + "-byte file");
                CRC32 crc = new CRC32();
                crc.update(f, pos + 4, 4 + len);
                if ((int) crc.getValue() != be32(f, pos + 8 + len))
                    throw new IOException(name + ": chunk " + printable(t) + " at byte " + pos + " has a bad CRC (the file is damaged)");
                int d = pos + 8;
                if (type < 0 && !t.equals("IHDR")) throw new IOException(name + ": the first chunk is " + printable(t) + ", not IHDR");
                switch (t) {
                    case "IHDR" -> {
                        if (type >= 0) throw new IOException(name + ": a second IHDR chunk at byte " + pos);
                        if (len != 13) throw new IOException(name + ": IHDR chunk of " + len + " bytes, 13 expected");
                        w = be32(f, d); h = be32(f, d + 4); depth = f[d + 8]; type = f[d + 9];
                        if (w <= 0 || h <= 0) throw new IOException(name + ": image size " + Integer.toUnsignedString(w) + "x" + Integer.toUnsignedString(h) + " is invalid");
                        boolean ok = switch (type) {
                            case 0 -> depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
                            case 3 -> depth == 1 || depth == 2 || depth == 4 || depth == 8;
                            case 2, 4, 6 -> depth == 8 || depth == 16;
                            default -> false;
                        };
                        if (!ok) throw new IOException(name + ": colour type " + type + " with bit depth " + depth + " is not valid PNG");
                        if (f[d + 10] != 0 || f[d + 11] != 0) throw new IOException(name + ": unknown compression or filter method");
                        if (f[d + 12] != 0)
                            throw new IOException(name + ": interlaced (Adam7) PNG is not supported; save it without interlacing");
                        // each side alone first: w * h * channels of two sides near 2^31 would overflow a long
                        if (w > MAX_DECODED_BYTES || h > MAX_DECODED_BYTES || (long) w * h * outChannels(type) > MAX_DECODED_BYTES)
                            throw new IOException(name + ": " + w + "x" + h + " image is larger than the " + (MAX_DECODED_BYTES >> 20) + " MiB a PNG may decode to");
                        long rowBytes = ((long) w * samples(type) * depth + 7) / 8 + 1;
                        // the filtered data can be larger than the decoded pixels (16-bit samples, a filter byte per row)
                        if (rowBytes * h > Integer.MAX_VALUE - 8)
                            throw new IOException(name + ": " + w + "x" + h + " image at " + depth + " bits per sample needs " + rowBytes * h
                                    + " bytes of image data, more than a PNG may hold here");
                        rawSize = (int) (rowBytes * h);
                        raw = new byte[Math.min(rawSize, 1 << 16)];
                        inf = new Inflater();
                    }
                    case "PLTE" -> {
                        if (len % 3 != 0 || len == 0 || len > 768) throw new IOException(name + ": PLTE chunk of " + len + " bytes is invalid");
                        palette = Arrays.copyOfRange(f, d, d + len);
                    }
                    case "IDAT" -> {
                        if (idatDone) throw new IOException(name + ": IDAT chunk at byte " + pos + " after other chunks followed the image data");
                        if (type == 3 && palette == null) throw new IOException(name + ": palette image without a PLTE chunk before its data");
                        sawIdat = true;
                        inf.setInput(f, d, len);
                        try {
                            while (!inf.finished() && !inf.needsInput()) {
                                if (inf.needsDictionary()) throw new IOException(name + ": image data at byte " + pos + " asks for a preset dictionary");
                                long before = inf.getBytesRead();
                                int n;
                                if (rawLen == raw.length && raw.length < rawSize)
                                    raw = Arrays.copyOf(raw, (int) Math.min(rawSize, 2L * raw.length));
                                if (rawLen < raw.length) {
                                    n = inf.inflate(raw, rawLen, raw.length - rawLen);
                                    rawLen += n;
                                } else if ((n = inf.inflate(new byte[1])) > 0) {
                                    throw new IOException(name + ": image data inflates past the " + w + "x" + h + " image");
                                }
                                if (n == 0 && inf.getBytesRead() == before && !inf.finished() && !inf.needsInput())
                                    throw new IOException(name + ": image data at byte " + pos + " does not inflate");
                            }
                        } catch (DataFormatException e) {
                            throw new IOException(name + ": image data at byte " + pos + " is not valid zlib data");
                        }
                    }
                    case "IEND" -> {
                        if (!sawIdat) throw new IOException(name + ": no image data (IDAT chunk)");
                        if (rawLen != rawSize || !inf.finished())
                            throw new IOException(name + ": image data ends after " + rawLen + " of its " + rawSize + " bytes (truncated)");
                        return unfilter(raw, w, h, depth, type, palette, name);
                    }
                    default -> { }
                }
                if (!t.equals("IDAT") && sawIdat) idatDone = true;
                pos += 12 + len;
            }
        } finally {
            if (inf != null) inf.end();
        }
    }

    private static int samples(int type) {
        return switch (type) { case 2 -> 3; case 4 -> 2; case 6 -> 4; default -> 1; };
    }

    private static int outChannels(int type) {
        return type == 3 ? 3 : samples(type);
    }

    private static Image unfilter(byte[] raw, int w, int h, int depth, int type, byte[] palette, String name) throws IOException {
        int spp = samples(type), stride = (int) (((long) w * spp * depth + 7) / 8), bpp = Math.max(1, spp * depth / 8);
        byte[] prev = new byte[stride], cur = new byte[stride];
        int ch = outChannels(type);
        byte[] out = new byte[w * h * ch];
        for (int y = 0; y < h; y++) {
            int base = y * (stride + 1), f = raw[base] & 0xff;
            if (f > 4) throw new IOException(name + ": row " + y + " has filter type " + f + " (0-4 expected)");
            for (int i = 0; i < stride; i++) {
                int x = raw[base + 1 + i] & 0xff, a = i >= bpp ? cur[i - bpp] & 0xff : 0, b = prev[i] & 0xff, c = i >= bpp ? prev[i - bpp] & 0xff : 0;
                cur[i] = (byte) switch (f) {
                    case 0 -> x;
                    case 1 -> x + a;
                    case 2 -> x + b;
                    case 3 -> x + ((a + b) >> 1);
                    default -> x + paeth(a, b, c);
                };
            }
            int o = y * w * ch;
            if (depth == 8) {
                if (type == 3) {
                    for (int x = 0; x < w; x++) paletteEntry(palette, cur[x] & 0xff, out, o + 3 * x, name);
                } else {
                    System.arraycopy(cur, 0, out, o, w * ch);
                }
            } else if (depth == 16) {
                for (int i = 0; i < w * ch; i++) out[o + i] = cur[2 * i];
            } else {   // 1, 2 or 4 bits: grey (scaled to 0..255) or palette indices
                int mask = (1 << depth) - 1, scale = 255 / mask;
                for (int x = 0; x < w; x++) {
                    int bit = x * depth, v = ((cur[bit >> 3] & 0xff) >> (8 - depth - (bit & 7))) & mask;
                    if (type == 3) paletteEntry(palette, v, out, o + 3 * x, name);
                    else out[o + x] = (byte) (v * scale);
                }
            }
            byte[] s = prev; prev = cur; cur = s;
        }
        return new Image(w, h, ch, out);
    }

    private static void paletteEntry(byte[] palette, int i, byte[] out, int at, String name) throws IOException {
        if (3 * i + 2 >= palette.length) throw new IOException(name + ": palette index " + i + " past the " + palette.length / 3 + "-entry palette");
        System.arraycopy(palette, 3 * i, out, at, 3);
    }

    private static int be32(byte[] b, int p) {
        return (b[p] & 0xff) << 24 | (b[p + 1] & 0xff) << 16 | (b[p + 2] & 0xff) << 8 | (b[p + 3] & 0xff);
    }

    private static String printable(String t) {
        return t.chars().allMatch(c -> c >= 32 && c < 127) ? t : "(unprintable type)";
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
