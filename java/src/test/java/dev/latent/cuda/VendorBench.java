package dev.latent.cuda;

import dev.latent.tensor.Precision;
import dev.latent.ops.AttentionKernels;
import dev.latent.ops.Conv;
import dev.latent.ops.Gemm;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Our kernels against the vendor libraries through our own FFM binding (CudaVendor.force: the same ops.Gemm / ops.Conv
 * calls, routed to cuBLAS / cuDNN or to our kernels), on the device the tests use. Run by bench/cuda/gpu_checks.sh on a
 * lent GPU beside gpu_bench.py (which times PyTorch's cuBLAS / cuDNN calls); a main, not a test: nothing here is timed
 * in CI. Each figure: the median over 5 groups of REPS back-to-back calls, each group bracketed by cuCtxSynchronize
 * and wall-clock time (no CUDA events are bound), so launch overhead counts as it does in training.
 *
 *     java ... dev.latent.cuda.VendorBench OUT.json [--tiny]     (--tiny: shapes the emulated driver runs in seconds)
 */
public final class VendorBench {
    private VendorBench() {}

    record Row(String op, String shape, String path, double ms, double gflops) {}

    public static void main(String[] args) throws IOException {
        if (args.length < 1) throw new IllegalArgumentException("usage: VendorBench OUT.json [--tiny]");
        boolean tiny = Arrays.asList(args).contains("--tiny");
        Cuda cu = Cuda.get();
        System.out.println(cu.describe());
        CudaVendor.force(null);
        for (String l : CudaVendor.describe()) System.out.println(l);
        int reps = tiny ? 1 : 20;
        List<Row> rows = new ArrayList<>();
        long[][] gemms = tiny ? new long[][] {{64, 48, 80}} : new long[][] {{4096, 4096, 4096}, {8192, 768, 3072}, {8192, 3072, 768}, {8192, 50304, 768}};
        boolean wasTf32 = Gemm.cudaTf32();
        for (long[] s : gemms)
            for (String mode : new String[] {"fp32", "tf32", "bf16"})
                for (boolean vendor : new boolean[] {false, true}) {
                    if (mode.equals("bf16") && !vendor) continue;   // our kernels have no bf16 GEMM
                    if (vendor && CudaVendor.blas(cu) == null) continue;
                    try (Scope sc = Scope.confined()) {
                        Tensor a = Tensor.zeros(sc, Device.CUDA, s[0], s[2]), b = Tensor.zeros(sc, Device.CUDA, s[2], s[1]),
                                c = Tensor.zeros(sc, Device.CUDA, s[0], s[1]);
                        Precision p = mode.equals("bf16") ? Precision.BF16 : Precision.FP32;
                        Gemm.setCudaTf32(mode.equals("tf32"));
                        CudaVendor.force(vendor);
                        double ms = time(cu, reps, () -> Gemm.matmul(a, b, c, 1f, 0f, p));
                        rows.add(new Row("gemm_" + mode, s[0] + "x" + s[1] + "x" + s[2], vendor ? "cublas" : "ours", ms,
                                2.0 * s[0] * s[1] * s[2] / ms / 1e6));
                    } finally {
                        Gemm.setCudaTf32(wasTf32);
                        CudaVendor.force(null);
                    }
                }
        // cuBLASLt (issue 18, h-sdpa): the Linear layer's x W^T + b with the bias in cuBLASLt's BIAS epilogue, against the
        // cuBLAS GEMM then our bias kernel, and our GEMM then our bias kernel; and the plain GEMM on cuBLASLt (DEFAULT
        // epilogue) beside the cuBLAS rows above. s: rows N, out features, in features.
        long[][] linears = tiny ? new long[][] {{64, 48, 80}} : new long[][] {{8192, 3072, 768}, {8192, 768, 3072}, {8192, 2304, 768}};
        for (long[] s : linears)
            for (String path : new String[] {"ours", "cublas+bias", "cublaslt"}) {
                if (!path.equals("ours") && CudaVendor.blas(cu) == null) continue;
                if (path.equals("cublaslt") && CudaVendor.blasLt(cu) == null) continue;
                try (Scope sc = Scope.confined()) {
                    Tensor x = Tensor.zeros(sc, Device.CUDA, s[0], s[2]), w = Tensor.zeros(sc, Device.CUDA, s[1], s[2]),
                            b = Tensor.zeros(sc, Device.CUDA, s[1]), y = Tensor.zeros(sc, Device.CUDA, s[0], s[1]);
                    Tensor wt = w.transpose(0, 1), b2 = b.reshape(1, s[1]);
                    CudaVendor.force(!path.equals("ours"));
                    Runnable op = path.equals("cublaslt") ? () -> {
                        if (!Gemm.matmulBiasFused(x, wt, b, y, Precision.FP32)) throw new IllegalStateException("cuBLASLt did not serve");
                    } : () -> {
                        Gemm.matmul(x, wt, y, 1f, 0f, Precision.FP32);
                        Kernels.addRows(y, b2, y);
                    };
                    double ms = time(cu, reps, op);
                    rows.add(new Row("linear_bias_fp32", s[0] + "x" + s[1] + "x" + s[2], path, ms, 2.0 * s[0] * s[1] * s[2] / ms / 1e6));
                } finally {
                    CudaVendor.force(null);
                }
            }
        CuBlasLt lt = CudaVendor.blasLt(cu);
        if (lt != null)
            for (long[] s : gemms)
                for (CuBlas.Compute mode : CuBlas.Compute.values())
                    try (Scope sc = Scope.confined()) {
                        Tensor a = Tensor.zeros(sc, Device.CUDA, s[0], s[2]), b = Tensor.zeros(sc, Device.CUDA, s[2], s[1]),
                                c = Tensor.zeros(sc, Device.CUDA, s[0], s[1]);
                        long pa = DeviceBuffer.of(a.deviceBuffer()).address(), pb = DeviceBuffer.of(b.deviceBuffer()).address(),
                                pc = DeviceBuffer.of(c.deviceBuffer()).address();
                        // row-major C = A B as column-major C^T = B^T A^T (CuBlas's swap)
                        double ms = time(cu, reps, () -> lt.matmul(CuBlas.OP_N, CuBlas.OP_N, s[1], s[0], s[2], 1f, pb, s[1], pa, s[2], 0f, pc, s[1],
                                CuBlasLt.Epilogue.DEFAULT, 0, 0, 0, mode));
                        rows.add(new Row("gemm_" + mode.name().toLowerCase(Locale.ROOT), s[0] + "x" + s[1] + "x" + s[2], "cublaslt", ms,
                                2.0 * s[0] * s[1] * s[2] / ms / 1e6));
                    }
        // causal attention forward: cuDNN's SDPA (bf16 Q, K, V, O through the backend graph API) against our fp32 kernel;
        // gpu_bench.py times PyTorch's SDPA bf16 at the same shapes. s: B, NH, T, HS.
        long[][] atts = tiny ? new long[][] {{1, 2, 37, 16}} : new long[][] {{8, 12, 1024, 64}, {4, 16, 1024, 64}};
        for (long[] s : atts) {
            long n = s[0] * s[1] * s[2] * s[3];
            float scale = (float) (1 / Math.sqrt(s[3]));
            double flops = 4.0 * s[0] * s[1] * s[2] * s[2] * s[3] / 2;   // causal: half the scores
            String shape = "B" + s[0] + " NH" + s[1] + " T" + s[2] + " HS" + s[3];
            try (Scope sc = Scope.confined()) {
                Tensor q = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]), k = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]),
                        v = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]), o = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]),
                        lse = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2]);
                Tensor dout = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]), dq = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]),
                        dk = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]), dv = Tensor.zeros(sc, Device.CUDA, s[0], s[1], s[2], s[3]);
                CudaVendor.force(false);
                double ms = time(cu, reps, () -> AttentionKernels.attention(q, k, v, true, scale, o, lse));
                rows.add(new Row("attention_fwd", shape, "ours_fp32", ms, flops / ms / 1e6));
                double bms = time(cu, reps, () -> AttentionKernels.attentionBackward(q, k, v, o, lse, dout, true, scale, dq, dk, dv));
                rows.add(new Row("attention_bwd", shape, "ours_fp32", bms, 2.5 * flops / bms / 1e6));
            } finally {
                CudaVendor.force(null);
            }
            if (CudaVendor.attention(cu) != null)
                try (DeviceBuffer q = cu.alloc(2 * n); DeviceBuffer k = cu.alloc(2 * n); DeviceBuffer v = cu.alloc(2 * n);
                     DeviceBuffer o = cu.alloc(2 * n); DeviceBuffer lse = cu.alloc(4 * n / s[3])) {
                    for (DeviceBuffer d : new DeviceBuffer[] {q, k, v, o, lse}) d.zero();
                    double ms = time(cu, reps, () -> CudaVendor.attentionBf16(cu, s[0], s[1], s[2], s[3], scale, q, k, v, o, lse));
                    rows.add(new Row("attention_fwd", shape, "cudnn_sdpa_bf16", ms, flops / ms / 1e6));
                    try (DeviceBuffer dout = cu.alloc(2 * n); DeviceBuffer dq = cu.alloc(2 * n); DeviceBuffer dk = cu.alloc(2 * n);
                         DeviceBuffer dv = cu.alloc(2 * n)) {
                        dout.zero();
                        double bms = time(cu, reps, () -> CudaVendor.attentionBackwardBf16(cu, s[0], s[1], s[2], s[3], scale, q, k, v, o, dout,
                                lse, dq, dk, dv));
                        rows.add(new Row("attention_bwd", shape, "cudnn_sdpa_bf16", bms, 2.5 * flops / bms / 1e6));
                    }
                }
        }
        Conv.Geometry[] convs = tiny ? new Conv.Geometry[] {Conv.Geometry.of(2, 3, 8, 8, 4, 3, 1, 1)}
                : new Conv.Geometry[] {Conv.Geometry.of(64, 64, 32, 32, 128, 4, 2, 1), Conv.Geometry.of(64, 128, 16, 16, 256, 4, 2, 1),
                        Conv.Geometry.of(128, 32, 28, 28, 64, 3, 1, 1)};
        for (Conv.Geometry g : convs)
            for (boolean vendor : new boolean[] {false, true}) {
                if (vendor && CudaVendor.dnn(cu) == null) continue;
                try (Scope sc = Scope.confined()) {
                    Tensor x = Tensor.zeros(sc, Device.CUDA, g.inShape()), w = Tensor.zeros(sc, Device.CUDA, g.weightShape()),
                            y = Tensor.zeros(sc, Device.CUDA, g.outShape()), dx = Tensor.zeros(sc, Device.CUDA, g.inShape()),
                            dw = Tensor.zeros(sc, Device.CUDA, g.weightShape());
                    CudaVendor.force(vendor);
                    String path = vendor ? "cudnn" : "ours", shape = g.toString();
                    double f = time(cu, reps, () -> Conv.forward(g, x, w, null, y));
                    rows.add(new Row("conv_fwd", shape, path, f, g.flops() / f / 1e6));
                    double d = time(cu, reps, () -> Conv.backwardData(g, y, w, null, dx));
                    rows.add(new Row("conv_bwd_data", shape, path, d, g.flops() / d / 1e6));
                    double wt = time(cu, reps, () -> Conv.backwardWeight(g, x, y, dw, null, false));
                    rows.add(new Row("conv_bwd_weight", shape, path, wt, g.flops() / wt / 1e6));
                } finally {
                    CudaVendor.force(null);
                }
            }
        convAlgoRows(cu, convs, reps, rows);
        StringBuilder json = new StringBuilder("{\"device\": \"" + cu.describe() + "\", \"tiny\": " + tiny + ", \"rows\": [\n");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            System.out.printf(Locale.ROOT, "%-16s %-70s %-7s %9.3f ms %9.1f GFLOP/s%n", r.op, r.shape, r.path, r.ms, r.gflops);
            json.append(String.format(Locale.ROOT, "  {\"op\": \"%s\", \"shape\": \"%s\", \"path\": \"%s\", \"ms\": %.4f, \"gflops\": %.2f}%s%n",
                    r.op, r.shape, r.path, r.ms, r.gflops, i + 1 < rows.size() ? "," : ""));
        }
        json.append("]}\n");
        Files.writeString(Path.of(args[0]), json);
    }

    /**
     * cuDNN's algorithm pick (CuDnnAlgos) against the fixed algorithms, fp32, on the conv shapes: each pass with
     * LATENT_CUDNN_FIND=0 (path cudnn_fixed), the heuristics (cudnn_heuristic, the default) and the measured search
     * (cudnn_find), the algorithm that served after a colon; the search runs in the warm-up call, outside the timing.
     */
    static void convAlgoRows(Cuda cu, Conv.Geometry[] convs, int reps, List<Row> rows) {
        CudaVendor.force(true);
        CuDnn dnn = CudaVendor.dnn(cu);
        CudaVendor.force(null);
        if (dnn == null) return;
        for (Conv.Geometry g : convs)
            for (CuDnnAlgos.Mode m : CuDnnAlgos.Mode.values())
                try (Scope sc = Scope.confined()) {
                    Tensor x = Tensor.zeros(sc, Device.CUDA, g.inShape()), w = Tensor.zeros(sc, Device.CUDA, g.weightShape()),
                            y = Tensor.zeros(sc, Device.CUDA, g.outShape()), dx = Tensor.zeros(sc, Device.CUDA, g.inShape()),
                            dw = Tensor.zeros(sc, Device.CUDA, g.weightShape());
                    CudaVendor.force(true);
                    CuDnnAlgos.force(m, null);
                    CuDnn.Key key = new CuDnn.Key((int) g.n(), (int) g.c(), (int) g.h(), (int) g.w(), (int) g.k(), (int) g.r(), (int) g.s(),
                            (int) g.oh(), (int) g.ow(), g.strideH(), g.strideW(), g.padH(), g.padW(), CuDnn.CROSS_CORRELATION);
                    String path = "cudnn_" + (m == CuDnnAlgos.Mode.FIXED ? "fixed" : m == CuDnnAlgos.Mode.HEURISTIC ? "heuristic" : "find");
                    double f = time(cu, reps, () -> Conv.forward(g, x, w, null, y));
                    rows.add(new Row("conv_fwd", g.toString(), path + ":" + served(dnn, CuDnnAlgos.Pass.FORWARD, key), f, g.flops() / f / 1e6));
                    double d = time(cu, reps, () -> Conv.backwardData(g, y, w, null, dx));
                    rows.add(new Row("conv_bwd_data", g.toString(), path + ":" + served(dnn, CuDnnAlgos.Pass.BACKWARD_DATA, key), d,
                            g.flops() / d / 1e6));
                    double wt = time(cu, reps, () -> Conv.backwardWeight(g, x, y, dw, null, false));
                    rows.add(new Row("conv_bwd_weight", g.toString(), path + ":" + served(dnn, CuDnnAlgos.Pass.BACKWARD_FILTER, key), wt,
                            g.flops() / wt / 1e6));
                } finally {
                    CuDnnAlgos.force(null, null);
                    CudaVendor.force(null);
                }
    }

    private static String served(CuDnn dnn, CuDnnAlgos.Pass p, CuDnn.Key key) {
        CuDnnAlgos.Algo a = dnn.algos.picked(p, key, false);
        return p.name(a == null ? p.fixed : a.algo());
    }

    /** Median milliseconds per call over 5 groups of {@code reps} calls (one warm-up group first). */
    static double time(Cuda cu, int reps, Runnable op) {
        op.run();
        cu.synchronize();
        double[] ms = new double[5];
        for (int g = 0; g < ms.length; g++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < reps; i++) op.run();
            cu.synchronize();
            ms[g] = (System.nanoTime() - t0) / 1e6 / reps;
        }
        Arrays.sort(ms);
        return ms[ms.length / 2];
    }
}
