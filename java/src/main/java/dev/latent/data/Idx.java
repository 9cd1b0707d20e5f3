package dev.latent.data;

import java.io.BufferedInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

/**
 * IDX files (LeCun's MNIST format, also Fashion-MNIST's), plain or gzipped: a magic {@code 0 0 type rank},
 * big-endian int32 dimensions, then the data. Types read: unsigned byte (0x08) and float32 (0x0D). Hostile headers
 * are refused before any allocation: dimensions must be positive and their product must fit in an array, and the
 * data is read in bounded steps, so a header claiming more than the file holds fails as "truncated" without first
 * allocating what it claims.
 */
public record Idx(int type, int[] dims, byte[] u8, float[] f32) {
    public static final int U8 = 0x08, F32 = 0x0D;
    private static final int MAX_RANK = 8;

    /** Number of items (the first dimension). */
    public int count() { return dims[0]; }

    /** Elements per item (product of the other dimensions). */
    public int itemSize() {
        int s = 1;
        for (int i = 1; i < dims.length; i++) s *= dims[i];
        return s;
    }

    public static Idx read(Path path) throws IOException {
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(path), 1 << 16)) {
            raw.mark(2);
            int b0 = raw.read(), b1 = raw.read();
            raw.reset();
            InputStream in = b0 == 0x1f && b1 == 0x8b ? new BufferedInputStream(new GZIPInputStream(raw, 1 << 16), 1 << 16) : raw;
            return read(in, path.toString());
        } catch (java.util.zip.ZipException e) {
            throw new IOException(path + ": corrupt gzip data: " + e.getMessage(), e);
        } catch (EOFException e) {
            // GZIPInputStream's "Unexpected end of ZLIB input stream" names no file: name it here
            if (e.getMessage() != null && e.getMessage().startsWith(path.toString())) throw e;
            throw new IOException(path + ": truncated gzip data (" + e.getMessage() + ")", e);
        }
    }

    /** Reads one IDX stream; {@code name} is used in error messages. */
    public static Idx read(InputStream in, String name) throws IOException {
        byte[] head = readFully(in, 4, name, "magic");
        if (head[0] != 0 || head[1] != 0)
            throw new IOException(name + ": not an IDX file (magic " + hex(head) + ", expected 00 00 type rank)");
        int type = head[2] & 0xff, rank = head[3] & 0xff;
        if (type != U8 && type != F32)
            throw new IOException(name + ": IDX element type 0x" + Integer.toHexString(type) + " not supported (unsigned byte 0x08 and float 0x0D are)");
        if (rank < 1 || rank > MAX_RANK) throw new IOException(name + ": IDX rank " + rank + " outside 1.." + MAX_RANK);
        ByteBuffer db = ByteBuffer.wrap(readFully(in, 4 * rank, name, "dimensions")).order(ByteOrder.BIG_ENDIAN);
        int[] dims = new int[rank];
        long count = 1;
        long[] shown = new long[rank];   // as unsigned, all of them, for messages
        for (int i = 0; i < rank; i++) {
            dims[i] = db.getInt();
            shown[i] = Integer.toUnsignedLong(dims[i]);
        }
        for (int i = 0; i < rank; i++) {
            if (dims[i] < 1) throw new IOException(name + ": IDX dimension " + i + " is " + shown[i] + " (must be >= 1) in " + Arrays.toString(shown));
            count *= dims[i];
            if (count > Integer.MAX_VALUE - 16) throw new IOException(name + ": IDX dimensions " + Arrays.toString(shown) + " claim more than 2^31 elements");
        }
        int width = type == U8 ? 1 : 4;
        if (count * width > Integer.MAX_VALUE - 16) throw new IOException(name + ": IDX data of " + count * width + " bytes is too large");
        byte[] data = readBounded(in, (int) (count * width), name);
        if (type == U8) return new Idx(type, dims, data, null);
        float[] f = new float[(int) count];
        ByteBuffer.wrap(data).order(ByteOrder.BIG_ENDIAN).asFloatBuffer().get(f);
        return new Idx(type, dims, null, f);
    }

    private static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) s.append(String.format("%02x ", x & 0xff));
        return s.toString().trim();
    }

    private static byte[] readFully(InputStream in, int n, String name, String what) throws IOException {
        byte[] b = in.readNBytes(n);
        if (b.length != n) throw new EOFException(name + ": truncated IDX " + what + " (" + b.length + " of " + n + " bytes)");
        return b;
    }

    /** Reads exactly n bytes, growing the buffer only as data actually arrives (no allocation on a header's word). */
    private static byte[] readBounded(InputStream in, int n, String name) throws IOException {
        byte[] buf = new byte[Math.min(n, 1 << 20)];
        int have = 0;
        while (have < n) {
            if (have == buf.length) buf = Arrays.copyOf(buf, (int) Math.min(n, 2L * buf.length));
            int r = in.read(buf, have, buf.length - have);
            if (r < 0) throw new EOFException(name + ": truncated IDX data (" + have + " of " + n + " bytes)");
            have += r;
        }
        return buf;
    }

    /** Writes an unsigned-byte IDX file (uncompressed), e.g. 10,000 samples of 28 x 28 for scoring elsewhere. */
    public static void writeU8(Path path, byte[] data, int... dims) throws IOException {
        long count = 1;
        for (int d : dims) count *= d;
        if (count != data.length) throw new IllegalArgumentException("writeU8: dims " + Arrays.toString(dims) + " hold " + count + " bytes, data has " + data.length);
        dev.latent.io.AtomicFiles.write(path, tmp -> {
            try (OutputStream os = Files.newOutputStream(tmp); DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(os))) {
                out.writeInt(0x800 | dims.length);
                for (int d : dims) out.writeInt(d);
                out.write(data);
            }
        });
    }
}
