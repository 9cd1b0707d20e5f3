package dev.latent.tensor;

import dev.latent.nativ.LatentNative;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tensor layer's service: found once (the library's provider in ops), and Tensor.rand gives the kernel's bits through it. */
class TensorSupportTest {
    @Test
    void theLibraryProviderIsFoundOnce() {
        TensorSupport s = Support.get();
        assertEquals("dev.latent.ops.TensorSupportProvider", s.getClass().getName());
        assertTrue(s == Support.get(), "looked up once");
    }

    @Test
    void randIsThePhiloxKernelsBits() {
        try (Scope scope = Scope.confined(); Arena a = Arena.ofConfined()) {
            float[] viaTensor = Tensor.rand(scope, 42, 3, 5, 7).toArray();
            MemorySegment direct = a.allocate(ValueLayout.JAVA_FLOAT, 35);
            LatentNative.get().randUniform(direct, 35, 42, 3);
            assertArrayEquals(direct.toArray(ValueLayout.JAVA_FLOAT), viaTensor);
        }
    }
}
