package dev.latent.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * An fp32 tensor: shape, strides (in elements), an element offset into a 64-byte aligned native segment
 * owned by a {@link Scope}, and a {@link Device}. One final class for every dtype and device to come.
 * Views ({@link #reshape}, {@link #transpose}, {@link #slice}) share the storage; {@link #contiguous}
 * copies only when it must.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT;

    private final MemorySegment storage;
    private final Scope scope;
    private final long offset;
    private final long[] shape;
    private final long[] strides;
    private final Device device;

    private Tensor(MemorySegment storage, Scope scope, long offset, long[] shape, long[] strides, Device device) {
        this.storage = storage;
        this.scope = scope;
        this.offset = offset;
        this.shape = shape;
        this.strides = strides;
        this.device = device;
    }

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
        dev.latent.nativ.LatentNative.get().randUniform(t.storage, t.numel(), seed, stream);
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

    /** The whole backing storage (the op layer adds {@link #offset()} itself). Fails if the scope closed. */
    public MemorySegment storage() {
        scope.ensureAlive();
        return storage;
    }

    /** The data starting at this view's first element: for contiguous tensors, exactly numel floats. */
    public MemorySegment segment() {
        scope.ensureAlive();
        return isContiguous() ? storage.asSlice(offset * 4, numel() * 4) : storage.asSlice(offset * 4);
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
        scope.ensureAlive();
        return storage.getAtIndex(F32, index(idx));
    }

    public void set(float v, long... idx) {
        scope.ensureAlive();
        storage.setAtIndex(F32, index(idx), v);
    }

    /** Row-major copy of the elements into a Java array. */
    public float[] toArray() {
        scope.ensureAlive();
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) throw new IllegalStateException("tensor of " + n + " elements does not fit a Java array");
        if (isContiguous()) return storage.asSlice(offset * 4, n * 4).toArray(F32);
        float[] out = new float[(int) n];
        long[] idx = new long[shape.length];
        for (int i = 0; i < n; i++) {
            out[i] = storage.getAtIndex(F32, index(idx));
            for (int d = shape.length - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;
        }
        return out;
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
        return new Tensor(src.storage, scope, src.offset, s, contiguousStrides(s), device);
    }

    /** Swaps two dimensions: always a view. */
    public Tensor transpose(int d0, int d1) {
        int a = axis(d0), b = axis(d1);
        long[] sh = shape.clone(), st = strides.clone();
        sh[a] = shape[b]; sh[b] = shape[a];
        st[a] = strides[b]; st[b] = strides[a];
        return new Tensor(storage, scope, offset, sh, st, device);
    }

    /** Elements [start, end) along {@code dim}: always a view. */
    public Tensor slice(int dim, long start, long end) {
        int d = axis(dim);
        if (start < 0 || end > shape[d] || start > end)
            throw new IllegalArgumentException("slice [" + start + ", " + end + ") outside dim " + dim + " of size " + shape[d]);
        long[] sh = shape.clone();
        sh[d] = end - start;
        return new Tensor(storage, scope, offset + start * strides[d], sh, strides.clone(), device);
    }

    /** This tensor if contiguous, else a contiguous copy in the same scope. */
    public Tensor contiguous() {
        if (isContiguous()) return this;
        return of(scope, toArray(), shape);
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + (isContiguous() ? "" : " strides=" + Arrays.toString(strides)) + " " + device;
    }
}
