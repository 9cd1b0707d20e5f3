package dev.latent.train;

import dev.latent.tensor.Device;

import java.io.IOException;
import java.nio.file.Path;

/** Opens {@link ResumeBitIdentityTest}'s GPT check to the CUDA tests (another package). */
public final class ResumeBitIdentityTestAccess {
    private ResumeBitIdentityTestAccess() {}

    public static void gptResumes(Path root, Device device) throws IOException { ResumeBitIdentityTest.gptResumes(root, device); }

    /** Every tensor and the step metadata of two checkpoints are equal, bit for bit. */
    public static void sameCheckpoint(Path a, Path b) throws IOException { ResumeBitIdentityTest.sameCheckpoint(a, b); }
}
