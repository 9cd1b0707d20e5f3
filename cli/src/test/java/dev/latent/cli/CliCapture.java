package dev.latent.cli;

import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.function.ToIntFunction;

/**
 * A CLI run in-process for the CLI tests: its exit code and what it wrote to System.out and System.err, both captured
 * (UTF-8) and restored afterwards.
 */
record CliCapture(int rc, String out, String err) {
    /** {@code new CommandLine(new Main())} executing args, its error writer on the captured stderr. */
    static CliCapture picocli(String... args) {
        return capture(err -> new CommandLine(new Main()).setErr(new PrintWriter(err, true)).execute(args));
    }

    /** {@link Main#run} on args (the launcher's own error handling: one-line messages, --stacktrace). */
    static CliCapture main(String... args) { return capture(err -> Main.run(args)); }

    /** Runs {@code run} (given the captured stderr stream) with System.out and System.err captured; one at a time (they are global). */
    static synchronized CliCapture capture(ToIntFunction<PrintStream> run) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        PrintStream savedOut = System.out, savedErr = System.err;
        int rc;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8); PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            System.setOut(o);
            System.setErr(e);
            rc = run.applyAsInt(e);
        } finally {
            System.setOut(savedOut);
            System.setErr(savedErr);
        }
        return new CliCapture(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}
