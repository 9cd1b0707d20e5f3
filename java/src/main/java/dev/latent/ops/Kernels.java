package dev.latent.ops;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaKernels;
import dev.latent.cuda.CudaProbKernels;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.nativ.LatentBinding.CopyDesc;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Tensor-level entry points of the kernels other than GEMM, convolution and attention ({@link AttentionKernels}): each
 * validates once, at this boundary (devices agree, tensors contiguous, shapes, element counts, ids inside the
 * vocabulary), then makes one call on the
 * tensors' {@link Backend} (the CPU's native library, {@link CpuBackend}, or our CUDA kernels, {@link CudaBackend}):
 * no op branches on the device. Outputs are passed in (callers own allocation and lifetimes); integer inputs (token
 * ids, targets) are int32 host segments (on CUDA copied to the device first, through the upload cache, {@link DeviceUploads}). A mix
 * of devices is an IllegalArgumentException naming both. The ops named ...OnDevice, gradClip, setOne and stageTokens
 * exist only on CUDA (results kept on the device) and call {@link CudaKernels} directly. Nothing here reads device
 * memory from the host.
 */
public final class Kernels {
    private Kernels() {}

    private static final ThreadLocal<MemorySegment> COPY = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.COPY_DESC));


    static void numel(String op, long n, Tensor... ts) {
        for (Tensor t : ts)
            if (t != null && t.numel() != n)
                throw new IllegalArgumentException(op + ": expected " + n + " elements, got " + t);
    }

    static void ints(String op, MemorySegment s, long n) {
        if (s == null || s.byteSize() < 4 * n)
            throw new IllegalArgumentException(op + ": int32 segment of " + n + " elements needed, got "
                    + (s == null ? "null" : s.byteSize() / 4 + " elements"));
        if (!s.scope().isAlive()) throw new IllegalStateException(op + ": int32 segment's scope is closed");
    }


    /**
     * For the CUDA-only ops (the OnDevice variants, gradClip, ...): true when every non-null tensor is on CUDA and
     * contiguous ({@link Backend#on}'s checks: IllegalArgumentException for a mix of devices or a strided tensor).
     */
    static boolean onCuda(String op, Tensor... ts) {
        return Backend.on(op, ts).device() == Device.CUDA;
    }

    static Cuda cuda() { return Cuda.get(); }

    static DeviceBuffer buf(Tensor t) { return t == null ? null : DeviceBuffer.of(t.deviceBuffer()); }

    /**
     * A training batch's token ids and targets (n int32 each) on the device in one host-to-device copy, together with
     * the embedding backward's grouping of the ids (vocabulary {@code vocab}): the batch's embedding forward, loss and
     * embedding backward then copy nothing. Ids are checked against the vocabulary here. Does nothing for n == 0.
     */
    public static void stageTokens(MemorySegment ids, MemorySegment targets, long n, long vocab) {
        ints("stageTokens", ids, n);
        ints("stageTokens", targets, n);
        if (n == 0) return;
        DeviceUploads.stage(checkIds("stageTokens", ids, n, vocab), targets.asSlice(0, 4 * n).toArray(JAVA_INT), vocab);
    }

    /**
     * {@link #stageTokens} into fixed device buffers (CUDA only): every batch of the same n and vocabulary goes to the
     * same device addresses (this thread's token slot), so a step captured into a CUDA graph that reads the batch's ids,
     * targets and grouping replays with each batch staged here before the replay. One asynchronous upload.
     */
    public static void stageTokensFixed(MemorySegment ids, MemorySegment targets, long n, long vocab) {
        ints("stageTokensFixed", ids, n);
        ints("stageTokensFixed", targets, n);
        if (n == 0) throw new IllegalArgumentException("stageTokensFixed: an empty batch");
        DeviceUploads.stageFixed(checkIds("stageTokensFixed", ids, n, vocab), targets.asSlice(0, 4 * n).toArray(JAVA_INT), vocab);
    }

    /** The int32 length of {@link #embeddingGroups}' output for n ids over a vocabulary of {@code vocab}. */
    public static long embeddingGroupInts(long n, long vocab) { return DeviceUploads.groupInts(n, vocab); }

    /**
     * Writes into {@code out} ({@link #embeddingGroupInts} int32s) the embedding backward's grouping of the n ids of
     * {@code ids} (checked against {@code vocab}, IllegalArgumentException naming a bad one): the form the device reads,
     * for staging it with a batch ({@link #bindIds}).
     */
    public static void embeddingGroups(MemorySegment ids, long n, long vocab, MemorySegment out) {
        ints("embeddingGroups", ids, n);
        int[] g = DeviceUploads.groupsOf(checkIds("embeddingGroups", ids, n, vocab), vocab);
        ints("embeddingGroups", out, g.length);
        MemorySegment.copy(g, 0, out, JAVA_INT, 0, g.length);
    }

    /**
     * Binds the host int32 segment {@code host} (n ids over {@code vocab}) to fixed CUDA slots: {@code ids} (n int32s)
     * and {@code groups} ({@link #embeddingGroupInts} int32s), which the caller rewrites with host's ids and their
     * {@link #embeddingGroups} before each step (one staged upload with the batch). F.embedding of {@code host} on CUDA,
     * forward and backward, then reads those slots (found by the segment, on this thread) and uploads nothing, so a step
     * captured into a CUDA graph reads each step's labels on replay. {@link #unbindIds} undoes it.
     */
    public static void bindIds(MemorySegment host, long n, long vocab, Tensor ids, Tensor groups) {
        ints("bindIds", host, n);
        if (!onCuda("bindIds", ids, groups)) throw new IllegalArgumentException("bindIds: CUDA slots needed, got " + ids.device());
        DeviceUploads.bind(host, n, vocab, buf(ids), buf(groups));
    }

    /** Undoes {@link #bindIds} for {@code host}. */
    public static void unbindIds(MemorySegment host) { DeviceUploads.unbind(host); }

    /** Resident one-element device constants by float bits (residentScalar); at most RESIDENT_MAX values. */
    private static final java.util.concurrent.ConcurrentHashMap<Integer, Tensor> RESIDENT = new java.util.concurrent.ConcurrentHashMap<>();
    private static final int RESIDENT_MAX = 256;
    private static Scope residentScope() { return Scope.resident(); }

    /**
     * A (1, 1) CUDA tensor holding {@code c} that stays resident for the process (uploaded, asynchronously, the first time
     * a value is asked for), or null once {@value #RESIDENT_MAX} distinct values are resident (the caller then uploads its
     * own copy). For the constants of ops such as {@code F.addScalar}: a step captured into a CUDA graph may not upload,
     * and its warm-up steps made these resident. Values that change every step do not belong here.
     */
    public static Tensor residentScalar(float c) {
        Integer key = Float.floatToRawIntBits(c);
        Tensor t = RESIDENT.get(key);
        if (t != null || RESIDENT.size() >= RESIDENT_MAX) return t;
        synchronized (RESIDENT) {
            t = RESIDENT.get(key);
            if (t == null && RESIDENT.size() < RESIDENT_MAX) {
                t = Tensor.of(residentScope(), Device.CUDA, new float[] {c}, 1, 1);
                RESIDENT.put(key, t);
            }
            return t;
        }
    }

    /** Resident ones by length (residentOnes); at most RESIDENT_MAX lengths of at most 1 << 20 floats. */
    private static final java.util.concurrent.ConcurrentHashMap<Long, Tensor> RESIDENT_ONES = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * A CUDA tensor of {@code n} ones that stays resident for the process (uploaded the first time a length is asked for),
     * or null past {@value #RESIDENT_MAX} lengths or above 2^20 elements (the caller then uploads its own): the read-only
     * operand of the device broadcasts and row sums, which a step captured into a CUDA graph may not upload.
     */
    public static Tensor residentOnes(long n) {
        Tensor t = RESIDENT_ONES.get(n);
        if (t != null || n > (1 << 20) || n < 1 || RESIDENT_ONES.size() >= RESIDENT_MAX) return t;
        synchronized (RESIDENT_ONES) {
            t = RESIDENT_ONES.get(n);
            if (t == null && RESIDENT_ONES.size() < RESIDENT_MAX) {
                float[] o = new float[(int) n];
                Arrays.fill(o, 1f);
                t = Tensor.of(residentScope(), Device.CUDA, o, n);
                RESIDENT_ONES.put(n, t);
            }
            return t;
        }
    }

    private static volatile DeviceBuffer one;   /* 1f on the device, uploaded once per process */

    /** Sets a one-element CUDA tensor to 1 by a device-to-device copy of a resident 1f (no host synchronisation). */
    public static void setOne(Tensor t) {
        if (t.device() != Device.CUDA || t.numel() != 1 || !t.isContiguous())
            throw new IllegalArgumentException("setOne: a one-element CUDA tensor needed, got " + t);
        DeviceBuffer o = one;
        if (o == null) {
            synchronized (Kernels.class) {
                if (one == null) {
                    DeviceBuffer b = Cuda.get().alloc(4);
                    try (Arena a = Arena.ofConfined()) { b.copyFrom(a.allocateFrom(JAVA_FLOAT, 1f)); }   // once per process
                    one = b;
                }
                o = one;
            }
        }
        t.deviceBuffer().copyFrom(o);
    }

    // ---- layout ----

    /** dst[...] = src[...] for any strides (same shape); {@code rank <= 6}. */
    public static void copy(Tensor src, Tensor dst) {
        if (!Arrays.equals(src.shape(), dst.shape()))
            throw new IllegalArgumentException("copy: shapes differ: " + src + " -> " + dst);
        if (src.device() != dst.device())
            throw new IllegalArgumentException("copy: tensors on different devices, " + src.device() + " (" + src + ") and "
                    + dst.device() + " (" + dst + "); move one with to(scope, device)");
        if (src.rank() > LatentNative.MAX_RANK) throw new IllegalArgumentException("copy: rank " + src.rank() + " > " + LatentNative.MAX_RANK);
        if (src.numel() == 0) return;
        Backend.of(src.device()).copy(src, dst);
    }

    /** This thread's lt_copy_desc for src -> dst (same shape, rank checked). */
    static MemorySegment copyDesc(Tensor src, Tensor dst) {
        int r = src.rank();
        MemorySegment d = COPY.get();
        d.fill((byte) 0);
        int rr = Math.max(r, 1);
        CopyDesc.setRank(d, rr);
        for (int i = 0; i < r; i++) {
            CopyDesc.setShape(d, i, src.size(i));
            CopyDesc.setSrcStride(d, i, src.stride(i));
            CopyDesc.setDstStride(d, i, dst.stride(i));
        }
        if (r == 0) { CopyDesc.setShape(d, 0, 1); CopyDesc.setSrcStride(d, 0, 1); CopyDesc.setDstStride(d, 0, 1); }
        return d;
    }

    /** A contiguous copy of {@code x} in {@code scope}. */
    public static Tensor contiguous(Scope scope, Tensor x) {
        Tensor out = Tensor.empty(scope, x.device(), x.shape());
        copy(x, out);
        return out;
    }

    // ---- elementwise ----

    /** y = a*x + b*y (b == 0: y write-only). */
    public static void axpby(float a, Tensor x, float b, Tensor y) {
        Backend be = Backend.on("axpby", x, y);
        numel("axpby", y.numel(), x);
        be.axpby(y.numel(), a, x, b, y);
    }

    /** y = x * z elementwise. */
    public static void mul(Tensor x, Tensor z, Tensor y) {
        Backend be = Backend.on("mul", x, z, y);
        numel("mul", y.numel(), x, z);
        be.mul(y.numel(), x, z, y);
    }

    /** y[i, :] = x[i, :] + rows[i % P, :] with x, y viewed as (N, C) and rows (P, C). */
    public static void addRows(Tensor x, Tensor rows, Tensor y) {
        Backend be = Backend.on("addRows", x, rows, y);
        long c = rows.size(-1), p = rows.numel() / Math.max(c, 1);
        if (x.numel() % Math.max(c, 1) != 0 || x.size(-1) != c || (x.numel() / Math.max(c, 1)) % Math.max(p, 1) != 0)
            throw new IllegalArgumentException("addRows: x " + x + " does not tile rows " + rows);
        numel("addRows", x.numel(), y);
        be.addRows(x.numel() / Math.max(c, 1), c, p, x, rows, y);
    }

    /** y = (float) f((double) x) elementwise, f named by {@code op}: sqrt, rsqrt, square, exp, log (autograd's F.pointwise). */
    public static void pointwise(String op, Tensor x, Tensor y) {
        Backend be = Backend.on(op, x, y);
        numel(op, x.numel(), y);
        be.pointwise(op, x.numel(), x, y);
    }

    /** dx = (float) (dy * f'(x)) in double elementwise (dx may alias dy). */
    public static void pointwiseBackward(String op, Tensor x, Tensor dy, Tensor dx) {
        Backend be = Backend.on(op + " backward", x, dy, dx);
        numel(op + " backward", x.numel(), dy, dx);
        be.pointwiseBackward(op, x.numel(), x, dy, dx);
    }

    /** m (C, C) = diag(v), v (C). */
    public static void diag(Tensor v, Tensor m) {
        Backend be = Backend.on("diag", v, m);
        long c = v.numel();
        numel("diag", Math.multiplyExact(c, c), m);
        be.diag(c, v, m);
    }

    /** d[i] = g[i, i]: diag's adjoint. */
    public static void diagBackward(Tensor g, Tensor d) {
        Backend be = Backend.on("diag backward", g, d);
        long c = d.numel();
        numel("diag backward", Math.multiplyExact(c, c), g);
        be.diagBackward(c, g, d);
    }

    /** out[i % P, :] += x[i, :] (the adjoint of addRows), deterministic. */
    public static void sumRows(Tensor x, Tensor out) {
        Backend be = Backend.on("sumRows", x, out);
        long c = out.size(-1), p = out.numel() / Math.max(c, 1);
        if (x.size(-1) != c || (x.numel() / Math.max(c, 1)) % Math.max(p, 1) != 0)
            throw new IllegalArgumentException("sumRows: x " + x + " does not tile out " + out);
        be.sumRows(x.numel() / Math.max(c, 1), c, p, x, out);
    }

    // ---- normalization and activations ----

    /** LayerNorm over the last dimension; mean and rstd (N) are saved for the backward. */
    public static void layerNorm(Tensor x, Tensor w, Tensor b, float eps, Tensor y, Tensor mean, Tensor rstd) { layerNorm(x, w, b, eps, y, mean, rstd, null); }

    /** {@link #layerNorm} that also writes bf16(y) into y16 where not null ({@link GemmInputs#forOutput}; CUDA only). */
    public static void layerNorm(Tensor x, Tensor w, Tensor b, float eps, Tensor y, Tensor mean, Tensor rstd, KeptOperands y16) {
        Backend be = Backend.on("layerNorm", x, w, b, y, mean, rstd);
        long c = x.size(-1), n = x.numel() / Math.max(c, 1);
        numel("layerNorm", c, w, b);
        numel("layerNorm", x.numel(), y);
        numel("layerNorm", n, mean, rstd);
        if (!GemmInputs.layerNorm(y16, n, c, eps, x, w, b, y, mean, rstd)) be.layerNorm(n, c, eps, x, w, b, y, mean, rstd);
    }

    /** dx overwritten; dw, db accumulated. */
    public static void layerNormBackward(Tensor x, Tensor w, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dw, Tensor db) {
        Backend be = Backend.on("layerNormBackward", x, w, mean, rstd, dy, dx, dw, db);
        long c = x.size(-1), n = x.numel() / Math.max(c, 1);
        numel("layerNormBackward", c, w, dw, db);
        numel("layerNormBackward", x.numel(), dy, dx);
        numel("layerNormBackward", n, mean, rstd);
        be.layerNormBackward(n, c, x, w, mean, rstd, dy, dx, dw, db);
    }

    /**
     * Residual add fused with LayerNorm: s = x + a (all of x, a, s, y shaped alike, LayerNorm over the last dimension),
     * y = LayerNorm(s) with w, b; mean and rstd (N) saved for the backward. The bits of {@link #axpby}'s add then
     * {@link #layerNorm}. s may be x or a.
     */
    public static void layerNormResidual(Tensor x, Tensor a, Tensor w, Tensor b, float eps, Tensor s, Tensor y, Tensor mean, Tensor rstd) {
        layerNormResidual(x, a, w, b, eps, s, y, mean, rstd, null);
    }

    /** {@link #layerNormResidual} that also writes bf16(y) into y16 where not null ({@link GemmInputs#forOutput}; CUDA only). */
    public static void layerNormResidual(Tensor x, Tensor a, Tensor w, Tensor b, float eps, Tensor s, Tensor y, Tensor mean, Tensor rstd,
                                         KeptOperands y16) {
        Backend be = Backend.on("layerNormResidual", x, a, w, b, s, y, mean, rstd);
        long c = x.size(-1), n = x.numel() / Math.max(c, 1);
        if (a.size(-1) != c) throw new IllegalArgumentException("layerNormResidual: a " + a + " and x " + x + " differ in the last dimension");
        numel("layerNormResidual", c, w, b);
        numel("layerNormResidual", x.numel(), a, s, y);
        numel("layerNormResidual", n, mean, rstd);
        if (!GemmInputs.layerNormResidual(y16, n, c, eps, x, a, w, b, s, y, mean, rstd)) be.layerNormResidual(n, c, eps, x, a, w, b, s, y, mean, rstd);
    }

    /** Backward of {@link #layerNormResidual}: dx = ds + LayerNorm's dx from dy (overwritten; may be dy); dw, db accumulated. */
    public static void layerNormResidualBackward(Tensor s, Tensor w, Tensor mean, Tensor rstd, Tensor dy, Tensor ds, Tensor dx, Tensor dw, Tensor db) {
        Backend be = Backend.on("layerNormResidualBackward", s, w, mean, rstd, dy, ds, dx, dw, db);
        long c = s.size(-1), n = s.numel() / Math.max(c, 1);
        numel("layerNormResidualBackward", c, w, dw, db);
        numel("layerNormResidualBackward", s.numel(), dy, ds, dx);
        numel("layerNormResidualBackward", n, mean, rstd);
        be.layerNormResidualBackward(n, c, s, w, mean, rstd, dy, ds, dx, dw, db);
    }

    public static void gelu(Tensor x, Tensor y) { gelu(x, y, null); }

    /** {@link #gelu} that also writes bf16(y) into y16 where not null ({@link GemmInputs#forOutput}; CUDA only). */
    public static void gelu(Tensor x, Tensor y, KeptOperands y16) {
        Backend be = Backend.on("gelu", x, y);
        numel("gelu", x.numel(), y);
        if (!GemmInputs.gelu(y16, x, y)) be.gelu(x.numel(), x, y);
    }

    public static void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        Backend be = Backend.on("geluBackward", x, dy, dx);
        numel("geluBackward", x.numel(), dy, dx);
        be.geluBackward(x.numel(), x, dy, dx);
    }

    // ---- loss ----

    /** Per-row cross-entropy of logits (N, V) against int32 targets (N); dlogits (nullable) = (softmax - onehot) * dscale. */
    public static void softmaxCrossEntropy(Tensor logits, MemorySegment targets, Tensor losses, Tensor dlogits, float dscale) {
        Backend be = Backend.on("softmaxCrossEntropy", logits, losses, dlogits);
        long v = logits.size(-1), n = logits.numel() / Math.max(v, 1);
        ints("softmaxCrossEntropy", targets, n);
        numel("softmaxCrossEntropy", n, losses);
        numel("softmaxCrossEntropy", logits.numel(), dlogits);
        be.softmaxCrossEntropy(n, v, logits, targets, losses, dlogits, dscale);
    }

    // ---- optimizer ----

    public static void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                             float weightDecay, float gradScale, long step) {
        Backend be = Backend.on("adamw", p, g, m, v);
        numel("adamw", p.numel(), g, m, v);
        if (step < 1) throw new IllegalArgumentException("adamw: step must be >= 1, got " + step);
        be.adamw(p.numel(), p, g, m, v, lr, beta1, beta2, eps, weightDecay, gradScale, step);
    }

    /**
     * {@link #adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, float, long)} on CUDA with the
     * gradient scale read from device memory: {@code gradScale} is a one-element CUDA tensor (the clip factor
     * {@link #gradClip} wrote), so clipping needs no host synchronisation; the same bits as passing its value.
     */
    public static void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                             float weightDecay, Tensor gradScale, long step) {
        if (!onCuda("adamw", p, g, m, v, gradScale))
            throw new IllegalArgumentException("adamw with a device gradient scale: CUDA tensors needed, got " + p + ", " + gradScale);
        numel("adamw", p.numel(), g, m, v);
        numel("adamw", 1, gradScale);
        CudaKernels.adamw(cuda(), p.numel(), buf(p), buf(g), buf(m), buf(v), lr, beta1, beta2, eps, weightDecay, buf(gradScale), step);
    }

    /**
     * CUDA graphs: the constants of one AdamW step written into {@code consts} (a CUDA tensor of at least {@code slot + 1}
     * groups of 9 floats) at group {@code slot}, by an asynchronous upload (no host synchronisation); {@link #adamwStaged}
     * reads them.
     */
    public static void stageAdamwConsts(Tensor consts, int slot, float lr, float beta1, float beta2, float eps, float weightDecay,
                                        long step) {
        if (consts.device() != Device.CUDA || !consts.isContiguous() || consts.numel() < 9L * (slot + 1))
            throw new IllegalArgumentException("stageAdamwConsts: a contiguous CUDA tensor of >= " + 9L * (slot + 1) + " floats needed, got " + consts);
        CudaKernels.stageAdamwConsts(buf(consts), 36L * slot, lr, beta1, beta2, eps, weightDecay, step);
    }

    /** AdamW on CUDA with its constants in device memory (group {@code slot} of {@code consts}) and the scale there too (or 1). */
    public static void adamwStaged(Tensor p, Tensor g, Tensor m, Tensor v, Tensor consts, int slot, Tensor gradScale) {
        if (!onCuda("adamw", p, g, m, v, consts) || (gradScale != null && gradScale.device() != Device.CUDA))
            throw new IllegalArgumentException("adamw with staged constants: CUDA tensors needed, got " + p + ", " + consts);
        numel("adamw", p.numel(), g, m, v);
        if (consts.numel() < 9L * (slot + 1)) throw new IllegalArgumentException("adamw: constants " + consts + " lack group " + slot);
        CudaKernels.adamwStaged(cuda(), p.numel(), buf(consts).slice(36L * slot, 36), gradScale == null ? null : buf(gradScale),
                buf(p), buf(g), buf(m), buf(v));
    }

    /** Sum of squares in double, fixed chunking (same bits for any thread count). */
    public static double sumOfSquares(Tensor x) {
        return Backend.on("sumOfSquares", x).sumOfSquares(x.numel(), x);
    }

    /**
     * The sum over k of {@link #sumOfSquares} of {@code x[offset[k] .. offset[k] + len[k])}, added in k order from 0
     * (a flat gradient buffer's global squared norm, one segment per parameter). On the CPU one native pass
     * (lt_sumsq_segments, the same bits as the per-segment loop); on CUDA sumsq.cu's reductions per segment, launched
     * back to back, with the per-segment totals copied back at once (one host synchronisation, the same bits).
     */
    public static double sumOfSquaresSegments(Tensor x, long[] offset, long[] len) {
        if (offset.length != len.length)
            throw new IllegalArgumentException("sumOfSquaresSegments: " + offset.length + " offsets but " + len.length + " lengths");
        if (x.rank() != 1 || !x.isContiguous())
            throw new IllegalArgumentException("sumOfSquaresSegments: x must be 1-D and contiguous, got " + x);
        for (int k = 0; k < offset.length; k++)
            if (offset[k] < 0 || len[k] < 0 || offset[k] > x.numel() - len[k])
                throw new IllegalArgumentException("sumOfSquaresSegments: segment " + k + " [" + offset[k] + ", +" + len[k]
                        + ") outside " + x);
        return Backend.of(x.device()).sumOfSquaresSegments(x, offset, len);
    }

    /**
     * Global-norm clipping on CUDA without the norm on the host: {@code out} (a contiguous CUDA tensor of 4 floats) gets
     * in its bytes [0, 8) the double {@link #sumOfSquaresSegments}{@code (x, offset, len)} returns (the same bits), and
     * in its third float the clip factor {@code clip > 0 && norm > clip ? (float) (clip / (norm + 1e-6)) : 1f} with
     * norm = sqrt of that double (AdamW.update's expression, the same float the host would compute from it), for
     * {@link #adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, Tensor, long)}. One launch over
     * every segment and one for the total and the factor; the segment table goes up asynchronously from page-locked
     * staging and is reused while the segments stay the same, so a training step makes no host synchronisation here.
     */
    public static void gradClip(Tensor x, long[] offset, long[] len, double clip, Tensor out) {
        if (offset.length != len.length)
            throw new IllegalArgumentException("gradClip: " + offset.length + " offsets but " + len.length + " lengths");
        if (x.rank() != 1 || !x.isContiguous() || x.device() != Device.CUDA)
            throw new IllegalArgumentException("gradClip: x must be a 1-D contiguous CUDA tensor, got " + x);
        if (out.device() != Device.CUDA || !out.isContiguous() || out.numel() != 4)
            throw new IllegalArgumentException("gradClip: out must be a contiguous CUDA tensor of 4 floats, got " + out);
        if (Double.isNaN(clip)) throw new IllegalArgumentException("gradClip: clip is NaN");
        int rows = 0;
        long chunks = 0;
        for (int k = 0; k < offset.length; k++) {
            if (offset[k] < 0 || len[k] < 0 || offset[k] > x.numel() - len[k])
                throw new IllegalArgumentException("gradClip: segment " + k + " [" + offset[k] + ", +" + len[k] + ") outside " + x);
            if (len[k] > 0) rows++;
        }
        long[] tab = new long[3 * rows];
        int r = 0;
        for (int k = 0; k < offset.length; k++) {
            if (len[k] == 0) continue;
            tab[3 * r] = offset[k];
            tab[3 * r + 1] = len[k];
            tab[3 * r + 2] = chunks;
            chunks = Math.addExact(chunks, (len[k] + CudaKernels.SUMSQ_CHUNK - 1) / CudaKernels.SUMSQ_CHUNK);
            r++;
        }
        DeviceBuffer o = buf(out);
        CudaKernels.sumOfSquaresClip(cuda(), buf(x), rows == 0 ? null : DeviceUploads.deviceLongs(tab), rows, chunks, clip, o.slice(0, 8), o.slice(8, 4));
    }

    /** Sets every element of a contiguous tensor to +0 (one memset, on either device). */
    public static void zero(Tensor x) {
        if (!x.isContiguous()) throw new IllegalArgumentException("zero: contiguous tensor needed, got " + x);
        if (x.numel() == 0) return;
        Backend.of(x.device()).zero(x);
    }

    /**
     * out (1 element) = the sum of x's elements in double, rounded once: on the CPU in order, on CUDA in sumsq.cu's
     * fixed chunks (the result stays on the device).
     */
    public static void sum(Tensor x, Tensor out) {
        Backend be = Backend.on("sum", x, out);
        numel("sum", 1, out);
        be.sum(x.numel(), x, out);
    }

    /** dtable[ids[i], :] += dout[i, :]. */
    public static void embeddingBackward(MemorySegment ids, Tensor dout, Tensor dtable) {
        Backend be = Backend.on("embeddingBackward", dout, dtable);
        long c = dtable.size(-1), n = dout.numel() / Math.max(c, 1);
        if (dout.size(-1) != c) throw new IllegalArgumentException("embeddingBackward: dout " + dout + " vs table " + dtable);
        ints("embeddingBackward", ids, n);
        long vocab = dtable.size(0);
        be.embeddingBackward(n, c, vocab, ids, checkIds("embeddingBackward", ids, n, vocab), dout, dtable);
    }

    /** out[i, :] = table[ids[i], :] for int32 host ids (n = out's rows); ids are checked against the table first. */
    public static void embedding(MemorySegment ids, Tensor table, Tensor out) {
        if (table.rank() != 2 || out.rank() != 2 || out.size(1) != table.size(1))
            throw new IllegalArgumentException("embedding: table (V, C) and out (n, C) needed, got " + table + ", " + out);
        long n = out.size(0), c = table.size(1);
        ints("embedding", ids, n);
        Backend be = Backend.on("embedding", table, out);
        be.embedding(n, c, ids, checkIds("embedding", ids, n, table.size(0)), table, out);
    }

    private static int checkId(String op, int id, long i, long vocab) {
        if (id < 0 || id >= vocab) throw new IllegalArgumentException(op + ": id " + id + " at position " + i + " outside [0, " + vocab + ")");
        return id;
    }

    private static int[] checkIds(String op, MemorySegment ids, long n, long vocab) {
        if (n > Integer.MAX_VALUE - 8 || vocab > Integer.MAX_VALUE - 8) throw new IllegalArgumentException(op + ": " + n + " ids, vocabulary " + vocab + ": too large");
        int[] id = ids.asSlice(0, 4 * n).toArray(JAVA_INT);
        for (int i = 0; i < n; i++) checkId(op, id[i], i, vocab);
        return id;
    }

    // ---- VAE sampler ----

    /** z = mu + exp(0.5 logvar) * eps, eps from Philox (seed, stream); returns KL(q || N(0, I)) summed in double. */
    public static double reparam(Tensor mu, Tensor logvar, long seed, long stream, Tensor z) {
        Backend be = Backend.on("reparam", mu, logvar, z);
        numel("reparam", mu.numel(), logvar, z);
        return be.reparam(mu.numel(), mu, logvar, seed, stream, z);
    }

    /** {@link #reparam} on CUDA tensors with the KL written to {@code kl} (one element, on the device): no synchronisation. */
    public static void reparamOnDevice(Tensor mu, Tensor logvar, long seed, long stream, Tensor z, Tensor kl) {
        if (!onCuda("reparam", mu, logvar, z, kl)) throw new IllegalArgumentException("reparamOnDevice: CUDA tensors needed, got " + mu.device());
        numel("reparam", mu.numel(), logvar, z);
        numel("reparam", 1, kl);
        CudaProbKernels.reparamF32(cuda(), mu.numel(), buf(mu), buf(logvar), seed, stream, buf(z), buf(kl));
    }

    /** Gradients of sum(dz * z) + klScale * KL with respect to mu and logvar (eps recomputed). */
    public static void reparamBackward(Tensor mu, Tensor logvar, long seed, long stream, Tensor dz, float klScale, Tensor dmu, Tensor dlogvar) {
        Backend be = Backend.on("reparamBackward", mu, logvar, dz, dmu, dlogvar);
        numel("reparamBackward", mu.numel(), logvar, dz, dmu, dlogvar);
        be.reparamBackward(mu.numel(), mu, logvar, seed, stream, dz, klScale, dmu, dlogvar);
    }

    /**
     * CUDA graphs: a Philox key (seed, stream) written into {@code key} (a contiguous CUDA tensor of 4 floats whose 16 bytes
     * hold the two int64) by an asynchronous upload, before the step that reads it ({@link #reparamOnDeviceKeyed}).
     */
    public static void stageRngKey(Tensor key, long seed, long stream) {
        rngKey("stageRngKey", key);
        CudaProbKernels.stageRngKey(buf(key), seed, stream);
    }

    private static void rngKey(String op, Tensor key) {
        if (key.device() != Device.CUDA || !key.isContiguous() || key.numel() != 4)
            throw new IllegalArgumentException(op + ": the key must be a contiguous CUDA tensor of 4 floats (seed and stream as two int64), got " + key);
    }

    /** {@link #reparamOnDevice} with the Philox key read from device memory ({@link #stageRngKey}): the same bits. */
    public static void reparamOnDeviceKeyed(Tensor mu, Tensor logvar, Tensor key, Tensor z, Tensor kl) {
        if (!onCuda("reparam", mu, logvar, z, kl)) throw new IllegalArgumentException("reparamOnDeviceKeyed: CUDA tensors needed, got " + mu.device());
        rngKey("reparam", key);
        numel("reparam", mu.numel(), logvar, z);
        numel("reparam", 1, kl);
        CudaProbKernels.reparamF32Keyed(cuda(), mu.numel(), buf(mu), buf(logvar), buf(key), buf(z), buf(kl));
    }

    /** {@link #reparamBackward} with the Philox key read from device memory ({@link #stageRngKey}). */
    public static void reparamBackwardKeyed(Tensor mu, Tensor logvar, Tensor key, Tensor dz, float klScale, Tensor dmu, Tensor dlogvar) {
        if (!onCuda("reparamBackward", mu, logvar, dz, dmu, dlogvar))
            throw new IllegalArgumentException("reparamBackwardKeyed: CUDA tensors needed, got " + mu.device());
        rngKey("reparamBackward", key);
        numel("reparamBackward", mu.numel(), logvar, dz, dmu, dlogvar);
        CudaProbKernels.reparamBackwardKeyed(cuda(), mu.numel(), buf(mu), buf(logvar), buf(key), buf(dz), klScale, buf(dmu), buf(dlogvar));
    }

    /**
     * Free-bits KL of mu, logvar (b, d) on CUDA: {@code kd} (a CUDA tensor of 2 d floats, holding d doubles) gets each
     * dimension's batch-mean KL, {@code out} (one element) the sum over dimensions of max(lambda, kd), all on the device
     * (ProbF.klFreeBits' host loop, the same order; exp is the device's). No host synchronisation.
     */
    public static void klFreeBitsOnDevice(Tensor mu, Tensor logvar, double lambda, Tensor kd, Tensor out) {
        if (!onCuda("klFreeBits", mu, logvar, kd, out)) throw new IllegalArgumentException("klFreeBitsOnDevice: CUDA tensors needed, got " + mu.device());
        long b = mu.size(0), d = mu.numel() / Math.max(1, b);
        numel("klFreeBits", mu.numel(), logvar);
        numel("klFreeBits", 2 * d, kd);
        numel("klFreeBits", 1, out);
        CudaProbKernels.klFreeBits(cuda(), b, d, buf(mu), buf(logvar), lambda, buf(kd), buf(out));
    }

    /** The gradients of {@link #klFreeBitsOnDevice} for the upstream gradient {@code grad} (one element on the device). */
    public static void klFreeBitsBackwardOnDevice(Tensor mu, Tensor logvar, Tensor kd, double lambda, Tensor grad, Tensor dmu, Tensor dlogvar) {
        if (!onCuda("klFreeBitsBackward", mu, logvar, kd, grad, dmu, dlogvar))
            throw new IllegalArgumentException("klFreeBitsBackwardOnDevice: CUDA tensors needed, got " + mu.device());
        long b = mu.size(0), d = mu.numel() / Math.max(1, b);
        numel("klFreeBitsBackward", mu.numel(), logvar, dmu, dlogvar);
        numel("klFreeBitsBackward", 2 * d, kd);
        numel("klFreeBitsBackward", 1, grad);
        CudaProbKernels.klFreeBitsBackward(cuda(), b, d, buf(mu), buf(logvar), buf(kd), lambda, buf(grad), buf(dmu), buf(dlogvar));
    }

    /**
     * {@code out} (one element, CUDA) = (float) ((a * S + c) * scale), S = {@link #sumOfSquares}{@code (x)} in double (the
     * same S), computed on the device: nothing comes back (the Gaussian -log p(x|z) without a host synchronisation).
     */
    public static void sumOfSquaresAffineOnDevice(Tensor x, double a, double c, double scale, Tensor out) {
        if (!onCuda("sumOfSquaresAffine", x, out)) throw new IllegalArgumentException("sumOfSquaresAffineOnDevice: CUDA tensors needed, got " + x.device());
        if (!x.isContiguous()) throw new IllegalArgumentException("sumOfSquaresAffineOnDevice: x must be contiguous, got " + x);
        numel("sumOfSquaresAffine", 1, out);
        dev.latent.cuda.CudaKernels.sumOfSquaresAffine(cuda(), x.numel(), buf(x), a, c, scale, buf(out));
    }

    // ---- BatchNorm2d, activations, BCE (kernels/batchnorm, kernels/activation) ----

    private static long[] nchw(String op, Tensor x) {
        if (x.rank() < 2) throw new IllegalArgumentException(op + ": expected (N, C, ...) input, got " + x);
        long n = x.size(0), c = x.size(1);
        return new long[] {n, c, x.numel() / Math.max(1, n * c)};
    }

    /** Training-mode BatchNorm over (N, C, H, W): batch statistics, running statistics updated when not null. */
    public static void batchNormTrain(Tensor x, Tensor gamma, Tensor beta, float eps, float momentum, Tensor y,
                                      Tensor mean, Tensor rstd, Tensor runningMean, Tensor runningVar) {
        Backend be = Backend.on("batchNorm2d", x, gamma, beta, y, mean, rstd, runningMean, runningVar);
        long[] d = nchw("batchNorm2d", x);
        numel("batchNorm2d", d[1], gamma, beta, mean, rstd, runningMean, runningVar);
        numel("batchNorm2d", x.numel(), y);
        be.batchNormTrain(d[0], d[1], d[2], eps, momentum, x, gamma, beta, y, mean, rstd, runningMean, runningVar);
    }

    /** Inference-mode BatchNorm with given statistics. */
    public static void batchNormInfer(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor mean, Tensor var, Tensor y) {
        Backend be = Backend.on("batchNorm2d", x, gamma, beta, mean, var, y);
        long[] d = nchw("batchNorm2d", x);
        numel("batchNorm2d", d[1], gamma, beta, mean, var);
        numel("batchNorm2d", x.numel(), y);
        be.batchNormInfer(d[0], d[1], d[2], eps, x, gamma, beta, mean, var, y);
    }

    /** dx (overwritten), dgamma and dbeta (accumulated, may be null) of the training forward. */
    public static void batchNormBackward(Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dgamma, Tensor dbeta) {
        Backend be = Backend.on("batchNorm2dBackward", x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
        long[] d = nchw("batchNorm2dBackward", x);
        numel("batchNorm2dBackward", d[1], gamma, mean, rstd, dgamma, dbeta);
        numel("batchNorm2dBackward", x.numel(), dy, dx);
        be.batchNormBackward(d[0], d[1], d[2], x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
    }

    /** y = act(x) for LatentNative.ACT_* (alpha: LeakyReLU's slope). */
    public static void activation(int kind, float alpha, Tensor x, Tensor y) {
        Backend be = Backend.on("activation", x, y);
        numel("activation", x.numel(), y);
        be.activation(kind, x.numel(), alpha, x, y);
    }

    /** dx = dy * act'(.); {@code in} is x for ReLU / LeakyReLU and the forward output y for Tanh / Sigmoid. */
    public static void activationBackward(int kind, float alpha, Tensor in, Tensor dy, Tensor dx) {
        Backend be = Backend.on("activationBackward", in, dy, dx);
        numel("activationBackward", in.numel(), dy, dx);
        be.activationBackward(kind, in.numel(), alpha, in, dy, dx);
    }

    /**
     * Sum over elements of BCE-with-logits against {@code targets} (or the constant {@code t} when targets is
     * null); writes dlogits = (sigmoid(x) - t) * dscale when dlogits is not null.
     */
    public static double bceWithLogits(Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale) {
        Backend be = Backend.on("bceWithLogits", logits, targets, dlogits);
        numel("bceWithLogits", logits.numel(), targets, dlogits);
        return be.bceWithLogits(logits.numel(), logits, targets, t, dlogits, dscale);
    }
    /** {@link #bceWithLogits} on CUDA tensors with the (float) sum written to {@code out} (one element, on the device): no synchronisation. */
    public static void bceWithLogitsOnDevice(Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale, Tensor out) {
        if (!onCuda("bceWithLogits", logits, targets, dlogits, out))
            throw new IllegalArgumentException("bceWithLogitsOnDevice: CUDA tensors needed, got " + logits.device());
        numel("bceWithLogits", logits.numel(), targets, dlogits);
        numel("bceWithLogits", 1, out);
        CudaProbKernels.bceWithLogitsF32(cuda(), logits.numel(), buf(logits), buf(targets), t, buf(dlogits), dscale, buf(out));
    }

    // ---- affine coupling (kernels/coupling) ----

    private static long[] couplingDims(String op, Tensor mask, Tensor y, Tensor h, Tensor out) {
        if (y.rank() < 1 || y.size(0) < 1) throw new IllegalArgumentException(op + ": expected (N, ...) input, got " + y);
        long n = y.size(0), hw = y.numel() / n;
        numel(op, hw, mask);
        numel(op, y.numel(), out);
        numel(op, 2 * y.numel(), h);
        return new long[] {n, hw};
    }

    private static void doublesFor(String op, String what, double[] a, long n) {
        if (a != null && a.length != n) throw new IllegalArgumentException(op + ": " + what + " has " + a.length + " entries, needs " + n);
    }

    /**
     * Affine coupling forward (lt_coupling_fwd) of y (N, ...) with mask (HW), h (N, 2, ...): out written; logdet (N,
     * may be null) receives the per-image sums in double (on CUDA they are copied back: the call synchronises).
     */
    public static void couplingForward(Tensor mask, Tensor y, Tensor h, float scale, Tensor out, double[] logdet) {
        String op = "couplingForward";
        Backend be = Backend.on(op, mask, y, h, out);
        long[] d = couplingDims(op, mask, y, h, out);
        doublesFor(op, "logdet", logdet, d[0]);
        be.couplingForward(d[0], d[1], mask, y, h, scale, out, logdet);
    }

    /** Affine coupling inverse (lt_coupling_inv): y from y' and h (computed from the masked part). */
    public static void couplingInverse(Tensor mask, Tensor yp, Tensor h, float scale, Tensor y) {
        String op = "couplingInverse";
        Backend be = Backend.on(op, mask, yp, h, y);
        long[] d = couplingDims(op, mask, yp, h, y);
        be.couplingInverse(d[0], d[1], mask, yp, h, scale, y);
    }

    /**
     * Affine coupling forward on CUDA tensors with the per-image log-determinants written to the float tensor logdet
     * (n) on the device: the CPU's (float) of the same double sums, with no copy back and no synchronisation.
     */
    public static void couplingForwardOnDevice(Tensor mask, Tensor y, Tensor h, float scale, Tensor out, Tensor logdet) {
        String op = "couplingForward";
        if (!onCuda(op, mask, y, h, out, logdet)) throw new IllegalArgumentException(op + ": CUDA tensors expected, got " + y);
        long[] d = couplingDims(op, mask, y, h, out);
        numel(op, d[0], logdet);
        CudaProbKernels.couplingForwardF32(cuda(), d[0], d[1], buf(mask), buf(y), buf(h), scale, buf(out), buf(logdet));
    }

    /**
     * {@link #couplingForwardOnDevice(Tensor, Tensor, Tensor, float, Tensor, Tensor)} with the scale a one-element CUDA
     * tensor (the learned parameter) that the kernel reads on the device: the same bits, no copy back.
     */
    public static void couplingForwardOnDevice(Tensor mask, Tensor y, Tensor h, Tensor scale, Tensor out, Tensor logdet) {
        String op = "couplingForward";
        if (!onCuda(op, mask, y, h, scale, out, logdet)) throw new IllegalArgumentException(op + ": CUDA tensors expected, got " + y);
        long[] d = couplingDims(op, mask, y, h, out);
        numel(op, d[0], logdet);
        numel(op, 1, scale);
        CudaProbKernels.couplingForwardF32(cuda(), d[0], d[1], buf(mask), buf(y), buf(h), buf(scale), buf(out), buf(logdet));
    }

    /** {@link #couplingBackwardOnDevice(Tensor, Tensor, Tensor, float, Tensor, Tensor, Tensor, Tensor, Tensor)} with the scale on the device. */
    public static void couplingBackwardOnDevice(Tensor mask, Tensor y, Tensor h, Tensor scale, Tensor dout, Tensor dlogdet, Tensor dy,
                                                Tensor dh, Tensor dscale) {
        String op = "couplingBackward";
        if (!onCuda(op, mask, y, h, scale, dout, dlogdet, dy, dh, dscale)) throw new IllegalArgumentException(op + ": CUDA tensors expected, got " + y);
        long[] d = couplingDims(op, mask, y, h, dy);
        numel(op, y.numel(), dout);
        numel(op, 2 * y.numel(), dh);
        if (dlogdet != null) numel(op, d[0], dlogdet);
        numel(op, 1, dscale, scale);
        CudaProbKernels.couplingBackwardF32(cuda(), d[0], d[1], buf(mask), buf(y), buf(h), buf(scale), buf(dout), buf(dlogdet), buf(dy), buf(dh), buf(dscale));
    }

    /**
     * Affine coupling backward on CUDA tensors with dlogdet (n floats, may be null) and d(scale) (one float, overwritten)
     * on the device: the CPU path's widening and rounding, no copies, no synchronisation.
     */
    public static void couplingBackwardOnDevice(Tensor mask, Tensor y, Tensor h, float scale, Tensor dout, Tensor dlogdet, Tensor dy,
                                                Tensor dh, Tensor dscale) {
        String op = "couplingBackward";
        if (!onCuda(op, mask, y, h, dout, dlogdet, dy, dh, dscale)) throw new IllegalArgumentException(op + ": CUDA tensors expected, got " + y);
        long[] d = couplingDims(op, mask, y, h, dy);
        numel(op, y.numel(), dout);
        numel(op, 2 * y.numel(), dh);
        if (dlogdet != null) numel(op, d[0], dlogdet);
        numel(op, 1, dscale);
        CudaProbKernels.couplingBackwardF32(cuda(), d[0], d[1], buf(mask), buf(y), buf(h), scale, buf(dout), buf(dlogdet), buf(dy), buf(dh), buf(dscale));
    }

    /**
     * Affine coupling backward (lt_coupling_bwd): dy and dh overwritten from dout and dlogdet (N, may be null: 0);
     * returns d(scale), summed in double per image then in image order (on CUDA copied back: synchronises).
     */
    public static double couplingBackward(Tensor mask, Tensor y, Tensor h, float scale, Tensor dout, double[] dlogdet, Tensor dy, Tensor dh) {
        String op = "couplingBackward";
        Backend be = Backend.on(op, mask, y, h, dout, dy, dh);
        long[] d = couplingDims(op, mask, y, h, dy);
        numel(op, y.numel(), dout);
        numel(op, 2 * y.numel(), dh);
        doublesFor(op, "dlogdet", dlogdet, d[0]);
        return be.couplingBackward(d[0], d[1], mask, y, h, scale, dout, dlogdet, dy, dh);
    }
}
