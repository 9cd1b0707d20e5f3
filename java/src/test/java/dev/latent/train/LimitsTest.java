package dev.latent.train;

import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The memory budget read from /proc and the cgroup files (the core needs no java.management) is the JDK's figure. */
class LimitsTest {
    @Test
    void memoryBudgetIsWhatTheJdkReports() {
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        assertEquals(os.getTotalMemorySize(), Limits.memoryBudget());
    }
}
