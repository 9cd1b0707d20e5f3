package dev.latent.cuda;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** Without a GPU (this project's CI machines): a clear, cached reason, and callers stay on the CPU. */
class CudaUnavailableTest {
    @Test
    void saysWhyAndCachesIt() {
        assumeFalse(Cuda.available(), "a CUDA device is present: CudaGpuTest covers it");
        String reason = Cuda.unavailableReason();
        assertTrue(reason.startsWith("CUDA unavailable: "), reason);
        assertTrue(reason.contains("libcuda.so.1") || reason.contains("driver") || reason.contains("device")
                || reason.contains("fatbin"), reason);
        assertSame(reason, Cuda.unavailableReason(), "the probe runs once and its answer is cached");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, Cuda::get);
        assertEquals(reason, e.getMessage());
    }

    @Test
    void cudaTensorsSayWhyTheyCannotExist() {
        assumeFalse(Cuda.available(), "a CUDA device is present: CudaTensorTest covers it");
        try (Scope s = Scope.confined()) {
            for (var make : java.util.List.<org.junit.jupiter.api.function.Executable>of(() -> Tensor.zeros(s, Device.CUDA, 2),
                    () -> Tensor.empty(s, Device.CUDA, 2), () -> Tensor.zeros(s, 2).to(s, Device.CUDA))) {
                UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, make);
                assertEquals(Cuda.unavailableReason(), e.getMessage());
            }
            assertEquals(0, Scope.liveDeviceBytes());
        }
    }
}
