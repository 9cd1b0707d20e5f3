package dev.latent.bench;

import dev.latent.cli.CommandProvider;
import dev.latent.io.Json;
import dev.latent.nativ.LatentNative;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code latent bench <workload> [--json]}: ours, peers found on the classpath, and the ceilings, one run. Lives here,
 * beside the workloads, and reaches the CLI through {@link Provider} (a {@link CommandProvider} service), so latent-cli
 * does not depend on this module.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmark a workload against this machine's measured ceilings and any peer on the classpath.")
public final class BenchCommand implements Runnable {
    /** Adds {@code bench} to {@code latent} when this module is on the class path. */
    public static final class Provider implements CommandProvider {
        @Override
        public Object command() {
            return new BenchCommand();
        }
    }

    @Parameters(index = "0", description = "workload: gemm | attention | gpt | decode | stream | reparam | conv | dcgan | vae | realnvp | peak")
    String workload;

    @Option(names = "--json", description = "print one JSON object per result on stdout (progress goes to stderr)")
    boolean json;

    @Option(names = "--threads", split = ",", description = "thread counts to run (default: 1,2)")
    int[] threads = {1, 2};

    @Option(names = "--no-peer", description = "skip the PyTorch reference peer even when it is installed")
    boolean noPeer;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--precision", description = "attention | gpt only: bf16 also times our bf16 path (AVX512_BF16: bf16 operands, fp32 "
            + "accumulation) beside fp32 and the peer in the same run; fp32 (default) times fp32 only")
    String precision = "fp32";

    @Option(names = "--reps", description = "timed repetitions per measurement; the median is reported (stream: seconds per load level) (default: ${DEFAULT-VALUE})")
    int reps = 10;

    @Override
    public void run() {
        try {
            run0();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    private void run0() throws Exception {
        if (reps < 1) throw new IllegalArgumentException("--reps must be >= 1, got " + reps);
        for (int t : threads) if (t < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + t);
        if (!precision.equals("fp32") && !precision.equals("bf16"))   // a value outside the fixed set: a usage error (exit 2)
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "Invalid value for option '--precision': expected one of [fp32, bf16] but was '" + precision + "'");
        boolean bf16 = precision.equals("bf16");
        if (bf16 && !workload.equals("attention") && !workload.equals("gpt"))
            throw new IllegalArgumentException("--precision bf16: only the attention and gpt workloads have a bf16 run");
        if (bf16) dev.latent.ops.Gemm.requireBf16();
        LatentNative nat = LatentNative.get();
        System.err.printf("latent bench %s: ISA %s, library %s%n", workload, LatentNative.isaName(nat.isa()), nat.path());
        List<Map<String, Object>> results = switch (workload) {
            case "gemm" -> GemmWorkload.run(threads, reps, json ? System.err::println : System.out::println);
            case "attention" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(AttentionWorkload.run(t, reps, !noPeer, bf16, log()));
                yield all;
            }
            case "gpt" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(GptWorkload.run(t, Math.max(3, reps), !noPeer, bf16, log()));
                yield all;
            }
            case "reparam" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(ReparamWorkload.run(t, reps, log()));
                yield all;
            }
            case "conv" -> ConvWorkload.run(threads, reps, log());
            case "dcgan" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(DcganWorkload.run(t, Math.max(3, reps), !noPeer, log()));
                yield all;
            }
            case "vae" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(VaeWorkload.run(t, Math.max(5, reps), !noPeer, log()));
                yield all;
            }
            case "realnvp" -> {
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(RealNvpWorkload.run(t, Math.max(5, reps), !noPeer, log()));
                yield all;
            }
            case "peak" -> peak();
            case "stream" -> {   // S1: streaming first-token latency of GptGenerator under load (dev.latent.bench.StreamWorkload)
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(dev.latent.bench.StreamWorkload.run(t, new int[] {1, 8, 32, 64}, Math.max(1, reps), log()));
                yield all;
            }
            case "decode" -> {   // S2: KV-cache decoding at batch 1 and 16 against PyTorch's loop (dev.latent.bench.DecodeWorkload)
                List<Map<String, Object>> all = new java.util.ArrayList<>();
                for (int t : threads) all.addAll(dev.latent.bench.DecodeWorkload.run(t, new int[] {1, 16}, Math.max(3, Math.min(reps, 7)), !noPeer, log()));
                yield all;
            }
            default -> throw new IllegalArgumentException("unknown workload '" + workload + "' (gemm | attention | gpt | decode | stream | reparam | conv | dcgan | vae | realnvp | peak)");
        };
        if (json) results.forEach(r -> System.out.println(Json.object(r)));
    }

    private java.util.function.Consumer<String> log() { return json ? System.err::println : System.out::println; }

    private List<Map<String, Object>> peak() {
        List<Map<String, Object>> out = new java.util.ArrayList<>();
        dev.latent.nativ.LatentNative nat = dev.latent.nativ.LatentNative.get();
        boolean avx512 = nat.isa() >= dev.latent.nativ.LatentNative.ISA_AVX512, bf16 = avx512 && nat.cpuBf16();
        for (int t : threads) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("workload", "peak");
            r.put("threads", t);
            r.put("isa", dev.latent.nativ.LatentNative.isaName(nat.isa()));
            r.put("fma_gflops", Ceilings.fmaPeak(t, 5)); // AVX2 FMA (ymm), the name kept for older readers
            r.put("avx2_fma_gflops", r.get("fma_gflops"));
            if (avx512) r.put("avx512_fma_gflops", Ceilings.avx512FmaPeak(t, 5));
            if (bf16) r.put("bf16_dot_gflops", Ceilings.bf16Peak(t, 5));
            r.put("triad_gbs", Ceilings.triad(t, 5));
            out.add(r);
            if (!json)
                System.out.printf("peak, %d thread(s): AVX2 FMA %.1f GFLOP/s, AVX-512 FMA %s, bf16 dot (vdpbf16ps) %s, triad %.1f GB/s%n", t,
                        r.get("avx2_fma_gflops"), avx512 ? String.format("%.1f GFLOP/s", r.get("avx512_fma_gflops")) : "n/a (ISA " + r.get("isa") + ")",
                        bf16 ? String.format("%.1f GFLOP/s", r.get("bf16_dot_gflops")) : "n/a (" + (avx512 ? "no AVX512_BF16" : "ISA " + r.get("isa")) + ")",
                        r.get("triad_gbs"));
        }
        return out;
    }
}
