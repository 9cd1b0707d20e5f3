package dev.latent.bench;

import dev.latent.cli.Main;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/**
 * `latent bench` comes from this module: with latent-bench on the class path the CLI finds {@link BenchCommand}
 * through its {@code CommandProvider} service (not the CLI's stand-in), and its usage errors are the CLI's (exit 2,
 * one line). The CLI's HostileCliTest generates these two cases for every other command.
 */
class BenchCommandCliTest {
    record Result(int exit, String out, String err) {}

    static synchronized Result run(String... args) {
        PrintStream so = System.out, se = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int rc;
        try (PrintStream po = new PrintStream(out, true, StandardCharsets.UTF_8); PrintStream pe = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setOut(po);
            System.setErr(pe);
            rc = Main.run(args);
        } finally {
            System.setOut(so);
            System.setErr(se);
        }
        return new Result(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void benchIsThisModulesCommand() {
        Result r = run("bench", "--help");
        assertEquals(0, r.exit, r.err);
        assertTrue(r.out.contains("--no-peer") && r.out.contains("--reps"), r.out);   // BenchCommand's options, not the stand-in's
        assertTrue(r.out.contains("workload: gemm"), r.out);
    }

    @Test
    void unknownOptionIsAUsageError() {
        Result r = run("bench", "x", "--no-such-option");
        assertEquals(2, r.exit, r.err);
        assertTrue(r.err.startsWith("latent: Unknown option: '--no-such-option'"), r.err);
    }

    @Test
    void malformedNumberIsAUsageError() {
        Result r = run("bench", "gemm", "--reps", "twelve");
        assertEquals(2, r.exit, r.err);
        assertTrue(r.err.contains("Invalid value for option '--reps'"), r.err);
        Result z = run("bench", "gemm", "--reps", "0");
        assertEquals(1, z.exit, z.err);
        assertTrue(z.err.startsWith("latent: --reps must be >= 1, got 0"), z.err);
    }

    @Test
    void precisionIsFp32OrBf16AndBf16OnlyForAttentionAndGpt() {
        Result r = run("bench", "attention", "--precision", "fp16");
        assertEquals(2, r.exit, r.err);
        assertTrue(r.err.contains("Invalid value for option '--precision': expected one of [fp32, bf16] but was 'fp16'"), r.err);
        Result g = run("bench", "gemm", "--precision", "bf16");
        assertEquals(1, g.exit, g.err);
        assertTrue(g.err.contains("--precision bf16: only the attention and gpt workloads have a bf16 run"), g.err);
    }
}
