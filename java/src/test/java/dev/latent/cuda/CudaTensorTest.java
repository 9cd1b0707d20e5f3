package dev.latent.cuda;

import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaTesting.device;
import static org.junit.jupiter.api.Assertions.*;

/** Tensors on Device.CUDA: creation, copies both ways, views with offsets, no host access, lifetimes owned by the scope. */
class CudaTensorTest {
    static Cuda cu;

    @BeforeAll
    static void setUp() { cu = device(); }

    private static float[] iota(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = i * 0.5f - 3;
        return v;
    }

    @Test
    void createCopyAndCopyBack() {
        try (Scope s = Scope.confined()) {
            Tensor z = Tensor.zeros(s, Device.CUDA, 3, 5);
            assertEquals(Device.CUDA, z.device());
            assertArrayEquals(new float[15], z.toArray());
            Tensor h = Tensor.of(s, iota(15), 3, 5);
            Tensor d = h.to(s, Device.CUDA);
            assertEquals(Device.CUDA, d.device());
            assertArrayEquals(iota(15), d.toArray());
            Tensor back = d.to(s, Device.CPU);
            assertEquals(Device.CPU, back.device());
            assertArrayEquals(iota(15), back.toArray());
            Tensor d2 = d.to(s, Device.CUDA);   /* device to device: a copy, not an alias */
            assertNotEquals(d.storageAddress(), d2.storageAddress());
            assertArrayEquals(iota(15), d2.toArray());
            assertArrayEquals(iota(6), Tensor.of(s, Device.CUDA, iota(6), 2, 3).toArray());
            assertEquals(0, Tensor.empty(s, Device.CUDA, 0, 4).toArray().length);
        }
    }

    @Test
    void hostAccessToDeviceMemoryIsRefused() {
        try (Scope s = Scope.confined()) {
            Tensor d = Tensor.zeros(s, Device.CUDA, 4);
            for (var call : java.util.List.<org.junit.jupiter.api.function.Executable>of(d::storage, d::segment, () -> d.get(0), () -> d.set(1f, 0))) {
                IllegalStateException e = assertThrows(IllegalStateException.class, call);
                assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
            }
            Tensor h = Tensor.zeros(s, 4);
            assertThrows(IllegalStateException.class, h::deviceBuffer);
        }
    }

    @Test
    void viewsShareTheBufferAtAnOffset() {
        try (Scope s = Scope.confined()) {
            Tensor d = Tensor.of(s, Device.CUDA, iota(24), 4, 6);
            Tensor rows = d.slice(0, 1, 3);   /* rows 1..2: contiguous, offset 6 */
            assertEquals(d.deviceBuffer().address() + 6 * 4, rows.deviceBuffer().address());
            assertEquals(12 * 4, rows.deviceBuffer().byteSize());
            float[] all = iota(24);
            assertArrayEquals(java.util.Arrays.copyOfRange(all, 6, 18), rows.toArray());
            Tensor t = d.transpose(0, 1);   /* strided view: gathered on the host after one copy */
            float[] want = new float[24];
            for (int i = 0; i < 4; i++) for (int j = 0; j < 6; j++) want[j * 4 + i] = all[i * 6 + j];
            assertArrayEquals(want, t.toArray());
            assertArrayEquals(want, t.to(s, Device.CUDA).toArray());
            Tensor cols = d.slice(1, 2, 4);   /* strided, offset 2 */
            float[] wc = new float[8];
            for (int i = 0; i < 4; i++) { wc[2 * i] = all[i * 6 + 2]; wc[2 * i + 1] = all[i * 6 + 3]; }
            assertArrayEquals(wc, cols.toArray());
            assertArrayEquals(wc, cols.to(s, Device.CPU).toArray());
            assertArrayEquals(all, d.reshape(2, 12).toArray());
            assertEquals(d.storageAddress(), d.reshape(2, 12).storageAddress());
            Tensor tc = t.contiguous();   /* the strided-copy kernel, on the device */
            assertEquals(Device.CUDA, tc.device());
            assertTrue(tc.isContiguous());
            assertArrayEquals(want, tc.toArray());
            assertArrayEquals(wc, cols.contiguous().toArray());
            assertArrayEquals(want, t.reshape(24).toArray(), "reshape of a strided view copies on the device");
            /* a kernel through a view touches only the view's elements */
            DeviceBuffer rb = DeviceBuffer.of(rows.deviceBuffer());
            CudaKernels.mul(cu, 12, rb, rb, rb);
            float[] after = d.toArray();
            for (int i = 0; i < 24; i++) assertEquals(i >= 6 && i < 18 ? all[i] * all[i] : all[i], after[i], "element " + i);
        }
    }

    @Test
    void theScopeFreesDeviceMemory() {
        long before = Scope.liveDeviceBytes();
        Tensor kept;
        DeviceBuffer buf;
        try (Scope s = Scope.confined()) {
            kept = Tensor.zeros(s, Device.CUDA, 1000);
            buf = DeviceBuffer.of(kept.deviceBuffer());
            assertTrue(Scope.liveDeviceBytes() >= before + 4000);
        }
        assertEquals(before, Scope.liveDeviceBytes());
        assertFalse(buf.isAlive());
        assertThrows(IllegalStateException.class, kept::toArray);
        assertThrows(IllegalStateException.class, buf::address);
        /* early release (autograd's gradients): only what was allocated after the mark */
        try (Scope s = Scope.confined()) {
            Tensor old = Tensor.zeros(s, Device.CUDA, 8);
            long mark = s.deviceMark();
            Tensor fresh = Tensor.zeros(s, Device.CUDA, 8);
            assertFalse(s.releaseDeviceSince(mark, old.storageAddress()));
            assertTrue(s.releaseDeviceSince(mark, fresh.storageAddress()));
            assertThrows(IllegalStateException.class, () -> fresh.deviceBuffer().address());
            assertArrayEquals(new float[8], old.toArray());
        }
        assertEquals(before, Scope.liveDeviceBytes());
    }
}
