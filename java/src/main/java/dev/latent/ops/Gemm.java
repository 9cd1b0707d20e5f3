package dev.latent.ops;

import dev.latent.cuda.CudaKernels;
import dev.latent.cuda.CudaVendor;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.nativ.LatentBinding.GemmDesc;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * fp32 matrix multiply, C = alpha * op(A) * op(B) + beta * C, through {@code lt_gemm}.
 * Everything the native side would trust is checked here first (shapes, strides, bounds, device, scope),
 * and a failure names the shapes. Tensors all on CUDA run ltk_gemm_f32[_128] (exact fp32, the default) or, after
 * {@link #setCudaTf32}(true), ltk_gemm_tf32[_128] (tensor cores, 10-bit mantissa inputs; _128: the 128 x 128 tile
 * CudaKernels.gemm picks for large problems), with the same checks against
 * the device buffers; a mix of devices is an IllegalArgumentException naming both.
 */
public final class Gemm {
    private Gemm() {}

    /** Per-thread descriptor: filled and passed by address, never shared between threads. */
    private static final ThreadLocal<MemorySegment> DESC =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.GEMM_DESC));

    private static volatile boolean cudaTf32;

    /** CUDA GEMMs on TF32 tensor cores (faster, ~2^-10 relative error per product) or exact fp32 (default). */
    public static void setCudaTf32(boolean on) { cudaTf32 = on; }

    public static boolean cudaTf32() { return cudaTf32; }

    /** A new C = A @ B in {@code scope}: A (M,K) or (batch,M,K), B (K,N) or (batch,K,N); views of transposes are fine. */
    public static Tensor matmul(Scope scope, Tensor a, Tensor b) {
        long m = a.size(-2), n = b.size(-1);
        long batch = Math.max(a.rank() == 3 ? a.size(0) : 1, b.rank() == 3 ? b.size(0) : 1);
        Tensor c = (a.rank() == 3 || b.rank() == 3) ? Tensor.zeros(scope, a.device(), batch, m, n) : Tensor.zeros(scope, a.device(), m, n);
        matmul(a, b, c, 1f, 0f);
        return c;
    }

    /**
     * C = alpha * A @ B + beta * C on 2-D or batched 3-D tensors. A and B may be transposed views (a
     * column-major operand becomes the native transpose flag, no copy); C must be row-major. A rank-2
     * operand is broadcast over C's batch.
     */
    public static void matmul(Tensor a, Tensor b, Tensor c, float alpha, float beta) {
        matmul(a, b, c, alpha, beta, Precision.FP32);
    }

    /**
     * {@link #matmul(Tensor, Tensor, Tensor, float, float)} at a chosen operand {@link Precision}. On CUDA: TF32 on
     * cuBLAS (CUBLAS_COMPUTE_32F_FAST_TF32) or our ltk_gemm_tf32 kernels; BF16 with the operands converted to bf16 on the
     * device (ltk_f32_to_bf16, to nearest even), then cuBLAS (cublasGemmEx, CUDA_R_16BF A and B, fp32 compute and C) or
     * our ltk_gemm_bf16. TF32 on CPU tensors is refused (CUDA-only); BF16 on the CPU needs AVX512_BF16.
     */
    public static void matmul(Tensor a, Tensor b, Tensor c, float alpha, float beta, Precision precision) {
        Plan p = plan(a, b, c, precision);
        Backend.of(a.device()).gemm(p.a.trans, p.b.trans, p.m, p.n, p.k, alpha, beta, p.a.ld, p.b.ld, p.c.ld, p.batch, p.a.batchStride,
                p.b.batchStride, p.c.batchStride, a, b, c, precision);
    }

    /** A product {@link #matmul} has checked: its operands as the native side sees them, and its sizes. */
    private record Plan(Mat a, Mat b, Mat c, long m, long n, long k, long batch) {}

    /** {@link #matmul}'s checks (devices, ranks, dimensions, layouts, tf32 off CUDA), each failure naming the shapes. */
    private static Plan plan(Tensor a, Tensor b, Tensor c, Precision precision) {
        if (precision == null) throw new IllegalArgumentException("gemm: precision is null (FP32, TF32 or BF16)");
        Supplier<String> shapes = () -> "A" + Arrays.toString(a.shape()) + " @ B" + Arrays.toString(b.shape()) + " -> C" + Arrays.toString(c.shape());
        boolean gpu = a.device() == Device.CUDA && b.device() == Device.CUDA && c.device() == Device.CUDA;
        for (Tensor t : new Tensor[] {a, b, c}) {
            if (t.device() != a.device())
                throw new IllegalArgumentException("gemm: operands on different devices, " + a.device() + " and " + t.device() + " in " + shapes.get());
            if (!gpu && t.device() != Device.CPU) throw new IllegalArgumentException("gemm: CPU tensors only, got " + t.device() + " in " + shapes.get());
            if (t.rank() < 2 || t.rank() > 3) throw new IllegalArgumentException("gemm: operands must be 2-D or 3-D: " + shapes.get());
        }
        long m = a.size(-2), k = a.size(-1), n = b.size(-1);
        if (b.size(-2) != k || c.size(-2) != m || c.size(-1) != n)
            throw new IllegalArgumentException("gemm: inner or outer dimensions do not match: " + shapes.get());
        long batch = c.rank() == 3 ? c.size(0) : 1;
        if ((a.rank() == 3 && (c.rank() != 3 || a.size(0) != batch)) || (b.rank() == 3 && (c.rank() != 3 || b.size(0) != batch)))
            throw new IllegalArgumentException("gemm: batch sizes do not match: " + shapes.get());
        Mat ma = Mat.of("A", a, shapes), mb = Mat.of("B", b, shapes), mc = Mat.of("C", c, shapes);
        if (mc.trans) throw new IllegalArgumentException("gemm: C must be row-major (last stride 1): " + shapes.get());
        if (!gpu && precision == Precision.TF32)
            throw new IllegalArgumentException("gemm: tf32 precision is CUDA-only (TF32 tensor-core math); CPU tensors run fp32 or bf16: "
                    + shapes.get());
        return new Plan(ma, mb, mc, m, n, k, batch);
    }

    // ---- fewer bf16 conversions around F.linear / F.matmul on CUDA (h-linconv, issue 18) ----

    /**
     * C = A @ B (2-D, or batched 3-D as {@link #matmul(Tensor, Tensor, Tensor, float, float, Precision)}: strided batches, a
     * 2-D operand broadcast with batch stride 0) at {@code precision} that, on CUDA at BF16, converts A (when {@code keepA}) and B (when {@code keepB})
     * into one block held by {@code keep} (in keep's scope: the graph's) instead of per-call scratch, so that
     * {@link #matmulBackward} given the same holder reads them instead of converting them again: B's copy serves
     * dA = dC B^T, A's serves dB = A^T dC. A copy covers its operand's whole strided extent (every batch; one matrix for a
     * broadcast operand), in the operand's own layout, so the GEMM reads it with the operand's ld and batch stride.
     * Elsewhere (CPU, FP32 / TF32, an empty product, a holder already holding,
     * keep null, {@link CudaVendor#fewerGemmConversions()} off) exactly {@link #matmul(Tensor, Tensor, Tensor, float, float,
     * Precision)} with alpha 1, beta 0, keeping nothing. The same bits either way: each conversion is the same round to
     * nearest even of the same fp32 values, then the same bf16 GEMM (cuBLAS's or ours) on them. The caller must not change
     * A or B before the backward (autograd does not: the backward reads them too), and releases keep afterwards.
     */
    public static void matmul(Tensor a, Tensor b, Tensor c, Precision precision, KeptOperands keep, boolean keepA, boolean keepB) {
        matmul(a, b, c, precision, keep, keepA, keepB, null);
    }

    /**
     * {@link #matmul(Tensor, Tensor, Tensor, Precision, KeptOperands, boolean, boolean)} where A's producer may have written
     * A's bf16 copy already (h-bf16act, {@link GemmInputs}): where {@code aIn} holds it for exactly this A (device address
     * and extent) and the product takes the CUDA bf16 path, the GEMM reads it instead of converting A, and keep holds no
     * copy of A (the backward reads aIn's). Does not release aIn. The same bits either way.
     */
    public static void matmul(Tensor a, Tensor b, Tensor c, Precision precision, KeptOperands keep, boolean keepA, boolean keepB,
                              KeptOperands aIn) {
        Plan p = plan(a, b, c, precision);
        boolean fewer = fewerOnCuda(precision, p, a, b, c);
        DeviceBuffer ready = fewer ? GemmInputs.copy(aIn, dbuf(a).address(), extent(p.a, p.m, p.k, p.batch)) : null;
        keepA &= ready == null;
        if (ready == null && (keep == null || (!keepA && !keepB) || keep.holds() || !fewer)) {
            matmul(a, b, c, 1f, 0f, precision);
            return;
        }
        keepB &= keep != null && !keep.holds();
        DeviceBuffer da = dbuf(a), db = dbuf(b);
        long na = extent(p.a, p.m, p.k, p.batch), nb = extent(p.b, p.k, p.n, p.batch), at = keepA ? aligned(na * 2) : 0;
        DeviceBuffer blk = keepA || keepB ? DeviceBuffer.of(keep.hold(at + (keepB ? nb * 2 : 0), key(da, keepA ? na : 0, db, keepB ? nb : 0))) : null;
        DeviceBuffer a16 = keepA ? blk.slice(0, na * 2) : ready, b16 = keepB ? blk.slice(at, nb * 2) : null;
        callCuda(p.a.trans, p.b.trans, p.m, p.n, p.k, 1f, 0f, p.a.ld, p.b.ld, p.c.ld, p.batch, p.a.batchStride, p.b.batchStride,
                p.c.batchStride, da, db, dbuf(c), precision, a16, ready != null, b16, false);
    }

    /**
     * The gradients of C = A @ B (2-D or batched 3-D) from dC at {@code precision}, as the backward of {@link #matmul(Tensor, Tensor, Tensor,
     * Precision, KeptOperands, boolean, boolean)} computes them: dA = dC B^T into {@code da} when not null; B's gradient
     * either as dB = A^T dC into {@code db}, or transposed, dB^T = dC^T A, into {@code dbt} (F.linear, whose B is W^T:
     * dW in W's layout); at most one of the two. Results are overwritten. On CUDA at BF16 dC is converted once for both
     * products, and A's and B's bf16 copies are read from {@code kept} where the forward left them for these very
     * operands (else, or with kept null, converted here, per call); elsewhere (CPU, FP32 / TF32, {@link
     * CudaVendor#fewerGemmConversions()} off) the two products run as separate {@link #matmul} calls, each converting its
     * operands: the same bits either way. Batched: dC (batch, M, N); the gradient of an operand broadcast over the batch
     * (2-D beside a 3-D dC) is a sum over the batch, not one product, and is refused here (the other one's is computed,
     * reading the broadcast operand's copy with batch stride 0). Does not release kept.
     */
    public static void matmulBackward(Tensor a, Tensor b, Tensor dc, Tensor da, Tensor db, Tensor dbt, Precision precision, KeptOperands kept) {
        matmulBackward(a, b, dc, da, db, dbt, precision, kept, null);
    }

    /**
     * {@link #matmulBackward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Precision, KeptOperands)} that reads A's bf16
     * copy from {@code aIn} (A's producer wrote it: {@link GemmInputs}) where kept holds none for A and aIn holds one for
     * exactly this A. Does not release kept or aIn. The same bits either way.
     */
    public static void matmulBackward(Tensor a, Tensor b, Tensor dc, Tensor da, Tensor db, Tensor dbt, Precision precision, KeptOperands kept,
                                      KeptOperands aIn) {
        if (db != null && dbt != null) throw new IllegalArgumentException("gemm backward: B's gradient as db or as dbt, not both");
        Supplier<String> shapes = () -> "A" + Arrays.toString(a.shape()) + ", B" + Arrays.toString(b.shape()) + ", dC" + Arrays.toString(dc.shape());
        for (Tensor t : new Tensor[] {a, b, dc})
            if (t.rank() < 2 || t.rank() > 3) throw new IllegalArgumentException("gemm backward: 2-D or batched 3-D A, B and dC, got " + shapes.get());
        if (dc.rank() != Math.max(a.rank(), b.rank()))
            throw new IllegalArgumentException("gemm backward: dC must be 3-D exactly when A or B is, got " + shapes.get());
        if (dc.rank() == 3 && (da != null && a.rank() == 2 || (db != null || dbt != null) && b.rank() == 2))
            throw new IllegalArgumentException("gemm backward: the gradient of an operand broadcast over the batch sums over it (not one product): "
                    + shapes.get());
        Tensor bT = lastTwoSwapped(b), aT = lastTwoSwapped(a), dcT = lastTwoSwapped(dc);
        Plan pa = da == null ? null : plan(dc, bT, da, precision);
        Plan pb = db != null ? plan(aT, dc, db, precision) : dbt != null ? plan(dcT, a, dbt, precision) : null;
        if (pa == null && pb == null) return;
        boolean fused = (pa == null || fewerOnCuda(precision, pa, dc, bT, da))
                && (pb == null || (db != null ? fewerOnCuda(precision, pb, aT, dc, db) : fewerOnCuda(precision, pb, dcT, a, dbt)));
        if (!fused) {
            if (da != null) matmul(dc, bT, da, 1f, 0f, precision);
            if (db != null) matmul(aT, dc, db, 1f, 0f, precision);
            if (dbt != null) matmul(dcT, a, dbt, 1f, 0f, precision);
            return;
        }
        dev.latent.cuda.Cuda cu = Kernels.cuda();
        DeviceBuffer ddc = dbuf(dc), dA = dbuf(a), dB = dbuf(b);
        long nd = extent(dc, shapes), na = extent(a, shapes), nb = extent(b, shapes);
        /* What the forward kept for these operands: A's copy at 0, B's after it (aligned), as matmul(..., keep, ...) laid them out. */
        DeviceBuffer a16 = null, b16 = null;
        long[] key = kept == null ? new long[0] : kept.key();
        DeviceMemory blk = key.length == 4 ? kept.block(key) : null;
        if (blk != null && key[0] == dA.address() && key[2] == dB.address() && (key[1] == 0 || key[1] == na) && (key[3] == 0 || key[3] == nb)) {
            DeviceBuffer kb = DeviceBuffer.of(blk);
            if (key[1] == na) a16 = kb.slice(0, na * 2);
            if (key[3] == nb) b16 = kb.slice(key[1] == na ? aligned(na * 2) : 0, nb * 2);
        }
        if (a16 == null) a16 = GemmInputs.copy(aIn, dA.address(), na);
        try (DeviceBuffer dc16 = cu.alloc(nd * 2)) {
            CudaKernels.toBf16(cu, nd, ddc, dc16);
            if (pa != null)
                callCuda(pa.a.trans, pa.b.trans, pa.m, pa.n, pa.k, 1f, 0f, pa.a.ld, pa.b.ld, pa.c.ld, pa.batch, pa.a.batchStride,
                        pa.b.batchStride, pa.c.batchStride, ddc, dbuf(bT), dbuf(da), precision, dc16, true, b16, b16 != null);
            if (db != null)
                callCuda(pb.a.trans, pb.b.trans, pb.m, pb.n, pb.k, 1f, 0f, pb.a.ld, pb.b.ld, pb.c.ld, pb.batch, pb.a.batchStride,
                        pb.b.batchStride, pb.c.batchStride, dbuf(aT), ddc, dbuf(db), precision, a16, a16 != null, dc16, true);
            if (dbt != null)
                callCuda(pb.a.trans, pb.b.trans, pb.m, pb.n, pb.k, 1f, 0f, pb.a.ld, pb.b.ld, pb.c.ld, pb.batch, pb.a.batchStride,
                        pb.b.batchStride, pb.c.batchStride, dbuf(dcT), dA, dbuf(dbt), precision, dc16, true, a16, a16 != null);
        }   // back to the allocator's cache: later work on the one stream runs after these launches
    }

    /** Whether this checked product takes the fewer-conversions path: all on CUDA, BF16, non-empty, the switch on (2-D or batched). */
    private static boolean fewerOnCuda(Precision precision, Plan p, Tensor a, Tensor b, Tensor c) {
        return precision == Precision.BF16 && CudaVendor.fewerGemmConversions() && a.device() == Device.CUDA && b.device() == Device.CUDA
                && c.device() == Device.CUDA && p.m > 0 && p.n > 0 && p.k > 0;
    }

    /** t with its last two axes swapped (a view): the matrix transpose of a 2-D or batched 3-D operand. */
    private static Tensor lastTwoSwapped(Tensor t) { return t.transpose(t.rank() - 2, t.rank() - 1); }

    /** {@link #extent(Mat, long, long, long)} of a 2-D or 3-D operand as it is laid out (its batches from its first dimension). */
    private static long extent(Tensor t, Supplier<String> shapes) {
        return extent(Mat.of("operand", t, shapes), t.size(-2), t.size(-1), t.rank() == 3 ? t.size(0) : 1);
    }

    private static DeviceBuffer dbuf(Tensor t) { return DeviceBuffer.of(t.deviceBuffer()); }

    /**
     * Elements of an operand's storage a GEMM over {@code batch} matrices reads (rows x cols each, as the tensor shows them;
     * batch stride 0 for a broadcast one), from its first element: what a bf16 copy covers (checkDeviceOperand's count).
     */
    private static long extent(Mat mt, long rows, long cols, long batch) {
        if (rows == 0 || cols == 0) return 0;
        long sr = mt.trans ? cols : rows, sc = mt.trans ? rows : cols;   /* as stored */
        return Math.addExact(Math.multiplyExact(batch - 1, mt.batchStride), Math.addExact(Math.multiplyExact(sr - 1, mt.ld), sc));
    }

    /** Bytes rounded up to 256 (the second operand's copy in a kept block starts aligned, as a fresh allocation would). */
    private static long aligned(long bytes) { return Math.addExact(bytes, 255) & ~255L; }

    /** A kept block's key: A's device address and kept extent (0: not kept), B's likewise. */
    private static long[] key(DeviceBuffer a, long na, DeviceBuffer b, long nb) { return new long[] {a.address(), na, b.address(), nb}; }

    /**
     * C = A @ B + bias (bias: C's columns, one value each; nn.Linear's bias) as one fused cuBLASLt call (the BIAS
     * epilogue) when A, B, C and bias are all CUDA tensors, 2-D, and cuBLASLt serves now (CudaVendor); returns false,
     * doing nothing, otherwise: the caller then runs {@link #matmul} and its bias add. The checks are {@link #matmul}'s.
     */
    public static boolean matmulBiasFused(Tensor a, Tensor b, Tensor bias, Tensor c, Precision precision) {
        for (Tensor t : new Tensor[] {a, b, c, bias}) if (t.device() != Device.CUDA) return false;
        if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2 || precision == null) return false;
        Supplier<String> shapes = () -> "A" + Arrays.toString(a.shape()) + " @ B" + Arrays.toString(b.shape()) + " + bias"
                + Arrays.toString(bias.shape()) + " -> C" + Arrays.toString(c.shape());
        long m = a.size(0), k = a.size(1), n = b.size(1);
        if (b.size(0) != k || c.size(0) != m || c.size(1) != n)
            throw new IllegalArgumentException("gemm: inner or outer dimensions do not match: " + shapes.get());
        if (bias.numel() != n || !bias.isContiguous())
            throw new IllegalArgumentException("gemm + bias: the bias must be " + n + " contiguous values: " + shapes.get());
        Mat ma = Mat.of("A", a, shapes), mb = Mat.of("B", b, shapes), mc = Mat.of("C", c, shapes);
        if (mc.trans || m == 0 || n == 0 || k == 0) return false;
        if (precision == Precision.BF16 && CudaVendor.bf16GemmUnavailable(Kernels.cuda()) != null) return false;
        DeviceBuffer da = DeviceBuffer.of(a.deviceBuffer()), db = DeviceBuffer.of(b.deviceBuffer()), dc = DeviceBuffer.of(c.deviceBuffer()),
                dbias = DeviceBuffer.of(bias.deviceBuffer());
        Supplier<String> what = () -> "gemm + bias on CUDA(" + shapes.get() + ")";
        checkDeviceOperand(what, "A", da, ma.trans ? k : m, ma.trans ? m : k, ma.ld, 0, 1);
        checkDeviceOperand(what, "B", db, mb.trans ? n : k, mb.trans ? k : n, mb.ld, 0, 1);
        checkDeviceOperand(what, "C", dc, m, n, mc.ld, 0, 1);
        checkDeviceOperand(what, "bias", dbias, 1, n, n, 0, 1);
        CudaVendor.GemmCompute mode = precision == Precision.BF16 ? CudaVendor.GemmCompute.BF16
                : cudaTf32 ? CudaVendor.GemmCompute.TF32 : CudaVendor.GemmCompute.FP32;
        return CudaVendor.gemmBias(Kernels.cuda(), ma.trans, mb.trans, m, n, k, ma.ld, mb.ld, mc.ld, da, db, dbias, dc, mode);
    }

    /** One matrix operand as the native side sees it: transpose flag, leading dimension, batch stride. */
    private record Mat(boolean trans, long ld, long batchStride) {
        static Mat of(String name, Tensor t, Supplier<String> shapes) {
            int r = t.rank();
            long rows = t.size(r - 2), cols = t.size(r - 1), s0 = t.stride(r - 2), s1 = t.stride(r - 1);
            long bs = r == 3 ? (t.size(0) == 1 ? 0 : t.stride(0)) : 0;
            if (s1 == 1 || cols == 1) return new Mat(false, Math.max(s0, Math.max(cols, 1)), bs);
            if (s0 == 1 || rows == 1) return new Mat(true, Math.max(s1, Math.max(rows, 1)), bs);
            throw new IllegalArgumentException("gemm: " + name + " has strides " + Arrays.toString(t.strides())
                    + ", neither row- nor column-major; call contiguous() first: " + shapes.get());
        }
    }

    /**
     * BLAS-style entry on raw segments (row-major). Checks that every matrix touched lies inside its
     * segment before calling native code.
     */
    public static void sgemm(boolean transA, boolean transB, long m, long n, long k, float alpha,
                             MemorySegment a, long lda, MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        call(transA, transB, m, n, k, alpha, beta, lda, ldb, ldc, 1, 0, 0, 0, a, 0, b, 0, c, 0, false);
    }

    /**
     * C (m, n) = alpha * A (m, k) B^T + beta * C with B stored (n, k) (a Linear layer's weight), through
     * {@code lt_gemm_rows}: no packing, each element one dot product in a fixed order, so a row of C has the same bits
     * whatever m and the thread count. For skinny products (decoding: m = sequences in flight), where lt_gemm's packing
     * costs more than the product; slower than {@link #sgemm} once m reaches tens of rows. Bounds checked before the call.
     */
    public static void sgemmRows(long m, long n, long k, float alpha, MemorySegment a, long lda, MemorySegment b, long ldb,
                                 float beta, MemorySegment c, long ldc) {
        Supplier<String> what = () -> "gemm_rows(m=" + m + ", n=" + n + ", k=" + k + ", lda=" + lda + ", ldb=" + ldb + ", ldc=" + ldc + ")";
        checkSizes(what, m, n, k, 1, 0, 0, 0);
        checkOperand(what, "A", a, 0, m, k, lda, 0, 1);
        checkOperand(what, "B", b, 0, n, k, ldb, 0, 1);
        checkOperand(what, "C", c, 0, m, n, ldc, 0, 1);
        if (m == 0 || n == 0) return;
        LatentNative.get().gemmRows(desc(false, true, m, n, k, alpha, beta, lda, ldb, ldc, 1, 0, 0, 0), a, b, c);
    }

    /** Strided-batch variant of {@link #sgemm}. */
    public static void sgemmBatched(boolean transA, boolean transB, long m, long n, long k, float alpha,
                                    MemorySegment a, long lda, long strideA, MemorySegment b, long ldb, long strideB,
                                    float beta, MemorySegment c, long ldc, long strideC, long batch) {
        sgemmBatched(transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch,
                Precision.FP32);
    }

    /**
     * Null when BF16 GEMMs can run here (CPU with AVX512_BF16 and the ISA in use is avx512), else a one-line reason
     * naming AVX512_BF16 and the ISA in use. Nothing emulates bf16: callers refuse BF16 with this reason.
     */
    public static String bf16Unavailable() {
        LatentNative n = LatentNative.get();
        int isa = n.isa();
        if (!n.cpuBf16())
            return "bf16 precision needs AVX512_BF16 (vdpbf16ps), which this CPU lacks (ISA in use: " + LatentNative.isaName(isa)
                    + "); bf16 is never emulated: use --precision fp32";
        if (isa < LatentNative.ISA_AVX512)
            return "bf16 precision needs AVX512_BF16 at ISA avx512, but the ISA in use is " + LatentNative.isaName(isa)
                    + " (capped by LATENT_MAX_ISA or setIsa); bf16 is never emulated: use --precision fp32 or allow avx512";
        return null;
    }

    /** Throws an IllegalStateException with {@link #bf16Unavailable()}'s reason when BF16 cannot run here. */
    public static void requireBf16() {
        String why = bf16Unavailable();
        if (why != null) throw new IllegalStateException(why);
    }

    /** {@link #sgemm} at a chosen operand {@link Precision}. */
    public static void sgemm(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, long lda,
                             MemorySegment b, long ldb, float beta, MemorySegment c, long ldc, Precision precision) {
        sgemmBatched(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1, precision);
    }

    /** {@link #sgemmBatched} at a chosen operand {@link Precision}. */
    public static void sgemmBatched(boolean transA, boolean transB, long m, long n, long k, float alpha,
                                    MemorySegment a, long lda, long strideA, MemorySegment b, long ldb, long strideB,
                                    float beta, MemorySegment c, long ldc, long strideC, long batch, Precision precision) {
        if (precision == null) throw new IllegalArgumentException("gemm: precision is null (FP32 or BF16)");
        call(transA, transB, m, n, k, alpha, beta, lda, ldb, ldc, batch, strideA, strideB, strideC, a, 0, b, 0, c, 0,
                precision == Precision.BF16);
    }

    private static void call(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta,
                             long lda, long ldb, long ldc, long batch, long sa, long sb, long sc,
                             MemorySegment a, long offA, MemorySegment b, long offB, MemorySegment c, long offC) {
        call(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, offA, b, offB, c, offC, false);
    }

    /** The CPU's GEMM on segments (CpuBackend's gemm, the raw-segment entries): bounds checks, then one downcall. */
    static void call(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta,
                     long lda, long ldb, long ldc, long batch, long sa, long sb, long sc,
                     MemorySegment a, long offA, MemorySegment b, long offB, MemorySegment c, long offC,
                     boolean bf16) {
        // Messages are built only on failure: this runs on every call, including 1x1x1 ones.
        Supplier<String> what = () -> "gemm(m=" + m + ", n=" + n + ", k=" + k + ", transA=" + ta + ", transB=" + tb + ", lda=" + lda
                + ", ldb=" + ldb + ", ldc=" + ldc + ", batch=" + batch + ")";
        checkSizes(what, m, n, k, batch, sa, sb, sc);
        checkOperand(what, "A", a, offA, ta ? k : m, ta ? m : k, lda, sa, batch);
        checkOperand(what, "B", b, offB, tb ? n : k, tb ? k : n, ldb, sb, batch);
        checkOperand(what, "C", c, offC, m, n, ldc, sc, batch);
        if (batch > 1 && m > 0 && n > 0 && sc < (m - 1) * ldc + n)
            throw new IllegalArgumentException(what.get() + ": stride of C " + sc + " makes batches overlap");
        if (m == 0 || n == 0) return;
        LatentNative nat = LatentNative.get();
        MemorySegment d = desc(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc);
        if (bf16) nat.gemmBf16(d, a.asSlice(offA * 4), b.asSlice(offB * 4), c.asSlice(offC * 4));
        else nat.gemm(d, a.asSlice(offA * 4), b.asSlice(offB * 4), c.asSlice(offC * 4));
    }

    private static void checkSizes(Supplier<String> what, long m, long n, long k, long batch, long sa, long sb, long sc) {
        if (m < 0 || n < 0 || k < 0 || batch < 1)
            throw new IllegalArgumentException(what.get() + ": sizes must be >= 0 and batch >= 1");
        if (sa < 0 || sb < 0 || sc < 0) throw new IllegalArgumentException(what.get() + ": batch strides must be >= 0");
    }

    /** This thread's lt_gemm_desc, filled (LatentNative.GEMM_DESC layout). */
    private static MemorySegment desc(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda,
                                      long ldb, long ldc, long batch, long sa, long sb, long sc) {
        MemorySegment d = DESC.get();
        GemmDesc.setTransA(d, ta ? 1 : 0);
        GemmDesc.setTransB(d, tb ? 1 : 0);
        GemmDesc.setM(d, m);
        GemmDesc.setN(d, n);
        GemmDesc.setK(d, k);
        GemmDesc.setAlpha(d, alpha);
        GemmDesc.setBeta(d, beta);
        GemmDesc.setLda(d, lda);
        GemmDesc.setLdb(d, ldb);
        GemmDesc.setLdc(d, ldc);
        GemmDesc.setBatch(d, batch);
        GemmDesc.setStrideA(d, sa);
        GemmDesc.setStrideB(d, sb);
        GemmDesc.setStrideC(d, sc);
        return d;
    }

    /**
     * {@link #call} for device buffers (each starting at its operand's first element; CudaBackend's gemm): the same
     * checks, then cuBLAS where it serves (CudaVendor: found, not LATENT_CUDA_VENDOR=0, sizes within its 32-bit
     * arguments), else our kernels. FP32 (TF32 after {@link #setCudaTf32}), TF32: compute type or kernel; BF16: A and B
     * converted to bf16 (to nearest even) into scratch of the operands' extents, then cublasGemmEx with CUDA_R_16BF
     * inputs, or ltk_gemm_bf16.
     */
    static void callCuda(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta,
                                 long lda, long ldb, long ldc, long batch, long sa, long sb, long sc,
                                 DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, Precision precision) {
        callCuda(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, b, c, precision, null, false, null, false);
    }

    /**
     * {@link #callCuda(boolean, boolean, long, long, long, float, float, long, long, long, long, long, long, long, DeviceBuffer,
     * DeviceBuffer, DeviceBuffer, Precision)} where, at BF16, A's bf16 copy may be given (h-linconv): {@code a16} not null
     * holds (aReady) or receives (not aReady) A's extent converted; null: converted into scratch, as before. B likewise.
     * Ignored at FP32 / TF32.
     */
    private static void callCuda(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta,
                                 long lda, long ldb, long ldc, long batch, long sa, long sb, long sc,
                                 DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, Precision precision,
                                 DeviceBuffer a16, boolean aReady, DeviceBuffer b16, boolean bReady) {
        if (precision == null) throw new IllegalArgumentException("gemm: precision is null (FP32, TF32 or BF16)");
        Supplier<String> what = () -> "gemm on CUDA(m=" + m + ", n=" + n + ", k=" + k + ", transA=" + ta + ", transB=" + tb + ", lda=" + lda
                + ", ldb=" + ldb + ", ldc=" + ldc + ", batch=" + batch + ", " + precision.id() + ")";
        checkSizes(what, m, n, k, batch, sa, sb, sc);
        long na = checkDeviceOperand(what, "A", a, ta ? k : m, ta ? m : k, lda, sa, batch);
        long nb = checkDeviceOperand(what, "B", b, tb ? n : k, tb ? k : n, ldb, sb, batch);
        checkDeviceOperand(what, "C", c, m, n, ldc, sc, batch);
        if (batch > 1 && m > 0 && n > 0 && sc < (m - 1) * ldc + n)
            throw new IllegalArgumentException(what.get() + ": stride of C " + sc + " makes batches overlap");
        if (m == 0 || n == 0) return;
        dev.latent.cuda.Cuda cu = Kernels.cuda();
        if (precision == Precision.BF16 && k > 0) {
            if (a16 != null && a16.byteSize() < na * 2 || b16 != null && b16.byteSize() < nb * 2)
                throw new IllegalArgumentException(what.get() + ": a bf16 copy of A or B is shorter than its extent (" + na + ", " + nb + " elements)");
            try (DeviceBuffer sa16 = a16 == null ? cu.alloc(na * 2) : null; DeviceBuffer sb16 = b16 == null ? cu.alloc(nb * 2) : null) {
                DeviceBuffer ua = a16 != null ? a16 : sa16, ub = b16 != null ? b16 : sb16;
                if (a16 == null || !aReady) CudaKernels.toBf16(cu, na, a, ua);
                if (b16 == null || !bReady) CudaKernels.toBf16(cu, nb, b, ub);
                if (CudaVendor.gemmBf16(cu, ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, ua, ub, c)) return;
                CudaKernels.gemmBf16(cu, desc(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc), m, n, batch, ua, ub, c);
            }   // scratch freed to the allocator's cache: later work on the one stream runs after these launches
            return;
        }
        boolean tf32 = precision == Precision.TF32 || cudaTf32;   /* K = 0 at BF16: C = beta C, any path */
        CudaVendor.GemmCompute mode = tf32 ? CudaVendor.GemmCompute.TF32 : CudaVendor.GemmCompute.FP32;
        if (CudaVendor.gemm(cu, ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, b, c, mode)) return;
        MemorySegment d = desc(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc);
        CudaKernels.gemm(cu, d, m, n, batch, a, b, c, tf32);
    }

    /** Checks one operand against its buffer; returns its extent in elements (0 when empty). */
    private static long checkDeviceOperand(Supplier<String> what, String name, DeviceBuffer s, long rows, long cols,
                                           long ld, long stride, long batch) {
        if (!s.isAlive()) throw new IllegalStateException(what.get() + ": " + name + "'s device memory was freed");
        if (ld < Math.max(cols, 1))
            throw new IllegalArgumentException(what.get() + ": leading dimension of " + name + " is " + ld + " < " + Math.max(cols, 1)
                    + " (" + rows + " x " + cols + " as stored)");
        if (rows == 0 || cols == 0) return 0;
        long last = Math.addExact(Math.multiplyExact(batch - 1, stride), Math.addExact(Math.multiplyExact(rows - 1, ld), cols));
        if (Math.multiplyExact(last, 4L) > s.byteSize())
            throw new IllegalArgumentException(what.get() + ": " + name + " (" + rows + " x " + cols + ", ld " + ld + ", batch stride "
                    + stride + ") needs " + last + " floats but its device buffer holds " + s.byteSize() / 4);
        return last;
    }

    private static void checkOperand(Supplier<String> what, String name, MemorySegment s, long off, long rows, long cols,
                                     long ld, long stride, long batch) {
        if (s == null || s.equals(MemorySegment.NULL))
            throw new IllegalArgumentException(what.get() + ": " + name + " is a null segment");
        if (!s.scope().isAlive())
            throw new IllegalStateException(what.get() + ": " + name + "'s memory was freed (its scope is closed)");
        if (s.isReadOnly() && name.equals("C"))
            throw new IllegalArgumentException(what.get() + ": C is read-only");
        if (ld < Math.max(cols, 1))
            throw new IllegalArgumentException(what.get() + ": leading dimension of " + name + " is " + ld + " < " + Math.max(cols, 1)
                    + " (" + rows + " x " + cols + " as stored)");
        if (rows == 0 || cols == 0) return;
        long last = Math.addExact(Math.addExact(off, Math.multiplyExact(batch - 1, stride)),
                Math.addExact(Math.multiplyExact(rows - 1, ld), cols));
        if (Math.multiplyExact(last, 4L) > s.byteSize())
            throw new IllegalArgumentException(what.get() + ": " + name + " (" + rows + " x " + cols + ", ld " + ld + ", batch stride "
                    + stride + ") needs " + last + " floats but its segment holds " + s.byteSize() / 4);
        if ((s.address() + off * 4) % 4 != 0)
            throw new IllegalArgumentException(what.get() + ": " + name + " is not 4-byte aligned");
    }
}
