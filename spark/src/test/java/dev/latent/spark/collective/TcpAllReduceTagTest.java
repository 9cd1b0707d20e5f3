package dev.latent.spark.collective;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.concurrent.ExecutionException;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/** Buckets of the same size reduced in another order on one rank fail (the tag is checked), not sum the wrong ranges. */
@Timeout(60)
class TcpAllReduceTagTest {
    @Test
    void mismatchedTagsFailNamingBoth() {
        ExecutionException e = assertThrows(ExecutionException.class, () -> TcpAllReduceTest.group(2, 1 << 20, (c, rank) -> {
            try (Arena a = Arena.ofConfined()) {
                c.allReduce(a.allocate(JAVA_FLOAT, 100), 0.5f, rank == 0 ? 3 : 4);
            }
            return null;
        }));
        String m = e.getCause().getMessage();
        assertTrue(m.contains("(tag 3)") && m.contains("(tag 4)") || m.contains("closed its connection"), m);
    }
}
