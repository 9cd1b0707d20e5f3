package dev.latent.cuda;

import dev.latent.nativ.NativeException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The backend's error paths against a driver (the emulated one in the cuda-emulated execution, a GPU's where there
 * is one): driver errors become NativeException naming the call and the driver's own error name, Java-side misuse
 * an IllegalArgumentException / IllegalStateException before any driver call.
 */
class CudaDriverErrorsTest {
    @BeforeAll
    static void needBackend() {
        if (System.getProperty("latent.cuda.driver") != null) assertTrue(Cuda.available(), Cuda::unavailableReason);
        else assumeTrue(Cuda.available(), Cuda::unavailableReason);
    }

    @Test
    void unknownKernelNamesTheCallAndTheDriverError() {
        NativeException e = assertThrows(NativeException.class,
                () -> Cuda.get().launch("ltk_no_such_kernel", new int[] {1, 1, 1}, new int[] {1, 1, 1}, 0));
        assertTrue(e.getMessage().contains("ltk_no_such_kernel") && e.getMessage().contains("CUDA_ERROR_NOT_FOUND"), e.getMessage());
    }

    @Test
    void badLaunchGeometryIsRefusedByTheDriver() {
        Cuda cu = Cuda.get();
        try (DeviceBuffer y = cu.alloc(64 * 4L); DeviceBuffer x = cu.alloc(64 * 4L)) {
            NativeException e = assertThrows(NativeException.class,   /* 2048 threads per block: over the limit */
                    () -> cu.launch("ltk_axpby", new int[] {1, 1, 1}, new int[] {2048, 1, 1}, 0, 64L, 1f, x, 0f, y));
            assertTrue(e.getMessage().contains("CUDA_ERROR_INVALID_VALUE"), e.getMessage());
        }
    }

    @Test
    void misuseIsCaughtInJava() {
        Cuda cu = Cuda.get();
        DeviceBuffer b = cu.alloc(16);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment big = a.allocate(JAVA_FLOAT, 5);
            assertThrows(IllegalArgumentException.class, () -> b.copyFrom(big), "20 bytes into 16");
            assertThrows(IllegalArgumentException.class, () -> b.copyTo(big), "20 bytes out of 16");
            assertThrows(IllegalArgumentException.class, () -> cu.alloc(0));
            assertThrows(IllegalArgumentException.class,
                    () -> cu.launch("ltk_axpby", new int[] {1, 1, 1}, new int[] {32, 1, 1}, 0, 4L, "not a number", b, 0f, b));
            b.close();
            b.close();   /* idempotent */
            assertThrows(IllegalStateException.class, () -> b.copyFrom(a.allocate(4)), "use after close");
        }
    }
}
