package dev.latent.ops;

import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The kernels of one device, one method per kernel family the ops layer calls (issue 16). The methods that follow from
 * latent.h (a prototype annotated {@code op=NAME}) are generated into {@link BackendOps}, with their CPU bodies in
 * {@link CpuOps} and their CUDA bodies in {@link CudaOps}; the ones declared here are the ops whose plumbing is not one
 * call of one kernel (docs/extending.md). {@link Kernels},
 * {@link Conv}, {@link Conv1d} and {@link Gemm} validate once, at the boundary (devices agree, tensors contiguous,
 * shapes and element counts, ids inside the vocabulary), pick the backend once with {@link #on} or {@link #of}, and
 * make one call: no method here re-checks what the boundary checked, and no caller branches on the device.
 * <ul>
 *   <li>{@link CpuBackend}: the native library through {@link dev.latent.nativ.LatentNative} (host segments).</li>
 *   <li>{@link CudaBackend}: our CUDA kernels ({@link dev.latent.cuda.CudaKernels}), and cuBLAS / cuDNN where
 *       {@link dev.latent.cuda.CudaVendor} serves (GEMM, convolution).</li>
 * </ul>
 * Arguments: the validated tensors (null where the op allows it), and the sizes the boundary derived from their
 * shapes (n rows, c columns, ...). Each implementation reads its tensors' memory its own way (segments or device
 * buffers). The two are stateless singletons: the call site is bimorphic, which the JIT inlines (docs/decisions.md,
 * "Backend").
 */
interface Backend extends BackendOps {

    /** The backend of tensors on {@code device}. */
    static Backend of(Device device) {
        return device == Device.CUDA ? CudaBackend.INSTANCE : CpuBackend.INSTANCE;
    }

    /**
     * The one device check of an op: every non-null tensor on the same device (else an IllegalArgumentException naming
     * both) and contiguous (the kernels take dense buffers); returns that device's backend (the CPU's when every tensor
     * is null).
     */
    static Backend on(String op, Tensor... ts) {
        Tensor first = null;
        for (Tensor t : ts) {
            if (t == null) continue;
            if (first == null) first = t;
            else if (t.device() != first.device())
                throw new IllegalArgumentException(op + ": tensors on different devices, " + first.device() + " (" + first + ") and "
                        + t.device() + " (" + t + "); move one with to(scope, device)");
        }
        for (Tensor t : ts)
            if (t != null && !t.isContiguous()) throw new IllegalArgumentException(op + ": needs contiguous tensors, got " + t
                    + " with strides " + Arrays.toString(t.strides()) + "; call contiguous() first");
        return first == null ? CpuBackend.INSTANCE : of(first.device());
    }

    Device device();

    // ---- layout and elementwise ----

    /** dst = src for any strides (same shape, checked; numel > 0). */
    void copy(Tensor src, Tensor dst);

    void zero(Tensor x);

    /** out (1 element) = the sum of x in double, rounded once. */
    void sum(long n, Tensor x, Tensor out);

    // ---- losses, embedding (the normalizations, activations, attention, softmax cross-entropy: BackendOps) ----

    double bceWithLogits(long n, Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale);

    /** {@code ids} (host segment) and {@code id} (the same n values, each checked inside [0, vocab)). */
    void embedding(long n, long c, MemorySegment ids, int[] id, Tensor table, Tensor out);

    void embeddingBackward(long n, long c, long vocab, MemorySegment ids, int[] id, Tensor dout, Tensor dtable);

    // ---- optimizer, norms ----

    void adamw(long n, Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
               float weightDecay, float gradScale, long step);

    double sumOfSquares(long n, Tensor x);

    /** Segments checked inside x. */
    double sumOfSquaresSegments(Tensor x, long[] offset, long[] len);

    // ---- VAE sampler ----

    double reparam(long n, Tensor mu, Tensor logvar, long seed, long stream, Tensor z);

    // ---- affine coupling ----

    /** logdet: n doubles or null. */
    void couplingForward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor out, double[] logdet);

    /** dlogdet: n doubles or null; returns d(scale). */
    double couplingBackward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor dout, double[] dlogdet,
                            Tensor dy, Tensor dh);

    // ---- convolutions ----

    void conv2d(Conv.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y);

    void conv2dBackwardData(Conv.Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx);

    void conv2dBackwardWeight(Conv.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate);

    void conv1d(Conv1d.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y);

    void conv1dBackwardData(Conv1d.Geometry g, Tensor dy, Tensor w, Tensor dx);

    void conv1dBackwardWeight(Conv1d.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate);

    // ---- GEMM ----

    /**
     * C = alpha op(A) op(B) + beta C for tensor operands (strided views; the layout {@link Gemm} derived: transpose
     * flags, leading dimensions, batch strides). The operands' bounds are checked here, against the memory each
     * backend reads (segments or device buffers).
     */
    void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
              long batch, long sa, long sb, long sc, Tensor a, Tensor b, Tensor c, boolean bf16);

    /**
     * {@link #gemm(boolean, boolean, long, long, long, float, float, long, long, long, long, long, long, long, Tensor,
     * Tensor, Tensor, boolean)} at a {@link dev.latent.tensor.Precision} (h-cudaprec): FP32 and BF16 go to the boolean
     * form; TF32 is refused here (CPU) and served by CUDA's override.
     */
    default void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                      long batch, long sa, long sb, long sc, Tensor a, Tensor b, Tensor c, dev.latent.tensor.Precision precision) {
        if (precision == dev.latent.tensor.Precision.TF32)
            throw new IllegalArgumentException("gemm: tf32 precision is CUDA-only (TF32 tensor-core math); " + device()
                    + " runs fp32 or bf16");
        gemm(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, a, b, c, precision == dev.latent.tensor.Precision.BF16);
    }

    /** y = (float) f((double) x), f = sqrt, rsqrt, square, exp or log ({@code op}). */
    void pointwise(String op, long n, Tensor x, Tensor y);

    /** dx = (float) (dy * f'(x)) in double (dx may alias dy). */
    void pointwiseBackward(String op, long n, Tensor x, Tensor dy, Tensor dx);

    /** m (c, c) = diag(v); its adjoint d[i] = g[i, i]. */
    void diag(long c, Tensor v, Tensor m);

    void diagBackward(long c, Tensor g, Tensor d);
}
