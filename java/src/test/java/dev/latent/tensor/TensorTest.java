package dev.latent.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class TensorTest {
    @Test
    void viewsShareStorageAndIndexCorrectly() {
        try (Scope s = Scope.confined()) {
            float[] d = new float[24];
            for (int i = 0; i < 24; i++) d[i] = i;
            Tensor t = Tensor.of(s, d, 2, 3, 4);
            assertTrue(t.isContiguous());
            assertEquals(0, t.segment().address() % Scope.ALIGNMENT, "64-byte aligned");
            assertEquals(1 * 12 + 2 * 4 + 3, t.get(1, 2, 3));
            Tensor tr = t.transpose(1, 2);                       // (2, 4, 3), a view
            assertFalse(tr.isContiguous());
            assertEquals(t.get(1, 2, 3), tr.get(1, 3, 2));
            tr.set(-1f, 0, 0, 1);
            assertEquals(-1f, t.get(0, 1, 0), "transpose is a view");
            Tensor sl = t.slice(2, 1, 3);                        // (2, 3, 2)
            assertArrayEquals(new long[] {2, 3, 2}, sl.shape());
            assertEquals(t.get(1, 1, 2), sl.get(1, 1, 1));
            Tensor r = t.reshape(6, -1);                         // contiguous: a view
            r.set(99f, 5, 3);
            assertEquals(99f, t.get(1, 2, 3));
            Tensor rc = tr.reshape(8, 3);                        // non-contiguous: a copy
            rc.set(123f, 0, 0);
            assertNotEquals(123f, t.get(0, 0, 0));
            float[] flat = tr.toArray();
            assertEquals(t.get(0, 1, 0), flat[1]);
            assertArrayEquals(tr.toArray(), tr.contiguous().toArray());
        }
    }

    @Test
    void badShapesAndIndicesAreRejected() {
        try (Scope s = Scope.confined()) {
            assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(s, 2, -1));
            var e = assertThrows(IllegalArgumentException.class, () -> Tensor.of(s, new float[5], 2, 3));
            assertTrue(e.getMessage().contains("[2, 3]"), e.getMessage());
            Tensor t = Tensor.zeros(s, 2, 3);
            assertThrows(IndexOutOfBoundsException.class, () -> t.get(2, 0));
            assertThrows(IllegalArgumentException.class, () -> t.get(0));
            assertThrows(IllegalArgumentException.class, () -> t.reshape(4, 2));
            assertThrows(IllegalArgumentException.class, () -> t.slice(1, 2, 5));
            assertThrows(IllegalArgumentException.class, () -> t.transpose(0, 2));
            assertThrows(ArithmeticException.class, () -> Tensor.zeros(s, Long.MAX_VALUE, 4));
        }
    }

    @Test
    void closedScopeIsAClearError() {
        Scope s = Scope.confined();
        Tensor t = Tensor.zeros(s, 3);
        s.close();
        s.close(); // idempotent
        var e = assertThrows(IllegalStateException.class, () -> t.get(0));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> Tensor.zeros(s, 3));
    }

    @Test
    void randIsReproducibleAndStreamsDiffer() {
        try (Scope s = Scope.confined()) {
            float[] a = Tensor.rand(s, 42, 0, 1000).toArray(), b = Tensor.rand(s, 42, 0, 1000).toArray();
            float[] c = Tensor.rand(s, 42, 1, 1000).toArray();
            assertArrayEquals(a, b);
            assertFalse(java.util.Arrays.equals(a, c));
            for (float x : a) assertTrue(x > 0 && x < 1);
        }
    }
}
