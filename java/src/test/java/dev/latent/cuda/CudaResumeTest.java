package dev.latent.cuda;

import dev.latent.tensor.Device;
import dev.latent.train.ResumeBitIdentityTestAccess;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.latent.cuda.CudaTesting.device;

/**
 * Resume on the device: the checkpoint (host copies) is restored straight into the weights and AdamW moments the model
 * and optimizer hold on CUDA (the flat buffers the optimizer packed there), and the resumed run ends with the bits of an
 * uninterrupted one on the device.
 */
class CudaResumeTest {
    @BeforeAll
    static void setUp() { device(); }

    @Test
    void gptResumesOnTheDevice(@TempDir Path dir) throws Exception { ResumeBitIdentityTestAccess.gptResumes(dir, Device.CUDA); }
}
