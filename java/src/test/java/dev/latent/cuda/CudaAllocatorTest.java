package dev.latent.cuda;

import dev.latent.nativ.NativeException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The caching device allocator behind Cuda.alloc: size classes, reuse without cuMemAlloc, empty cache, OOM. */
class CudaAllocatorTest {
    @Test
    void sizeClasses() {
        for (long b : new long[] {1, 511, 512, 513, 4000, 1 << 20, (1 << 20) + 1, 3_000_000, 1L << 30, (1L << 30) + 7}) {
            long c = Cuda.sizeClass(b);
            assertTrue(c >= b, b + " -> " + c);
            if (b <= 1 << 20) assertEquals(0, c % 512, b + " -> " + c);
            else assertTrue(c <= b + b / 4, b + " -> " + c + ": more than 25% slack");
            assertEquals(c, Cuda.sizeClass(c), "a class is its own class");
        }
        assertEquals(512, Cuda.sizeClass(1));
        assertEquals(1_310_720, Cuda.sizeClass((1 << 20) + 1));
    }

    @Test
    void freedBlocksAreReusedWithoutTheDriver() {
        Cuda cu = CudaTesting.device();
        cu.emptyCache();
        Cuda.MemoryStats s0 = cu.memoryStats();
        long addr;
        try (DeviceBuffer a = cu.alloc(1000)) {
            addr = a.address();
            assertEquals(1000, a.byteSize(), "the buffer keeps the size asked for (bounds checks use it)");
        }
        Cuda.MemoryStats s1 = cu.memoryStats();
        assertEquals(s0.driverAllocs() + 1, s1.driverAllocs());
        assertEquals(s0.cachedBytes() + 1024, s1.cachedBytes());
        try (DeviceBuffer b = cu.alloc(600)) {   /* same class (1024): the same block, no cuMemAlloc */
            assertEquals(addr, b.address());
            Cuda.MemoryStats s2 = cu.memoryStats();
            assertEquals(s1.driverAllocs(), s2.driverAllocs());
            assertEquals(s1.reuses() + 1, s2.reuses());
            assertEquals(s0.cachedBytes(), s2.cachedBytes());
            b.close();
            b.close();   /* closing twice returns the block once */
        }
        assertEquals(s1.cachedBytes(), cu.memoryStats().cachedBytes());
        cu.emptyCache();
        assertEquals(0, cu.memoryStats().cachedBytes());
    }

    @Test
    void outOfMemoryEmptiesTheCacheAndSaysSo() {
        Cuda cu = CudaTesting.device();
        cu.alloc(4096).close();
        assertTrue(cu.memoryStats().cachedBytes() > 0);
        NativeException e = assertThrows(NativeException.class, () -> cu.alloc(1L << 52));
        assertEquals(2, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("cuMemAlloc"), e.getMessage());
        assertEquals(0, cu.memoryStats().cachedBytes(), "the cache went back to the driver before the retry");
    }
}
