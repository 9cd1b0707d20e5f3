package dev.latent.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * An fp32 tensor: shape, strides (in elements), an element offset into storage owned by a {@link Scope}, and a
 * {@link Device}. On the CPU the storage is a 64-byte aligned native segment; on CUDA it is a {@link DeviceMemory}
 * and never a host segment: {@link #storage()}, {@link #segment()}, {@link #get} and {@link #set} refuse a CUDA
 * tensor (a host read of a device pointer crashes on a GPU; the emulated driver would let it pass), and data moves
 * only through {@link #to} and {@link #toArray}, which copy. One final class for every dtype and device to come.
 * Views ({@link #reshape}, {@link #transpose}, {@link #slice}) share the storage; {@link #contiguous}
 * copies only when it must.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;

    private final MemorySegment storage;        /* CPU, else null */
    private final DeviceMemory deviceStorage;   /* CUDA, else null */
    private final Scope scope;
    private final long offset;
    private final long[] shape;
    private final long[] strides;
    private final Device device;

    private Tensor(MemorySegment storage, Scope scope, long offset, long[] shape, long[] strides, Device device) {
        this(storage, null, scope, offset, shape, strides, device);
    }

    private Tensor(MemorySegment storage, DeviceMemory deviceStorage, Scope scope, long offset, long[] shape, long[] strides, Device device) {
        this.storage = storage;
        this.deviceStorage = deviceStorage;
        this.scope = scope;
        this.offset = offset;
        this.shape = shape;
        this.strides = strides;
        this.device = device;
    }

    /** A view of the same storage with another offset, shape and strides. */
    private Tensor view(long off, long[] sh, long[] st) { return new Tensor(storage, deviceStorage, scope, off, sh, st, device); }

    // ---- creation ----------------------------------------------------------------------------------

    /** A new zero-filled contiguous tensor in {@code scope}. */
    public static Tensor zeros(Scope scope, long... shape) {
        long n = numel(checkShape(shape));
        return new Tensor(scope.allocate(Math.multiplyExact(n, 4L)), scope, 0, shape.clone(), contiguousStrides(shape), Device.CPU);
    }

    /** A new contiguous tensor whose contents are undefined: for outputs a kernel overwrites whole. */
    public static Tensor empty(Scope scope, long... shape) {
        long n = numel(checkShape(shape));
        return new Tensor(scope.allocateUninitialized(Math.multiplyExact(n, 4L)), scope, 0, shape.clone(), contiguousStrides(shape), Device.CPU);
    }

    /**
     * A new zero-filled contiguous tensor on {@code device}. CUDA when it is unavailable: UnsupportedOperationException
     * with {@link dev.latent.Latent#cudaUnavailableReason()}.
     */
    public static Tensor zeros(Scope scope, Device device, long... shape) {
        if (device == Device.CPU) return zeros(scope, shape);
        Tensor t = empty(scope, device, shape);
        t.deviceStorage.zero();
        return t;
    }

    /** A new contiguous tensor on {@code device}, contents undefined (for outputs a kernel overwrites whole). */
    public static Tensor empty(Scope scope, Device device, long... shape) {
        if (device == Device.CPU) return empty(scope, shape);
        long n = numel(checkShape(shape));
        DeviceMemory b = scope.allocateDevice(Math.multiplyExact(n, 4L));
        return new Tensor(null, b, scope, 0, shape.clone(), contiguousStrides(shape), device);
    }

    /**
     * A new tensor on {@code device} holding {@code data} (row-major) with {@code shape}; on CUDA an asynchronous upload
     * from page-locked staging (the library's TensorSupport), a synchronous copy when it is larger than staging holds.
     */
    public static Tensor of(Scope scope, Device device, float[] data, long... shape) {
        if (device == Device.CPU) return of(scope, data, shape);
        if (numel(checkShape(shape)) != data.length)
            throw new IllegalArgumentException("data has " + data.length + " elements but shape " + Arrays.toString(shape)
                    + " needs " + numel(shape));
        Tensor t = empty(scope, device, shape);
        if (data.length > 0 && !Support.get().uploadStaged(t.deviceStorage, 4L * data.length,   // the host does not wait
                h -> MemorySegment.copy(data, 0, h, F32, 0, data.length)))
            try (Arena a = Arena.ofConfined()) { t.deviceStorage.copyFrom(a.allocateFrom(F32, data)); }
        return t;
    }

    /** A new tensor holding {@code data} (row-major) with {@code shape}. */
    public static Tensor of(Scope scope, float[] data, long... shape) {
        if (numel(checkShape(shape)) != data.length)
            throw new IllegalArgumentException("data has " + data.length + " elements but shape " + Arrays.toString(shape)
                    + " needs " + numel(shape));
        Tensor t = zeros(scope, shape);
        MemorySegment.copy(data, 0, t.storage, F32, 0, data.length);
        return t;
    }

    /** A tensor of uniforms in (0, 1) from Philox stream (seed, stream): the same bits everywhere. */
    public static Tensor rand(Scope scope, long seed, long stream, long... shape) {
        Tensor t = zeros(scope, shape);
        Support.get().randUniform(t.storage, t.numel(), seed, stream);
        return t;
    }

    private static long[] checkShape(long[] shape) {
        for (long d : shape)
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
        return shape;
    }

    static long[] contiguousStrides(long[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc = Math.multiplyExact(acc, Math.max(shape[i], 1));
        }
        return s;
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    // ---- accessors ---------------------------------------------------------------------------------

    public int rank() { return shape.length; }
    public long[] shape() { return shape.clone(); }
    public long size(int dim) { return shape[axis(dim)]; }
    public long[] strides() { return strides.clone(); }
    public long stride(int dim) { return strides[axis(dim)]; }
    public long offset() { return offset; }
    public long numel() { return numel(shape); }
    public Device device() { return device; }
    public Scope scope() { return scope; }

    /**
     * The whole backing storage (the op layer adds {@link #offset()} itself). Fails if the scope closed, and on a
     * CUDA tensor (device memory has no host segment: use {@link #deviceBuffer()}, or copy with {@link #to}).
     */
    public MemorySegment storage() {
        host("storage()");
        return storage;
    }

    /** The data starting at this view's first element: for contiguous tensors, exactly numel floats. CPU only. */
    public MemorySegment segment() {
        host("segment()");
        return isContiguous() ? storage.asSlice(offset * 4, numel() * 4) : storage.asSlice(offset * 4);
    }

    /**
     * The device memory starting at this view's first element (the kernel pointer is its address: storage + offset
     * * 4): for contiguous tensors exactly numel floats, else the rest of the storage. CUDA tensors only.
     */
    public DeviceMemory deviceBuffer() {
        scope.ensureAlive();
        if (device != Device.CUDA) throw new IllegalStateException("deviceBuffer(): " + this + " is not on CUDA");
        long from = offset * 4, len = isContiguous() ? numel() * 4 : deviceStorage.byteSize() - from;
        return deviceStorage.slice(from, Math.max(0, len));
    }

    /**
     * Identifies the storage block (a host or device address): views of one tensor share it. For bookkeeping such
     * as autograd's early release of gradients; never dereference it.
     */
    public long storageAddress() {
        scope.ensureAlive();
        return storage != null ? storage.address() : deviceStorage.address();
    }

    private void host(String what) {
        scope.ensureAlive();
        if (device != Device.CPU)
            throw new IllegalStateException(what + " of a " + device + " tensor: its memory is on the device, not the host;"
                    + " copy it with to(scope, Device.CPU) or toArray()");
    }

    public boolean isContiguous() {
        long expect = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && strides[i] != expect) return false;
            expect *= shape[i];
        }
        return true;
    }

    private int axis(int dim) {
        int d = dim < 0 ? dim + shape.length : dim;
        if (d < 0 || d >= shape.length)
            throw new IllegalArgumentException("dim " + dim + " out of range for rank " + shape.length);
        return d;
    }

    private long index(long[] idx) {
        if (idx.length != shape.length)
            throw new IllegalArgumentException(idx.length + " indices for shape " + Arrays.toString(shape));
        long e = offset;
        for (int i = 0; i < idx.length; i++) {
            if (idx[i] < 0 || idx[i] >= shape[i])
                throw new IndexOutOfBoundsException("index " + Arrays.toString(idx) + " outside shape " + Arrays.toString(shape));
            e += idx[i] * strides[i];
        }
        return e;
    }

    public float get(long... idx) {
        host("get()");
        return storage.getAtIndex(F32, index(idx));
    }

    public void set(float v, long... idx) {
        host("set()");
        storage.setAtIndex(F32, index(idx), v);
    }

    /** Row-major copy of the elements into a Java array (from a CUDA tensor: a device-to-host copy). */
    public float[] toArray() {
        scope.ensureAlive();
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) throw new IllegalStateException("tensor of " + n + " elements does not fit a Java array");
        if (device == Device.CUDA) return deviceToArray();
        if (isContiguous()) return storage.asSlice(offset * 4, n * 4).toArray(F32);
        return gather(storage, offset);
    }

    /** The elements of this view, row-major, read from {@code s} where this view's element 0 is at {@code base}. */
    private float[] gather(MemorySegment s, long base) {
        long n = numel();
        float[] out = new float[(int) n];
        long[] idx = new long[shape.length];
        for (int i = 0; i < n; i++) {
            out[i] = s.getAtIndex(F32, index(idx) - offset + base);
            for (int d = shape.length - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;
        }
        return out;
    }

    /** Copies the span of storage this view touches to the host (synchronous), then gathers the view from it. */
    private float[] deviceToArray() {
        long n = numel();
        if (n == 0) return new float[0];
        long span = 1;   /* elements from the first to the last one this view touches (strides are >= 0) */
        for (int i = 0; i < shape.length; i++) span += (shape[i] - 1) * strides[i];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(span * 4, 64);
            deviceStorage.slice(offset * 4, span * 4).copyTo(h);
            return isContiguous() ? h.toArray(F32) : gather(h, 0);
        }
    }

    /**
     * A copy of this tensor on {@code device}, contiguous, in {@code scope} (also when it is already there: the result
     * never aliases this one). CUDA to the CPU is a synchronous copy. CPU to CUDA goes up asynchronously from
     * page-locked staging (the host does not wait; up to 16 MiB), a larger tensor
     * in a synchronous copy.
     */
    public Tensor to(Scope into, Device target) {
        scope.ensureAlive();
        if (target == Device.CPU) return of(into, toArray(), shape);
        Tensor t = empty(into, target, shape);
        if (numel() == 0) return t;
        if (device == Device.CUDA && isContiguous()) {
            t.deviceStorage.copyFrom(deviceBuffer());
        } else if (device == Device.CPU && isContiguous()) {
            MemorySegment src = segment().asSlice(0, numel() * 4);
            if (!Support.get().uploadStaged(t.deviceStorage, src.byteSize(), h -> MemorySegment.copy(src, 0, h, 0, src.byteSize())))
                t.deviceStorage.copyFrom(src);   // above what staging holds: a synchronous copy
        } else {
            try (Arena a = Arena.ofConfined()) {
                t.deviceStorage.copyFrom(a.allocateFrom(F32, toArray()));
            }
        }
        return t;
    }

    // ---- views -------------------------------------------------------------------------------------

    /** Same elements, new shape; a view when the strides allow it (contiguous), else a copy in the same scope. */
    public Tensor reshape(long... newShape) {
        long[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in " + Arrays.toString(newShape));
                infer = i;
            } else if (s[i] < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(newShape));
            } else {
                known = Math.multiplyExact(known, s[i]);
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel() % known != 0)
                throw new IllegalArgumentException("cannot infer -1 reshaping " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
            s[infer] = numel() / known;
        }
        if (numel(s) != numel())
            throw new IllegalArgumentException("reshape " + Arrays.toString(shape) + " (" + numel() + " elements) to "
                    + Arrays.toString(newShape) + " (" + numel(s) + ")");
        Tensor src = isContiguous() ? this : contiguous();
        return src.view(src.offset, s, contiguousStrides(s));
    }

    /** Swaps two dimensions: always a view. */
    public Tensor transpose(int d0, int d1) {
        int a = axis(d0), b = axis(d1);
        long[] sh = shape.clone(), st = strides.clone();
        sh[a] = shape[b]; sh[b] = shape[a];
        st[a] = strides[b]; st[b] = strides[a];
        return view(offset, sh, st);
    }

    /** Elements [start, end) along {@code dim}: always a view. */
    public Tensor slice(int dim, long start, long end) {
        int d = axis(dim);
        if (start < 0 || end > shape[d] || start > end)
            throw new IllegalArgumentException("slice [" + start + ", " + end + ") outside dim " + dim + " of size " + shape[d]);
        long[] sh = shape.clone();
        sh[d] = end - start;
        return view(offset + start * strides[d], sh, strides.clone());
    }

    /** This tensor if contiguous, else a contiguous copy in the same scope (on CUDA, by the strided-copy kernel). */
    public Tensor contiguous() {
        if (isContiguous()) return this;
        if (device != Device.CPU) return Support.get().contiguousOnDevice(scope, this);
        return of(scope, toArray(), shape);
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + (isContiguous() ? "" : " strides=" + Arrays.toString(strides)) + " " + device;
    }
}
