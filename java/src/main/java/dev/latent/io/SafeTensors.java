package dev.latent.io;

import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

/**
 * The safetensors format (8-byte little-endian header length, a JSON header of
 * {name: {dtype, shape, data_offsets}} plus optional string "__metadata__", then the raw data). Writes F32;
 * reads F32, F16 and BF16 (converted to F32 on load) from a read-only mapping of the file ({@link #map}).
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

    /**
     * Reads every tensor into {@code scope} as F32 (F16 and BF16 converted on load), through a read-only
     * mapping of the file ({@link #map}), which is unmapped before this returns.
     */
    public static Loaded read(Path file, Scope scope) throws IOException {
        try (Mapped m = map(file)) {
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (String name : m.names()) out.put(name, m.tensor(name, scope));
            return new Loaded(out, m.metadata());
        }
    }

    /** A tensor's entry in the header, checked against the file: element type, shape, byte range in the data. */
    private record Entry(String dtype, int elemBytes, long[] shape, long numel, long begin) {}

    /**
     * An open safetensors file, mapped read-only (an {@link Arena}-mapped {@link MemorySegment} of the file): the
     * header is parsed and every entry checked at {@link #map}, and tensors are converted from the mapping one at
     * a time ({@link #tensor}, {@link #copyTo}), so loading a model needs no heap copy of the file and no second
     * copy of all its tensors. Confined to the thread that mapped it; {@link #close()} unmaps.
     */
    public static final class Mapped implements AutoCloseable {
        private final Path file;
        private final Arena arena;
        private final MemorySegment data;
        private final Map<String, Entry> entries;
        private final Map<String, String> metadata;

        private Mapped(Path file, Arena arena, MemorySegment data, Map<String, Entry> entries, Map<String, String> metadata) {
            this.file = file;
            this.arena = arena;
            this.data = data;
            this.entries = entries;
            this.metadata = metadata;
        }

        /** The file this maps. */
        public Path file() { return file; }

        /** Tensor names in file order. */
        public Set<String> names() { return Collections.unmodifiableSet(entries.keySet()); }

        /** The metadata strings ({@code __metadata__}). */
        public Map<String, String> metadata() { return Collections.unmodifiableMap(metadata); }

        /** Whether the file holds a tensor of this name. */
        public boolean has(String name) { return entries.containsKey(name); }

        /** A tensor's shape as stored. */
        public long[] shape(String name) throws IOException { return entry(name).shape().clone(); }

        /** A tensor's stored element type: F32, F16 or BF16. */
        public String dtype(String name) throws IOException { return entry(name).dtype(); }

        private Entry entry(String name) throws IOException {
            Entry e = entries.get(name);
            if (e == null) throw new IOException(file + ": no tensor '" + name + "'");
            return e;
        }

        /** A new F32 tensor in {@code scope} holding the named tensor, converted from its stored type. */
        public Tensor tensor(String name, Scope scope) throws IOException {
            Entry e = entry(name);
            Tensor t = Tensor.zeros(scope, e.shape());
            copyTo(name, t.segment());
            return t;
        }

        /** Converts the named tensor to F32 into {@code dst} (at least numel * 4 bytes, native order). */
        public void copyTo(String name, MemorySegment dst) throws IOException {
            Entry e = entry(name);
            long n = e.numel();
            if (dst.byteSize() < n * 4) throw new IllegalArgumentException(file + ": tensor '" + name + "' needs " + n * 4 + " bytes, destination has " + dst.byteSize());
            try {
                switch (e.dtype()) {
                    case "F32" -> MemorySegment.copy(data, F32_LE, e.begin(), dst, JAVA_FLOAT, 0, n);
                    case "F16" -> {
                        for (long i = 0; i < n; i++)
                            dst.setAtIndex(JAVA_FLOAT, i, Float.float16ToFloat(data.get(I16_LE, e.begin() + 2 * i)));
                    }
                    case "BF16" -> {
                        for (long i = 0; i < n; i++)
                            dst.setAtIndex(JAVA_FLOAT, i, Float.intBitsToFloat((data.get(I16_LE, e.begin() + 2 * i) & 0xffff) << 16));
                    }
                    default -> throw new IllegalStateException("unreachable dtype " + e.dtype());
                }
            } catch (InternalError err) {
                // The JVM turns a fault on a mapped page (the file was truncated after it was mapped) into this.
                throw new IOException(file + ": tensor '" + name + "': the file changed while it was read (" + err.getMessage() + ")", err);
            }
        }

        /** Unmaps the file. */
        @Override
        public void close() { arena.close(); }
    }

    private static final ValueLayout.OfFloat F32_LE = JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * Maps {@code file} read-only and checks its header: every tensor's dtype (F32, F16, BF16), shape and data
     * range against the file size, before anything is allocated for it. A refusal names the file and tensor.
     */
    public static Mapped map(Path file) throws IOException {
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
            Map<String, Entry> entries = new LinkedHashMap<>();
            for (var e : header.entrySet()) {
                if (e.getKey().equals("__metadata__")) {
                    if (!(e.getValue() instanceof Map<?, ?> m)) throw new IOException(file + ": __metadata__ is not an object");
                    for (var me : m.entrySet()) {
                        if (!(me.getValue() instanceof String v)) throw new IOException(file + ": metadata value of " + me.getKey() + " is not a string");
                        meta.put((String) me.getKey(), v);
                    }
                    continue;
                }
                entries.put(e.getKey(), entry(file, e.getKey(), e.getValue(), dataLen));
            }
            Arena arena = Arena.ofConfined();
            try {
                MemorySegment data = dataLen == 0 ? MemorySegment.ofArray(new byte[0])
                        : ch.map(FileChannel.MapMode.READ_ONLY, dataStart, dataLen, arena);
                return new Mapped(file, arena, data, entries, meta);
            } catch (IOException | RuntimeException | Error e) {
                arena.close();
                throw e;
            }
        }
    }

    private static Entry entry(Path file, String name, Object spec, long dataLen) throws IOException {
        String where = file + ": tensor '" + name + "'";
        if (!(spec instanceof Map<?, ?> m)) throw new IOException(where + ": entry is not an object");
        Object dt = m.get("dtype");
        int eb;
        if ("F32".equals(dt)) eb = 4;
        else if ("F16".equals(dt) || "BF16".equals(dt)) eb = 2;
        else throw new IOException(where + ": dtype " + dt + " (F32, F16 and BF16 are supported)");
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
        if (b < 0 || en < b || en > dataLen || en - b != n * eb)
            throw new IOException(where + ": data_offsets [" + b + ", " + en + ") do not hold " + n + " " + dt + " values within " + dataLen + " data bytes");
        return new Entry((String) dt, eb, shape, n, b);
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos, Path file) throws IOException {
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) throw new IOException(file + ": truncated");
            pos += r;
        }
    }

}
