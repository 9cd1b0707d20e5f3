package dev.latent.train;

import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * The training precision of a run, as the trainers check it and their checkpoints record it (issue 15). Every
 * checkpoint of a {@link TrainLoop.Family} whose {@link TrainLoop.Family#metadata()} holds {@value #KEY} records it
 * there ("fp32", "tf32" or "bf16"); a checkpoint without it was written before it was recorded and reads as FP32, so old
 * checkpoints load unchanged. {@link TrainLoop#restore} refuses to resume a run at another precision than its
 * checkpoint's. (GPT records it in its checkpoint's args instead: GptCheckpoint.Loaded.precision.)
 */
public final class TrainingPrecision {
    private TrainingPrecision() {}

    /** The metadata key. */
    public static final String KEY = "precision";

    /** The precision {@code metadata} records: FP32 when absent; an unknown name is refused naming the file. */
    public static Precision of(Path file, Map<String, String> metadata) throws IOException {
        String v = metadata.get(KEY);
        if (v == null) return Precision.FP32;
        try {
            return Precision.of(v);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": metadata " + KEY + " = \"" + v + "\", expected fp32, tf32 or bf16");
        }
    }

    /**
     * Null when {@code p} can run on {@code device}, else a one-line reason: TF32 is CUDA-only; BF16 on the CPU needs
     * AVX512_BF16 at ISA avx512 (never emulated); on CUDA every precision runs (our kernels when no vendor library
     * serves). The check a training command makes before it reads data. (Here, not on {@link Precision}: the tensor
     * package sits below the CPU's feature detection.)
     */
    public static String unavailable(Precision p, Device device) {
        java.util.Objects.requireNonNull(p, "precision");
        if (device == null) throw new IllegalArgumentException("device is null");
        if (p == Precision.TF32 && device != Device.CUDA)
            return "tf32 precision is CUDA-only (TF32 tensor-core math): " + device + " has no TF32 arithmetic; use --precision fp32"
                    + " or bf16 on the CPU";
        if (p == Precision.BF16 && device == Device.CPU) {
            String why = dev.latent.Latent.bf16UnavailableReason();
            return why.isEmpty() ? null : why;
        }
        return null;
    }

    /**
     * Refuses {@code p} for a trainer of {@code model} on {@code device} where it cannot run, before any data is read;
     * the same as {@link #requireRunnable(String, Precision, Device, boolean)} for a model not checked at reduced
     * precision on CUDA.
     */
    public static Precision requireRunnable(String model, Precision p, Device device) {
        return requireRunnable(model, p, device, false);
    }

    /**
     * Refuses {@code p} for a trainer of {@code model} on {@code device} where it cannot run, before any data is read:
     * TF32 off CUDA; BF16 on a CPU without AVX512_BF16 at ISA avx512 (never emulated); TF32 and BF16 on CUDA unless
     * {@code cudaChecked} (the model's training at reduced precision is tested on the emulated driver: gpt, vae, dcgan,
     * wgan-gp, realnvp, glow; issue 18). Returns p.
     */
    public static Precision requireRunnable(String model, Precision p, Device device, boolean cudaChecked) {
        java.util.Objects.requireNonNull(p, "precision");
        java.util.Objects.requireNonNull(device, "device");
        if (p == Precision.FP32) return p;
        if (device == Device.CUDA) {
            if (!cudaChecked)
                throw new IllegalArgumentException(model + ": " + p.id() + " precision on CUDA is not checked for this model (on CUDA: gpt, "
                        + "vae, dcgan, wgan-gp, realnvp, glow); use fp32, or bf16 on a CPU with AVX512_BF16");
            return p;
        }
        if (p == Precision.TF32) throw new IllegalArgumentException(model + ": " + unavailable(p, device));
        String why = dev.latent.ops.Gemm.bf16Unavailable();
        if (why != null) throw new IllegalStateException(model + ": " + why);
        return p;
    }
}
