package dev.latent.cli;

import dev.latent.Latent;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import picocli.CommandLine.Option;

/**
 * {@code --precision fp32|bf16} on every {@code train} command (issue 15). bf16 rounds the matmul operands to bf16 (fp32
 * accumulation; master weights, optimizer state and reductions stay fp32) and needs AVX512_BF16 at ISA avx512: it is
 * refused, in one line, before any data is read, where it cannot run (another device, no AVX512_BF16, ISA below
 * avx512); never emulated. Every train command takes it; each checkpoint records it (old ones read as fp32).
 */
final class PrecisionOption {
    @Option(names = "--precision", description = "one of ${COMPLETION-CANDIDATES}: bf16 rounds the matmul operands to bf16 with fp32 accumulation (CPU with AVX512_BF16; default: ${DEFAULT-VALUE})")
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

    /** {@link #get()}, with bf16 refused unless this CPU and ISA run it, on the CPU. */
    Precision runnable(Device device) {
        Precision p = get();
        if (p != Precision.BF16) return p;
        if (device != Device.CPU)
            throw new IllegalArgumentException("--precision bf16 is CPU-only (AVX512_BF16): " + device + " has no bf16 path yet; use --precision fp32");
        String why = Latent.bf16UnavailableReason();
        if (!why.isEmpty()) throw new IllegalArgumentException("--precision bf16 refused: " + why);
        return p;
    }
}
