package dev.latent.cuda;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.refIsa;
import static dev.latent.cuda.CudaTesting.restoreIsa;

/**
 * Base of the kernel-by-kernel tests: the backend ({@link CudaTesting#device}: skip only without a GPU and without the
 * emulated driver) and the CPU library at ISA ref for the duration of the class, as the emulation tests compare.
 */
abstract class AtRefIsaOnDevice {
    static Cuda cu;
    static int isa;

    @BeforeAll
    static void setUpDevice() {
        cu = device();
        isa = refIsa();
    }

    @AfterAll
    static void restoreCpuIsa() { if (cu != null) restoreIsa(isa); }
}
