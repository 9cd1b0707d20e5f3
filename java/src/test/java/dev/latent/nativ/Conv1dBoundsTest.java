package dev.latent.nativ;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.latent.nativ.NativeBoundsTest.N;
import static dev.latent.nativ.NativeBoundsTest.refused;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 21: the conv1d entry points refuse segments smaller than what the kernel touches (naming the op, the argument
 * and its shape), and the library's own refusals (dilation 0, accumulate flags, overlap) come back as a
 * {@link NativeException} with the native message.
 */
class Conv1dBoundsTest {
    @Test
    void tooSmallSegmentsAreRefusedInJava() {
        try (Arena a = Arena.ofConfined()) {
            long n = 2, ci = 3, t = 10, co = 4, k = 3;
            MemorySegment x = a.allocate(n * ci * t * 4), w = a.allocate(co * ci * k * 4), b = a.allocate(co * 4),
                    y = a.allocate(n * co * t * 4), s8 = a.allocate(8);
            N.conv1dFwd(n, ci, t, co, k, 2, x, w, b, y);
            N.conv1dBwdData(n, ci, t, co, k, 2, y, w, x);
            N.conv1dBwdWeight(n, ci, t, co, k, 2, x, y, w, b, true);
            refused(() -> N.conv1dFwd(n, ci, t, co, k, 2, s8, w, b, y), "lt_conv1d_fwd", "x (n=2, cin=3, t=10)", "8 bytes");
            refused(() -> N.conv1dFwd(n, ci, t, co, k, 2, x, w, b, s8), "lt_conv1d_fwd", "y (n=2, cout=4, t=10)");
            refused(() -> N.conv1dFwd(n, ci, t, co, k, 2, x, s8, b, y), "lt_conv1d_fwd", "w (cout=4, cin=3, k=3)");
            refused(() -> N.conv1dFwd(n, ci, t, co, k, 2, x, w, s8, y), "lt_conv1d_fwd", "bias (cout=4)");
            refused(() -> N.conv1dBwdData(n, ci, t, co, k, 2, y, w, s8), "lt_conv1d_bwd_data", "dx");
            refused(() -> N.conv1dBwdData(n, ci, t, co, k, 2, s8, w, x), "lt_conv1d_bwd_data", "dy");
            refused(() -> N.conv1dBwdWeight(n, ci, t, co, k, 2, x, y, s8, b, false), "lt_conv1d_bwd_weight", "dw");
            refused(() -> N.conv1dBwdWeight(n, ci, t, co, k, 2, x, y, w, s8, false), "lt_conv1d_bwd_weight", "db");
            refused(() -> N.conv1dFwd(-1, ci, t, co, k, 2, x, w, b, y), "lt_conv1d_fwd", ">= 0");
            refused(() -> N.conv1dFwd(1L << 40, 1L << 20, 1L << 20, co, k, 2, x, w, b, y), "lt_conv1d_fwd", "overflow");
            // the library's own checks: a clear NativeException, never a crash
            NativeException e = assertThrows(NativeException.class, () -> N.conv1dFwd(n, ci, t, co, k, 0, x, w, b, y));
            assertTrue(e.getMessage().contains("dilation=0"), e.getMessage());
            MemorySegment big = a.allocate(n * co * t * 4);   // y = x: overlapping input and output, refused by the library
            e = assertThrows(NativeException.class, () -> N.conv1dFwd(n, ci, t, co, k, 1, big, w, MemorySegment.NULL, big));
            assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
            e = assertThrows(NativeException.class, () -> N.conv1dFwd(0, ci, t, co, k, 1, x, w, b, y));
            assertTrue(e.getMessage().contains("n=0"), e.getMessage());
        }
    }
}
