package dev.latent.io;

import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (8-byte little-endian header length, a JSON header of
 * {name: {dtype, shape, data_offsets}} plus optional string "__metadata__", then the raw data), F32 only.
 * Writes are atomic: a temp file in the same folder, fsync, rename; a crash leaves the old file whole.
 * Reads check everything against the file size before allocating, so a hostile header cannot make us
 * allocate more than the file holds.
 */
public final class SafeTensors {
    private static final long MAX_HEADER = 64L << 20;

    private SafeTensors() {}

    /** A loaded file: tensors (in {@code scope}) in file order and the metadata strings. */
    public record Loaded(Map<String, Tensor> tensors, Map<String, String> metadata) {}

    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) header.put("__metadata__", new LinkedHashMap<>(metadata));
        long off = 0;
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            long bytes = t.numel() * 4;
            List<Long> shape = new ArrayList<>();
            for (long d : t.shape()) shape.add(d);
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("dtype", "F32");
            info.put("shape", shape);
            info.put("data_offsets", List.of(off, off + bytes));
            header.put(e.getKey(), info);
            off += bytes;
        }
        byte[] h = Json.object(header).getBytes(StandardCharsets.UTF_8);
        int pad = (int) ((8 - h.length % 8) % 8);   // the data starts 8-byte aligned
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, file.getFileName() + ".", ".tmp");
            AtomicFiles.shareLike(tmp, file);
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length + pad).flip();
                writeFully(ch, len);
                ByteBuffer hb = ByteBuffer.allocate(h.length + pad);
                hb.put(h);
                while (hb.hasRemaining()) hb.put((byte) ' ');
                writeFully(ch, hb.flip());
                for (Tensor t : tensors.values()) {
                    if (t.device() != dev.latent.tensor.Device.CPU) {   // device memory: copied to the host first
                        float[] a = t.toArray();
                        ByteBuffer b = ByteBuffer.allocate(a.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                        b.asFloatBuffer().put(a);
                        writeFully(ch, b);
                        continue;
                    }
                    Tensor c = t.isContiguous() ? t : t.contiguous();
                    // Native memory is little-endian on x86-64, as the format wants.
                    writeFully(ch, c.segment().asByteBuffer());
                }
                ch.force(true);
            }
            AtomicFiles.replace(tmp, file);
        } catch (IOException e) {
            // A read-only or full file system, a missing permission: say which file and why, and that the
            // previous file (if any) is untouched; the temp file is removed below.
            throw new IOException("could not write " + file + ": " + AtomicFiles.reason(e) + " (any previous " + file.getFileName()
                    + " is unchanged)", e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the directory refuses even that: nothing was renamed into place, the target is intact
                }
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    public static Loaded read(Path file, Scope scope) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new IOException(file + ": not a safetensors file (" + size + " bytes)");
            ByteBuffer lb = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lb, 0, file);
            long hlen = lb.flip().getLong();
            if (hlen < 2 || hlen > MAX_HEADER || hlen > size - 8)
                throw new IOException(file + ": header length " + hlen + " is impossible for a file of " + size + " bytes");
            ByteBuffer hb = ByteBuffer.allocate((int) hlen);
            readFully(ch, hb, 8, file);
            Map<String, Object> header;
            try {
                header = JsonReader.parseObject(StandardCharsets.UTF_8.decode(hb.flip()).toString());
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": bad header: " + e.getMessage(), e);
            }
            long dataStart = 8 + hlen, dataLen = size - dataStart;
            Map<String, String> meta = new LinkedHashMap<>();
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (var e : header.entrySet()) {
                if (e.getKey().equals("__metadata__")) {
                    if (!(e.getValue() instanceof Map<?, ?> m)) throw new IOException(file + ": __metadata__ is not an object");
                    for (var me : m.entrySet()) {
                        if (!(me.getValue() instanceof String v)) throw new IOException(file + ": metadata value of " + me.getKey() + " is not a string");
                        meta.put((String) me.getKey(), v);
                    }
                    continue;
                }
                out.put(e.getKey(), tensor(file, ch, e.getKey(), e.getValue(), dataStart, dataLen, scope));
            }
            return new Loaded(out, meta);
        }
    }

    private static Tensor tensor(Path file, FileChannel ch, String name, Object spec, long dataStart, long dataLen, Scope scope)
            throws IOException {
        String where = file + ": tensor '" + name + "'";
        if (!(spec instanceof Map<?, ?> m)) throw new IOException(where + ": entry is not an object");
        if (!"F32".equals(m.get("dtype"))) throw new IOException(where + ": dtype " + m.get("dtype") + " (only F32 is supported)");
        if (!(m.get("shape") instanceof List<?> sl) || sl.size() > 8) throw new IOException(where + ": bad shape " + m.get("shape"));
        if (!(m.get("data_offsets") instanceof List<?> ol) || ol.size() != 2 || !(ol.get(0) instanceof Long b) || !(ol.get(1) instanceof Long en))
            throw new IOException(where + ": bad data_offsets " + m.get("data_offsets"));
        long[] shape = new long[sl.size()];
        long n = 1, span = 1;     // span: the product of max(d, 1), which the strides must be able to hold
        for (int i = 0; i < shape.length; i++) {
            if (!(sl.get(i) instanceof Long d) || d < 0) throw new IOException(where + ": bad dimension " + sl.get(i));
            shape[i] = d;
            n = d == 0 ? 0 : (n > dataLen / Math.max(d, 1) ? Long.MAX_VALUE / 8 : n * d);
            if (span > (Long.MAX_VALUE / 8) / Math.max(d, 1)) throw new IOException(where + ": shape " + sl + " is too large");
            span *= Math.max(d, 1);
        }
        if (b < 0 || en < b || en > dataLen || en - b != n * 4)
            throw new IOException(where + ": data_offsets [" + b + ", " + en + ") do not hold " + n + " floats within " + dataLen + " data bytes");
        Tensor t = Tensor.zeros(scope, shape);
        ByteBuffer dst = t.segment().asByteBuffer();
        readFully(ch, dst, dataStart + b, file);
        return t;
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos, Path file) throws IOException {
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) throw new IOException(file + ": truncated");
            pos += r;
        }
    }

}
