package dev.latent.cli;

import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import picocli.CommandLine.Option;

/**
 * {@code --precision fp32|tf32|bf16} on every {@code train} command (issues 15 and 18). Master weights, optimizer
 * state and reductions stay fp32 at every precision. tf32 (CUDA only) runs the GEMMs and convolutions with TF32
 * tensor-core math (operands rounded to a 10-bit mantissa, fp32 accumulation). bf16 rounds the operands of the
 * matmuls, convolutions and attention to bf16 with fp32 accumulation: on the CPU it needs AVX512_BF16 at ISA avx512,
 * on CUDA it always runs (cuBLAS with bf16 inputs where found, else our kernels). A precision that cannot run on the
 * chosen device is refused in one line, before any data is read; never emulated. Every train command takes it; each
 * checkpoint records it (old ones read as fp32). On CUDA every train command with --device runs tf32 and bf16 (each
 * checked against fp32 on the emulated driver), the 2-D toys (toy-gan, flow-toy) included.
 */
final class PrecisionOption {
    @Option(names = "--precision", description = "one of ${COMPLETION-CANDIDATES}: tf32 = TF32 tensor-core GEMM/conv (CUDA only); bf16 = bf16 operands of matmul/conv/attention with fp32 accumulation (CPU with AVX512_BF16, or CUDA); fp32 master weights and optimizer state always (default: ${DEFAULT-VALUE})")
    Choices.Precision precision = Choices.Precision.FP32;

    /** The value (picocli refuses a name outside the set, naming the option and the valid names). */
    Precision get() {
        return precision.precision;
    }

    /** A copy holding {@code p}. */
    PrecisionOption with(Precision p) {
        PrecisionOption o = new PrecisionOption();
        o.precision = Choices.Precision.of(p);
        return o;
    }

    /** {@link #get()}, refused where it cannot run on {@code device}: tf32 off CUDA; bf16 on a CPU without AVX512_BF16 (or below ISA avx512). */
    Precision runnable(Device device) {
        Precision p = get();
        String why = dev.latent.train.TrainingPrecision.unavailable(p, device);
        if (why != null) throw new IllegalArgumentException("--precision " + p.id() + " refused: " + why);
        return p;
    }
}
