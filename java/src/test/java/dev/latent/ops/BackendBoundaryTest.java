package dev.latent.ops;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ops boundary (issue 16): one device check picks the backend; the checks are made once, for both devices. */
class BackendBoundaryTest {
    @Test
    void picksTheBackendOfTheTensorsDevice() {
        assertSame(CpuBackend.INSTANCE, Backend.of(Device.CPU));
        assertSame(CudaBackend.INSTANCE, Backend.of(Device.CUDA));
        try (Scope s = Scope.confined()) {
            Tensor a = Tensor.zeros(s, 2, 3), b = Tensor.zeros(s, 2, 3);
            assertSame(CpuBackend.INSTANCE, Backend.on("op", a, null, b));
            assertSame(CpuBackend.INSTANCE, Backend.on("op", (Tensor) null));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backend.on("op", a, Tensor.zeros(s, 3, 2).transpose(0, 1)));
            assertTrue(e.getMessage().startsWith("op: needs contiguous tensors"), e.getMessage());
        }
    }

    @Test
    void embeddingChecksEveryIdBeforeCopyingAnyRow() {
        try (Scope s = Scope.confined(); Arena a = Arena.ofConfined()) {
            Tensor table = Tensor.of(s, new float[] {1, 2, 3, 4, 5, 6}, 3, 2), out = Tensor.zeros(s, 2, 2);
            MemorySegment ids = a.allocateFrom(JAVA_INT, 1, 3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Kernels.embedding(ids, table, out));
            assertTrue(e.getMessage().contains("id 3 at position 1 outside [0, 3)"), e.getMessage());
            assertArrayEquals(new float[4], out.toArray(), "no row copied before the check failed");
            Kernels.embedding(a.allocateFrom(JAVA_INT, 2, 0), table, out);
            assertArrayEquals(new float[] {5, 6, 1, 2}, out.toArray());
        }
    }

    @Test
    void embeddingBackwardChecksIdsOnTheCpuToo() {
        try (Scope s = Scope.confined(); Arena a = Arena.ofConfined()) {
            Tensor dout = Tensor.of(s, new float[] {1, 2, 3, 4}, 2, 2), dtable = Tensor.zeros(s, 3, 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Kernels.embeddingBackward(a.allocateFrom(JAVA_INT, 0, -1), dout, dtable));
            assertTrue(e.getMessage().contains("embeddingBackward: id -1 at position 1"), e.getMessage());
            Kernels.embeddingBackward(a.allocateFrom(JAVA_INT, 2, 2), dout, dtable);
            assertArrayEquals(new float[] {0, 0, 0, 0, 4, 6}, dtable.toArray());
        }
    }
}
