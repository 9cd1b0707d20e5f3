package dev.latent.extend;

import dev.latent.Latent;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The public settings facade {@link Latent}, from outside the library's packages: validation, round trips, answers. */
class LatentSettingsTest {
    private static final List<String> LEVELS = List.of("ref", "avx2", "avx512");

    @Test
    void threadsRoundTripAndBadCountsAreNamed() {
        int before = Latent.threads();
        try {
            Latent.setThreads(1);
            assertEquals(1, Latent.threads());
            Latent.setThreads(2);
            assertEquals(2, Latent.threads());
            for (int bad : new int[] {0, -3, Latent.MAX_THREADS + 1}) {
                var e = assertThrows(IllegalArgumentException.class, () -> Latent.setThreads(bad));
                assertTrue(e.getMessage().contains("threads") && e.getMessage().contains(Integer.toString(bad)), e.getMessage());
                assertEquals(2, Latent.threads(), "a refused count changes nothing");
            }
        } finally {
            Latent.setThreads(before);
        }
    }

    @Test
    void isaLevelsRoundTripAndBadNamesAreNamed() {
        String before = Latent.isa(), best = Latent.isaSupported();
        assertTrue(LEVELS.contains(before) && LEVELS.contains(best), before + " / " + best);
        try {
            Latent.setIsa("ref");
            assertEquals("ref", Latent.isa());
            assertFalse(Latent.isaReason().isEmpty() && !best.equals("ref"), "a lowered level says why");
            Latent.setIsa(best);
            assertEquals(best, Latent.isa());
            var e = assertThrows(IllegalArgumentException.class, () -> Latent.setIsa("sse4"));
            assertTrue(e.getMessage().contains("sse4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Latent.setIsa(null));
            assertTrue(e.getMessage().contains("null"), e.getMessage());
            if (!best.equals("avx512")) {   // a level above the CPU's is refused, not silently clamped
                e = assertThrows(IllegalArgumentException.class, () -> Latent.setIsa("avx512"));
                assertTrue(e.getMessage().contains(best), e.getMessage());
                assertEquals(best, Latent.isa(), "a refused level changes nothing");
            }
        } finally {
            Latent.setIsa(before);
        }
    }

    @Test
    void answersAreConsistent() {
        assertEquals(Latent.bf16Available(), Latent.bf16UnavailableReason().isEmpty());
        if (!Latent.bf16Available()) assertTrue(Latent.bf16UnavailableReason().contains("AVX512_BF16"), Latent.bf16UnavailableReason());
        assertEquals(Latent.cudaAvailable(), Latent.cudaUnavailableReason().isEmpty());
        assertFalse(Latent.cudaDescription().isEmpty());
        assertTrue(Latent.nativeLibrary().endsWith(".so"), Latent.nativeLibrary());
        boolean tf32 = Latent.cudaTf32();
        try {
            Latent.setCudaTf32(!tf32);
            assertEquals(!tf32, Latent.cudaTf32());
        } finally {
            Latent.setCudaTf32(tf32);
        }
    }
}
