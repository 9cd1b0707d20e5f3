package dev.latent.bench;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.AttentionKernels;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * W2: causal attention forward and forward+backward, ours vs PyTorch's SDPA in the same run. FLOPs: the
 * causal useful work, half the full square (2*B*NH*T^2*HS forward; forward+backward 3x that, as PyTorch's
 * script counts it), so "% of peak" is of work actually needed; "gflops_full_square" is the nominal
 * dense count PyTorch's report uses.
 */
public final class AttentionWorkload {
    private AttentionWorkload() {}

    /** {B, NH, T, HS}: W2, then the longer and wider variants the issue asks for. */
    static final int[][] SHAPES = {{8, 6, 256, 64}, {8, 6, 1024, 64}, {8, 6, 256, 128}};

    public static List<Map<String, Object>> run(int threads, int reps, boolean peer, Consumer<String> log) throws Exception {
        return run(threads, reps, peer, false, log);
    }

    /** bf16: also time lt_attention_*_bf16 (Kernels at Precision.BF16) on the same inputs, reported as impl "latent-bf16". */
    public static List<Map<String, Object>> run(int threads, int reps, boolean peer, boolean bf16, Consumer<String> log) throws Exception {
        LatentNative nat = LatentNative.get();
        int saved = nat.numThreads();
        nat.setNumThreads(threads);
        List<Map<String, Object>> out = new ArrayList<>();
        try (Scope s = Scope.confined()) {
            double peak = Ceilings.fmaPeak(threads, 5);
            log.accept(String.format("fma peak, %d thread(s): %.1f GFLOP/s", threads, peak));
            for (int[] sh : SHAPES) {
                long b = sh[0], nh = sh[1], t = sh[2], hs = sh[3];
                Tensor q = Tensor.rand(s, 1, 0, b, nh, t, hs), k = Tensor.rand(s, 1, 1, b, nh, t, hs), v = Tensor.rand(s, 1, 2, b, nh, t, hs);
                Tensor o = Tensor.zeros(s, b, nh, t, hs), lse = Tensor.zeros(s, b, nh, t), d = Tensor.rand(s, 1, 3, b, nh, t, hs);
                Tensor dq = Tensor.zeros(s, b, nh, t, hs), dk = Tensor.zeros(s, b, nh, t, hs), dv = Tensor.zeros(s, b, nh, t, hs);
                float scale = (float) (1 / Math.sqrt(hs));
                double fwdFlops = 4.0 * b * nh * t * t * hs;
                String shape = "B=" + b + " NH=" + nh + " T=" + t + " HS=" + hs + " causal";
                double f = GemmWorkload.time(() -> AttentionKernels.attention(q, k, v, true, scale, o, lse), reps);
                double fb = GemmWorkload.time(() -> {
                    AttentionKernels.attention(q, k, v, true, scale, o, lse);
                    AttentionKernels.attentionBackward(q, k, v, o, lse, d, true, scale, dq, dk, dv);
                }, reps);
                out.add(rec(shape, "latent", "fwd", threads, f, fwdFlops, peak, null));
                out.add(rec(shape, "latent", "fwd+bwd", threads, fb, 3 * fwdFlops, peak, null));
                log.accept(String.format("attention %s: fwd %.2f ms (%.1f%% of peak, causal half counted), fwd+bwd %.2f ms (%.1f%%)",
                        shape, f, 50 * fwdFlops / f / 1e6 / peak, fb, 50 * 3 * fwdFlops / fb / 1e6 / peak));
                double bf = 0, bfb = 0;
                if (bf16) {
                    bf = GemmWorkload.time(() -> AttentionKernels.attention(q, k, v, true, scale, o, lse, Precision.BF16), reps);
                    bfb = GemmWorkload.time(() -> {
                        AttentionKernels.attention(q, k, v, true, scale, o, lse, Precision.BF16);
                        AttentionKernels.attentionBackward(q, k, v, o, lse, d, true, scale, dq, dk, dv, Precision.BF16);
                    }, reps);
                    out.add(rec(shape, "latent-bf16", "fwd", threads, bf, fwdFlops, peak, null));
                    out.add(rec(shape, "latent-bf16", "fwd+bwd", threads, bfb, 3 * fwdFlops, peak, null));
                    log.accept(String.format("attention bf16 %s: fwd %.2f ms (%.2fx fp32), fwd+bwd %.2f ms (%.2fx fp32)",
                            shape, bf, f / bf, bfb, fb / bfb));
                }
                if (peer && sh == SHAPES[0]) {
                    TorchPeer tp = TorchPeer.find();
                    if (tp != null) {
                        Map<String, Double> ms = tp.run("bench_kernels.py", "W2", threads);
                        Double pf = ms.get("W2.sdpa_fwd"), pfb = ms.get("W2.sdpa_fwdbwd");
                        if (pf != null) out.add(rec(shape, "pytorch-sdpa", "fwd", threads, pf, fwdFlops, peak, pf / f));
                        if (pfb != null) out.add(rec(shape, "pytorch-sdpa", "fwd+bwd", threads, pfb, 3 * fwdFlops, peak, pfb / fb));
                        log.accept(String.format("pytorch sdpa: fwd %.2f ms (latent %.2fx), fwd+bwd %.2f ms (latent %.2fx)",
                                pf, pf / f, pfb, pfb / fb));
                        if (bf16) {
                            if (pf != null) out.add(rec(shape, "pytorch-sdpa-vs-bf16", "fwd", threads, pf, fwdFlops, peak, pf / bf));
                            if (pfb != null) out.add(rec(shape, "pytorch-sdpa-vs-bf16", "fwd+bwd", threads, pfb, 3 * fwdFlops, peak, pfb / bfb));
                            log.accept(String.format("pytorch sdpa vs latent bf16: fwd %.2fx, fwd+bwd %.2fx", pf / bf, pfb / bfb));
                        }
                    }
                }
            }
        } finally {
            nat.setNumThreads(saved);
        }
        return out;
    }

    private static Map<String, Object> rec(String shape, String impl, String pass, int threads, double ms, double flops, double peak, Double speedup) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("workload", "attention");
        r.put("shape", shape);
        r.put("pass", pass);
        r.put("impl", impl);
        r.put("threads", threads);
        r.put("ms", ms);
        r.put("gflops", flops / 2 / ms / 1e6);
        r.put("gflops_full_square", flops / ms / 1e6);
        r.put("pct_peak", 100 * flops / 2 / ms / 1e6 / peak);
        r.put("flops_count", "causal half");
        if (speedup != null) r.put("latent_speedup", speedup);
        return r;
    }
}
