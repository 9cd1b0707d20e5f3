package dev.latent.ops;

import dev.latent.cuda.CudaConvKernels;
import dev.latent.cuda.CudaKernels;
import dev.latent.nativ.LatentBinding.Conv2dDesc;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Tensor-level 2-D convolution (kernels/conv2d): NCHW activations, (K, C, R, S) weights. Each call checks devices,
 * contiguity and shapes against a {@link Geometry} once, then makes one call on the tensors' {@link Backend} (the CPU
 * library, or on CUDA cuDNN where it serves, else conv2d.cu's kernels: see {@link Kernels} for the device rules);
 * outputs are passed in.
 */
public final class Conv {
    private Conv() {}

    private static final ThreadLocal<MemorySegment> DESC = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(LatentNative.CONV2D_DESC));

    /**
     * The shape of one convolution: input (n, c, h, w), k filters of r x s, stride and zero padding, output
     * (n, k, oh, ow) with oh = (h + 2 padH - r) / strideH + 1 (floor), likewise ow.
     */
    public record Geometry(long n, long c, long h, long w, long k, long r, long s, int strideH, int strideW, int padH, int padW) {
        public Geometry {
            if (n < 1 || c < 1 || h < 1 || w < 1 || k < 1 || r < 1 || s < 1)
                throw new IllegalArgumentException("conv2d: sizes must be >= 1: " + this);
            if (strideH < 1 || strideW < 1 || padH < 0 || padW < 0)
                throw new IllegalArgumentException("conv2d: stride >= 1 and padding >= 0 needed: " + this);
            if (h + 2L * padH < r || w + 2L * padW < s)
                throw new IllegalArgumentException("conv2d: kernel " + r + "x" + s + " larger than padded input "
                        + (h + 2L * padH) + "x" + (w + 2L * padW));
        }

        public static Geometry of(long n, long c, long h, long w, long k, long kernel, int stride, int pad) {
            return new Geometry(n, c, h, w, k, kernel, kernel, stride, stride, pad, pad);
        }

        public long oh() { return (h + 2L * padH - r) / strideH + 1; }
        public long ow() { return (w + 2L * padW - s) / strideW + 1; }
        public long[] inShape() { return new long[] {n, c, h, w}; }
        public long[] outShape() { return new long[] {n, k, oh(), ow()}; }
        public long[] weightShape() { return new long[] {k, c, r, s}; }
        /** 2 N K OH OW C R S: the FLOPs of one pass (each of fwd, bwd-data, bwd-weight). */
        public double flops() { return 2.0 * n * k * oh() * ow() * c * r * s; }
        public Geometry withBatch(long nn) { return new Geometry(nn, c, h, w, k, r, s, strideH, strideW, padH, padW); }

        /** n, c, h, w, k, r, s, oh, ow, strideH, strideW, padH, padW: lt_conv2d_desc's fields, for the vendor path. */
        public long[] dims() { return new long[] {n, c, h, w, k, r, s, oh(), ow(), strideH, strideW, padH, padW}; }

        MemorySegment desc() {
            MemorySegment d = DESC.get();
            Conv2dDesc.setN(d, n); Conv2dDesc.setC(d, c); Conv2dDesc.setH(d, h); Conv2dDesc.setW(d, w);
            Conv2dDesc.setK(d, k); Conv2dDesc.setR(d, r); Conv2dDesc.setS(d, s);
            Conv2dDesc.setOh(d, oh()); Conv2dDesc.setOw(d, ow());
            Conv2dDesc.setStrideH(d, strideH); Conv2dDesc.setStrideW(d, strideW); Conv2dDesc.setPadH(d, padH); Conv2dDesc.setPadW(d, padW);
            return d;
        }
    }

    /**
     * out[c] = sum over n and positions of x (N, C, ...), for tensors on CUDA (the bias gradient of a transposed
     * convolution): conv2d.cu's bias kernel with the positions as one axis, a float sum in a fixed order per channel.
     */
    public static void channelSumCuda(Tensor x, Tensor out) {
        if (!Kernels.onCuda("channelSum", x, out)) throw new IllegalArgumentException("channelSum: CUDA tensors expected, got " + x + ", " + out);
        if (x.rank() < 2 || !x.isContiguous() || !out.isContiguous())
            throw new IllegalArgumentException("channelSum: contiguous x (N, C, ...) and out (C) needed, got " + x + ", " + out);
        long n = x.size(0), c = x.size(1), hw = x.numel() / Math.max(1, n * c);
        if (out.numel() != c) throw new IllegalArgumentException("channelSum: out " + out + " for " + c + " channels");
        Geometry g = new Geometry(n, 1, hw, 1, c, 1, 1, 1, 1, 0, 0);   // output (N, C, HW, 1): dy's layout
        CudaConvKernels.conv2dBackwardBias(Kernels.cuda(), g.desc(), Kernels.buf(x), Kernels.buf(out), false);
    }

    private static void shape(String op, String what, Tensor t, long... expect) {
        if (t != null && !Arrays.equals(t.shape(), expect))
            throw new IllegalArgumentException(op + ": " + what + " must be " + Arrays.toString(expect) + ", got " + t);
    }

    /** y = conv(x, w) + bias. */
    public static void forward(Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        Backend be = Backend.on("conv2d", x, w, bias, y);
        shape("conv2d", "x", x, g.inShape()); shape("conv2d", "w", w, g.weightShape());
        shape("conv2d", "bias", bias, g.k()); shape("conv2d", "y", y, g.outShape());
        be.conv2d(g, x, w, bias, y);
    }

    /** dx = conv^T(dy, w) (+ bias per input channel: the forward of a transposed convolution). */
    public static void backwardData(Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx) {
        Backend be = Backend.on("conv2dBackwardData", dy, w, bias, dx);
        shape("conv2dBackwardData", "dy", dy, g.outShape()); shape("conv2dBackwardData", "w", w, g.weightShape());
        shape("conv2dBackwardData", "bias", bias, g.c()); shape("conv2dBackwardData", "dx", dx, g.inShape());
        be.conv2dBackwardData(g, dy, w, bias, dx);
    }

    /** dw (and db when not null) from x and dy; accumulate adds instead of overwriting. */
    public static void backwardWeight(Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        Backend be = Backend.on("conv2dBackwardWeight", x, dy, dw, db);
        shape("conv2dBackwardWeight", "x", x, g.inShape()); shape("conv2dBackwardWeight", "dy", dy, g.outShape());
        shape("conv2dBackwardWeight", "dw", dw, g.weightShape()); shape("conv2dBackwardWeight", "db", db, g.k());
        be.conv2dBackwardWeight(g, x, dy, dw, db, accumulate);
    }

    // ---- bf16 (issue 15): lt_conv2d_*_bf16, CPU with AVX512_BF16 only; the Backend interface is unchanged ----

    /** {@link #forward} at a chosen operand precision: BF16 rounds x (its patches) and w to bf16 (RNE), sums in fp32. */
    public static void forward(Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y, Precision precision) {
        if (precision == null || precision == Precision.FP32) { forward(g, x, w, bias, y); return; }
        Backend be = Backend.on("conv2d", x, w, bias, y);
        if (be.device() == Device.CUDA) {
            shape("conv2d", "x", x, g.inShape()); shape("conv2d", "w", w, g.weightShape());
            shape("conv2d", "bias", bias, g.k()); shape("conv2d", "y", y, g.outShape());
            CudaBackend.INSTANCE.conv2d(g, x, w, bias, y, precision);
            return;
        }
        bf16Cpu("conv2d", x, precision);
        shape("conv2d", "x", x, g.inShape()); shape("conv2d", "w", w, g.weightShape());
        shape("conv2d", "bias", bias, g.k()); shape("conv2d", "y", y, g.outShape());
        LatentNative.get().conv2dFwdBf16(g.desc(), x.segment(), w.segment(), seg(bias), y.segment());
    }

    /** {@link #backwardData} at a chosen operand precision (BF16: dy and w rounded, fp32 sums; bias fp32). */
    public static void backwardData(Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx, Precision precision) {
        if (precision == null || precision == Precision.FP32) { backwardData(g, dy, w, bias, dx); return; }
        Backend be = Backend.on("conv2dBackwardData", dy, w, bias, dx);
        if (be.device() == Device.CUDA) {
            shape("conv2dBackwardData", "dy", dy, g.outShape()); shape("conv2dBackwardData", "w", w, g.weightShape());
            shape("conv2dBackwardData", "bias", bias, g.c()); shape("conv2dBackwardData", "dx", dx, g.inShape());
            CudaBackend.INSTANCE.conv2dBackwardData(g, dy, w, bias, dx, precision);
            return;
        }
        bf16Cpu("conv2dBackwardData", dy, precision);
        shape("conv2dBackwardData", "dy", dy, g.outShape()); shape("conv2dBackwardData", "w", w, g.weightShape());
        shape("conv2dBackwardData", "bias", bias, g.c()); shape("conv2dBackwardData", "dx", dx, g.inShape());
        LatentNative.get().conv2dBwdDataBf16(g.desc(), dy.segment(), w.segment(), seg(bias), dx.segment());
    }

    /** {@link #backwardWeight} at a chosen operand precision (BF16: x and dy rounded, fp32 sums; db fp32). */
    public static void backwardWeight(Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate, Precision precision) {
        if (precision == null || precision == Precision.FP32) { backwardWeight(g, x, dy, dw, db, accumulate); return; }
        Backend be = Backend.on("conv2dBackwardWeight", x, dy, dw, db);
        if (be.device() == Device.CUDA) {
            shape("conv2dBackwardWeight", "x", x, g.inShape()); shape("conv2dBackwardWeight", "dy", dy, g.outShape());
            shape("conv2dBackwardWeight", "dw", dw, g.weightShape()); shape("conv2dBackwardWeight", "db", db, g.k());
            CudaBackend.INSTANCE.conv2dBackwardWeight(g, x, dy, dw, db, accumulate, precision);
            return;
        }
        bf16Cpu("conv2dBackwardWeight", x, precision);
        shape("conv2dBackwardWeight", "x", x, g.inShape()); shape("conv2dBackwardWeight", "dy", dy, g.outShape());
        shape("conv2dBackwardWeight", "dw", dw, g.weightShape()); shape("conv2dBackwardWeight", "db", db, g.k());
        LatentNative.get().conv2dBwdWeightBf16(g.desc(), x.segment(), dy.segment(), dw.segment(), seg(db), accumulate);
    }

    private static MemorySegment seg(Tensor t) { return t == null ? MemorySegment.NULL : t.segment(); }

    private static void bf16Cpu(String op, Tensor t, Precision precision) {
        if (precision == Precision.TF32 && t.device() == Device.CPU)
            throw new IllegalArgumentException(op + ": tf32 precision is CUDA-only (TF32 tensor-core math); CPU tensors run fp32 or bf16");
        if (t.device() != Device.CPU)
            throw new IllegalArgumentException(op + ": " + t.device() + " tensors have no reduced-precision convolution");
        String why = Gemm.bf16Unavailable();
        if (why != null) throw new IllegalStateException(op + ": " + why);
    }
}
